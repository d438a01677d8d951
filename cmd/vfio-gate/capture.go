package main

import (
	_ "crypto/sha3"
	_ "crypto/sha512"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/vfio-gate/vfio-gate/policy"
)

// captureOpts are the rule flags of policy capture.
type captureOpts struct {
	name        string
	forbidDebug bool
}

func newPolicyCaptureCmd(e *env, g *globals) *cobra.Command {
	f := &attestFlags{}
	o := captureOpts{}
	c := &cobra.Command{
		Use:     "capture BDF | --socket HOST:PORT --trust-anchor FILE...",
		Short:   "Attest a device you trust now and print a policy rule that allows exactly it",
		Example: helpText("policy-capture.example"),
		Long:    helpText("policy-capture.long"),
		RunE: func(cmd *cobra.Command, args []string) error {
			bdf, err := f.target("policy capture", args)
			if err != nil {
				return err
			}
			if len(f.anchors) == 0 {
				return usageErrorf("policy capture: need at least one --trust-anchor (a rule without anchors trusts nothing)")
			}
			anchors, err := policy.ReadAnchorFiles(f.anchors, policy.MaxCertFile)
			var ae *policy.AnchorFileError
			if errors.As(err, &ae) {
				return usageErrorf("--trust-anchor %s: %v", ae.Path, ae.Err)
			}
			if err != nil {
				return err
			}
			ev, err := runAttestation(cmd.Context(), e, g, f, bdf, policy.AnchorCerts(anchors))
			if err != nil {
				return err
			}
			if ev.Failure != nil {
				return withCode(failureExit(ev.Failure), fmt.Errorf("policy capture: attestation did not pass: %s at %s: %s",
					ev.Failure.Kind, ev.Failure.Step, ev.Failure.Message))
			}
			doc, err := policy.CaptureDocument(ev, policy.CaptureOptions{Name: o.name, Anchors: anchors, ForbidDebugMode: o.forbidDebug}, time.Now())
			if err != nil {
				return withCode(exitAttestation, fmt.Errorf("policy capture: %w", err))
			}
			v, err := policy.CheckCapture(doc, ev)
			if err != nil {
				return err
			}
			if !v.Allow {
				return withCode(exitDenied, fmt.Errorf("policy capture: the captured rule would deny this device: %s", v.ReasonsText()))
			}
			_, err = fmt.Fprint(e.out, doc)
			return err
		},
	}
	f.register(c)
	c.Flags().StringVar(&o.name, "name", "", "rule name (default captured-VVVV-DDDD)")
	allowDebug := false
	c.Flags().BoolVar(&allowDebug, "allow-debug-mode", false, "do not set forbid_debug_mode")
	c.PreRun = func(*cobra.Command, []string) { o.forbidDebug = !allowDebug }
	return c
}
