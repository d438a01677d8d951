package spdm

import (
	"context"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"testing"
)

// Conformance of the responder's ERROR answers: each case is a request (in
// a given state) and the ERROR code DSP0274 demands for it, with the rule it
// comes from. "Validator" names DMTF's SPDM-Responder-Validator case that
// checks the same rule.

// rspCapsReq builds GET_CAPABILITIES with the given fields.
func rspCapsReq(v Version, p1 uint8, flags, dts, maxMsg uint32) []byte {
	return (&getCapabilitiesReq{Version: v, Param1: p1, CTExponent: 10, Flags: flags, DataTransferSize: dts, MaxSPDMmsgSize: maxMsg}).marshal()
}

// rspSessionResponder is a responder with sessions, a TDISP-like
// VENDOR_DEFINED hook and the given session tweaks.
func rspSessionResponder(t testing.TB, mod func(*ResponderSessionConfig)) *Responder {
	return rspTestResponder(t, AsymECDSAP256, func(c *ResponderConfig) {
		c.Session = ResponderSessionConfig{DHE: DHESECP256R1, HeartbeatPeriod: 30}
		if mod != nil {
			mod(&c.Session)
		}
		c.VendorDefined = func(_ context.Context, _ uint16, _, p []byte) ([]byte, error) { return p, nil }
	})
}

const sessionReqFlags = CapCert | CapChal | CapEncrypt | CapMAC | CapKeyEx | CapHBeat | CapKeyUpd

func TestResponderConformanceCapabilities(t *testing.T) {
	const ok = ErrorCode(0) // a CAPABILITIES response
	valid := CapCert | CapChal
	for _, tc := range []struct {
		name string
		req  []byte
		want ErrorCode
		rule string
	}{
		{"1.3 valid", rspCapsReq(Version13, 0, sessionReqFlags|CapChunk, 4096, 65536), ok, "§10.4"},
		{"1.3 supported-algorithms block with CHUNK_CAP", rspCapsReq(Version13, 1, sessionReqFlags|CapChunk, 4096, 65536), ok, "1.3 §10.4 Param1 bit 0"},
		{"1.0 header only", []byte{0x10, uint8(RequestGetCapabilities), 0, 0}, ok, "1.0 §10.4"},
		{"KEY_EX_CAP without ENCRYPT_CAP/MAC_CAP", rspCapsReq(Version13, 0, CapCert|CapChal|CapMutAuth|CapKeyEx|1<<10|CapEncap|CapHBeat|CapKeyUpd|CapChunk, 4096, 65536),
			ErrorCodeInvalidRequest, "§10.4 Table 11 KEY_EX_CAP; Validator 2.4 step 1"},
		{"ENCRYPT_CAP/MAC_CAP without KEY_EX_CAP or PSK_CAP", rspCapsReq(Version12, 0, CapCert|CapChal|CapEncrypt|CapMAC|CapMutAuth|CapEncap|CapHBeat|CapKeyUpd, 4096, 4096),
			ErrorCodeInvalidRequest, "§10.4 Table 11 ENCRYPT_CAP, MAC_CAP; Validator 2.4 step 3"},
		{"MUT_AUTH_CAP without ENCAP_CAP", rspCapsReq(Version12, 0, CapCert|CapChal|CapEncrypt|CapMAC|CapMutAuth|CapKeyEx|1<<10|CapHBeat|CapKeyUpd, 4096, 4096),
			ErrorCodeInvalidRequest, "§10.4 Table 11 MUT_AUTH_CAP; Validator 2.4 step 5"},
		{"HBEAT_CAP without a session capability", rspCapsReq(Version11, 0, valid|CapHBeat, 0, 0), ErrorCodeInvalidRequest, "§10.4 Table 11 HBEAT_CAP"},
		{"KEY_UPD_CAP without a session capability", rspCapsReq(Version12, 0, valid|CapKeyUpd, 4096, 4096), ErrorCodeInvalidRequest, "§10.4 Table 11 KEY_UPD_CAP"},
		{"HANDSHAKE_IN_THE_CLEAR_CAP with PSK only", rspCapsReq(Version12, 0, valid|CapMAC|1<<10|CapHandshakeInClear, 4096, 4096), ErrorCodeInvalidRequest, "§10.4 Table 11 HANDSHAKE_IN_THE_CLEAR_CAP"},
		{"PSK_CAP 10b from a requester", rspCapsReq(Version11, 0, valid|CapMAC|2<<10, 0, 0), ErrorCodeInvalidRequest, "§10.4 Table 11 PSK_CAP (requester: 01b only)"},
		{"PSK_CAP 11b", rspCapsReq(Version12, 0, valid|CapMAC|3<<10, 4096, 4096), ErrorCodeInvalidRequest, "§10.4 Table 11 PSK_CAP reserved"},
		{"CERT_CAP and PUB_KEY_ID_CAP", rspCapsReq(Version12, 0, valid|CapPubKeyID, 4096, 4096), ErrorCodeInvalidRequest, "§10.4 Table 11 PUB_KEY_ID_CAP"},
		{"CHAL_CAP without a certificate or key", rspCapsReq(Version12, 0, CapChal, 4096, 4096), ErrorCodeInvalidRequest, "§10.4 Table 11 CHAL_CAP"},
		{"CERT_CAP with nothing to use it", rspCapsReq(Version12, 0, CapCert, 4096, 4096), ErrorCodeInvalidRequest, "§10.4 Table 11 CERT_CAP"},
		{"DataTransferSize below the minimum", rspCapsReq(Version12, 0, valid, 41, 41), ErrorCodeInvalidRequest, "1.2 §10.4 MinDataTransferSize 42; Validator 2.4 step 7"},
		{"DataTransferSize above MaxSPDMmsgSize", rspCapsReq(Version12, 0, valid|CapChunk, 4097, 4096), ErrorCodeInvalidRequest, "1.2 §10.4 MaxSPDMmsgSize; Validator 2.4 step 9"},
		{"no CHUNK_CAP and MaxSPDMmsgSize != DataTransferSize", rspCapsReq(Version12, 0, valid, 4096, 8192), ErrorCodeInvalidRequest, "1.2 §10.4 MaxSPDMmsgSize"},
		{"supported-algorithms block without CHUNK_CAP", rspCapsReq(Version13, 1, valid, 4096, 4096), ErrorCodeInvalidRequest, "1.3 §10.4 Param1 bit 0"},
		{"MULTI_KEY_CAP 11b", rspCapsReq(Version13, 0, valid|3<<26, 4096, 4096), ErrorCodeInvalidRequest, "1.3 §10.4 Table 11 MULTI_KEY_CAP reserved"},
		{"EP_INFO_CAP 11b", rspCapsReq(Version13, 0, valid|3<<22, 4096, 4096), ErrorCodeInvalidRequest, "1.3 §10.4 Table 11 EP_INFO_CAP reserved"},
		{"version never offered", rspCapsReq(0x14, 0, valid, 4096, 4096), ErrorCodeVersionMismatch, "§10.4; Validator 2.2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rspSessionResponder(t, nil)
			c := &tReq{t: t, r: r}
			c.x((&getVersionReq{}).marshal())
			rsp := c.x(tc.req)
			if got := errCode(t, rsp); got != tc.want {
				t.Fatalf("got %v (%x), want %v [%s]", got, rsp, tc.want, tc.rule)
			}
			if tc.want != ok && Version(rsp[0]) != Version(tc.req[0]) && tc.want != ErrorCodeVersionMismatch {
				t.Fatalf("ERROR speaks %s, want the version asked %s", Version(rsp[0]), Version(tc.req[0]))
			}
		})
	}
	// GET_VERSION itself is always 1.0 (§10.3): another version is
	// VersionMismatch, and the established connection survives it.
	r := rspSessionResponder(t, nil)
	c := &tReq{t: t, r: r, v: Version12}
	c.vcaFlow(AsymECDSAP256, HashSHA256)
	if got := errCode(t, c.x([]byte{0x12, uint8(RequestGetVersion), 0, 0})); got != ErrorCodeVersionMismatch {
		t.Fatalf("GET_VERSION 1.2: %v", got)
	}
	if got := errCode(t, c.x((&getDigestsReq{Version: Version12}).marshal())); got != 0 {
		t.Fatalf("connection lost after a refused GET_VERSION: %v", got)
	}
}

// TestResponderConformanceSessionOnly: HEARTBEAT, KEY_UPDATE, END_SESSION
// and FINISH are valid only in a session.
func TestResponderConformanceSessionOnly(t *testing.T) {
	heartbeat := func(v Version) []byte { return (&simpleMsg{Version: v, Code: uint8(RequestHeartbeat)}).marshal() }
	keyUpdate := func(v Version) []byte {
		return (&simpleMsg{Version: v, Code: uint8(RequestKeyUpdate), Param1: uint8(KeyUpdateKey), Param2: 1}).marshal()
	}
	endSession := func(v Version) []byte { return (&simpleMsg{Version: v, Code: uint8(RequestEndSession)}).marshal() }
	finish := func(v Version) []byte {
		return (&finishReq{Version: v, VerifyData: make([]byte, 32)}).marshal()
	}
	for _, tc := range []struct {
		name string
		v    Version
		mod  func(*ResponderSessionConfig)
		req  func(Version) []byte
		want ErrorCode
		rule string
	}{
		{"HEARTBEAT 1.2", Version12, nil, heartbeat, ErrorCodeSessionRequired, "1.2 Table 57 SessionRequired; Validator 12.4"},
		{"HEARTBEAT 1.3", Version13, nil, heartbeat, ErrorCodeSessionRequired, "1.3 SessionRequired; Validator 12.4"},
		{"KEY_UPDATE 1.2", Version12, nil, keyUpdate, ErrorCodeSessionRequired, "Validator 13.x"},
		{"END_SESSION 1.3", Version13, nil, endSession, ErrorCodeSessionRequired, "Validator 16.x"},
		{"FINISH 1.2", Version12, nil, finish, ErrorCodeSessionRequired, "FINISH outside a session without HANDSHAKE_IN_THE_CLEAR"},
		{"HEARTBEAT 1.1", Version11, nil, heartbeat, ErrorCodeUnexpectedRequest, "1.1 has no SessionRequired"},
		{"FINISH 1.1", Version11, nil, finish, ErrorCodeUnexpectedRequest, "1.1 has no SessionRequired"},
		{"HEARTBEAT without HBEAT_CAP", Version12, func(s *ResponderSessionConfig) { s.NoHeartbeat = true }, heartbeat, ErrorCodeUnsupportedRequest, "§10.10 UnsupportedRequest"},
		{"KEY_UPDATE without KEY_UPD_CAP", Version12, func(s *ResponderSessionConfig) { s.NoKeyUpdate = true }, keyUpdate, ErrorCodeUnsupportedRequest, "§10.10 UnsupportedRequest"},
		{"END_SESSION without sessions", Version12, func(s *ResponderSessionConfig) { s.DHE = 0 }, endSession, ErrorCodeUnsupportedRequest, "§10.10 UnsupportedRequest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rspSessionResponder(t, tc.mod)
			c := &tReq{t: t, r: r, v: tc.v}
			c.vcaFlow(AsymECDSAP256, HashSHA256)
			rsp := c.x(tc.req(tc.v))
			if got := errCode(t, rsp); got != tc.want {
				t.Fatalf("got %v (%x), want %v [%s]", got, rsp, tc.want, tc.rule)
			}
			if Version(rsp[0]) != tc.v {
				t.Fatalf("ERROR version %s, want the negotiated %s", Version(rsp[0]), tc.v)
			}
		})
	}
	// Before ALGORITHMS the same requests are UnexpectedRequest (Validator 9.4).
	r := rspSessionResponder(t, nil)
	c := &tReq{t: t, r: r}
	c.x((&getVersionReq{}).marshal())
	c.x(rspCapsReq(Version12, 0, sessionReqFlags, 4096, 4096))
	if got := errCode(t, c.x(heartbeat(Version12))); got != ErrorCodeUnexpectedRequest {
		t.Fatalf("HEARTBEAT before ALGORITHMS: %v", got)
	}
}

// TestResponderConformanceGeneric: rules every request obeys.
func TestResponderConformanceGeneric(t *testing.T) {
	r := rspSessionResponder(t, nil)
	c := &tReq{t: t, r: r, v: Version12}
	c.vcaFlow(AsymECDSAP256, HashSHA256)
	big := (&vendorDefined{Version: Version12, StandardID: 3, VendorID: []byte{1, 0}, Payload: make([]byte, 5000)}).marshalRequest()
	big[len(big)-1] = 1 // not DOE padding
	for _, tc := range []struct {
		name     string
		req      []byte
		want     ErrorCode
		wantData uint8
		rule     string
	}{
		{"request over DataTransferSize", big, ErrorCodeRequestTooLarge, 0, "1.2 Table 57 RequestTooLarge; no CHUNK_SEND"},
		{"unknown request code", []byte{0x12, 0x9A, 0, 0}, ErrorCodeUnsupportedRequest, 0x9A, "§10.10: ErrorData = the request code"},
		{"PSK_EXCHANGE (no PSK_CAP)", []byte{0x12, uint8(RequestPSKExchange), 0, 0}, ErrorCodeUnsupportedRequest, uint8(RequestPSKExchange), "§10.10"},
		{"CHUNK_GET without CHUNK_CAP", (&chunkGetReq{Version: Version12}).marshal(), ErrorCodeUnsupportedRequest, uint8(RequestChunkGet), "1.2 §10.17"},
		{"old version after negotiation", (&getDigestsReq{Version: Version11}).marshal(), ErrorCodeVersionMismatch, 0, "§10.10 VersionMismatch; Validator x.2"},
		{"newer version after negotiation", (&getMeasurementsReq{Version: Version13, Op: MeasOpCount}).marshal(), ErrorCodeVersionMismatch, 0, "Validator 7.2"},
		{"GET_CAPABILITIES again", rspCapsReq(Version12, 0, CapCert|CapChal, 4096, 4096), ErrorCodeUnexpectedRequest, 0, "Validator 2.6"},
		{"NEGOTIATE_ALGORITHMS again", (&negotiateAlgorithmsReq{Version: Version12, BaseAsym: AsymECDSAP256, BaseHash: HashSHA256}).marshal(), ErrorCodeUnexpectedRequest, 0, "Validator 3.x"},
		{"RESPOND_IF_READY with nothing pending", []byte{0x12, uint8(RequestRespondIfReady), uint8(RequestChallenge), 1}, ErrorCodeUnexpectedRequest, 0, "§10.13"},
		{"measurement index not present", (&getMeasurementsReq{Version: Version12, Op: 0x33}).marshal(), ErrorCodeInvalidRequest, 0, "Validator 7.4"},
		{"signed measurements from an empty slot", (&getMeasurementsReq{Version: Version12, Attrs: MeasAttrSignature, Op: 1, SlotParam: 3}).marshal(), ErrorCodeInvalidRequest, 0, "Validator 7.4 step 3"},
		{"CHALLENGE to an empty slot", (&challengeReq{Version: Version12, Slot: 5}).marshal(), ErrorCodeInvalidRequest, 0, "Validator 6.x"},
		{"GET_CERTIFICATE from an empty slot", (&getCertificateReq{Version: Version12, Slot: 2, Length: 16}).marshal(), ErrorCodeInvalidRequest, 0, "Validator 5.x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rsp := c.x(tc.req)
			e, err := decodeErrorRsp(rsp)
			if err != nil || e.Code != tc.want || e.Data != tc.wantData {
				t.Fatalf("got %x (%v), want %v data %#x [%s]", rsp, err, tc.want, tc.wantData, tc.rule)
			}
		})
	}
}

// TestResponderConformanceInSession: inside a session, requests that are
// not allowed there are UnexpectedRequest, unknown ones UnsupportedRequest,
// GET_DIGESTS is served, and a withheld capability is UnsupportedRequest.
func TestResponderConformanceInSession(t *testing.T) {
	ctx := context.Background()
	r := rspSessionResponder(t, func(s *ResponderSessionConfig) { s.NoKeyUpdate = true })
	root, _ := x509.ParseCertificate(rspKey(t, AsymECDSAP256).chain[0])
	o := &Options{Roots: []*x509.Certificate{root}, MinVersion: Version12, MaxVersion: Version12}
	EnableSessions(o, false)
	_, s, err := OpenSession(ctx, loopPlain{r}, loopSecured{r}, o, 0)
	if err != nil {
		t.Fatal(err)
	}
	if in := s.Info(); !in.CanHeartbeat || in.CanKeyUpdate || in.HeartbeatPeriod.Seconds() != 30 {
		t.Fatalf("session info %+v: want heartbeat (30 s), no key update", in)
	}
	send := func(req []byte) ([]byte, ErrorCode) {
		t.Helper()
		rsp, err := s.inner.exchange(ctx, req, false)
		s.inner.err = nil
		var re *ResponderError
		if errors.As(err, &re) {
			return nil, re.Code
		}
		if err != nil {
			t.Fatalf("%x: %v", req, err)
		}
		return rsp, 0
	}
	for _, tc := range []struct {
		name string
		req  []byte
		want ErrorCode
	}{
		{"CHALLENGE", (&challengeReq{Version: Version12}).marshal(), ErrorCodeUnexpectedRequest},
		{"KEY_EXCHANGE", []byte{0x12, uint8(RequestKeyExchange), 0, 0}, ErrorCodeUnexpectedRequest},
		{"NEGOTIATE_ALGORITHMS", (&negotiateAlgorithmsReq{Version: Version12, BaseAsym: AsymECDSAP256, BaseHash: HashSHA256}).marshal(), ErrorCodeUnexpectedRequest},
		{"FINISH after FINISH", (&finishReq{Version: Version12, VerifyData: make([]byte, 32)}).marshal(), ErrorCodeUnexpectedRequest},
		{"unknown code", []byte{0x12, 0x9B, 0, 0}, ErrorCodeUnsupportedRequest},
		{"KEY_UPDATE without KEY_UPD_CAP", (&simpleMsg{Version: Version12, Code: uint8(RequestKeyUpdate), Param1: 1, Param2: 1}).marshal(), ErrorCodeUnsupportedRequest},
		{"HEARTBEAT", (&simpleMsg{Version: Version12, Code: uint8(RequestHeartbeat)}).marshal(), 0},
		{"GET_DIGESTS", (&getDigestsReq{Version: Version12}).marshal(), 0},
	} {
		_, got := send(tc.req)
		if got != tc.want {
			t.Errorf("%s in a session: got %v, want %v", tc.name, got, tc.want)
		}
	}
	if err := s.Err(); err != nil {
		t.Fatalf("session broken by refused requests: %v", err)
	}
	if err := s.Heartbeat(ctx); err != nil {
		t.Fatalf("heartbeat after the refusals: %v", err)
	}
}

// TestResponderMeasurements10Length: a 1.0 MEASUREMENTS is as long as its
// fields say, signed or not: header(8) ‖ record ‖ Nonce(32) ‖
// OpaqueDataLength(2) ‖ OpaqueData [‖ signature] (Validator 7.1.1, .8, .15;
// libspdm checks the same size for unsigned responses).
func TestResponderMeasurements10Length(t *testing.T) {
	r := rspTestResponder(t, AsymECDSAP256, nil)
	c := &tReq{t: t, r: r, v: Version10}
	c.vcaFlow(AsymECDSAP256, HashSHA256)
	for _, op := range []uint8{MeasOpCount, MeasOpAll, 1, 2, 0x10, 0xFE} {
		rsp := c.x((&getMeasurementsReq{Version: Version10, Op: op}).marshal())
		if len(rsp) < 8 || rsp[1] != uint8(ResponseMeasurements) {
			t.Fatalf("op %#x: %x", op, rsp)
		}
		recLen := int(rsp[5]) | int(rsp[6])<<8 | int(rsp[7])<<16
		if len(rsp) < 8+recLen+nonceLen+2 {
			t.Fatalf("op %#x: %d bytes, shorter than header + record %d + nonce + opaque length", op, len(rsp), recLen)
		}
		opaque := int(binary.LittleEndian.Uint16(rsp[8+recLen+nonceLen:]))
		if len(rsp) != 8+recLen+nonceLen+2+opaque {
			t.Fatalf("op %#x: %d bytes, fields declare %d", op, len(rsp), 8+recLen+nonceLen+2+opaque)
		}
		// Our requester's decoder takes it.
		if _, err := decodeMeasurementsRsp(rsp, op, 0); err != nil {
			t.Fatalf("op %#x: %v", op, err)
		}
	}
	// A 1.0 responder that omits the unsigned nonce (as DSP0274 1.0.0
	// allows) still decodes.
	old := (&measurementsRsp{Version: Version10, NumBlocks: 0, Param1: 4}).marshal()
	if m, err := decodeMeasurementsRsp(old, MeasOpCount, 0); err != nil || m.hasNonce {
		t.Fatalf("1.0 unsigned without nonce: %+v %v", m, err)
	}
}

// TestRequesterCapsWithoutChunk: without CHUNK_CAP our requester sends
// MaxSPDMmsgSize = DataTransferSize whatever it was configured with, so a
// conforming responder accepts its GET_CAPABILITIES.
func TestRequesterCapsWithoutChunk(t *testing.T) {
	r := rspTestResponder(t, AsymECDSAP256, nil)
	root, _ := x509.ParseCertificate(rspKey(t, AsymECDSAP256).chain[0])
	o := &Options{Roots: []*x509.Certificate{root}, MinVersion: Version12, MaxVersion: Version12,
		CapabilityFlags: CapCert | CapChal, CTExponent: 20, DataTransferSize: 512, MaxSPDMmsgSize: 65536}
	req := NewRequester(loopPlain{r}, o)
	n, err := req.Negotiate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n.Version != Version12 {
		t.Fatalf("negotiated %s", n.Version)
	}
}

// TestResponderConformanceAlgorithms: NEGOTIATE_ALGORITHMS with an invalid
// field is InvalidRequest (DSP0274 1.2.0 §10.5; Validator 3.4).
func TestResponderConformanceAlgorithms(t *testing.T) {
	good := func() []byte {
		return (&negotiateAlgorithmsReq{Version: Version12, MeasSpec: MeasurementSpecDMTF, BaseAsym: AsymECDSAP256, BaseHash: HashSHA256,
			OtherParams: 0x02, Algs: []algStruct{{Type: algTypeDHE, Supported: uint16(DHESECP256R1)}, {Type: algTypeAEAD, Supported: uint16(AEADAES256GCM)}}}).marshal()
	}
	setLen := func(d int) []byte {
		b := good()
		binary.LittleEndian.PutUint16(b[4:], uint16(len(b)+d))
		return b
	}
	extAsym := func(n uint8) []byte {
		b := good()
		b[28] = n
		return b
	}
	algCount := func(c uint8) []byte {
		b := good()
		b[32+1] = c // first AlgStruct's AlgCount
		return b
	}
	swapped := func() []byte {
		b := good()
		b[32], b[36] = b[36], b[32] // AEAD table before DHE
		return b
	}
	for _, tc := range []struct {
		name string
		req  []byte
		want ErrorCode
	}{
		{"valid", good(), 0},
		{"Length-1", setLen(-1), ErrorCodeInvalidRequest},
		{"Length+1", setLen(+1), ErrorCodeInvalidRequest},
		{"ExtAsymCount 21", extAsym(21), ErrorCodeInvalidRequest},
		{"FixedAlgCount 1", algCount(0x10), ErrorCodeInvalidRequest},
		{"FixedAlgCount 3", algCount(0x30), ErrorCodeInvalidRequest},
		{"AlgStruct out of order", swapped(), ErrorCodeInvalidRequest},
		{"no common hash", (&negotiateAlgorithmsReq{Version: Version12, BaseAsym: AsymECDSAP256, BaseHash: HashSHA3_512}).marshal(), ErrorCodeInvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rspSessionResponder(t, func(s *ResponderSessionConfig) { s.AEAD = AEADAES256GCM })
			c := &tReq{t: t, r: r}
			c.x((&getVersionReq{}).marshal())
			c.x(rspCapsReq(Version12, 0, sessionReqFlags, 4096, 4096))
			if got := errCode(t, c.x(tc.req)); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestSupportedAlgorithmsBlock: a 1.3 requester that asks (with CHUNK_CAP)
// gets the responder's supported-algorithms block in CAPABILITIES and
// reports it; one that does not ask gets none; the block survives a
// codec round trip.
func TestSupportedAlgorithmsBlock(t *testing.T) {
	ctx := context.Background()
	r := rspSessionResponder(t, func(s *ResponderSessionConfig) { s.DHE = DHESECP256R1 | DHESECP384R1; s.AEAD = AEADChaCha20Poly1305 })
	root, _ := x509.ParseCertificate(rspKey(t, AsymECDSAP256).chain[0])
	for _, ask := range []bool{true, false} {
		o := &Options{Roots: []*x509.Certificate{root}, MinVersion: Version13, MaxVersion: Version13, SupportedAlgorithms: ask,
			CapabilityFlags: CapCert | CapChal | CapChunk, CTExponent: 20}
		n, err := NewRequester(loopPlain{r}, o).Negotiate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n.HasSupported != ask {
			t.Fatalf("asked %v, block present %v", ask, n.HasSupported)
		}
		if !ask {
			continue
		}
		want := SupportedAlgorithms{MeasSpec: MeasurementSpecDMTF, OtherParams: 0x03, BaseAsym: AsymECDSAP256,
			BaseHash: HashSHA256 | HashSHA384 | HashSHA512, DHE: DHESECP256R1 | DHESECP384R1, AEAD: AEADChaCha20Poly1305, KeySchedule: KeyScheduleSPDM}
		if n.Supported != want {
			t.Fatalf("supported algorithms %+v, want %+v", n.Supported, want)
		}
	}
	// Codec: round trip, and a Length that does not match is refused.
	rsp := &capabilitiesRsp{Version: Version13, CTExponent: 12, Flags: CapCert | CapChunk, DataTransferSize: 4096, MaxSPDMmsgSize: 65536,
		Supported: &SupportedAlgorithms{BaseAsym: AsymECDSAP384, BaseHash: HashSHA384, DHE: DHESECP384R1}}
	b := rsp.marshal()
	if len(b) != 20+30+4 {
		t.Fatalf("CAPABILITIES with one AlgStruct is %d bytes", len(b))
	}
	got, err := decodeCapabilitiesRsp(b)
	if err != nil || got.Supported == nil || *got.Supported != *rsp.Supported {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	b[22]++ // block Length
	if _, err := decodeCapabilitiesRsp(b); err == nil {
		t.Fatal("wrong block Length accepted")
	}
}
