package gate

import (
	"errors"

	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/policy"
	"github.com/vfio-gate/vfio-gate/tpm"
	"github.com/vfio-gate/vfio-gate/vfio"
)

// Summary is what a run's outcomes say as a whole; cmd turns it into the
// exit code, in this priority: a TPM failure, a bind failure, then Class.
type Summary struct {
	// TPMFailed: a decision (or release) could not be recorded in the TPM
	// or its event log.
	TPMFailed bool
	// BindFailed: an allowed function failed to bind (or a release failed
	// otherwise than in the TPM).
	BindFailed bool
	// Class is the worst class (policy.Worse) over the reasons of the
	// denied functions, ClassDenied for a deny without reasons; the zero
	// Class when all are allowed (audit mode: would-be denies too).
	Class policy.Class
}

// Summarize is the Summary of check, bind or explain decisions. A decision's
// Err is a TPM failure when it matches tpm.ErrTPM or the verdict was not
// recorded, a bind failure otherwise.
func Summarize(ds []Decision) Summary {
	var s Summary
	for _, d := range ds {
		if d.Err != nil {
			if errors.Is(d.Err, tpm.ErrTPM) || !d.Recorded {
				s.TPMFailed = true
			} else {
				s.BindFailed = true
			}
		}
		if d.Allowed() {
			continue
		}
		if len(d.Verdict.Reasons) == 0 {
			s.Class = policy.Worse(s.Class, policy.ClassDenied) // a deny without a reason: denied, never less
		}
		for _, r := range d.Verdict.Reasons {
			s.Class = policy.Worse(s.Class, policy.ClassOf(r.Code))
		}
	}
	return s
}

// SummarizeReleases is the Summary of Release's outcomes: a failure that
// matches tpm.ErrTPM or is a *tpm.LogError is a TPM failure, any other a
// bind failure. Class stays zero.
func SummarizeReleases(rs []Released) Summary {
	var s Summary
	for _, r := range rs {
		if r.Err == nil {
			continue
		}
		var le *tpm.LogError
		if errors.Is(r.Err, tpm.ErrTPM) || errors.As(r.Err, &le) {
			s.TPMFailed = true
		} else {
			s.BindFailed = true
		}
	}
	return s
}

// SummarizeError is the Summary of an error that ended a run before its
// decisions (opening the gate, the locks, a release, a bound function's
// lookup), and whether the error is one the failure vocabulary knows:
//   - a TPM that cannot record (ErrTPM, tpm.ErrTPM): TPMFailed;
//   - no such device, a device removed, kernel lockdown, missing
//     CAP_SYS_ADMIN, a tamper audit that cannot run, a lock wait that ended:
//     ClassUnavailable;
//   - a failure to bind or release (vfio.BindFailed): BindFailed.
//
// Everything else, including a policy that does not load and a refused
// throwaway TPM, is not known (false): the caller fails closed.
func SummarizeError(err error) (Summary, bool) {
	var pe *policy.Error
	switch {
	case err == nil, errors.Is(err, ErrThrowawayTPM), errors.As(err, &pe):
		return Summary{}, false
	case errors.Is(err, ErrTPM), errors.Is(err, tpm.ErrTPM):
		return Summary{TPMFailed: true}, true
	case errors.Is(err, ErrAuditUnavailable), errors.Is(err, pci.ErrNoDevice), errors.Is(err, pci.ErrDeviceRemoved),
		errors.Is(err, pci.ErrLockdown), errors.Is(err, pci.ErrNeedCapSysAdmin), errors.Is(err, vfio.ErrNoDevice):
		return Summary{Class: policy.ClassUnavailable}, true
	case vfio.BindFailed(err):
		return Summary{BindFailed: true}, true
	}
	return Summary{}, false
}
