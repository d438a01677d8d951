package tpm

import (
	"errors"
	"fmt"
)

// ErrTPM is matched (errors.Is) by every error that comes from talking to the
// TPM: opening the backend, a TPM response code, a transport failure.
var ErrTPM = errors.New("tpm: TPM error")

// ErrResettablePCR is returned when the configured PCR can be reset at
// locality 0 (16, 23) and test mode is off.
var ErrResettablePCR = errors.New("tpm: PCR is resettable at locality 0")

// Error is a failure of one TPM operation. It matches ErrTPM and unwraps to
// the cause (a go-tpm TPMRC, a syscall errno, a network error).
type Error struct {
	Op  string // "open", "pcr-read", "extend", "get-capability", "read-clock"
	Err error
}

func (e *Error) Error() string { return fmt.Sprintf("tpm: %s: %v", e.Op, e.Err) }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports ErrTPM.
func (e *Error) Is(target error) bool { return target == ErrTPM }

func tpmErr(op string, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Op: op, Err: err}
}

// LogError says what is wrong with the event log file itself (I/O, a line
// that does not decode, a limit exceeded).
type LogError struct {
	Path string
	Line int // 1-based; 0 when the error is not about one line
	Msg  string
	Err  error
}

func (e *LogError) Error() string {
	s := "tpm: event log " + e.Path
	if e.Line > 0 {
		s += fmt.Sprintf(" line %d", e.Line)
	}
	s += ": " + e.Msg
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the cause.
func (e *LogError) Unwrap() error { return e.Err }
