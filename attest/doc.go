// Package attest attests one PCI function (DOE discovery, SPDM, optional
// TDISP) and returns Evidence. It never decides: policy does.
//
// Evidence is plain data (JSON-encodable, no protocol types) so that policy,
// tpm, gate and the CLI depend on this file only.
package attest
