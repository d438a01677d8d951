package spdm

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

// AlgorithmIdentifier DER of an ECDSA P-384 key: the PublicKeyInfo
// libspdm's sample key pairs carry (os_stub/spdm_device_secret_lib_sample,
// public_key_info_ecp384), written out here independently of Go's encoder.
var ecp384AlgID = []byte{0x30, 0x10, 0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01, 0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x22}

// keyPairResponder is a 1.3 multi-key responder with two key pairs: a
// P-384 key in slots 0 and 1 (KeyPairID 1) and a P-256 key in slot 0
// (KeyPairID 2; used when P-256 is negotiated).
func keyPairResponder(t testing.TB, mk MultiKeyCap) *Responder {
	k384, k256 := rspKey(t, AsymECDSAP384), rspKey(t, AsymECDSAP256)
	return NewResponder(ResponderConfig{
		Keys: []ResponderKey{
			{Slot: 0, Asym: AsymECDSAP384, Chain: k384.chain, Signer: k384.key},
			{Slot: 0, Asym: AsymECDSAP256, Chain: k256.chain, Signer: k256.key},
			{Slot: 1, Asym: AsymECDSAP384, Chain: k384.chain, Signer: k384.key, KeyUsage: KeyUsageChallenge},
		},
		MultiKey:     mk,
		Measurements: rspTestMeasurements,
	})
}

func TestKeyPairInfoRoundTrip(t *testing.T) {
	ctx := context.Background()
	r := keyPairResponder(t, MultiKeyOnly)
	req := NewRequester(loopPlain{r}, &Options{MinVersion: Version13, MaxVersion: Version13, AsymAlgos: AsymECDSAP384})
	n, err := req.Negotiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n.Caps&CapGetKeyPairInfo == 0 || n.Caps&CapSetKeyPairInfo != 0 {
		t.Fatalf("CAPABILITIES %#x: want GET_KEY_PAIR_INFO_CAP, no SET_KEY_PAIR_INFO_CAP", n.Caps)
	}
	d, err := req.Digests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d.KeyPairID[0] != 1 || d.KeyPairID[1] != 1 {
		t.Fatalf("DIGESTS KeyPairIDs %v, want 1 for both slots of the P-384 key", d.KeyPairID)
	}
	p1, err := req.GetKeyPairInfo(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	want1 := KeyPairInfo{TotalKeyPairs: 2, KeyPairID: 1,
		KeyUsageCapabilities: KeyUsageKeyExchange | KeyUsageChallenge | KeyUsageMeasurement,
		CurrentKeyUsage:      KeyUsageKeyExchange | KeyUsageChallenge | KeyUsageMeasurement,
		AsymAlgoCapabilities: KeyPairECC384, CurrentAsymAlgo: KeyPairECC384, AssocCertSlotMask: 0b11, PublicKeyInfo: ecp384AlgID}
	if !keyPairInfoEqual(*p1, want1) {
		t.Fatalf("key pair 1:\n got %+v\nwant %+v", *p1, want1)
	}
	p2, err := req.GetKeyPairInfo(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if p2.CurrentAsymAlgo != KeyPairECC256 || p2.AssocCertSlotMask != 0b01 || p2.TotalKeyPairs != 2 || len(p2.PublicKeyInfo) != 21 {
		t.Fatalf("key pair 2: %+v", *p2)
	}
	// A KeyPairID the device does not have: ERROR(InvalidRequest), not sticky.
	if _, err := req.GetKeyPairInfo(ctx, 3); !errors.Is(err, ErrorCodeInvalidRequest) {
		t.Fatalf("KeyPairID 3: %v, want InvalidRequest", err)
	}
	if _, err := req.GetKeyPairInfo(ctx, 1); err != nil {
		t.Fatalf("after an ERROR: %v", err)
	}
}

func keyPairInfoEqual(a, b KeyPairInfo) bool {
	return a.TotalKeyPairs == b.TotalKeyPairs && a.KeyPairID == b.KeyPairID && a.Capabilities == b.Capabilities &&
		a.KeyUsageCapabilities == b.KeyUsageCapabilities && a.CurrentKeyUsage == b.CurrentKeyUsage &&
		a.AsymAlgoCapabilities == b.AsymAlgoCapabilities && a.CurrentAsymAlgo == b.CurrentAsymAlgo &&
		a.AssocCertSlotMask == b.AssocCertSlotMask && bytes.Equal(a.PublicKeyInfo, b.PublicKeyInfo)
}

// TestResponderConformanceKeyPairInfo: GET_KEY_PAIR_INFO request → ERROR
// code, per DSP0274 1.3 (GET_KEY_PAIR_INFO) and the ERROR table, as libspdm's
// responder (libspdm_rsp_key_pair_info.c) applies them.
func TestResponderConformanceKeyPairInfo(t *testing.T) {
	kpi := func(v Version, id uint8) []byte { return (&getKeyPairInfoReq{Version: v, KeyPairID: id}).marshal() }
	const ok = ErrorCode(0)
	for _, tc := range []struct {
		name string
		mk   MultiKeyCap
		ver  Version // negotiated; 0 = no VCA
		req  []byte
		want ErrorCode
		rule string
	}{
		{"valid", MultiKeyNegotiated, Version13, kpi(Version13, 1), ok, "GET_KEY_PAIR_INFO"},
		{"KeyPairID 0", MultiKeyNegotiated, Version13, kpi(Version13, 0), ErrorCodeInvalidRequest, "KeyPairID 1..TotalKeyPairs"},
		{"KeyPairID above TotalKeyPairs", MultiKeyNegotiated, Version13, kpi(Version13, 3), ErrorCodeInvalidRequest, "KeyPairID 1..TotalKeyPairs"},
		{"header only", MultiKeyNegotiated, Version13, []byte{0x13, uint8(RequestGetKeyPairInfo), 0, 0}, ErrorCodeInvalidRequest, "request length"},
		{"reserved Param1 set", MultiKeyNegotiated, Version13, []byte{0x13, uint8(RequestGetKeyPairInfo), 1, 0, 1}, ErrorCodeInvalidRequest, "reserved fields (this responder's rule for every request)"},
		{"trailing byte", MultiKeyNegotiated, Version13, append(kpi(Version13, 1), 7), ErrorCodeInvalidRequest, "request length"},
		{"no GET_KEY_PAIR_INFO_CAP (single key)", MultiKeyNone, Version13, kpi(Version13, 1), ErrorCodeUnsupportedRequest, "capability not advertised"},
		{"SPDM 1.2 connection", MultiKeyNegotiated, Version12, kpi(Version12, 1), ErrorCodeUnsupportedRequest, "1.3 request"},
		{"other version than negotiated", MultiKeyNegotiated, Version13, kpi(Version12, 1), ErrorCodeVersionMismatch, "§10.2 SPDMVersion"},
		{"before VCA", MultiKeyNegotiated, 0, kpi(Version13, 1), ErrorCodeUnexpectedRequest, "connection state"},
		{"SET_KEY_PAIR_INFO (not implemented)", MultiKeyNegotiated, Version13,
			[]byte{0x13, uint8(RequestSetKeyPairInfo), 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}, ErrorCodeUnsupportedRequest, "no SET_KEY_PAIR_INFO_CAP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := keyPairResponder(t, tc.mk)
			if tc.ver != 0 {
				req := NewRequester(loopPlain{r}, &Options{MinVersion: tc.ver, MaxVersion: tc.ver, AsymAlgos: AsymECDSAP384})
				if _, err := req.Negotiate(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			c := &tReq{t: t, r: r}
			rsp := c.x(tc.req)
			if got := errCode(t, rsp); got != tc.want {
				t.Fatalf("got %v (% x), want %v [%s]", got, rsp, tc.want, tc.rule)
			}
			if tc.want == ErrorCodeUnsupportedRequest {
				if e, _ := decodeErrorRsp(rsp); e.Data != tc.req[1] {
					t.Fatalf("UnsupportedRequest ErrorData %#x, want the request code %#x", e.Data, tc.req[1])
				}
			}
			if tc.want == ok {
				if _, err := decodeKeyPairInfoRsp(rsp); err != nil {
					t.Fatalf("KEY_PAIR_INFO does not decode: %v", err)
				}
			}
		})
	}
}

// validKeyPairInfo is a well-formed 1.3 KEY_PAIR_INFO (key pair 1 of 2).
func validKeyPairInfo() *keyPairInfoRsp {
	return &keyPairInfoRsp{Version: Version13, KeyPairInfo: KeyPairInfo{TotalKeyPairs: 2, KeyPairID: 1,
		KeyUsageCapabilities: KeyUsageKeyExchange | KeyUsageChallenge, CurrentKeyUsage: KeyUsageChallenge,
		AsymAlgoCapabilities: KeyPairECC384 | KeyPairECC256, CurrentAsymAlgo: KeyPairECC384,
		AssocCertSlotMask: 1, PublicKeyInfo: ecp384AlgID}}
}

// TestDecodeKeyPairInfoStrict: every field of a device's KEY_PAIR_INFO is
// checked (the bytes are attacker-controlled).
func TestDecodeKeyPairInfoStrict(t *testing.T) {
	good := validKeyPairInfo().marshal()
	if m, err := decodeKeyPairInfoRsp(good); err != nil || !bytes.Equal(m.marshal(), good) {
		t.Fatalf("valid message: %v", err)
	}
	for _, tc := range []struct {
		name  string
		mod   func(*keyPairInfoRsp)
		field string
	}{
		{"SPDM 1.2", func(m *keyPairInfoRsp) { m.Version = Version12 }, "SPDMVersion"},
		{"KeyPairID 0", func(m *keyPairInfoRsp) { m.KeyPairID = 0 }, "KeyPairID"},
		{"KeyPairID above TotalKeyPairs", func(m *keyPairInfoRsp) { m.KeyPairID = 3 }, "KeyPairID"},
		{"undefined Capabilities bit", func(m *keyPairInfoRsp) { m.Capabilities = 1 << 6 }, "Capabilities"},
		{"SHAREABLE without CERT_ASSOC", func(m *keyPairInfoRsp) { m.Capabilities = KeyPairCapShareable }, "Capabilities"},
		{"no key usage", func(m *keyPairInfoRsp) { m.KeyUsageCapabilities, m.CurrentKeyUsage = 0, 0 }, "KeyUsageCapabilities"},
		{"undefined key usage bit", func(m *keyPairInfoRsp) { m.KeyUsageCapabilities |= 1 << 4 }, "KeyUsageCapabilities"},
		{"current usage outside capabilities", func(m *keyPairInfoRsp) { m.CurrentKeyUsage = KeyUsageMeasurement }, "CurrentKeyUsage"},
		{"no algorithm", func(m *keyPairInfoRsp) { m.AsymAlgoCapabilities, m.CurrentAsymAlgo = 0, 0 }, "AsymAlgoCapabilities"},
		{"undefined algorithm bit", func(m *keyPairInfoRsp) { m.AsymAlgoCapabilities |= 1 << 9 }, "AsymAlgoCapabilities"},
		{"two current algorithms", func(m *keyPairInfoRsp) { m.CurrentAsymAlgo = KeyPairECC384 | KeyPairECC256 }, "CurrentAsymAlgo"},
		{"current algorithm outside capabilities", func(m *keyPairInfoRsp) { m.CurrentAsymAlgo = KeyPairRSA2048 }, "CurrentAsymAlgo"},
		{"PublicKeyInfo not DER", func(m *keyPairInfoRsp) { m.PublicKeyInfo = []byte{1, 2, 3} }, "PublicKeyInfo"},
		{"PublicKeyInfo with trailing bytes", func(m *keyPairInfoRsp) { m.PublicKeyInfo = append(bytes.Clone(ecp384AlgID), 0) }, "PublicKeyInfo"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := validKeyPairInfo()
			tc.mod(m)
			_, err := decodeKeyPairInfoRsp(m.marshal())
			var de *DecodeError
			if !errors.As(err, &de) || de.Field != tc.field {
				t.Fatalf("got %v, want a DecodeError on %s", err, tc.field)
			}
		})
	}
	// PublicKeyInfoLen longer or shorter than what follows.
	long := bytes.Clone(good)
	long[4+1+1+2+2+2+4+4]++
	if _, err := decodeKeyPairInfoRsp(long); err == nil {
		t.Fatal("PublicKeyInfoLen past the end decodes")
	}
	if _, err := decodeKeyPairInfoRsp(append(bytes.Clone(good), 0)); err == nil {
		t.Fatal("trailing byte decodes")
	}
}

// kpiTamper answers GET_KEY_PAIR_INFO with canned bytes and forwards the rest.
type kpiTamper struct {
	r   *Responder
	rsp []byte
}

func (k kpiTamper) Exchange(ctx context.Context, req []byte) ([]byte, error) {
	if len(req) > 1 && RequestCode(req[1]) == RequestGetKeyPairInfo {
		return k.rsp, nil
	}
	return k.r.Respond(ctx, req)
}

// TestRequesterKeyPairInfoChecks: the requester's own rules on top of the
// decoder, and its refusals before anything is sent.
func TestRequesterKeyPairInfoChecks(t *testing.T) {
	ctx := context.Background()
	negotiate := func(t *testing.T, mk MultiKeyCap, ver Version, rsp []byte) *Requester {
		t.Helper()
		req := NewRequester(kpiTamper{keyPairResponder(t, mk), rsp}, &Options{MinVersion: ver, MaxVersion: ver, AsymAlgos: AsymECDSAP384})
		if _, err := req.Negotiate(ctx); err != nil {
			t.Fatal(err)
		}
		return req
	}
	var pe *ProtocolError
	wrongID := validKeyPairInfo()
	wrongID.KeyPairID = 2
	if _, err := negotiate(t, MultiKeyOnly, Version13, wrongID.marshal()).GetKeyPairInfo(ctx, 1); !errors.As(err, &pe) {
		t.Fatalf("KeyPairID 2 for a request of 1: %v, want ProtocolError", err)
	}
	settable := validKeyPairInfo()
	settable.Capabilities = KeyPairCapGenKey
	req := negotiate(t, MultiKeyOnly, Version13, settable.marshal())
	if _, err := req.GetKeyPairInfo(ctx, 1); !errors.As(err, &pe) {
		t.Fatalf("Capabilities without SET_KEY_PAIR_INFO_CAP: %v, want ProtocolError", err)
	}
	if _, err := req.GetKeyPairInfo(ctx, 1); !errors.As(err, &pe) {
		t.Fatalf("not sticky: %v", err)
	}
	var de *DecodeError
	if _, err := negotiate(t, MultiKeyOnly, Version13, []byte{0x13, uint8(ResponseKeyPairInfo), 0, 0, 1}).GetKeyPairInfo(ctx, 1); !errors.As(err, &de) {
		t.Fatalf("truncated KEY_PAIR_INFO: %v, want DecodeError", err)
	}
	// Refused before sending: no capability, SPDM 1.2, KeyPairID 0.
	for name, req := range map[string]*Requester{
		"no GET_KEY_PAIR_INFO_CAP": negotiate(t, MultiKeyNone, Version13, nil),
		"SPDM 1.2":                 negotiate(t, MultiKeyOnly, Version12, nil),
	} {
		if _, err := req.GetKeyPairInfo(ctx, 1); !errors.As(err, &pe) {
			t.Fatalf("%s: %v, want ProtocolError", name, err)
		}
	}
	if _, err := negotiate(t, MultiKeyOnly, Version13, nil).GetKeyPairInfo(ctx, 0); !errors.As(err, &pe) {
		t.Fatalf("KeyPairID 0: %v, want ProtocolError", err)
	}
}

func FuzzGetKeyPairInfoReq(f *testing.F) {
	f.Add((&getKeyPairInfoReq{Version: Version13, KeyPairID: 1}).marshal(), uint8(0))
	fuzzDecoder(f, uint8(RequestGetKeyPairInfo), func(b []byte, _ uint8) (any, []byte, error) { return fz(decodeGetKeyPairInfoReq(b)) })
}

func FuzzKeyPairInfoRsp(f *testing.F) {
	f.Add(validKeyPairInfo().marshal(), uint8(0))
	m := validKeyPairInfo()
	m.PublicKeyInfo, m.Capabilities = nil, KeyPairCapCertAssoc|KeyPairCapShareable
	f.Add(m.marshal(), uint8(0))
	fuzzDecoder(f, uint8(ResponseKeyPairInfo), func(b []byte, _ uint8) (any, []byte, error) { return fz(decodeKeyPairInfoRsp(b)) })
}
