package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/vfio-gate/vfio-gate/gate"
	"github.com/vfio-gate/vfio-gate/internal/demo"
	rpt "github.com/vfio-gate/vfio-gate/internal/report"
)

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

// runDemo builds the demo's world, opens the gate over it and runs the
// demo (demo.Run): its three functions checked, the libvirt part, the log
// verified and every outcome compared with the expected one.
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

	out, human := e.out, !g.json
	rc := demo.RunConfig{World: w, Host: s, EventLog: eventLogDir(dg), EvidenceDir: evidenceDir(dg)}
	if human {
		rpt.WriteDemoWorld(out, w, dg.tpm, eventLogDir(dg))
		rc.Out = out
		rc.Checked = func(ds []gate.Decision) { rpt.WriteDecisions(out, ds, s.Policy.Mode, false) }
	}
	r, err := demo.Run(cmd.Context(), rc)
	if err != nil {
		return err
	}
	if g.json {
		if err := rpt.WriteJSON(out, "demo", rpt.DemoOf(r, w, s.Policy.Mode, dg.tpm, eventLogDir(dg))); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(out, "\n$ vfio-gate log verify\n")
		if r.VerifyErr == nil {
			printVerify(&env{out: out}, r.LogVerify, eventLogDir(dg))
		}
		rpt.WriteDemoOutcomes(out, r.Expected, r.Libvirt)
		if keep {
			fmt.Fprintf(out, "kept %s\n", dir)
		}
	}
	if err := demoResult(r); err != nil {
		return err
	}
	if human {
		fmt.Fprintln(out, "demo: outcomes as expected; every decision is in the TPM event log, which verifies.")
	}
	return nil
}

// openDemoGate opens the gate over the demo's world (demo.World.GateSetup),
// with the simulator and a state directory in the world unless --tpm and
// --state-dir say otherwise. It returns the globals the demo runs with.
func openDemoGate(cmd *cobra.Command, e *env, g *globals, w *demo.World) (*gate.Host, *globals, error) {
	dg := *g
	dg.sysfsRoot, dg.policy = w.Sysfs, w.Policy
	if f := cmd.Flag("tpm"); f == nil || !f.Changed {
		dg.tpm = gate.SimThrowaway
	}
	if f := cmd.Flag("state-dir"); f == nil || !f.Changed {
		dg.stateDir = w.StateDir()
	}
	s, err := gate.Open(w.GateSetup(gateSetup(e, &dg, &gateFlags{}, nil)))
	return s, &dg, err
}

// demoResult is the demo's error (and so its exit code): demo.Result.Err,
// where a TPM failure (5) is already shown in the decisions, a log that does
// not verify is a tpm.ErrTPM (5) and an unexpected outcome 1.
func demoResult(r *demo.Result) error {
	err := r.Err()
	if errors.Is(err, demo.ErrTPMFailure) {
		return quietCode(exitTPM, err)
	}
	return err
}
