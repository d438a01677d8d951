package spdm

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

// TestMultiKeyConnTable encodes DSP0274 1.3.0 Table 32 (as libspdm's
// requester test 35 and Caliptra's responder tests state it): MULTI_KEY_CAP
// of the endpoint whose keys are meant × the MultiKeyConn bit its peer sent
// → MULTI_KEY_CONN_REQ/RSP, or invalid.
func TestMultiKeyConnTable(t *testing.T) {
	for _, tc := range []struct {
		cap      MultiKeyCap
		bit      bool
		conn, ok bool
	}{
		{MultiKeyNone, false, false, true},
		{MultiKeyNone, true, false, false},
		{MultiKeyOnly, false, false, false},
		{MultiKeyOnly, true, true, true},
		{MultiKeyNegotiated, false, false, true},
		{MultiKeyNegotiated, true, true, true},
		{3, false, false, false}, // 11b reserved
		{3, true, false, false},
	} {
		conn, ok := multiKeyConn(tc.cap, tc.bit)
		if ok != tc.ok || (ok && conn != tc.conn) {
			t.Errorf("cap %02b bit %v: got (%v, %v), want (%v, %v)", tc.cap, tc.bit, conn, ok, tc.conn, tc.ok)
		}
	}
}

// TestResponderMultiKeyNegotiation: the responder applies Table 32 to the
// requester's MultiKeyConn bit (MULTI_KEY_CONN_RSP; an invalid pair is
// ERROR(InvalidRequest)), sets its own bit from the requester's
// MULTI_KEY_CAP (MULTI_KEY_CONN_REQ: 01b → set; this responder leaves it
// clear for 10b), advertises MULTI_KEY_CAP only at 1.3, and adds the
// KeyPairID, CertificateInfo and KeyUsageMask fields to DIGESTS exactly in
// multi-key connections (DSP0274 1.3.0 §10.6).
func TestResponderMultiKeyNegotiation(t *testing.T) {
	for _, tc := range []struct {
		name    string
		v       Version
		cap     MultiKeyCap // responder
		reqCap  MultiKeyCap // requester
		bit     bool        // requester's MultiKeyConn
		want    ErrorCode
		wantSel bool // ALGORITHMS MultiKeyConn (MULTI_KEY_CONN_REQ)
		wantMK  bool // DIGESTS carries the multi-key fields
	}{
		{"00b, clear", Version13, MultiKeyNone, 0, false, 0, false, false},
		{"00b, set", Version13, MultiKeyNone, 0, true, ErrorCodeInvalidRequest, false, false},
		{"01b, clear", Version13, MultiKeyOnly, 0, false, ErrorCodeInvalidRequest, false, false},
		{"01b, set", Version13, MultiKeyOnly, 0, true, 0, false, true},
		{"10b, clear", Version13, MultiKeyNegotiated, 0, false, 0, false, false},
		{"10b, set", Version13, MultiKeyNegotiated, 0, true, 0, false, true},
		{"requester 01b", Version13, MultiKeyNegotiated, MultiKeyOnly, true, 0, true, true},
		{"requester 10b", Version13, MultiKeyNegotiated, MultiKeyNegotiated, true, 0, false, true},
		{"1.2 ignores the bit", Version12, MultiKeyOnly, 0, true, 0, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rspTestResponder(t, AsymECDSAP384, func(c *ResponderConfig) { c.MultiKey = tc.cap })
			c := &tReq{t: t, r: r}
			c.x((&getVersionReq{}).marshal())
			flags := CapCert | CapChal
			if tc.v >= Version13 {
				flags |= uint32(tc.reqCap) << 26
			}
			cr, err := decodeCapabilitiesRsp(c.x(rspCapsReq(tc.v, 0, flags, 4096, 4096)))
			if err != nil {
				t.Fatal(err)
			}
			wantCap := tc.cap
			if tc.v < Version13 {
				wantCap = 0
			}
			if got := multiKeyCapOf(cr.Flags); got != wantCap {
				t.Fatalf("CAPABILITIES MULTI_KEY_CAP %02b, want %02b", got, wantCap)
			}
			other := uint8(0x02)
			if tc.bit {
				other |= otherParamsMultiKeyConn
			}
			ar := c.x((&negotiateAlgorithmsReq{Version: tc.v, MeasSpec: MeasurementSpecDMTF, BaseAsym: AsymECDSAP384,
				BaseHash: HashSHA384, OtherParams: other}).marshal())
			if got := errCode(t, ar); got != tc.want {
				t.Fatalf("NEGOTIATE_ALGORITHMS: got %v, want %v", got, tc.want)
			}
			if tc.want != 0 {
				return
			}
			a, err := decodeAlgorithmsRsp(ar)
			if err != nil {
				t.Fatal(err)
			}
			if got := a.OtherParamsSel&otherParamsMultiKeyConn != 0; got != tc.wantSel {
				t.Fatalf("OtherParamsSelection %#x: MULTI_KEY_CONN_REQ %v, want %v", a.OtherParamsSel, got, tc.wantSel)
			}
			dr := c.x((&getDigestsReq{Version: tc.v}).marshal())
			if want := 4 + 48 + map[bool]int{false: 0, true: 4}[tc.wantMK]; len(dr) != want {
				t.Fatalf("DIGESTS is %d bytes, want %d", len(dr), want)
			}
			d, err := decodeDigestsRsp(dr, 48, tc.wantMK)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantMK && (d.KeyPairID[0] != 1 || d.CertInfo[0] != CertModelDevice ||
				d.KeyUsageMask[0] != KeyUsageKeyExchange|KeyUsageChallenge|KeyUsageMeasurement) {
				t.Fatalf("slot 0: KeyPairID %d CertInfo %d KeyUsageMask %#x", d.KeyPairID[0], d.CertInfo[0], d.KeyUsageMask[0])
			}
		})
	}
}

// TestRequesterMultiKeySelection: the responder's MultiKeyConn bit is
// MULTI_KEY_CONN_REQ, judged against our MULTI_KEY_CAP by Table 32; it is
// not an "algorithm we did not offer".
func TestRequesterMultiKeySelection(t *testing.T) {
	for _, tc := range []struct {
		reqCap MultiKeyCap
		sel    bool
		ok     bool
	}{
		{MultiKeyNone, false, true},
		{MultiKeyNone, true, false},
		{MultiKeyOnly, false, false},
		{MultiKeyOnly, true, true},
		{MultiKeyNegotiated, false, true},
		{MultiKeyNegotiated, true, true},
	} {
		n := &Negotiated{Version: Version13, RequesterCaps: uint32(tc.reqCap) << 26}
		req := &negotiateAlgorithmsReq{Version: Version13, BaseAsym: AsymECDSAP256, BaseHash: HashSHA256, OtherParams: 0x02}
		a := &algorithmsRsp{Version: Version13, BaseHash: HashSHA256, OtherParamsSel: 0x02}
		if tc.sel {
			a.OtherParamsSel |= otherParamsMultiKeyConn
		}
		err := checkSelection(n, req, a)
		if (err == nil) != tc.ok {
			t.Errorf("our cap %02b, selection bit %v: %v", tc.reqCap, tc.sel, err)
		}
	}
}

// TestMultiKeyRoundTrip: vfio-gate's requester against its responder, 1.3
// with multi-key off, always on (01b), negotiated and asked for, negotiated
// and not asked for: the requester's MultiKeyConn bit follows Table 32,
// DIGESTS carries the key fields only when multi-key, and CHALLENGE, signed
// MEASUREMENTS (M1 = A‖B‖C, L1 = A‖M, unchanged) and a KEY_EXCHANGE session
// (A ‖ D ‖ Ct ‖ K) verify on both sides.
func TestMultiKeyRoundTrip(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		cap    MultiKeyCap
		ask    bool
		wantMK bool
	}{
		{"off", MultiKeyNone, true, false},
		{"only", MultiKeyOnly, false, true},
		{"negotiated, asked", MultiKeyNegotiated, true, true},
		{"negotiated, not asked", MultiKeyNegotiated, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rspTestResponder(t, AsymECDSAP384, func(c *ResponderConfig) {
				c.MultiKey = tc.cap
				c.Session = ResponderSessionConfig{DHE: DHESECP384R1}
			})
			o := &Options{MinVersion: Version13, MaxVersion: Version13, MultiKeyConn: tc.ask}
			EnableSessions(o, false)
			req := NewRequester(loopPlain{r}, o)
			n, err := req.Negotiate(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if n.MultiKey != tc.wantMK || r.c.multiKey != tc.wantMK {
				t.Fatalf("MULTI_KEY_CONN_RSP: requester %v, responder %v, want %v", n.MultiKey, r.c.multiKey, tc.wantMK)
			}
			d, err := req.Digests(ctx)
			if err != nil {
				t.Fatal(err)
			}
			wantUsage := uint16(0)
			if tc.wantMK {
				wantUsage = KeyUsageKeyExchange | KeyUsageChallenge | KeyUsageMeasurement
			}
			if d.KeyUsageMask[0] != wantUsage || (tc.wantMK && (d.KeyPairID[0] != 1 || d.CertInfo[0] != CertModelDevice)) {
				t.Fatalf("DIGESTS slot 0: KeyPairID %d CertInfo %d KeyUsageMask %#x", d.KeyPairID[0], d.CertInfo[0], d.KeyUsageMask[0])
			}
			if _, err := req.Certificate(ctx, 0); err != nil {
				t.Fatal(err)
			}
			if ch, err := req.Challenge(ctx, 0, SummaryAll); err != nil || !ch.Verified {
				t.Fatalf("CHALLENGE: %v", err)
			}
			if m, err := req.Measurements(ctx, MeasOpts{Index: MeasOpAll, Signed: true}); err != nil || !m.Verified {
				t.Fatalf("signed MEASUREMENTS: %v", err)
			}
			s, err := req.KeyExchange(ctx, KeyExchangeOpts{Slot: 0, SecuredTransport: loopSecured{r}})
			if err != nil {
				t.Fatalf("KEY_EXCHANGE: %v", err)
			}
			if _, err := s.Measurements(ctx, MeasOpts{Index: 1, Signed: true}); err != nil {
				t.Fatalf("in-session measurements: %v", err)
			}
		})
	}
}

// TestMultiKeyKeyUsage: in a multi-key connection a slot's key signs only
// what its KeyUsageMask allows. The requester refuses before sending (and
// does not verify a signature the responder should not have made); the
// responder answers the forbidden request with ERROR(InvalidRequest), as
// libspdm's responder does for CHALLENGE.
func TestMultiKeyKeyUsage(t *testing.T) {
	ctx := context.Background()
	r := rspTestResponder(t, AsymECDSAP384, func(c *ResponderConfig) {
		c.MultiKey = MultiKeyOnly
		c.Keys[0].KeyUsage = KeyUsageMeasurement
		c.Session = ResponderSessionConfig{DHE: DHESECP384R1}
	})
	o := &Options{MinVersion: Version13, MaxVersion: Version13}
	EnableSessions(o, false)
	req := NewRequester(loopPlain{r}, o)
	if _, err := req.Negotiate(ctx); err != nil {
		t.Fatal(err)
	}
	// Without DIGESTS the usage is unknown: refused.
	if _, err := req.Challenge(ctx, 0, SummaryNone); err == nil || !strings.Contains(err.Error(), "GET_DIGESTS first") {
		t.Fatalf("CHALLENGE before DIGESTS: %v", err)
	}
	if _, err := req.Negotiate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := req.Digests(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := req.Certificate(ctx, 0); err != nil {
		t.Fatal(err)
	}
	before := req.Stats().RoundTrips
	if _, err := req.Challenge(ctx, 0, SummaryNone); err == nil || !strings.Contains(err.Error(), "may not sign") {
		t.Fatalf("CHALLENGE with a measurement-only key: %v", err)
	}
	if req.Stats().RoundTrips != before {
		t.Fatal("the refused CHALLENGE was sent")
	}
	if _, err := req.Negotiate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := req.Digests(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := req.Certificate(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := req.KeyExchange(ctx, KeyExchangeOpts{Slot: 0, SecuredTransport: loopSecured{r}}); err == nil || !strings.Contains(err.Error(), "may not sign") {
		t.Fatalf("KEY_EXCHANGE with a measurement-only key: %v", err)
	}
	if _, err := req.Negotiate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := req.Digests(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := req.Certificate(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if m, err := req.Measurements(ctx, MeasOpts{Index: MeasOpAll, Signed: true}); err != nil || !m.Verified {
		t.Fatalf("signed MEASUREMENTS with a measurement key: %v", err)
	}

	// The responder refuses on its own, whatever the requester does.
	c := &tReq{t: t, r: r}
	c.x((&getVersionReq{}).marshal())
	c.x(rspCapsReq(Version13, 0, CapCert|CapChal, 4096, 4096))
	c.x((&negotiateAlgorithmsReq{Version: Version13, MeasSpec: MeasurementSpecDMTF, BaseAsym: AsymECDSAP384, BaseHash: HashSHA384,
		OtherParams: 0x02 | otherParamsMultiKeyConn}).marshal())
	if got := errCode(t, c.x((&challengeReq{Version: Version13, Slot: 0}).marshal())); got != ErrorCodeInvalidRequest {
		t.Fatalf("CHALLENGE of a measurement-only slot: %v, want InvalidRequest", got)
	}
	if got := errCode(t, c.x((&getMeasurementsReq{Version: Version13, Attrs: MeasAttrSignature, Op: MeasOpAll}).marshal())); got != 0 {
		t.Fatalf("signed GET_MEASUREMENTS of a measurement slot: %v", got)
	}
}

// TestMultiKeyDigestsTwice: message D is the FIRST DIGESTS response
// outside a session since VCA; later DIGESTS leave it unchanged (DMTF
// libspdm, libspdm_append_message_d: "Only the first message D after VCA
// in connection counts", on the requester and the responder alike). The
// transport hands the requester a second DIGESTS that differs from the
// first (an extra KeyUsageMask bit) while the responder keeps the first:
// KEY_EXCHANGE verifies only if the requester also keeps the first.
func TestMultiKeyDigestsTwice(t *testing.T) {
	ctx := context.Background()
	r := rspTestResponder(t, AsymECDSAP384, func(c *ResponderConfig) {
		c.MultiKey = MultiKeyOnly
		c.Session = ResponderSessionConfig{DHE: DHESECP384R1}
	})
	o := &Options{MinVersion: Version13, MaxVersion: Version13}
	EnableSessions(o, false)
	tp := &digestsTamper{r: r}
	req := NewRequester(tp, o)
	if _, err := req.Negotiate(ctx); err != nil {
		t.Fatal(err)
	}
	var first, second *Digests
	var err error
	if first, err = req.Digests(ctx); err != nil {
		t.Fatal(err)
	}
	if second, err = req.Digests(ctx); err != nil {
		t.Fatal(err)
	}
	if first.KeyUsageMask[0] == second.KeyUsageMask[0] {
		t.Fatal("the two DIGESTS do not differ: the test proves nothing")
	}
	if _, err := req.Certificate(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := req.KeyExchange(ctx, KeyExchangeOpts{Slot: 0, SecuredTransport: loopSecured{r}}); err != nil {
		t.Fatalf("KEY_EXCHANGE after two DIGESTS: %v", err)
	}
	// A new VCA starts D again: the next DIGESTS is the new D.
	if _, err := req.Negotiate(ctx); err != nil {
		t.Fatal(err)
	}
	if req.tr.d != nil || r.c.tr.d != nil {
		t.Fatal("message D survives GET_VERSION")
	}
}

// digestsTamper forwards to a responder and, from the second DIGESTS on,
// sets KeyUsageMask bit 3 (ENDPOINT_INFO) of slot 0 in what the requester
// receives.
type digestsTamper struct {
	r *Responder
	n int
}

func (d *digestsTamper) Exchange(ctx context.Context, req []byte) ([]byte, error) {
	rsp, err := d.r.Respond(ctx, req)
	if err != nil || len(rsp) < 2 || ResponseCode(rsp[1]) != ResponseDigests {
		return rsp, err
	}
	if d.n++; d.n > 1 {
		rsp = bytes.Clone(rsp)
		rsp[len(rsp)-2] |= uint8(KeyUsageEndpointInfo) // one slot: KeyUsageMask is the last 2 bytes
	}
	return rsp, nil
}

// TestTranscriptFirstDigestsIsD: the transcript type both sides use keeps
// the first multi-key DIGESTS as D, and none outside multi-key connections.
func TestTranscriptFirstDigestsIsD(t *testing.T) {
	var tr transcript
	tr.addVCA([]byte("A"), nil)
	tr.addDigests([]byte("q"), []byte("D1"), true)
	tr.addDigests([]byte("q"), []byte("D2"), true)
	th := tr.keyExchange(HashSHA256, true, []byte("Ct"), []byte("K"), nil)
	if string(th.th) != "AD1CtK" {
		t.Fatalf("TH = %q, want A ‖ D1 ‖ Ct ‖ K", th.th)
	}
	var single transcript
	single.addDigests([]byte("q"), []byte("D1"), false)
	if single.d != nil {
		t.Fatal("D recorded outside a multi-key connection")
	}
}

// TestMultiKeyTranscriptD: in a multi-key connection both sides put
// message D (the DIGESTS response) after A in the KEY_EXCHANGE transcript:
// a requester that leaves it out fails the responder's signature.
func TestMultiKeyTranscriptD(t *testing.T) {
	ctx := context.Background()
	r := rspTestResponder(t, AsymECDSAP384, func(c *ResponderConfig) {
		c.MultiKey = MultiKeyOnly
		c.Session = ResponderSessionConfig{DHE: DHESECP384R1}
	})
	o := &Options{MinVersion: Version13, MaxVersion: Version13}
	EnableSessions(o, false)
	req := NewRequester(loopPlain{r}, o)
	if _, err := req.Negotiate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := req.Digests(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := req.Certificate(ctx, 0); err != nil {
		t.Fatal(err)
	}
	req.tr.d = nil // the requester forgets D
	var ve *VerificationError
	if _, err := req.KeyExchange(ctx, KeyExchangeOpts{Slot: 0, SecuredTransport: loopSecured{r}}); !errors.As(err, &ve) {
		t.Fatalf("KEY_EXCHANGE without D in the transcript: %v, want a signature failure", err)
	}
}
