package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	rpt "github.com/vfio-gate/vfio-gate/internal/report"
	"github.com/vfio-gate/vfio-gate/policy"
)

// newPolicyCmd is the `policy` parent: `check` here; `capture` is added by its own file.
func newPolicyCmd(e *env, g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "policy",
		Short: "Validate and explain policy files",
		Long: `policy check loads a policy file exactly as check and bind do and explains it; policy capture
attests a device you trust now and prints a policy with one rule that allows exactly it. The
file format is in docs/policy.md.`,
		Example: `  vfio-gate policy check /etc/vfio-gate/policy.yaml
  vfio-gate policy capture --socket 127.0.0.1:2323 --trust-anchor /tmp/emu-ca.pem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	c.AddCommand(newPolicyCheckCmd(e, g), newPolicyCaptureCmd(e, g))
	return c
}

func newPolicyCheckCmd(e *env, g *globals) *cobra.Command {
	var skipPerm bool
	c := &cobra.Command{
		Use:   "check [FILE]",
		Short: "Validate a policy file and explain what it checks",
		Example: `  vfio-gate policy check
  vfio-gate --json policy check /etc/vfio-gate/policy.yaml
  vfio-gate policy check --insecure-skip-permission-check ./draft.yaml`,
		Long: `Loads FILE (default: --policy) exactly as check and bind do: strict YAML, every anchor and CRL
read and verified, owner and mode of every file checked. Prints each rule, what it checks, and the
SHA-256 fingerprint of each trust anchor. Exit 0 when valid, 1 with "file:line: message" per problem.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := g.policy
			if len(args) == 1 {
				path = args[0]
			}
			if skipPerm {
				fmt.Fprintln(e.errw, "vfio-gate: WARNING: --insecure-skip-permission-check: owner and mode of the policy, anchor and CRL files are NOT checked")
			}
			p, err := policy.Load(path, &policy.LoadOptions{Now: time.Now, SkipPermissionCheck: skipPerm})
			if err != nil {
				errs := rpt.PolicyErrors(err)
				if g.json {
					if werr := writeJSON(e.out, "policy-check", rpt.PolicyCheck{Valid: false, Errors: errs}); werr != nil {
						return werr
					}
				} else {
					for _, pe := range errs {
						fmt.Fprintln(e.errw, pe)
					}
				}
				return quietCode(exitInternal, err)
			}
			x := p.Explain()
			if g.json {
				return writeJSON(e.out, "policy-check", rpt.PolicyCheck{Valid: true, Policy: &x})
			}
			return rpt.WritePolicy(e.out, x)
		},
	}
	c.Flags().BoolVar(&skipPerm, "insecure-skip-permission-check", false,
		"do not check owner and mode of the files (for drafts outside /etc; prints a warning)")
	return c
}
