package report

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/vfio-gate/vfio-gate/policy"
)

// PolicyCheck is the body of the `policy-check` document.
type PolicyCheck struct {
	Valid  bool                `json:"valid"`
	Policy *policy.Explanation `json:"policy,omitempty"`
	Errors []PolicyError       `json:"errors,omitempty"`
}

// PolicyError is one problem of a policy that did not load; File and Line
// are empty for an error that names no place in a file.
type PolicyError struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Message string `json:"message"`
}

// String is the "file:line: message" form printed on stderr.
func (pe PolicyError) String() string {
	if pe.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", pe.File, pe.Line, pe.Message)
	}
	return fmt.Sprintf("%s: %s", pe.File, pe.Message)
}

// PolicyErrors flattens a (joined) policy.Load error into its *policy.Error
// parts, in order; any other error is one entry with its message only.
func PolicyErrors(err error) []PolicyError {
	var out []PolicyError
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
			out = append(out, PolicyError{File: pe.File, Line: pe.Line, Column: pe.Column, Message: pe.Msg})
			return
		}
		out = append(out, PolicyError{Message: err.Error()})
	}
	walk(err)
	return out
}

// WritePolicy writes the readable explanation of a valid policy: defaults,
// each rule with its checks, anchors and CRLs, then the warnings.
func WritePolicy(w io.Writer, x policy.Explanation) error {
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
		if err := policyRuleText(w, r); err != nil {
			return err
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

func policyRuleText(w io.Writer, r policy.RuleExplanation) error {
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
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(r.CRLs) > 0 {
		fmt.Fprintln(w, "  crls:")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, c := range r.CRLs {
			fmt.Fprintf(tw, "    %s\t%s\tnext update %s\t%d revoked\n", c.File, c.Issuer, c.NextUpdate.UTC().Format("2006-01-02 15:04"), c.Revoked)
		}
		return tw.Flush()
	}
	return nil
}
