package spdm

// Multi-key connections (SPDM 1.3, DSP0274 1.3.0 §10.4 MULTI_KEY_CAP, §10.5
// Table 32, §10.6 DIGESTS). In 1.0–1.2 every slot of a responder signs
// with the same key; in 1.3 a responder may hold several key pairs, each
// slot naming its KeyPairID, certificate model and the messages its key
// may sign (KeyUsageMask). Whether a connection is multi-key for the
// responder's keys (MULTI_KEY_CONN_RSP) is the requester's
// NEGOTIATE_ALGORITHMS OtherParamsSupport bit 4; for the requester's keys
// (MULTI_KEY_CONN_REQ) the responder's ALGORITHMS OtherParamsSelection
// bit 4.

// MultiKeyCap is the MULTI_KEY_CAP field of CAPABILITIES (flags 27:26, 1.3).
type MultiKeyCap uint8

const (
	MultiKeyNone       MultiKeyCap = 0 // single key
	MultiKeyOnly       MultiKeyCap = 1 // 01b: always multi-key
	MultiKeyNegotiated MultiKeyCap = 2 // 10b: multi-key if the peer says so
)

// KeyUsageMask bits of DIGESTS (1.3, multi-key connections).
const (
	KeyUsageKeyExchange  uint16 = 1 << 0 // KEY_EXCHANGE_RSP
	KeyUsageChallenge    uint16 = 1 << 1 // CHALLENGE_AUTH
	KeyUsageMeasurement  uint16 = 1 << 2 // signed MEASUREMENTS
	KeyUsageEndpointInfo uint16 = 1 << 3 // signed ENDPOINT_INFO
)

// CertificateInfo CertModel values (DIGESTS, CERTIFICATE Param2; 1.3).
const (
	CertModelNone    uint8 = 0
	CertModelDevice  uint8 = 1
	CertModelAlias   uint8 = 2
	CertModelGeneric uint8 = 3
)

// multiKeyCapOf extracts MULTI_KEY_CAP from CAPABILITIES flags.
func multiKeyCapOf(flags uint32) MultiKeyCap { return MultiKeyCap(flags >> 26 & 3) }

// multiKeyConn applies DSP0274 1.3.0 Table 32 to the MULTI_KEY_CAP of the
// endpoint whose keys are meant and the MultiKeyConn bit its peer sent:
// 00b with the bit set and 01b with it clear are invalid; 10b takes the
// bit. It returns MULTI_KEY_CONN_REQ/RSP and whether the pair is valid.
func multiKeyConn(c MultiKeyCap, bit bool) (conn, ok bool) {
	switch c {
	case MultiKeyNone:
		return false, !bit
	case MultiKeyOnly:
		return true, bit
	case MultiKeyNegotiated:
		return bit, true
	}
	return false, false // 11b is reserved
}

// keyUsageFor is the KeyUsageMask bit a signed response to rc needs.
func keyUsageFor(rc RequestCode) uint16 {
	switch rc {
	case RequestKeyExchange:
		return KeyUsageKeyExchange
	case RequestChallenge:
		return KeyUsageChallenge
	case RequestGetMeasurements:
		return KeyUsageMeasurement
	}
	return 0
}
