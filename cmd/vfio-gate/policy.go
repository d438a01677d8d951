package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	rpt "github.com/vfio-gate/vfio-gate/internal/report"
	"github.com/vfio-gate/vfio-gate/policy"
)

// newPolicyCmd is the `policy` parent: `check` here; `capture` is added by its own file.
func newPolicyCmd(e *env, g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:     "policy",
		Short:   "Validate and explain policy files",
		Long:    helpText("policy.long"),
		Example: helpText("policy.example"),
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	c.AddCommand(newPolicyCheckCmd(e, g), newPolicyCaptureCmd(e, g))
	return c
}

func newPolicyCheckCmd(e *env, g *globals) *cobra.Command {
	var skipPerm bool
	c := &cobra.Command{
		Use:     "check [FILE]",
		Short:   "Validate a policy file and explain what it checks",
		Example: helpText("policy-check.example"),
		Long:    helpText("policy-check.long"),
		Args:    cobra.MaximumNArgs(1),
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
					if werr := rpt.WriteJSON(e.out, "policy-check", rpt.PolicyCheck{Valid: false, Errors: errs}); werr != nil {
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
			return jsonOrText(e, g, "policy-check", rpt.PolicyCheck{Valid: true, Policy: &x}, func(w io.Writer, _ rpt.PolicyCheck) error { return rpt.WritePolicy(w, x) })
		},
	}
	c.Flags().BoolVar(&skipPerm, "insecure-skip-permission-check", false,
		"do not check owner and mode of the files (for drafts outside /etc; prints a warning)")
	return c
}
