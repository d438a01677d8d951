package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/go-tpm/tpm2/transport"
	"github.com/spf13/cobra"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/gate"
	rpt "github.com/vfio-gate/vfio-gate/internal/report"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/policy"
	"github.com/vfio-gate/vfio-gate/tpm"
)

// gateFlags are the flags of check, bind, release and explain.
type gateFlags struct {
	lockDir     string
	timeout     time.Duration
	concurrency int
	audit       auditFlag // check and bind only (gateaudit.go)
	// retention of earlier boots' event logs (docs/evidence.md)
	retainBytes int64
	retainAge   time.Duration
}

func (f *gateFlags) add(c *cobra.Command) {
	f.addOne(c)
	c.Flags().IntVar(&f.concurrency, "concurrency", gate.DefaultConcurrency, "functions attested in parallel")
}

// addOne is add for a command that attests one function (explain): no --concurrency.
func (f *gateFlags) addOne(c *cobra.Command) {
	f.addLock(c)
	c.Flags().DurationVar(&f.timeout, "timeout", attest.DefaultTimeout, "time budget of one function's attestation")
}

// addLock is add for a command that attests nothing (release): only --lock-dir.
func (f *gateFlags) addLock(c *cobra.Command) {
	f.timeout, f.concurrency = attest.DefaultTimeout, gate.DefaultConcurrency
	c.Flags().StringVar(&f.lockDir, "lock-dir", pci.DefaultLockDir, "directory of the per-function lock files")
	c.Flags().Int64Var(&f.retainBytes, "log-retain-bytes", tpm.DefaultRetainBytes, "event logs of earlier boots kept, in bytes (oldest removed first when a boot starts; -1: all)")
	c.Flags().DurationVar(&f.retainAge, "log-retain-age", 0, "remove event logs of earlier boots last written longer ago (0: no age limit)")
}

// gateSetup is an opened gate and what it holds (gate.Host, named as the
// commands and the demo use it).
type gateSetup struct {
	*gate.Host
	gate *gate.Gate
	pol  *policy.Policy
	tpm  transport.TPMCloser
	sys  *pci.System
	rec  *tpm.Recorder
}

// setupOptions let the demo and tests adjust what openGate builds.
type setupOptions struct {
	policyLoad *policy.LoadOptions
	geteuid    func() int
	observer   gate.Observer // the daemon's metrics
}

// openGate opens the gate (gate.Open) from the flags: no valid policy is
// exit 1, a TPM that cannot record 5, a tamper audit that cannot run 4.
func openGate(e *env, g *globals, f *gateFlags, so setupOptions) (*gateSetup, error) {
	if so.policyLoad == nil {
		so.policyLoad = e.policyLoad
	}
	if so.geteuid == nil {
		so.geteuid = e.geteuid
	}
	h, err := gate.Open(gate.Setup{Policy: g.policy, PolicyLoad: so.policyLoad, TPM: g.tpm, TPMThrowaway: g.tpmThrowaway,
		EventLog: eventLogDir(g), Retention: tpm.Retention{MaxBytes: f.retainBytes, MaxAge: f.retainAge}, Evidence: evidenceDir(g),
		SysfsRoot: g.sysfsRoot, PCI: pci.Options{ConfigOpener: e.configOpener, Geteuid: so.geteuid}, Bind: e.vfioApply,
		Audit: f.audit.on, LockDir: f.lockDir, StateDir: g.stateDir, Concurrency: f.concurrency, Timeout: f.timeout,
		Observer: so.observer, Logger: g.log})
	switch {
	case errors.Is(err, gate.ErrThrowawayTPM):
		return nil, usageErrorf("%v", err)
	case errors.Is(err, gate.ErrTPM):
		return nil, withCode(exitTPM, err)
	case errors.Is(err, gate.ErrAuditUnavailable):
		return nil, withCode(exitUnavailable, err)
	case err != nil:
		return nil, err
	}
	return &gateSetup{Host: h, gate: h.Gate, pol: h.Policy, tpm: h.TPM, sys: h.System, rec: h.Recorder}, nil
}

// simThrowaway is the --tpm value that asks for the in-process simulator
// knowingly, as --tpm sim --tpm-throwaway does.
const simThrowaway = gate.SimThrowaway

// recordingTPM is the tpm.Open spec of a command that records decisions
// (gate.RecordingTPM): --tpm sim is refused unless asked for as a
// throwaway TPM (--tpm sim:throwaway, or --tpm sim --tpm-throwaway).
func recordingTPM(g *globals) (string, error) {
	spec, err := gate.RecordingTPM(g.tpm, g.tpmThrowaway)
	if err != nil {
		return "", usageErrorf("%v", err)
	}
	return spec, nil
}

// tpmName says which TPM a command uses, for status and doctor.
func tpmName(g *globals) string { return gate.TPMName(g.tpm, g.tpmThrowaway) }

func parseBDFs(args []string) ([]pci.BDF, error) {
	var out []pci.BDF
	for _, a := range args {
		b, err := pci.ParseBDF(a)
		if err != nil {
			return nil, usageErrorf("%q is not a PCI address (want DDDD:BB:DD.F): %v", a, err)
		}
		out = append(out, b)
	}
	return out, nil
}

// checkJSON is the body of check/bind --json (rpt.Decisions; demo.go
// embeds it).
type checkJSON = rpt.Decisions

// toJSON is rpt.DecisionsOf (demo.go).
func toJSON(ds []gate.Decision, mode policy.Mode, withChecks bool) checkJSON {
	return rpt.DecisionsOf(ds, mode, withChecks)
}

// decisionsExit is the exit code of check and bind, in this priority:
// 5 when any decision could not be recorded in the TPM; 6 when any allowed
// function failed to bind; then, over the reasons of the denied functions
// (policy.ClassOf, the one table): 3 when any is a policy deny, 2 when any
// is an attestation failure, 4 when all say the device or its transport was
// unavailable; 0 when all are allowed (audit mode: would-be denies too).
func decisionsExit(ds []gate.Decision) int {
	tpmErr, bindErr := false, false
	worst := policy.Class(0)
	for _, d := range ds {
		if d.Err != nil {
			if errors.Is(d.Err, tpm.ErrTPM) || !d.Recorded {
				tpmErr = true
			} else {
				bindErr = true
			}
		}
		if d.Allowed() {
			continue
		}
		if len(d.Verdict.Reasons) == 0 {
			worst = policy.ClassDenied
		}
		for _, r := range d.Verdict.Reasons {
			worst = worseClass(worst, policy.ClassOf(r.Code))
		}
	}
	switch {
	case tpmErr:
		return exitTPM
	case bindErr:
		return exitBind
	}
	return classExit(worst)
}

// printDecisions is rpt.WriteDecisions (demo.go).
func printDecisions(w io.Writer, ds []gate.Decision, mode policy.Mode, showBound bool) {
	rpt.WriteDecisions(w, ds, mode, showBound)
}

// finishDecisions prints (table or JSON) and maps to the exit code.
func finishDecisions(e *env, g *globals, ds []gate.Decision, mode policy.Mode, showBound, withChecks bool) error {
	if g.json {
		if err := writeJSON(e.out, "decision", toJSON(ds, mode, withChecks)); err != nil {
			return err
		}
	} else {
		printDecisions(e.out, ds, mode, showBound)
	}
	if code := decisionsExit(ds); code != exitOK {
		return quietCode(code, fmt.Errorf("exit %d", code))
	}
	return nil
}

func newCheckCmd(e *env, g *globals) *cobra.Command {
	var f gateFlags
	var confidential bool
	var socket, pciID string
	c := &cobra.Command{
		Use:   "check BDF... | check --socket HOST:PORT [--pci-id VVVV:DDDD]",
		Short: "Attest functions, evaluate the policy and record each decision in the TPM (no binding)",
		Example: `  sudo vfio-gate check --confidential 0000:3b:00.0 0000:3b:00.1
  vfio-gate check --socket 127.0.0.1:2323 --policy /etc/vfio-gate/policy.yaml --tpm tcp:127.0.0.1:2321`,
		Long: `check takes each function's lock, attests it (DOE → SPDM/CMA), evaluates the policy
(--policy; a missing or invalid policy refuses to run), and records the evidence and the verdict
in the TPM PCR and event log (--tpm, <--state-dir>/` + eventLogName + `), allow and deny alike.
Functions are checked in parallel. Nothing is bound.

With --socket it attests a responder behind the spdm-socket protocol (DMTF spdm-emu,
vfio-gate emulate) instead; its identity comes from --pci-id, or else from the leaf
certificate's CMA subjectAltName.

With --audit (check and bind), kprobes watch every user config-space access to each function
while it is attested (as vfio-gate audit does); an access to its DOE mailbox registers by any
other process, or lost audit events, make the evidence fail with mailbox-tampered (a deny,
recorded like every decision). Without root, BTF or kprobes, --audit exits 4 before deciding.

Needs: root (config space, locks under /run), a valid root-owned policy (--policy) and a TPM
(--tpm; 5 when it cannot be opened). Not the daemon. With --socket no root.

Exit codes: 0 every function allowed (in audit mode also would-be denies); 3 a function is
denied by policy; 2 every denied function failed attestation or was unavailable, and one failed
attestation (signature-invalid, chain-untrusted, chain-expired, chain-broken, protocol: the
same as vfio-gate attest); 4 every denied function was denied only because it or its transport
was unavailable (no-device, device-removed, timeout, mailbox-busy, mailbox-owned, lockdown,
permission, transport, lock); 5 a decision could not be recorded in the TPM (always a deny);
1 usage, or no valid policy.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if socket != "" && len(args) > 0 {
				return usageErrorf("check: give BDFs or --socket, not both")
			}
			if socket == "" && len(args) == 0 {
				return usageErrorf("check: no functions given (BDF... or --socket HOST:PORT)")
			}
			if pciID != "" && socket == "" {
				return usageErrorf("check: --pci-id needs --socket")
			}
			var id attest.Identity
			if pciID != "" {
				var err error
				if id, err = parsePCIID(pciID); err != nil {
					return err
				}
			}
			bdfs, s, err := openGateFor(e, g, &f, args)
			if err != nil {
				return err
			}
			defer s.Close()
			var ds []gate.Decision
			if socket != "" {
				done := rpt.Progress(e.errw, "checking", 1)
				d, err := s.gate.CheckSocket(cmd.Context(), socket, id, confidential)
				done()
				if err != nil {
					return err
				}
				ds = []gate.Decision{d}
			} else {
				ds, err = decide(e, "checking", bdfs, func() ([]gate.Decision, error) {
					return s.gate.Check(cmd.Context(), gate.Request{BDFs: bdfs, Confidential: confidential})
				})
				if err != nil {
					return err
				}
			}
			return finishDecisions(e, g, ds, s.pol.Mode, false, false)
		},
	}
	f.add(c)
	f.audit.add(c)
	c.Flags().BoolVar(&confidential, "confidential", false, "the functions are for a confidential VM (defaults.confidential applies)")
	c.Flags().StringVar(&socket, "socket", "", "attest an spdm-socket responder at HOST:PORT instead of sysfs functions")
	c.Flags().StringVar(&pciID, "pci-id", "", "VVVV:DDDD identity of the --socket device (default: its CMA SAN)")
	return c
}

// openGateFor parses the BDF arguments and opens the gate.
func openGateFor(e *env, g *globals, f *gateFlags, args []string) ([]pci.BDF, *gateSetup, error) {
	bdfs, err := parseBDFs(args)
	if err != nil {
		return nil, nil, err
	}
	s, err := openGate(e, g, f, setupOptions{})
	if err != nil {
		return nil, nil, err
	}
	return bdfs, s, nil
}

// decide runs a check or bind of bdfs under a progress line; a failure to
// take the locks is classified by lockErr.
func decide(e *env, verb string, bdfs []pci.BDF, run func() ([]gate.Decision, error)) ([]gate.Decision, error) {
	done := rpt.Progress(e.errw, verb, len(normalizeCount(bdfs)))
	ds, err := run()
	done()
	if err != nil {
		return nil, lockErr(err)
	}
	return ds, nil
}

func normalizeCount(b []pci.BDF) map[pci.BDF]bool {
	m := map[pci.BDF]bool{}
	for _, x := range b {
		m[x] = true
	}
	return m
}

// lockErr classifies a failure to take the locks: a context that ended is 4.
func lockErr(err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || errors.Is(err, pci.ErrLockDir) {
		return withCode(exitUnavailable, err)
	}
	return err
}

func parsePCIID(s string) (attest.Identity, error) {
	v, d, ok := strings.Cut(s, ":")
	if !ok || len(v) != 4 || len(d) != 4 {
		return attest.Identity{}, usageErrorf("--pci-id %q: want VVVV:DDDD (hex)", s)
	}
	vv, err1 := pci.ParseHexAttr("0x"+v, 16)
	dd, err2 := pci.ParseHexAttr("0x"+d, 16)
	if err1 != nil || err2 != nil {
		return attest.Identity{}, usageErrorf("--pci-id %q: want VVVV:DDDD (hex)", s)
	}
	return attest.Identity{VendorID: uint16(vv), DeviceID: uint16(dd)}, nil
}

func newBindCmd(e *env, g *globals) *cobra.Command {
	var f gateFlags
	var confidential bool
	var domain string
	c := &cobra.Command{
		Use:     "bind BDF...",
		Short:   "Check the functions, then bind their IOMMU groups to vfio-pci on allow",
		Example: `  sudo vfio-gate bind --confidential --domain vm1 0000:3b:00.0`,
		Long: `bind runs check with every function's lock held, applies the IOMMU group rule (every other
member of a function's group must be allowed in the same request or exempt by policy, else
nothing in the group is bound: iommu-group-unsafe), records the decisions in the TPM, and binds
each group whose functions are all allowed (driver_override, unbind, drivers_probe, wait for
/dev/vfio/N), undoing a group whose binding fails part-way. The original driver of each
function is kept under <--state-dir>/bound/ for release.

A function on a host driver cannot be attested there (the driver owns its DOE mailbox), so bind
first moves its whole group to vfio-pci, which neither uses nor exposes DOE, attests it there,
and on deny gives every function back to its original driver. check never does this: it reports
mailbox-owned instead.

Needs what check needs, plus an IOMMU (intel_iommu=on / amd_iommu=on) and the vfio-pci module.

Exit codes as for check, plus 6 when an allowed group failed to bind (the error names the step
and any undo failure).`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			bdfs, s, err := openGateFor(e, g, &f, args)
			if err != nil {
				return err
			}
			defer s.Close()
			ds, err := decide(e, "binding", bdfs, func() ([]gate.Decision, error) {
				return s.gate.Bind(cmd.Context(), gate.Request{BDFs: bdfs, Confidential: confidential, Domain: domain})
			})
			if err != nil {
				return err
			}
			return finishDecisions(e, g, ds, s.pol.Mode, true, false)
		},
	}
	f.add(c)
	f.audit.add(c)
	c.Flags().BoolVar(&confidential, "confidential", false, "the functions are for a confidential VM")
	c.Flags().StringVar(&domain, "domain", "", "name of the VM the functions are for (kept with the binding)")
	return c
}

func newReleaseCmd(e *env, g *globals) *cobra.Command {
	var f gateFlags
	var domain string
	c := &cobra.Command{
		Use:     "release BDF...",
		Short:   "Give functions bound by vfio-gate back: unbind vfio-pci, restore the original driver",
		Example: `  sudo vfio-gate release --domain vm1 0000:3b:00.0`,
		Long: `release takes each function's lock, unbinds it from vfio-pci, clears driver_override, binds the
driver it had before bind (from <--state-dir>/bound/), and records a release event in the TPM.
A function vfio-gate did not bind is left alone. Needs root and the TPM (--tpm); no policy.

Exit codes: 0 all were released; 5 a release event could not be recorded; 6 otherwise (the error
names the function and step); 1 usage error.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			bdfs, s, err := openGateFor(e, g, &f, args)
			if err != nil {
				return err
			}
			defer s.Close()
			rs, err := s.gate.Release(cmd.Context(), bdfs, domain)
			if rs == nil && err != nil {
				return lockErr(err)
			}
			code := exitOK
			for _, r := range rs {
				if r.Err == nil {
					continue
				}
				var le *tpm.LogError
				if errors.Is(r.Err, tpm.ErrTPM) || errors.As(r.Err, &le) {
					code = exitTPM
				} else if code == exitOK {
					code = exitBind
				}
			}
			out := rpt.ReleasesOf(rs)
			if g.json {
				if err := writeJSON(e.out, "release", out); err != nil {
					return err
				}
			} else {
				rpt.WriteReleases(e.out, out)
			}
			if code != exitOK {
				return quietCode(code, err)
			}
			return nil
		},
	}
	f.addLock(c)
	c.Flags().StringVar(&domain, "domain", "", "name of the VM the functions come from (for the release event)")
	return c
}

func newExplainCmd(e *env, g *globals) *cobra.Command {
	var f gateFlags
	var confidential bool
	c := &cobra.Command{
		Use:     "explain BDF",
		Short:   "Check one function and print every policy check: expected, got, pass or fail",
		Example: `  sudo vfio-gate explain --confidential 0000:3b:00.0`,
		Long: `explain is check for one function with the full table of the policy's checks (the rule that
matched, chain, algorithms, each reference measurement, SVN, debug mode, ...). The decision is
recorded in the TPM like any check. Needs and exit codes as for check.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			bdfs, s, err := openGateFor(e, g, &f, args)
			if err != nil {
				return err
			}
			defer s.Close()
			ds, err := decide(e, "checking", bdfs, func() ([]gate.Decision, error) {
				return s.gate.Check(cmd.Context(), gate.Request{BDFs: bdfs, Confidential: confidential})
			})
			if err != nil {
				return err
			}
			if !g.json {
				rpt.WriteChecks(e.out, ds[0])
			}
			return finishDecisions(e, g, ds, s.pol.Mode, false, true)
		},
	}
	f.addOne(c)
	c.Flags().BoolVar(&confidential, "confidential", false, "evaluate for a confidential VM")
	return c
}
