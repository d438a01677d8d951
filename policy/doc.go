// Package policy loads the vfio-gate policy file (strict, versioned YAML) and
// evaluates attest.Evidence against it. Every deny carries a stable reason
// code and one human sentence that says what to do.
//
// A *Policy is immutable after Load and safe for concurrent use; Evaluate
// does no I/O (trust anchors and CRLs are read and checked at Load).
//
// Facts used: DSP0274 1.2/1.3 (algorithm names, measurement value types 5
// "device mode" and 7 "mutable firmware SVN"), PCIe r6.x CMA (the CMA
// subjectAltName), RFC 5280 (CRLs).
package policy
