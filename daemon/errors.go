package daemon

import (
	"errors"
	"fmt"
)

// The stable codes of a refused request (Error.Code, APIError.Code). The
// server alone says which HTTP status each one gets (httpStatus).
const (
	CodeBadRequest = "bad-request" // the request is malformed or asks for something unknown
	CodeForbidden  = "forbidden"   // the peer is not root (or an allowed uid)
	CodeNotChecked = "not-checked" // a start or lock of a domain or function this daemon never allowed
	CodeNotHeld    = "not-held"    // a TDISP request for a TDI the daemon does not hold
	CodeTDIHeld    = "tdi-held"    // a TDISP lock of a TDI already held
	// CodeTDINotHeld: a confidential domain's start finds a TDI its rule
	// requires locked no longer held (daemon restart, lost session).
	CodeTDINotHeld       = "tdi-not-held"
	CodeTDISPUnavailable = "tdisp-unavailable" // the backend has no TDISP session owner
	CodeTDISPFailed      = "tdisp-failed"      // the device or its session failed a TDISP request
	CodeUnavailable      = "unavailable"       // the gate could not run (sysfs, TPM, locks)
	CodeReleaseFailed    = "release-failed"    // some of a domain's functions could not be released
	CodeInternal         = "internal"          // anything else (the state file could not be written)
)

// Error is a request the backend refused or could not carry out. The
// server answers it as an APIError whose HTTP status it picks by Code;
// errors.As(err, &apiErr) gives that form directly.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return "vfio-gate daemon: " + e.Code + ": " + e.Message }

// Is matches ErrTDISPUnavailable for CodeTDISPUnavailable and
// ErrTDISPFailed for CodeTDISPFailed.
func (e *Error) Is(target error) bool { return codeIs(e.Code, target) }

// Is matches as Error.Is does, so that a client tells the TDISP answers
// apart with errors.Is.
func (e *APIError) Is(target error) bool { return codeIs(e.Code, target) }

func codeIs(code string, target error) bool {
	return target == ErrTDISPUnavailable && code == CodeTDISPUnavailable ||
		target == ErrTDISPFailed && code == CodeTDISPFailed
}

// As gives the API form of e (**APIError targets), status included.
func (e *Error) As(target any) bool {
	p, ok := target.(**APIError)
	if ok {
		*p = e.apiError()
	}
	return ok
}

func errorf(code, format string, a ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, a...)}
}

func badRequest(format string, a ...any) *Error { return errorf(CodeBadRequest, format, a...) }

// ErrTDISPUnavailable matches the Error the TDISP endpoints return when the
// backend has no session owner.
var ErrTDISPUnavailable = errors.New("daemon: tdisp-unavailable")

// ErrTDISPFailed matches the Error the TDISP endpoints return when the
// device or its session failed the request.
var ErrTDISPFailed = errors.New("daemon: tdisp-failed")

func tdispUnavailable(op string) *Error {
	return &Error{Code: CodeTDISPUnavailable, Message: "TDISP " + op + ": " + TDISPUnavailable}
}
