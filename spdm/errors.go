package spdm

import (
	"errors"
	"fmt"
)

// DecodeError reports bytes that do not form a valid message.
type DecodeError struct {
	Msg    string // message name, e.g. "CERTIFICATE"
	Field  string // field that failed, e.g. "PortionLength"
	Offset int    // byte offset of the field within the message
	Reason string // optional detail
}

func (e *DecodeError) Error() string {
	s := fmt.Sprintf("spdm: %s: bad %s at offset %d", e.Msg, e.Field, e.Offset)
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// ProtocolError reports a responder that broke the protocol in a way we
// detected (wrong response code, a selection we did not offer, bad
// arithmetic, ...).
type ProtocolError struct {
	Request RequestCode
	Reason  string
	// Err is a sentinel naming the violation when callers need to tell it
	// apart (ErrNonceNotEchoed), else nil.
	Err error
}

func (e *ProtocolError) Error() string {
	return fmt.Sprintf("spdm: %s: %s", e.Request, e.Reason)
}

func (e *ProtocolError) Unwrap() error { return e.Err }

// ErrNonceNotEchoed: a CHALLENGE_AUTH or MEASUREMENTS response did not echo
// the RequesterContext we sent (SPDM 1.3), so it may be a replay.
var ErrNonceNotEchoed = errors.New("spdm: RequesterContext not echoed")

// VerificationError reports a failed cryptographic or certificate check.
// Step names the check: "certificate-chain", "challenge-signature",
// "measurements-signature", "cert-chain-hash", "root-hash", "digest".
type VerificationError struct {
	Step string
	Err  error
}

func (e *VerificationError) Error() string { return "spdm: verify " + e.Step + ": " + e.Err.Error() }
func (e *VerificationError) Unwrap() error { return e.Err }

// ResponderError is an ERROR response from the device. errors.Is(err,
// ErrorCodeBusy) works through Unwrap.
type ResponderError struct {
	Request  RequestCode
	Code     ErrorCode
	Data     uint8
	Extended []byte
}

func (e *ResponderError) Error() string {
	return fmt.Sprintf("spdm: %s: responder returned ERROR %s (data 0x%02x)", e.Request, e.Code.String(), e.Data)
}
func (e *ResponderError) Unwrap() error { return e.Code }

// ErrorCode is the ERROR response Param1. DSP0274 1.3 §10.10 Table "Error code".
type ErrorCode uint8

// Error codes.
const (
	ErrorCodeInvalidRequest           ErrorCode = 0x01
	ErrorCodeInvalidSession           ErrorCode = 0x02
	ErrorCodeBusy                     ErrorCode = 0x03
	ErrorCodeUnexpectedRequest        ErrorCode = 0x04
	ErrorCodeUnspecified              ErrorCode = 0x05
	ErrorCodeDecryptError             ErrorCode = 0x06
	ErrorCodeUnsupportedRequest       ErrorCode = 0x07
	ErrorCodeRequestInFlight          ErrorCode = 0x08
	ErrorCodeInvalidResponseCode      ErrorCode = 0x09
	ErrorCodeSessionLimitExceeded     ErrorCode = 0x0A
	ErrorCodeSessionRequired          ErrorCode = 0x0B
	ErrorCodeResetRequired            ErrorCode = 0x0C
	ErrorCodeResponseTooLarge         ErrorCode = 0x0D
	ErrorCodeRequestTooLarge          ErrorCode = 0x0E
	ErrorCodeLargeResponse            ErrorCode = 0x0F
	ErrorCodeMessageLost              ErrorCode = 0x10
	ErrorCodeInvalidPolicy            ErrorCode = 0x11
	ErrorCodeDataTooLarge             ErrorCode = 0x12
	ErrorCodeVersionMismatch          ErrorCode = 0x41
	ErrorCodeResponseNotReady         ErrorCode = 0x42
	ErrorCodeRequestResynch           ErrorCode = 0x43
	ErrorCodeOperationFailed          ErrorCode = 0x44
	ErrorCodeNoPendingRequests        ErrorCode = 0x45
	ErrorCodeRequestSessionTerminated ErrorCode = 0x46
	ErrorCodeInvalidState             ErrorCode = 0x47
	ErrorCodeVendorDefined            ErrorCode = 0xFF
)

var errorCodeNames = map[ErrorCode]string{
	ErrorCodeInvalidRequest: "InvalidRequest", ErrorCodeInvalidSession: "InvalidSession",
	ErrorCodeBusy: "Busy", ErrorCodeUnexpectedRequest: "UnexpectedRequest",
	ErrorCodeUnspecified: "Unspecified", ErrorCodeDecryptError: "DecryptError",
	ErrorCodeUnsupportedRequest: "UnsupportedRequest", ErrorCodeRequestInFlight: "RequestInFlight",
	ErrorCodeInvalidResponseCode: "InvalidResponseCode", ErrorCodeSessionLimitExceeded: "SessionLimitExceeded",
	ErrorCodeSessionRequired: "SessionRequired", ErrorCodeResetRequired: "ResetRequired",
	ErrorCodeResponseTooLarge: "ResponseTooLarge", ErrorCodeRequestTooLarge: "RequestTooLarge",
	ErrorCodeLargeResponse: "LargeResponse", ErrorCodeMessageLost: "MessageLost",
	ErrorCodeInvalidPolicy: "InvalidPolicy", ErrorCodeDataTooLarge: "DataTooLarge",
	ErrorCodeVersionMismatch: "VersionMismatch", ErrorCodeResponseNotReady: "ResponseNotReady",
	ErrorCodeRequestResynch: "RequestResynch", ErrorCodeOperationFailed: "OperationFailed",
	ErrorCodeNoPendingRequests: "NoPendingRequests", ErrorCodeRequestSessionTerminated: "RequestSessionTerminated",
	ErrorCodeInvalidState: "InvalidState", ErrorCodeVendorDefined: "VendorDefined",
}

func (c ErrorCode) String() string {
	if n, ok := errorCodeNames[c]; ok {
		return n
	}
	return fmt.Sprintf("ErrorCode(0x%02x)", uint8(c))
}

func (c ErrorCode) Error() string { return "spdm: responder error " + c.String() }
