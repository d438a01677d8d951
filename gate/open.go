package gate

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/google/go-tpm/tpm2/transport"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/audit"
	"github.com/vfio-gate/vfio-gate/gate/evstore"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/policy"
	"github.com/vfio-gate/vfio-gate/tpm"
	"github.com/vfio-gate/vfio-gate/vfio"
)

// Setup is what Open needs: where the policy, the TPM, the sysfs tree and
// the state are, and how the gate runs. cmd fills it from flags.
type Setup struct {
	// Policy is the policy file; PolicyLoad adjusts loading it (nil: the
	// production checks).
	Policy     string
	PolicyLoad *policy.LoadOptions
	// TPM is the tpm.Open spec of the TPM decisions are recorded in;
	// TPMThrowaway says the in-process simulator ("sim") was asked for
	// knowingly (RecordingTPM).
	TPM          string
	TPMThrowaway bool
	// EventLog is the event log directory; Retention bounds earlier boots'
	// logs in it.
	EventLog  string
	Retention tpm.Retention
	// Evidence is the bundle store's directory.
	Evidence string
	// SysfsRoot is the sysfs tree; PCI its options (Logger: Logger when nil).
	SysfsRoot string
	PCI       pci.Options
	// Bind configures binding; nil: vfio.ApplyOptions{Logger: Logger}.
	Bind *vfio.ApplyOptions
	// Audit starts the eBPF tamper audit (Options.Watcher); when it cannot
	// run, Open fails with an *AuditError.
	Audit bool
	// LockDir, StateDir, Concurrency, Timeout (attest.Options.Timeout),
	// Observer and Logger are the Options of the same names.
	LockDir     string
	StateDir    string
	Concurrency int
	Timeout     time.Duration
	Observer    Observer
	Logger      *slog.Logger
}

// Host is an opened Gate and what it holds: the policy, the TPM and its
// recorder, the sysfs tree and the tamper audit. Close releases them.
type Host struct {
	Gate     *Gate
	Policy   *policy.Policy
	TPM      transport.TPMCloser
	System   *pci.System
	Recorder *tpm.Recorder
	audit    *tamperAudit
}

// ErrTPM is matched (errors.Is) by an *TPMError.
var ErrTPM = errors.New("gate: the TPM cannot record decisions")

// TPMError is an Open failure of the TPM or its recorder: the gate cannot
// record, so it must not decide. Its text is Err's.
type TPMError struct{ Err error }

func (e *TPMError) Error() string        { return e.Err.Error() }
func (e *TPMError) Unwrap() error        { return e.Err }
func (e *TPMError) Is(target error) bool { return target == ErrTPM }

// ErrAuditUnavailable is matched (errors.Is) by an *AuditError.
var ErrAuditUnavailable = errors.New("gate: the tamper audit cannot run")

// AuditError is an Open failure of the tamper audit asked for (Setup.Audit):
// no root, BTF or kprobes. Its text is Err's.
type AuditError struct{ Err error }

func (e *AuditError) Error() string        { return e.Err.Error() }
func (e *AuditError) Unwrap() error        { return e.Err }
func (e *AuditError) Is(target error) bool { return target == ErrAuditUnavailable }

// SimThrowaway is the TPM spec that asks for the in-process simulator
// knowingly, as "sim" with Setup.TPMThrowaway does.
const SimThrowaway = "sim:throwaway"

// ErrThrowawayTPM is RecordingTPM's refusal of a plain "sim".
var ErrThrowawayTPM = errors.New("--tpm sim is an in-process TPM that forgets every record at exit: refusing to record into it; " +
	"use a real TPM (/dev/tpmrm0) or swtpm (tcp:HOST:PORT), or say --tpm sim:throwaway (or --tpm-throwaway) for a throwaway run")

// RecordingTPM is the tpm.Open spec of a TPM that records decisions. The
// in-process simulator forgets every record when the process exits, so a
// mistyped spec must not "record" into it: "sim" is refused
// (ErrThrowawayTPM) unless asked for as a throwaway TPM (SimThrowaway, or
// "sim" with throwaway).
func RecordingTPM(spec string, throwaway bool) (string, error) {
	switch {
	case spec == SimThrowaway, spec == "sim" && throwaway:
		return "sim", nil
	case spec == "sim":
		return "", ErrThrowawayTPM
	}
	return spec, nil
}

// ReadingTPM is the tpm.Open spec of a TPM that is only read (log
// verify): it records nothing, so SimThrowaway is plain "sim".
func ReadingTPM(spec string) string {
	if spec == SimThrowaway {
		return "sim"
	}
	return spec
}

// TPMName says which TPM records (status, doctor): the spec, a refused
// one, or the throwaway simulator.
func TPMName(spec string, throwaway bool) string {
	switch s, err := RecordingTPM(spec, throwaway); {
	case err != nil:
		return spec + " (refused)"
	case s == "sim":
		return "sim (THROWAWAY in-process simulator: records are lost at exit)"
	default:
		return s
	}
}

// Open loads the policy (a missing or invalid one is a *policy.Error), opens
// the TPM and its recorder (*TPMError), the sysfs tree and, with Audit, the
// tamper audit (*AuditError), and builds the Gate over them. On error
// nothing stays open.
func Open(s Setup) (*Host, error) {
	p, err := policy.Load(s.Policy, s.PolicyLoad)
	if err != nil {
		return nil, err
	}
	spec, err := RecordingTPM(s.TPM, s.TPMThrowaway)
	if err != nil {
		return nil, err
	}
	h := &Host{Policy: p}
	if h.TPM, err = tpm.Open(spec); err != nil {
		return nil, &TPMError{Err: err}
	}
	pcr := 0
	if p.PCR >= 0 {
		pcr = p.PCR
	}
	if h.Recorder, err = tpm.NewRecorder(h.TPM, tpm.RecorderOptions{PCR: pcr, Dir: s.EventLog, Logger: s.Logger,
		Retention: s.Retention}); err != nil {
		_ = h.Close()
		return nil, &TPMError{Err: err}
	}
	po := s.PCI
	if po.Logger == nil {
		po.Logger = s.Logger
	}
	if h.System, err = pci.Open(s.SysfsRoot, &po); err != nil {
		_ = h.Close()
		return nil, err
	}
	bind := vfio.ApplyOptions{Logger: s.Logger}
	if s.Bind != nil {
		bind = *s.Bind
	}
	var watcher AccessWatcher
	if s.Audit {
		if h.audit, err = startTamperAudit(s.Logger); err != nil {
			_ = h.Close()
			return nil, err
		}
		watcher = h.audit.w
	}
	h.Gate, err = New(Options{System: h.System, Policy: p, Recorder: h.Recorder, Evidence: evstore.Open(s.Evidence, evstore.Options{}),
		LockDir: s.LockDir, StateDir: s.StateDir, Concurrency: s.Concurrency, Attest: attest.Options{Timeout: s.Timeout},
		Bind: bind, Logger: s.Logger, Watcher: watcher, Observer: s.Observer})
	if err != nil {
		_ = h.Close()
		return nil, err
	}
	return h, nil
}

// Close stops the tamper audit and closes the TPM and the sysfs tree.
func (h *Host) Close() error {
	var errs []error
	errs = append(errs, h.audit.Close())
	if h.TPM != nil {
		errs = append(errs, h.TPM.Close())
	}
	if h.System != nil {
		errs = append(errs, h.System.Close())
	}
	return errors.Join(errs...)
}

// tamperAudit is a running audit monitor feeding the gate's Watcher.
type tamperAudit struct {
	m      *audit.Monitor
	w      *audit.Watcher
	cancel context.CancelFunc
	wait   func() error
}

// startTamperAudit loads and attaches the monitor and starts its reader.
func startTamperAudit(log *slog.Logger) (*tamperAudit, error) {
	m, err := audit.New(audit.Options{Logger: log})
	if err != nil {
		return nil, &AuditError{Err: err}
	}
	tagged, err := m.Attach()
	if err != nil {
		return nil, &AuditError{Err: errors.Join(err, m.Close())}
	}
	w := audit.NewWatcher(m)
	ctx, cancel := context.WithCancel(context.Background())
	wait, err := w.Start(ctx)
	if err != nil {
		cancel()
		return nil, &AuditError{Err: errors.Join(err, m.Close())}
	}
	if log != nil {
		log.Info("tamper audit attached", "mode", m.Mode(), "path_taggers", tagged)
	}
	return &tamperAudit{m: m, w: w, cancel: cancel, wait: wait}, nil
}

func (t *tamperAudit) Close() error {
	if t == nil {
		return nil
	}
	t.cancel()
	return errors.Join(t.wait(), t.m.Close())
}
