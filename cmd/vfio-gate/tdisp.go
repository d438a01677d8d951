package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/daemon"
	rpt "github.com/vfio-gate/vfio-gate/internal/report"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/spdm"
	"github.com/vfio-gate/vfio-gate/target"
	"github.com/vfio-gate/vfio-gate/tdisp"
)

// tdispFlags are shared by the tdisp subcommands.
type tdispFlags struct {
	anchors   []string
	slot      int
	socket    string
	iface     string
	lockDir   string
	timeout   time.Duration
	mmioOff   uint64
	lockFlags uint16
}

func (f *tdispFlags) register(c *cobra.Command) {
	fl := c.Flags()
	fl.StringArrayVar(&f.anchors, "trust-anchor", nil, "trust anchor certificate (PEM or DER); repeatable; the session needs a verified chain")
	fl.IntVar(&f.slot, "slot", 0, "certificate slot whose key authenticates the session")
	fl.StringVar(&f.socket, "socket", "", "talk to a responder behind the spdm-socket protocol at HOST:PORT instead of a PCI function")
	fl.StringVar(&f.iface, "interface", "0000:00:00.0", "with --socket: the function (BDF) whose TDI to address")
	fl.StringVar(&f.lockDir, "lock-dir", pci.DefaultLockDir, "directory of the per-function lock files")
	fl.DurationVar(&f.timeout, "timeout", 30*time.Second, "bound on the whole command")
}

// tdiConn is one short-lived session with a TDI.
type tdiConn struct {
	*attest.TDI
	name string // how output names the device: the BDF, or "socket:HOST:PORT"
}

// openTDI checks the arguments, picks the target (BDF or --socket) and
// opens an authenticated session with its TDI (attest.OpenTDIOf).
func openTDI(ctx context.Context, e *env, g *globals, f *tdispFlags, args []string, name string) (*tdiConn, error) {
	switch {
	case f.socket != "" && len(args) > 0:
		return nil, usageErrorf("tdisp %s: give either a BDF or --socket, not both", name)
	case f.socket == "" && len(args) != 1:
		return nil, usageErrorf("tdisp %s: need exactly one BDF (or --socket HOST:PORT)", name)
	case f.slot < 0 || f.slot > 7:
		return nil, usageErrorf("--slot %d: SPDM slots are 0-7", f.slot)
	}
	roots, err := loadAnchors(f.anchors)
	if err != nil {
		return nil, err
	}
	if len(roots) == 0 {
		return nil, usageErrorf("tdisp %s: need --trust-anchor: a session with an unauthenticated device proves nothing", name)
	}
	req := attest.Request{Socket: f.socket, SysfsRoot: g.sysfsRoot, LockDir: f.lockDir,
		PCI: &pci.Options{ConfigOpener: e.configOpener, Geteuid: e.geteuid, Logger: g.log}}
	c := &tdiConn{name: "socket:" + f.socket} // as check --socket names it in the TPM log (gate)
	if f.socket != "" {
		if req.BDF, err = pci.ParseBDF(f.iface); err != nil {
			return nil, usageErrorf("--interface: %v", err)
		}
	} else {
		if req.BDF, err = pci.ParseBDF(args[0]); err != nil {
			return nil, usageErrorf("tdisp %s: %v", name, err)
		}
		c.name = req.BDF.String()
	}
	slot := uint8(f.slot)
	if c.TDI, err = attest.OpenTDIOf(ctx, req, &attest.Options{Roots: roots, Slot: &slot, Logger: g.log}); err != nil {
		return nil, tdiOpenErr(err, f.socket != "")
	}
	return c, nil
}

// tdiOpenErr is the exit code of a session that did not open: the device
// failed (chain, no secured CMA, TDISP) or it was unavailable.
func tdiOpenErr(err error, socket bool) error {
	var te *attest.TDISPError
	var oe *target.OpenError
	var ie *attest.InterfaceError
	var se *attest.SysfsError
	switch {
	case errors.As(err, &se):
		return withCode(exitUnavailable, err)
	case errors.Is(err, spdm.ErrChainNotVerified), errors.Is(err, attest.ErrNoSecuredCMA), errors.As(err, &te):
		return withCode(exitAttestation, err)
	case socket && errors.As(err, &oe):
		return withCode(exitUnavailable, err)
	case errors.As(err, &ie):
		return err
	}
	return withCode(exitUnavailable, fmt.Errorf("secure session: %w", err))
}

func newTDISPCmd(e *env, g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:     "tdisp",
		Short:   "Inspect a function's TEE device interface (TDISP) inside an SPDM secure session",
		Example: helpText("tdisp.example"),
		Long:    helpText("tdisp.long"),
	}
	c.AddCommand(newTDISPStateCmd(e, g), newTDISPReportCmd(e, g), newTDISPCycleCmd(e, g))
	c.AddCommand(newTDISPDaemonCmds(e, g)...)
	return c
}

// withTDI is the RunE of a tdisp subcommand: within --timeout it opens a
// session to the TDI of args, runs do, and ends the session.
func withTDI(e *env, g *globals, f *tdispFlags, name string, do func(ctx context.Context, conn *tdiConn) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
		defer cancel()
		conn, err := openTDI(ctx, e, g, f, args, name)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		return do(ctx, conn)
	}
}

func newTDISPStateCmd(e *env, g *globals) *cobra.Command {
	f := &tdispFlags{}
	var viaDaemon bool
	own := withTDI(e, g, f, "state", func(ctx context.Context, conn *tdiConn) error {
		st, err := conn.Client.State(ctx)
		if err != nil {
			return withCode(exitAttestation, err)
		}
		doc := rpt.TDISPState{BDF: conn.name, Interface: conn.Client.Interface(), State: st, Session: rpt.TDISPSessionOf(conn.Session.Info())}
		return jsonOrText(e, g, "tdisp-state", doc, func(w io.Writer, d rpt.TDISPState) error { return rpt.WriteTDISPState(w, d.BDF, d.Interface, d.State) })
	})
	c := &cobra.Command{
		Use:     "state BDF | --socket HOST:PORT",
		Short:   "Print the TDI state (GET_DEVICE_INTERFACE_STATE)",
		Long:    helpText("tdisp-state.long"),
		Example: helpText("tdisp-state.example"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !viaDaemon {
				return own(cmd, args)
			}
			if len(args) != 1 || f.socket != "" {
				return usageErrorf("tdisp state --daemon takes one BDF (and no --socket)")
			}
			st, err := askDaemonTDI(cmd.Context(), g, f.timeout, "state --daemon", daemon.PathTDISPState, args[0], "")
			if err != nil {
				return err
			}
			return jsonOrText(e, g, "tdi", st, rpt.WriteTDIState)
		},
	}
	f.register(c)
	c.Flags().BoolVar(&viaDaemon, "daemon", false, "ask the daemon for the state of a TDI it holds, in its session")
	return c
}

func newTDISPReportCmd(e *env, g *globals) *cobra.Command {
	f := &tdispFlags{}
	c := &cobra.Command{
		Use:     "report BDF | --socket HOST:PORT",
		Short:   "Print the parsed DEVICE_INTERFACE_REPORT of a locked or running TDI",
		Long:    helpText("tdisp-report.long"),
		Example: "  sudo vfio-gate tdisp report 0000:3b:00.0 --trust-anchor /etc/vfio-gate/anchors/acme-root.pem",
		RunE: withTDI(e, g, f, "report", func(ctx context.Context, conn *tdiConn) error {
			st, rep, err := conn.Client.LockedReport(ctx)
			if nl := (*tdisp.NotLockedError)(nil); errors.As(err, &nl) {
				err = fmt.Errorf("%s: TDI is %v: a report exists only once it is locked (the daemon locks it for an assignment)", conn.name, nl.State)
			}
			if err != nil {
				return withCode(exitAttestation, err)
			}
			return jsonOrText(e, g, "tdisp-report", rpt.TDISPReport{State: st, Report: rpt.TDISPInterfaceReportOf(rep)}, func(w io.Writer, _ rpt.TDISPReport) error {
				return rpt.WriteTDISPStateReport(w, conn.name, conn.Client.Interface(), st, rep)
			})
		}),
	}
	f.register(c)
	return c
}

func newTDISPCycleCmd(e *env, g *globals) *cobra.Command {
	f := &tdispFlags{}
	c := &cobra.Command{
		Use:     "cycle BDF | --socket HOST:PORT",
		Short:   "Run lock -> report -> start -> state -> stop in one session and print every step",
		Example: "  vfio-gate tdisp cycle --socket 127.0.0.1:2323 --trust-anchor /tmp/emu-ca.pem",
		Long:    helpText("tdisp-cycle.long"),
		RunE: withTDI(e, g, f, "cycle", func(ctx context.Context, conn *tdiConn) error {
			cr, cerr := conn.Client.CycleSupported(ctx, tdisp.LockParams{Flags: tdisp.LockFlags(f.lockFlags), MMIOReportingOffset: f.mmioOff})
			if cr == nil {
				return withCode(exitAttestation, cerr)
			}
			if err := jsonOrText(e, g, "tdisp-cycle", rpt.TDISPCycleOf(cr), func(w io.Writer, _ *rpt.TDISPCycle) error { return rpt.WriteTDISPCycle(w, cr) }); err != nil {
				return err
			}
			if cerr != nil {
				return quietCode(exitAttestation, cerr)
			}
			return nil
		}),
	}
	f.register(c)
	c.Flags().Uint64Var(&f.mmioOff, "mmio-reporting-offset", 0, "LOCK_INTERFACE MMIO_REPORTING_OFFSET (4 KiB aligned)")
	c.Flags().Uint16Var(&f.lockFlags, "lock-flags", uint16(tdisp.LockNoFWUpdate), "LOCK_INTERFACE flags (masked to what the device supports)")
	return c
}
