package tdisp

import (
	"errors"
	"fmt"
)

// ErrorCode is the TDISP_ERROR ERROR_CODE (PCIe r6.1 §11.3.16). The code is
// itself an error, so errors.Is(err, tdisp.ErrorInvalidInterfaceState) works
// on every error that carries it.
type ErrorCode uint32

const (
	ErrorInvalidRequest             ErrorCode = 0x0001
	ErrorBusy                       ErrorCode = 0x0003
	ErrorInvalidInterfaceState      ErrorCode = 0x0004
	ErrorUnspecified                ErrorCode = 0x0005
	ErrorUnsupportedRequest         ErrorCode = 0x0007
	ErrorVersionMismatch            ErrorCode = 0x0041
	ErrorVendorSpecific             ErrorCode = 0x00FF
	ErrorInvalidInterface           ErrorCode = 0x0101
	ErrorInvalidNonce               ErrorCode = 0x0102
	ErrorInsufficientEntropy        ErrorCode = 0x0103
	ErrorInvalidDeviceConfiguration ErrorCode = 0x0104
)

var errorNames = map[ErrorCode]string{
	ErrorInvalidRequest: "INVALID_REQUEST", ErrorBusy: "BUSY", ErrorInvalidInterfaceState: "INVALID_INTERFACE_STATE",
	ErrorUnspecified: "UNSPECIFIED", ErrorUnsupportedRequest: "UNSUPPORTED_REQUEST",
	ErrorVersionMismatch: "VERSION_MISMATCH", ErrorVendorSpecific: "VENDOR_SPECIFIC_ERROR",
	ErrorInvalidInterface: "INVALID_INTERFACE", ErrorInvalidNonce: "INVALID_NONCE",
	ErrorInsufficientEntropy: "INSUFFICIENT_ENTROPY", ErrorInvalidDeviceConfiguration: "INVALID_DEVICE_CONFIGURATION",
}

func (c ErrorCode) String() string {
	if n, ok := errorNames[c]; ok {
		return n
	}
	return fmt.Sprintf("ERROR(%#04x)", uint32(c))
}

func (c ErrorCode) Error() string { return "tdisp: " + c.String() }

// DeviceError is a TDISP_ERROR the device sent in answer to Request.
type DeviceError struct {
	Request  MessageType
	Code     ErrorCode
	Data     uint32
	Extended []byte
}

func (e *DeviceError) Error() string {
	return fmt.Sprintf("tdisp: device answered %v with TDISP_ERROR %v (data %#x)", e.Request, e.Code, e.Data)
}

// Unwrap returns the code: errors.Is(err, tdisp.ErrorInvalidNonce).
func (e *DeviceError) Unwrap() error { return e.Code }

// TransitionError is an illegal state transition detected locally (by the
// Client before sending, or by the Device when enforcing). It unwraps to
// ErrorInvalidInterfaceState, like the device's own refusal.
type TransitionError struct {
	From    State
	Request MessageType
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("tdisp: %v not allowed in state %v", e.Request, e.From)
}

func (e *TransitionError) Unwrap() error { return ErrorInvalidInterfaceState }

// ErrStateMismatch is matched by *StateMismatchError.
var ErrStateMismatch = errors.New("tdisp: device state differs from tracked state")

// StateMismatchError says the device reported a state the client did not
// expect: someone else changed the TDI, or the device lies.
type StateMismatchError struct {
	Tracked, Reported State
}

func (e *StateMismatchError) Error() string {
	return fmt.Sprintf("tdisp: device reports %v, tracked state is %v", e.Reported, e.Tracked)
}

func (e *StateMismatchError) Is(t error) bool { return t == ErrStateMismatch }

// ProtocolError is a response that violates TDISP (wrong type, wrong
// interface, inconsistent report lengths, ...).
type ProtocolError struct {
	Request MessageType
	Reason  string
}

func (e *ProtocolError) Error() string {
	return fmt.Sprintf("tdisp: %v: %s", e.Request, e.Reason)
}
