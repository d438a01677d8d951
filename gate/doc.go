// Package gate is the decision pipeline: for each PCI function it takes the
// per-function lock, attests the function, evaluates the policy, records the
// decision in the TPM (allow and deny alike), and then binds the IOMMU group
// to vfio-pci or refuses. Many functions are handled in parallel with a bound
// on concurrency, so a check of N devices takes about as long as the slowest.
//
// Fail closed: a function that cannot be read, attested or recorded is denied
// with a reason code; a TPM failure denies even in audit mode.
package gate
