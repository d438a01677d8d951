package main

import (
	"context"
	"errors"
	"fmt"
	"time"

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

// gateSetup is the gate.Setup the flags ask for; observer is the daemon's
// metrics (nil elsewhere).
func gateSetup(e *env, g *globals, f *gateFlags, observer gate.Observer) gate.Setup {
	return gate.Setup{Policy: g.policy, PolicyLoad: e.policyLoad, TPM: g.tpm, TPMThrowaway: g.tpmThrowaway,
		EventLog: eventLogDir(g), Retention: tpm.Retention{MaxBytes: f.retainBytes, MaxAge: f.retainAge}, Evidence: evidenceDir(g),
		SysfsRoot: g.sysfsRoot, PCI: pci.Options{ConfigOpener: e.configOpener, Geteuid: e.geteuid}, Bind: e.vfioApply,
		Audit: f.audit.on, LockDir: f.lockDir, StateDir: g.stateDir, Concurrency: f.concurrency, Timeout: f.timeout,
		Observer: observer, Logger: g.log}
}

// openGate opens the gate (gate.Open) the flags ask for: no valid policy is
// exit 1, a TPM that cannot record 5, a tamper audit that cannot run 4
// (exitCode).
func openGate(e *env, g *globals, f *gateFlags, observer gate.Observer) (*gate.Host, error) {
	return gate.Open(gateSetup(e, g, f, observer))
}

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

// decisionsExit is the exit code of check and bind (gate.Summarize).
func decisionsExit(ds []gate.Decision) int { return summaryExit(gate.Summarize(ds)) }

// summaryExit is the exit code of a run's outcomes, in this priority: 5
// when any could not be recorded in the TPM; 6 when any allowed function
// failed to bind (or release); then the class of the denied functions'
// reasons (3 policy deny, 2 attestation failure, 4 unavailable); 0 when all
// are allowed (audit mode: would-be denies too).
func summaryExit(s gate.Summary) int {
	switch {
	case s.TPMFailed:
		return exitTPM
	case s.BindFailed:
		return exitBind
	default:
		return classExit(s.Class)
	}
}

// finishDecisions prints (table or JSON) and maps to the exit code.
func finishDecisions(e *env, g *globals, ds []gate.Decision, mode policy.Mode, showBound, withChecks bool) error {
	if g.json {
		if err := rpt.WriteJSON(e.out, "decision", rpt.DecisionsOf(ds, mode, withChecks)); err != nil {
			return err
		}
	} else {
		rpt.WriteDecisions(e.out, ds, mode, showBound)
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
		Use:     "check BDF... | check --socket HOST:PORT [--pci-id VVVV:DDDD]",
		Short:   "Attest functions, evaluate the policy and record each decision in the TPM (no binding)",
		Example: helpText("check.example"),
		Long:    helpText("check.long", "eventLogName", eventLogName),
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
			if socket == "" {
				return gateDecide(e, g, &f, args, "checking", false, false, func(s *gate.Host, bdfs []pci.BDF) ([]gate.Decision, error) {
					return s.Gate.Check(cmd.Context(), gate.Request{BDFs: bdfs, Confidential: confidential})
				})
			}
			s, err := openGate(e, g, &f, nil)
			if err != nil {
				return err
			}
			defer s.Close()
			done := rpt.Progress(e.errw, "checking", 1)
			d, err := s.Gate.CheckSocket(cmd.Context(), socket, id, confidential)
			done()
			if err != nil {
				return err
			}
			return finishDecisions(e, g, []gate.Decision{d}, s.Policy.Mode, false, false)
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
func openGateFor(e *env, g *globals, f *gateFlags, args []string) ([]pci.BDF, *gate.Host, error) {
	bdfs, err := parseBDFs(args)
	if err != nil {
		return nil, nil, err
	}
	s, err := openGate(e, g, f, nil)
	if err != nil {
		return nil, nil, err
	}
	return bdfs, s, nil
}

// gateDecide opens the gate for the BDF arguments, runs op on them under a
// progress line (a failure to take the locks is classified by lockErr) and
// prints the decisions with their exit code (finishDecisions); withChecks
// (explain) prints every policy check first.
func gateDecide(e *env, g *globals, f *gateFlags, args []string, verb string, showBound, withChecks bool,
	op func(s *gate.Host, bdfs []pci.BDF) ([]gate.Decision, error)) error {
	bdfs, s, err := openGateFor(e, g, f, args)
	if err != nil {
		return err
	}
	defer s.Close()
	done := rpt.Progress(e.errw, verb, len(pci.Normalize(bdfs)))
	ds, err := op(s, bdfs)
	done()
	if err != nil {
		return lockErr(err)
	}
	if withChecks && !g.json {
		rpt.WriteChecks(e.out, ds[0])
	}
	return finishDecisions(e, g, ds, s.Policy.Mode, showBound, withChecks)
}

// lockErr classifies a failure to take the locks: a context that ended is 4.
func lockErr(err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || errors.Is(err, pci.ErrLockDir) {
		return withCode(exitUnavailable, err)
	}
	return err
}

// parsePCIID parses --pci-id (pci.ParseID) into the identity of a
// --socket device.
func parsePCIID(s string) (attest.Identity, error) {
	v, d, err := pci.ParseID(s)
	if err != nil {
		return attest.Identity{}, usageErrorf("--pci-id %q: want VVVV:DDDD (hex)", s)
	}
	return attest.Identity{VendorID: v, DeviceID: d}, nil
}

func newBindCmd(e *env, g *globals) *cobra.Command {
	var f gateFlags
	var confidential bool
	var domain string
	c := &cobra.Command{
		Use:     "bind BDF...",
		Short:   "Check the functions, then bind their IOMMU groups to vfio-pci on allow",
		Example: helpText("bind.example"),
		Long:    helpText("bind.long"),
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return gateDecide(e, g, &f, args, "binding", true, false, func(s *gate.Host, bdfs []pci.BDF) ([]gate.Decision, error) {
				return s.Gate.Bind(cmd.Context(), gate.Request{BDFs: bdfs, Confidential: confidential, Domain: domain})
			})
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
		Example: helpText("release.example"),
		Long:    helpText("release.long"),
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			bdfs, s, err := openGateFor(e, g, &f, args)
			if err != nil {
				return err
			}
			defer s.Close()
			rs, err := s.Gate.Release(cmd.Context(), bdfs, domain)
			if rs == nil && err != nil {
				return lockErr(err)
			}
			code := summaryExit(gate.SummarizeReleases(rs))
			out := rpt.ReleasesOf(rs)
			if g.json {
				if err := rpt.WriteJSON(e.out, "release", out); err != nil {
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
		Example: helpText("explain.example"),
		Long:    helpText("explain.long"),
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return gateDecide(e, g, &f, args, "checking", false, true, func(s *gate.Host, bdfs []pci.BDF) ([]gate.Decision, error) {
				return s.Gate.Check(cmd.Context(), gate.Request{BDFs: bdfs, Confidential: confidential})
			})
		},
	}
	f.addOne(c)
	c.Flags().BoolVar(&confidential, "confidential", false, "evaluate for a confidential VM")
	return c
}
