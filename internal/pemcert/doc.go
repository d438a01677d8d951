// Package pemcert reads certificate files an operator hands vfio-gate (trust
// anchors, device chains): PEM CERTIFICATE blocks, or DER. It imports nothing
// of the module.
package pemcert
