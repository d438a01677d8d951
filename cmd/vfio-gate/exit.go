package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/gate"
	"github.com/vfio-gate/vfio-gate/internal/clitree"
	rpt "github.com/vfio-gate/vfio-gate/internal/report"
	"github.com/vfio-gate/vfio-gate/policy"
)

// Stable exit codes (documented in --help and README "Exit codes").
const (
	exitOK          = 0
	exitInternal    = 1 // usage or internal error; anything unclassified
	exitAttestation = 2
	exitDenied      = 3
	exitUnavailable = 4
	exitTPM         = 5
	exitBind        = 6
)

// codeError carries an explicit exit code decided by a command (for example
// "policy denied" after the verdict was already printed).
type codeError struct {
	code int
	err  error
	// quiet: the command already told the user; print nothing more.
	quiet bool
}

func (e *codeError) Error() string { return e.err.Error() }
func (e *codeError) Unwrap() error { return e.err }

func withCode(code int, err error) error { return &codeError{code: code, err: err} }

// quietCode ends the command with code and no further message.
func quietCode(code int, err error) error { return &codeError{code: code, err: err, quiet: true} }

type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, a ...any) error { return &usageError{msg: fmt.Sprintf(format, a...)} }

// exitCode maps an error to its documented exit code. Anything it does not
// recognise is 1: fail closed.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var ce *codeError
	if errors.As(err, &ce) {
		return ce.code
	}
	var ue *usageError
	var ce2 *clitree.UsageError
	if errors.As(err, &ue) || errors.As(err, &ce2) {
		return exitInternal
	}
	// The failure vocabulary (gate.SummarizeError): TPM 5, unavailable 4,
	// bind 6; a policy that does not load, and anything unknown, 1.
	if s, ok := gate.SummarizeError(err); ok {
		return summaryExit(s)
	}
	return exitInternal
}

// classExit is the exit code of a failure class (policy's one table); the
// zero class (nothing failed) is 0.
func classExit(c policy.Class) int {
	switch c {
	case 0:
		return exitOK
	case policy.ClassAttestation:
		return exitAttestation
	case policy.ClassUnavailable:
		return exitUnavailable
	case policy.ClassTPM:
		return exitTPM
	}
	return exitDenied // ClassDenied and anything unknown: fail closed
}

// failureExit is the exit code of a command that attests without a policy
// (attest, policy capture): the class of the failure kind.
func failureExit(f *attest.Failure) int {
	return classExit(policy.KindClass(f.Kind))
}

// report prints err once (unless a command already did) and returns the code.
func report(w io.Writer, err error) int {
	code := exitCode(err)
	if err == nil {
		return code
	}
	var ce *codeError
	if errors.As(err, &ce) && ce.quiet {
		return code
	}
	msg := err.Error()
	// cobra's own usage errors ("unknown flag", "accepts 1 arg") have no prefix.
	if !strings.HasPrefix(msg, "vfio-gate") {
		msg = "vfio-gate: " + msg
	}
	fmt.Fprintln(w, msg)
	return code
}

// exitMeaning is the documented meaning of each exit code (exitCodesHelp),
// as `--json` errors state it.
var exitMeaning = map[int]string{
	exitOK:          "success",
	exitInternal:    "usage or internal error",
	exitAttestation: "attestation failed",
	exitDenied:      "policy denied",
	exitUnavailable: "device or transport unavailable",
	exitTPM:         "TPM error",
	exitBind:        "vfio-pci bind error",
}

// reportErrorJSON writes err as the error document, unless the command already
// printed its own answer (a quiet code: denied, attestation failed).
func reportErrorJSON(w io.Writer, err error) {
	var ce *codeError
	if errors.As(err, &ce) && ce.quiet {
		return
	}
	code := exitCode(err)
	_ = rpt.WriteJSON(w, "error", rpt.Error{Schema: rpt.SchemaName("error"), ExitCode: code, Meaning: exitMeaning[code], Error: err.Error()})
}

// jsonRequested reports whether --json was given (also when flag parsing
// failed before cobra set it).
func jsonRequested(root interface{ PersistentFlags() *pflag.FlagSet }, args []string) bool {
	if v, err := root.PersistentFlags().GetBool("json"); err == nil && v {
		return true
	}
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "--json" || a == "--json=true" {
			return true
		}
	}
	return false
}
