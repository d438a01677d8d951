package attest

import (
	"context"
	"log/slog"

	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/spdm"
	"github.com/vfio-gate/vfio-gate/target"
	"github.com/vfio-gate/vfio-gate/tdisp"
)

// TDI is a short-lived authenticated secure session with one TDI (the
// `vfio-gate tdisp` commands): the SPDM session and a TDISP client on it
// that has agreed a TDISP version. Close it.
type TDI struct {
	Session *spdm.Session
	Client  *tdisp.Client
	log     *slog.Logger
	release func()
}

// TDISPError is a TDISP request that failed inside an established session
// (the device's answer, not the transport's availability).
type TDISPError struct {
	Err error
}

func (e *TDISPError) Error() string { return e.Err.Error() }
func (e *TDISPError) Unwrap() error { return e.Err }

// InterfaceError is a function that cannot be named as a TDISP interface
// (a PCI segment above 0xFF does not fit INTERFACE_ID).
type InterfaceError struct {
	Err error
}

func (e *InterfaceError) Error() string { return e.Err.Error() }
func (e *InterfaceError) Unwrap() error { return e.Err }

// OpenTDI opens a session with t through the one session opener
// (OpenTargetSession; OpenSession's rules for a PCI function) and asks the
// TDISP version of the TDI of the function iface. Its errors are
// OpenTargetSession's, an *InterfaceError when iface has no interface ID,
// or a *TDISPError when GET_TDISP_VERSION failed.
func OpenTDI(ctx context.Context, t target.Target, iface pci.BDF, o *Options) (*TDI, error) {
	var s *spdm.Session
	var release func()
	var err error
	if p, ok := t.(*target.PCI); ok {
		s, release, err = OpenSession(ctx, p.System, p.BDF, p.LockDir, o)
	} else {
		s, release, err = OpenTargetSession(ctx, t, o)
	}
	if err != nil {
		return nil, err
	}
	r := newRun(o)
	tdi := &TDI{Session: s, log: r.log, release: release}
	id, err := tdisp.InterfaceIDFor(iface)
	if err != nil {
		tdi.Close(ctx)
		return nil, &InterfaceError{Err: err}
	}
	tdi.Client = tdisp.NewClient(s, id, &tdisp.ClientOptions{Logger: r.log})
	if _, err := tdi.Client.GetVersion(ctx); err != nil {
		tdi.Close(ctx)
		return nil, &TDISPError{Err: err}
	}
	return tdi, nil
}

// Close ends the session (END_SESSION; a failure is only logged: the
// session is gone either way) and releases what opening the target took.
func (t *TDI) Close(ctx context.Context) {
	if err := t.Session.End(ctx); err != nil {
		t.log.Debug("END_SESSION", "err", err)
	}
	t.release()
}

// SysfsError is a sysfs tree that did not open (pci.Open): no device was
// reached.
type SysfsError struct {
	Err error
}

func (e *SysfsError) Error() string { return e.Err.Error() }
func (e *SysfsError) Unwrap() error { return e.Err }

// OpenTDIOf is OpenTDI for the device req names, as Run names it: the
// spdm-socket peer req.Socket, addressing the TDI of the function req.BDF;
// or the PCI function req.BDF of the sysfs tree req.SysfsRoot (opened with
// req.PCI, and closed by Close), locked in req.LockDir for the session. A
// tree that does not open is a *SysfsError; the other errors are OpenTDI's.
func OpenTDIOf(ctx context.Context, req Request, o *Options) (*TDI, error) {
	if req.Socket != "" {
		return OpenTDI(ctx, &target.Socket{Addr: req.Socket}, req.BDF, o)
	}
	sys, err := pci.Open(req.SysfsRoot, req.PCI)
	if err != nil {
		return nil, &SysfsError{Err: err}
	}
	tdi, err := OpenTDI(ctx, &target.PCI{System: sys, BDF: req.BDF, LockDir: req.LockDir}, req.BDF, o)
	if err != nil {
		sys.Close()
		return nil, err
	}
	release := tdi.release
	tdi.release = func() { release(); sys.Close() }
	return tdi, nil
}
