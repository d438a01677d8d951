package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

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

// policyCheckResult is the --json output of `policy check`.
type policyCheckResult struct {
	Valid  bool                `json:"valid"`
	Policy *policy.Explanation `json:"policy,omitempty"`
	Errors []policyErrorJSON   `json:"errors,omitempty"`
}

type policyErrorJSON struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Message string `json:"message"`
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
				errs := policyErrors(err)
				if g.json {
					if werr := writeJSON(e.out, "policy-check", policyCheckResult{Valid: false, Errors: errs}); werr != nil {
						return werr
					}
				} else {
					for _, pe := range errs {
						fmt.Fprintln(e.errw, formatPolicyError(pe))
					}
				}
				return quietCode(exitInternal, err)
			}
			x := p.Explain()
			if g.json {
				return writeJSON(e.out, "policy-check", policyCheckResult{Valid: true, Policy: &x})
			}
			return printExplanation(e.out, x)
		},
	}
	c.Flags().BoolVar(&skipPerm, "insecure-skip-permission-check", false,
		"do not check owner and mode of the files (for drafts outside /etc; prints a warning)")
	return c
}

func formatPolicyError(pe policyErrorJSON) string {
	switch {
	case pe.Line > 0:
		return fmt.Sprintf("%s:%d: %s", pe.File, pe.Line, pe.Message)
	default:
		return fmt.Sprintf("%s: %s", pe.File, pe.Message)
	}
}

// policyErrors flattens a (joined) load error into its *policy.Error parts.
func policyErrors(err error) []policyErrorJSON {
	var out []policyErrorJSON
	var walk func(error)
	walk = func(err error) {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		var pe *policy.Error
		if errors.As(err, &pe) {
			out = append(out, policyErrorJSON{File: pe.File, Line: pe.Line, Column: pe.Column, Message: pe.Msg})
			return
		}
		out = append(out, policyErrorJSON{Message: err.Error()})
	}
	walk(err)
	return out
}

func printExplanation(w io.Writer, x policy.Explanation) error {
	pcr := "TPM default"
	if x.PCR != nil {
		pcr = fmt.Sprint(*x.PCR)
	}
	exempt := "none"
	if len(x.ExemptClasses) > 0 {
		exempt = strings.Join(x.ExemptClasses, ", ")
	}
	fmt.Fprintf(w, "%s: valid (version %d, mode %s)\n", x.File, x.Version, x.Mode)
	fmt.Fprintf(w, "  tpm pcr:                  %s\n", pcr)
	fmt.Fprintf(w, "  confidential default:     %s\n", x.DefaultConfidential)
	fmt.Fprintf(w, "  non-confidential default: %s\n", x.DefaultNonConfidential)
	fmt.Fprintf(w, "  iommu group exempt:       %s\n", exempt)
	if len(x.Rules) == 0 {
		fmt.Fprintln(w, "  no rules: every device follows the defaults")
	}
	for _, r := range x.Rules {
		fmt.Fprintf(w, "\nrule %s (line %d): matches %s\n", r.Name, r.Line, r.Match)
		for _, c := range r.Checks {
			fmt.Fprintf(w, "  - %s\n", c)
		}
		if len(r.Anchors) > 0 {
			fmt.Fprintln(w, "  trust anchors:")
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			for _, a := range r.Anchors {
				fmt.Fprintf(tw, "    %s\t%s\tsha256:%s\tuntil %s\n", a.File, a.Subject, a.SHA256, a.NotAfter.UTC().Format("2006-01-02"))
			}
			tw.Flush()
		}
		if len(r.CRLs) > 0 {
			fmt.Fprintln(w, "  crls:")
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			for _, c := range r.CRLs {
				fmt.Fprintf(tw, "    %s\t%s\tnext update %s\t%d revoked\n", c.File, c.Issuer, c.NextUpdate.UTC().Format("2006-01-02 15:04"), c.Revoked)
			}
			tw.Flush()
		}
	}
	if len(x.Warnings) > 0 {
		fmt.Fprintln(w, "\nwarnings:")
		for _, wn := range x.Warnings {
			fmt.Fprintf(w, "  %s:%d: %s\n", x.File, wn.Line, wn.Message)
		}
	}
	return nil
}
