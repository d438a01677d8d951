package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/vfio-gate/vfio-gate/gate"
	"github.com/vfio-gate/vfio-gate/internal/demo"
	rpt "github.com/vfio-gate/vfio-gate/internal/report"
	"github.com/vfio-gate/vfio-gate/policy"
	"github.com/vfio-gate/vfio-gate/tpm"
)

type demoJSON struct {
	checkJSON
	AsExpected bool               `json:"as_expected"`
	Expected   []demo.Expectation `json:"expected"`
	Libvirt    []demo.HookStep    `json:"libvirt"`
	LogVerify  *tpm.VerifyResult  `json:"log_verify"`
	SysfsRoot  string             `json:"sysfs_root"`
	Policy     string             `json:"policy"`
	EventLog   string             `json:"event_log"`
	TPM        string             `json:"tpm"`
}

func newDemoCmd(e *env, g *globals) *cobra.Command {
	var keep bool
	c := &cobra.Command{
		Use:     "demo",
		Short:   "Run the main job on three software devices: no root, no hardware",
		Example: helpText("demo.example"),
		Long:    helpText("demo.long"),
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return runDemo(cmd, e, g, keep) },
	}
	c.Flags().BoolVar(&keep, "keep", false, "keep the temporary directory (sysfs tree, policy, state) and print its path")
	return c
}

// runDemo builds the demo's world, checks its three functions, plays the
// libvirt part, verifies the log and compares every outcome with the
// expected one.
func runDemo(cmd *cobra.Command, e *env, g *globals, keep bool) error {
	dir, err := os.MkdirTemp("", "vfio-gate-demo-")
	if err != nil {
		return err
	}
	if !keep {
		defer os.RemoveAll(dir)
	}
	w, err := demo.Build(dir)
	if err != nil {
		return fmt.Errorf("demo: build the software devices: %w", err)
	}
	s, dg, err := openDemoGate(cmd, e, g, w)
	if err != nil {
		return err
	}
	defer s.Close()

	out := e.out
	human := !g.json
	bdfs, err := w.BDFs()
	if err != nil {
		return err
	}
	if human {
		rpt.WriteDemoWorld(out, w, dg.tpm, eventLogDir(dg))
	}
	ds, err := s.gate.Check(cmd.Context(), gate.Request{BDFs: bdfs, Confidential: true})
	if err != nil {
		return err
	}
	if human {
		rpt.WriteDecisions(out, ds, s.pol.Mode, false)
	}
	lc := demo.LibvirtConfig{World: w, System: s.sys, Recorder: s.rec,
		EvidenceDir: filepath.Join(filepath.Dir(s.rec.Dir()), evidenceDirName)}
	if human {
		lc.Out = out
	}
	steps, err := demo.Libvirt(cmd.Context(), lc)
	if err != nil {
		return fmt.Errorf("demo: libvirt part: %w", err)
	}
	if human {
		fmt.Fprintf(out, "\n$ vfio-gate log verify\n")
	}
	res, verr := tpm.Verify(cmd.Context(), s.tpm, eventLogDir(dg), s.rec.PCR())
	if verr == nil && human {
		printVerify(&env{out: out}, res, eventLogDir(dg))
	}

	exps, ok := demo.Compare(w.Devices, ds)
	ok = ok && demo.StepsOK(steps)
	if g.json {
		j := demoJSON{checkJSON: rpt.DecisionsOf(ds, s.pol.Mode, false), AsExpected: ok && verr == nil && res.OK,
			Expected: exps, Libvirt: steps, LogVerify: res, SysfsRoot: w.Sysfs, Policy: w.Policy, EventLog: eventLogDir(dg), TPM: dg.tpm}
		if err := writeJSON(out, "demo", j); err != nil {
			return err
		}
	} else {
		rpt.WriteDemoOutcomes(out, exps, steps)
		if keep {
			fmt.Fprintf(out, "kept %s\n", dir)
		}
	}
	if err := demoResult(ds, res, verr, ok); err != nil {
		return err
	}
	if human {
		fmt.Fprintln(out, "demo: outcomes as expected; every decision is in the TPM event log, which verifies.")
	}
	return nil
}

// openDemoGate opens the gate over the demo's world: its tree, policy
// (owner and mode not checked) and software config spaces, the simulator
// and a state directory in the world unless --tpm and --state-dir say
// otherwise. It returns the globals the demo runs with.
func openDemoGate(cmd *cobra.Command, e *env, g *globals, w *demo.World) (*gateSetup, *globals, error) {
	dg := *g
	dg.sysfsRoot, dg.policy = w.Sysfs, w.Policy
	if f := cmd.Flag("tpm"); f == nil || !f.Changed {
		dg.tpm = simThrowaway
	}
	if f := cmd.Flag("state-dir"); f == nil || !f.Changed {
		dg.stateDir = w.StateDir()
	}
	de := *e
	de.configOpener = w.Opener
	gf := gateFlags{lockDir: w.LockDir(), timeout: 10e9, concurrency: gate.DefaultConcurrency}
	s, err := openGate(&de, &dg, &gf, setupOptions{
		policyLoad: &policy.LoadOptions{SkipPermissionCheck: true},
		geteuid:    func() int { return 0 }, // software config spaces: no root needed
	})
	return s, &dg, err
}

// demoResult is the demo's error (and so its exit code): a TPM failure,
// a log that does not verify, or an outcome not the expected one.
func demoResult(ds []gate.Decision, res *tpm.VerifyResult, verr error, ok bool) error {
	if code := decisionsExit(ds); code == exitTPM {
		return quietCode(exitTPM, errors.New("demo: TPM failure"))
	}
	if verr != nil {
		return verr
	}
	if !res.OK {
		return withCode(exitTPM, fmt.Errorf("demo: the event log does not verify: %s", res.Problems[0].Msg))
	}
	if !ok {
		return withCode(exitInternal, errors.New("demo: the outcomes are not the expected allow / deny(measurement-mismatch) / deny(no-cma) "+
			"and, for the confidential domains, TDI locked / running / unlocked and deny"))
	}
	return nil
}
