package spdm

import "fmt"

// Version is the SPDMVersion header byte: major<<4 | minor.
type Version uint8

// SPDM versions.
const (
	Version10 Version = 0x10
	Version11 Version = 0x11
	Version12 Version = 0x12
	Version13 Version = 0x13
)

// String returns "1.2" style.
func (v Version) String() string { return fmt.Sprintf("%d.%d", uint8(v)>>4, uint8(v)&0xF) }

func (v Version) valid() bool { return v >= Version10 && v <= Version13 }

// RequestCode is the RequestResponseCode of a request. DSP0274 1.3 Table 4.
type RequestCode uint8

// Request codes.
const (
	RequestGetDigests          RequestCode = 0x81
	RequestGetCertificate      RequestCode = 0x82
	RequestChallenge           RequestCode = 0x83
	RequestGetVersion          RequestCode = 0x84
	RequestChunkSend           RequestCode = 0x85
	RequestChunkGet            RequestCode = 0x86
	RequestGetMeasurements     RequestCode = 0xE0
	RequestGetCapabilities     RequestCode = 0xE1
	RequestNegotiateAlgorithms RequestCode = 0xE3
	RequestKeyExchange         RequestCode = 0xE4
	RequestFinish              RequestCode = 0xE5
	RequestPSKExchange         RequestCode = 0xE6
	RequestPSKFinish           RequestCode = 0xE7
	RequestHeartbeat           RequestCode = 0xE8
	RequestKeyUpdate           RequestCode = 0xE9
	RequestEndSession          RequestCode = 0xEC
	RequestGetKeyPairInfo      RequestCode = 0xFC // 1.3
	RequestSetKeyPairInfo      RequestCode = 0xFD // 1.3
	RequestVendorDefined       RequestCode = 0xFE
	RequestRespondIfReady      RequestCode = 0xFF
)

// ResponseCode is the RequestResponseCode of a response.
type ResponseCode uint8

// Response codes.
const (
	ResponseDigests        ResponseCode = 0x01
	ResponseCertificate    ResponseCode = 0x02
	ResponseChallengeAuth  ResponseCode = 0x03
	ResponseVersion        ResponseCode = 0x04
	ResponseChunkSendAck   ResponseCode = 0x05
	ResponseChunkResponse  ResponseCode = 0x06
	ResponseMeasurements   ResponseCode = 0x60
	ResponseCapabilities   ResponseCode = 0x61
	ResponseAlgorithms     ResponseCode = 0x63
	ResponseKeyExchangeRsp ResponseCode = 0x64
	ResponseFinishRsp      ResponseCode = 0x65
	ResponsePSKExchangeRsp ResponseCode = 0x66
	ResponsePSKFinishRsp   ResponseCode = 0x67
	ResponseHeartbeatAck   ResponseCode = 0x68
	ResponseKeyUpdateAck   ResponseCode = 0x69
	ResponseEndSessionAck  ResponseCode = 0x6C
	ResponseKeyPairInfo    ResponseCode = 0x7C // 1.3
	ResponseVendorDefined  ResponseCode = 0x7E
	ResponseError          ResponseCode = 0x7F
)

// Response returns the response code that answers r (r & 0x7F).
func (r RequestCode) Response() ResponseCode { return ResponseCode(r & 0x7F) }

var requestNames = map[RequestCode]string{
	RequestGetDigests: "GET_DIGESTS", RequestGetCertificate: "GET_CERTIFICATE", RequestChallenge: "CHALLENGE",
	RequestGetVersion: "GET_VERSION", RequestChunkSend: "CHUNK_SEND", RequestChunkGet: "CHUNK_GET",
	RequestGetMeasurements: "GET_MEASUREMENTS", RequestGetCapabilities: "GET_CAPABILITIES",
	RequestNegotiateAlgorithms: "NEGOTIATE_ALGORITHMS", RequestKeyExchange: "KEY_EXCHANGE",
	RequestFinish: "FINISH", RequestPSKExchange: "PSK_EXCHANGE", RequestPSKFinish: "PSK_FINISH",
	RequestHeartbeat: "HEARTBEAT", RequestKeyUpdate: "KEY_UPDATE", RequestEndSession: "END_SESSION",
	RequestVendorDefined: "VENDOR_DEFINED_REQUEST", RequestRespondIfReady: "RESPOND_IF_READY",
	RequestGetKeyPairInfo: "GET_KEY_PAIR_INFO", RequestSetKeyPairInfo: "SET_KEY_PAIR_INFO",
}

var responseNames = map[ResponseCode]string{
	ResponseDigests: "DIGESTS", ResponseCertificate: "CERTIFICATE", ResponseChallengeAuth: "CHALLENGE_AUTH",
	ResponseVersion: "VERSION", ResponseChunkSendAck: "CHUNK_SEND_ACK", ResponseChunkResponse: "CHUNK_RESPONSE",
	ResponseMeasurements: "MEASUREMENTS", ResponseCapabilities: "CAPABILITIES", ResponseAlgorithms: "ALGORITHMS",
	ResponseKeyExchangeRsp: "KEY_EXCHANGE_RSP", ResponseFinishRsp: "FINISH_RSP",
	ResponsePSKExchangeRsp: "PSK_EXCHANGE_RSP", ResponsePSKFinishRsp: "PSK_FINISH_RSP",
	ResponseHeartbeatAck: "HEARTBEAT_ACK", ResponseKeyUpdateAck: "KEY_UPDATE_ACK",
	ResponseEndSessionAck: "END_SESSION_ACK", ResponseVendorDefined: "VENDOR_DEFINED_RESPONSE",
	ResponseKeyPairInfo: "KEY_PAIR_INFO", ResponseError: "ERROR",
}

func (r RequestCode) String() string {
	if n, ok := requestNames[r]; ok {
		return n
	}
	return fmt.Sprintf("RequestCode(0x%02x)", uint8(r))
}

func (r ResponseCode) String() string {
	if n, ok := responseNames[r]; ok {
		return n
	}
	return fmt.Sprintf("ResponseCode(0x%02x)", uint8(r))
}
