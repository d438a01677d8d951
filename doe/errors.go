package doe

import (
	"errors"
	"fmt"
)

var (
	// ErrNoMailbox: the function has no DOE extended capability.
	ErrNoMailbox = errors.New("doe: function has no DOE mailbox")
	// ErrMailboxBusy: the mailbox was Busy on entry and stayed Busy after one
	// abort, so another owner (the kernel, another process) is using it.
	ErrMailboxBusy = errors.New("doe: mailbox busy: another owner is using the mailbox")
	// ErrMailboxError: the device set the DOE Status Error bit.
	ErrMailboxError = errors.New("doe: device reported a mailbox error")
	// ErrAborted is wrapped (next to the cause) by every exchange error after
	// which the mailbox was aborted; the mailbox is usable again.
	ErrAborted = errors.New("doe: mailbox aborted")
	// ErrTimeout: no Data Object Ready (or abort completion) within the
	// per-object timeout or the caller's deadline. The error also wraps the
	// context error (context.DeadlineExceeded).
	ErrTimeout = errors.New("doe: timed out waiting for the device")
	// ErrTooLarge: a request is larger than a DOE object can be.
	ErrTooLarge = errors.New("doe: request larger than a DOE object")
)

// ProtocolError reports a malformed data object or discovery response: the
// device (or socket peer) broke the protocol. Field names the offending
// field, Reason says what was wrong with it.
type ProtocolError struct {
	Field  string
	Reason string
}

func (e *ProtocolError) Error() string {
	return fmt.Sprintf("doe: malformed response: %s: %s", e.Field, e.Reason)
}

func protoErr(field, format string, args ...any) *ProtocolError {
	return &ProtocolError{Field: field, Reason: fmt.Sprintf(format, args...)}
}
