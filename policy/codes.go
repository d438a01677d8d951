package policy

import "fmt"

// Code is a stable reason code. Codes never change meaning; new ones may be added.
type Code string

// Reason codes. docs/policy.md lists each with its message.
const (
	CodeNoCMA               Code = "no-cma"
	CodeNoRule              Code = "no-rule"
	CodeChainUntrusted      Code = "chain-untrusted"
	CodeChainExpired        Code = "chain-expired"
	CodeChainBroken         Code = "chain-broken"
	CodeRevoked             Code = "revoked"
	CodeCRLExpired          Code = "crl-expired"
	CodeCRLInvalid          Code = "crl-invalid"
	CodeSANMismatch         Code = "san-mismatch"
	CodeSignatureInvalid    Code = "signature-invalid"
	CodeMeasurementMismatch Code = "measurement-mismatch"
	CodeMeasurementMissing  Code = "measurement-missing"
	CodeSVNTooLow           Code = "svn-too-low"
	CodeDebugMode           Code = "debug-mode"
	CodeVersionTooLow       Code = "version-too-low"
	CodeAlgorithmNotAllowed Code = "algorithm-not-allowed"
	CodeSessionRequired     Code = "session-required"
	CodeTDISPNotLocked      Code = "tdisp-not-locked"
	CodeIOMMUGroupUnsafe    Code = "iommu-group-unsafe"
	CodeLockdown            Code = "lockdown"
	CodePermission          Code = "permission"
	CodeMailboxBusy         Code = "mailbox-busy"
	CodeMailboxOwned        Code = "mailbox-owned"
	CodeMailboxTampered     Code = "mailbox-tampered"
	CodeTimeout             Code = "timeout"
	CodeDeviceRemoved       Code = "device-removed"
	CodeTransport           Code = "transport"
	CodeProtocol            Code = "protocol"
)

// advice is the "what to do" sentence of each code; the detail of a reason
// (what exactly was wrong) is prepended by ReasonFor.
var advice = map[Code]string{
	CodeNoCMA:               "the device offers no CMA/SPDM mailbox, so it cannot be attested: use an attestable device, or pass it only to non-confidential VMs under defaults.non_confidential: allow-unattested",
	CodeNoRule:              "no policy rule matches this device: add a rule for it (vfio-gate policy capture prints one)",
	CodeChainUntrusted:      "the certificate chain does not lead to a trust anchor of the matching rule: add the vendor's root to spdm.trust_anchors if you trust it",
	CodeChainExpired:        "a certificate in the device's chain has expired: ask the vendor for re-provisioned certificates or a firmware update",
	CodeChainBroken:         "the device's certificate chain is malformed or misuses keys: do not use this device until the vendor explains its certificates",
	CodeRevoked:             "a certificate in the device's chain is revoked by a configured CRL: take the device out of service",
	CodeCRLExpired:          "a configured CRL is past its nextUpdate (or not yet valid): install a current CRL from the issuer",
	CodeCRLInvalid:          "a configured CRL's signature does not verify against its issuer in the chain: replace the CRL file with the issuer's genuine CRL",
	CodeSANMismatch:         "the leaf certificate's CMA subjectAltName does not name this device: the device may be impersonating another, do not use it",
	CodeSignatureInvalid:    "the device did not prove possession of its certificate key with a valid, fresh signature: do not use it, and report it to the vendor",
	CodeMeasurementMismatch: "a firmware measurement matches none of the reference values: update measurements.reference if the firmware was updated on purpose, otherwise treat the device as tampered",
	CodeMeasurementMissing:  "the device did not report a measurement the rule requires: check the rule's indices, or update the device firmware",
	CodeSVNTooLow:           "the firmware security version is below measurements.min_svn: update the device firmware",
	CodeDebugMode:           "the device reports that debug mode is or was active: reset it to normal operation before passing it to a VM",
	CodeVersionTooLow:       "the negotiated SPDM version is below spdm.min_version: update the device firmware or lower the floor knowingly",
	CodeAlgorithmNotAllowed: "the negotiated algorithm is not in the rule's allow-list: update the device firmware or extend spdm.algorithms knowingly",
	CodeSessionRequired:     "the rule requires an SPDM secure session and none was established: use a device and firmware with KEY_EXCHANGE support",
	CodeTDISPNotLocked:      "the rule requires the TDISP interface to be locked and it is not: assign the function to a confidential domain through the vfio-gate daemon (the libvirt hook), which locks it in the attested session before deciding, or lock it via the platform TSM",
	CodeIOMMUGroupUnsafe:    "another function in the IOMMU group is not allowed and not exempt: bind the whole group together, or exempt bridges with iommu_group.exempt_classes",
	CodeLockdown:            "kernel lockdown forbids user-space config-space writes, so the mailbox cannot be used: attest through the kernel's PCI TSM, or boot without lockdown",
	CodePermission:          "the device's extended config space is not readable: run vfio-gate as root",
	CodeMailboxBusy:         "another agent holds the device's DOE mailbox: find and stop it, then retry",
	CodeMailboxOwned:        "a kernel driver or the TSM owns the DOE mailbox: use `vfio-gate bind` (it moves the function to vfio-pci before attesting), or unbind the driver (or use the TSM path) and retry",
	CodeMailboxTampered:     "another process touched the DOE mailbox during attestation: find it (vfio-gate audit) before retrying",
	CodeTimeout:             "the device did not answer in time: check that it is healthy, then retry",
	CodeDeviceRemoved:       "the device disappeared during the check: check the hardware, then retry",
	CodeTransport:           "the mailbox transport failed: reset the device or check the link, then retry",
	CodeProtocol:            "the device violated the SPDM protocol: update its firmware, and do not use it until then",
}

// Codes returns every reason code, in a stable order.
func Codes() []Code {
	return []Code{CodeNoCMA, CodeNoRule, CodeChainUntrusted, CodeChainExpired, CodeChainBroken, CodeRevoked,
		CodeCRLExpired, CodeCRLInvalid, CodeSANMismatch, CodeSignatureInvalid, CodeMeasurementMismatch,
		CodeMeasurementMissing, CodeSVNTooLow, CodeDebugMode, CodeVersionTooLow, CodeAlgorithmNotAllowed,
		CodeSessionRequired, CodeTDISPNotLocked, CodeIOMMUGroupUnsafe, CodeLockdown, CodePermission,
		CodeMailboxBusy, CodeMailboxOwned, CodeMailboxTampered, CodeTimeout, CodeDeviceRemoved,
		CodeTransport, CodeProtocol}
}

// Advice returns the "what to do" sentence of code ("" for an unknown code).
func Advice(c Code) string { return advice[c] }

// ReasonFor builds a Reason: detail (what was found, may be empty) followed by
// the code's advice, as one sentence. gate uses it for iommu-group-unsafe.
func ReasonFor(c Code, detail string) Reason {
	a, ok := advice[c]
	if !ok {
		a = "unclassified failure: do not use this device until the cause is known"
	}
	if detail == "" {
		return Reason{Code: c, Message: upperFirst(a) + "."}
	}
	return Reason{Code: c, Message: fmt.Sprintf("%s; %s.", upperFirst(detail), a)}
}

func upperFirst(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}
