package spdm

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/spdm/secured"
)

// sessionReplay replays a recorded keyex run on two transports (plain CMA
// and secured CMA) that share one position in the recording. Each request
// must equal the recorded one byte for byte: for secured records this means
// our sealing (keys, IV, sequence number, AAD) reproduces libspdm's.
type sessionReplay struct {
	t    testing.TB
	msgs []refMessage
	pos  int
	fail error
	// tamper, when set, may change the recorded response at pos.
	tamper func(pos int, rsp []byte) []byte
}

type replayLeg struct {
	r       *sessionReplay
	doeType int
}

func (l replayLeg) Exchange(ctx context.Context, req []byte) ([]byte, error) {
	r := l.r
	if r.pos+1 >= len(r.msgs) {
		r.fail = fmt.Errorf("request % x after the recording ended", req)
		return nil, r.fail
	}
	want, rsp := r.msgs[r.pos], r.msgs[r.pos+1]
	if want.DOEType != l.doeType {
		r.fail = fmt.Errorf("message %d: request on DOE type %d, recorded type %d (%s)", r.pos, l.doeType, want.DOEType, want.name())
		return nil, r.fail
	}
	w := want.doe(r.t)
	if l.doeType == 1 {
		w = w[:want.SPDMLen]
	} else if len(w) >= 6 {
		w = w[:6+int(w[4])|int(w[5])<<8]
	}
	if !bytes.Equal(req, w) {
		r.fail = fmt.Errorf("request %d (%s) differs:\n got % x\nwant % x", r.pos, want.name(), req, w)
		return nil, r.fail
	}
	out := bytes.Clone(rsp.doe(r.t))
	if r.tamper != nil {
		out = r.tamper(r.pos, out)
	}
	r.pos += 2
	return out, nil
}

type recordedSession struct {
	SessionID string            `json:"session_id"`
	Index     int               `json:"exchange_request_index"`
	Slot      int               `json:"slot_id"`
	Secrets   map[string]string `json:"secrets"`
}

func (s recordedSession) secret(t testing.TB, k string) []byte {
	b, err := hex.DecodeString(s.Secrets[k])
	if err != nil || len(b) == 0 {
		t.Fatalf("secret %s: %v", k, err)
	}
	return b
}

// sessionReplayRun drives the recorded pre-session part (VCA, digests,
// certificates) and returns the requester positioned at the first
// KEY_EXCHANGE, with its DHE key replaced by the recorded one: ExchangeData
// taken from the recorded request and the logged shared secret.
func sessionReplayRun(t *testing.T, name string) (*Requester, *sessionReplay, []recordedSession, *refFile) {
	f := loadRef(t, name)
	var msgs []refMessage
	for _, m := range f.Messages {
		if m.DOEType != 0 {
			msgs = append(msgs, m)
		}
	}
	rp := &sessionReplay{t: t, msgs: msgs}
	var plain []refMessage
	for _, m := range msgs {
		if m.DOEType == 1 {
			plain = append(plain, m)
		}
	}
	o := replayOptions(t, f, plain)
	// Rand: KEY_EXCHANGE RandomData and in-session GET_MEASUREMENTS nonces, in order.
	var rnd bytes.Buffer
	for _, m := range msgs {
		b := m.spdm(t)
		if m.Dir != "req" || len(b) < 2 {
			continue
		}
		switch RequestCode(b[1]) {
		case RequestKeyExchange:
			rnd.Write(b[8:40])
		case RequestGetMeasurements:
			if q, err := decodeGetMeasurementsReq(b); err == nil && q.signed() {
				rnd.Write(q.Nonce[:])
			}
		}
	}
	o.Rand = &rnd
	r := NewRequester(replayLeg{rp, 1}, o)
	var sessions []recordedSession
	for _, raw := range f.Sessions {
		var s recordedSession
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, s)
	}
	ctx := context.Background()
	for rp.pos < len(msgs) {
		b := msgs[rp.pos].spdm(t)
		var err error
		switch RequestCode(b[1]) {
		case RequestGetVersion:
			_, err = r.Negotiate(ctx)
		case RequestGetDigests:
			_, err = r.Digests(ctx)
		case RequestGetCertificate:
			_, err = r.Certificate(ctx, b[2])
		case RequestKeyExchange:
			return r, rp, sessions, f
		default:
			t.Fatalf("unexpected %s before KEY_EXCHANGE", msgs[rp.pos].name())
		}
		if err != nil {
			t.Fatalf("pre-session step %s: %v (replay: %v)", msgs[rp.pos-2].name(), err, rp.fail)
		}
	}
	t.Fatal("no KEY_EXCHANGE in the recording")
	return nil, nil, nil, nil
}

// useRecordedDHE makes the next KEY_EXCHANGE send the recorded ExchangeData
// and agree on the logged secret (the recorded ephemeral private key was
// never logged, so this is the only way to reproduce the bytes).
func useRecordedDHE(t *testing.T, r *Requester, rp *sessionReplay, s recordedSession) {
	req := rp.msgs[rp.pos].spdm(t)
	shared := s.secret(t, "dhe_shared_secret")
	r.dheHook = func(g DHEAlgo) (*dheKey, error) {
		return &dheKey{pub: bytes.Clone(req[40 : 40+dheSize(g)]), agree: func([]byte) ([]byte, error) { return shared, nil }}, nil
	}
}

// TestSessionReplayInTheClear replays run 6: KEY_EXCHANGE, FINISH and
// FINISH_RSP in the clear, then the first session's app traffic (IDE_KM and
// TDISP VENDOR_DEFINED) sealed by our record layer byte for byte.
func TestSessionReplayInTheClear(t *testing.T) {
	r, rp, ss, _ := sessionReplayRun(t, "v12-keyex")
	useRecordedDHE(t, r, rp, ss[0])
	ctx := context.Background()
	sec := replayLeg{rp, 2}
	s, err := r.KeyExchange(ctx, KeyExchangeOpts{Slot: 0, MeasurementSummaryType: SummaryAll, SessionPolicy: SessionPolicyTerminateOnUpdate, SecuredTransport: sec})
	if err != nil {
		t.Fatalf("KeyExchange: %v (replay: %v)", err, rp.fail)
	}
	info := s.Info()
	if fmt.Sprintf("%#08x", info.ID) != ss[0].SessionID || !info.HandshakeInClear || info.SecuredVersion != 0x1200 ||
		info.AEAD != AEADAES256GCM || info.DHE != DHESECP384R1 || info.HeartbeatPeriod != 0xF0*time.Second || len(info.MeasurementSummaryHash) != 48 {
		t.Fatalf("info = %+v", info)
	}
	// App traffic: every VENDOR_DEFINED in the session until the nested PSK session.
	n := 0
	for rp.pos < len(rp.msgs) && rp.msgs[rp.pos].DOEType == 2 {
		req, rsp := rp.msgs[rp.pos].spdm(t), rp.msgs[rp.pos+1].spdm(t)
		if RequestCode(req[1]) != RequestVendorDefined {
			break
		}
		q, err := decodeVendorDefinedReq(req)
		if err != nil {
			t.Fatal(err)
		}
		want, err := decodeVendorDefinedRsp(rsp)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.VendorDefined(ctx, q.StandardID, q.VendorID, q.Payload)
		if err != nil {
			t.Fatalf("VendorDefined #%d: %v (replay: %v)", n, err, rp.fail)
		}
		if !bytes.Equal(got, want.Payload) {
			t.Fatalf("VendorDefined #%d payload differs", n)
		}
		n++
	}
	if n < 20 {
		t.Fatalf("only %d app messages replayed", n)
	}
	if got := s.Stats().RoundTrips; got != n {
		t.Fatalf("session stats %d round trips, want %d", got, n)
	}
}

// TestSessionReplayHandshakeEncrypted replays run 6b: ResponderVerifyData in
// KEY_EXCHANGE_RSP, FINISH/FINISH_RSP sealed with the handshake keys, signed
// measurements and END_SESSION under the data keys — twice (slot 0, slot 1).
func TestSessionReplayHandshakeEncrypted(t *testing.T) {
	r, rp, ss, _ := sessionReplayRun(t, "v12-keyex-hs-enc")
	ctx := context.Background()
	for i, rs := range ss {
		useRecordedDHE(t, r, rp, rs)
		s, err := r.KeyExchange(ctx, KeyExchangeOpts{Slot: uint8(rs.Slot), MeasurementSummaryType: SummaryAll,
			SessionPolicy: SessionPolicyTerminateOnUpdate, SecuredTransport: replayLeg{rp, 2}, ReqSessionID: 0xFFFF})
		if err != nil {
			t.Fatalf("session %d KeyExchange: %v (replay: %v)", i, err, rp.fail)
		}
		if s.Info().HandshakeInClear {
			t.Fatal("handshake reported in the clear")
		}
		m, err := s.Measurements(ctx, MeasOpts{Index: MeasOpAll, Signed: true, Slot: uint8(rs.Slot)})
		if err != nil {
			t.Fatalf("session %d measurements: %v (replay: %v)", i, err, rp.fail)
		}
		if !m.Verified || len(m.Blocks) != 8 {
			t.Fatalf("measurements verified=%v blocks=%d", m.Verified, len(m.Blocks))
		}
		if err := s.EndWith(ctx, true); err != nil {
			t.Fatalf("session %d End: %v (replay: %v)", i, err, rp.fail)
		}
		if !errors.Is(s.Err(), ErrSessionEnded) {
			t.Fatalf("Err after End = %v", s.Err())
		}
		if _, err := s.Measurements(ctx, MeasOpts{}); !errors.Is(err, ErrSessionEnded) {
			t.Fatalf("use after End: %v", err)
		}
	}
	if rp.pos != len(rp.msgs) {
		t.Fatalf("replay stopped at %d of %d", rp.pos, len(rp.msgs))
	}
}

// TestSessionReplayNegative tampers with the recorded responses: each must
// be caught by the check that owns it, with a typed error.
func TestSessionReplayNegative(t *testing.T) {
	cases := []struct {
		name  string
		file  string
		code  ResponseCode
		tweak func(b []byte)
		check func(t *testing.T, err error)
	}{
		{"signature", "v12-keyex", ResponseKeyExchangeRsp, func(b []byte) { b[len(b)-60] ^= 1 }, func(t *testing.T, err error) {
			var ve *VerificationError
			if !errors.As(err, &ve) || ve.Step != "key-exchange-signature" {
				t.Fatalf("err = %v", err)
			}
		}},
		{"finish-rsp-verify-data", "v12-keyex", ResponseFinishRsp, func(b []byte) { b[10] ^= 1 }, func(t *testing.T, err error) {
			var ve *VerificationError
			if !errors.As(err, &ve) || ve.Step != "responder-verify-data" || !errors.Is(err, secured.ErrVerifyData) {
				t.Fatalf("err = %v", err)
			}
		}},
		{"key-exchange-rsp-verify-data", "v12-keyex-hs-enc", ResponseKeyExchangeRsp, func(b []byte) { b[len(b)-5] ^= 1 }, func(t *testing.T, err error) {
			var ve *VerificationError
			if !errors.As(err, &ve) || ve.Step != "responder-verify-data" {
				t.Fatalf("err = %v", err)
			}
		}},
		{"finish-rsp-tag", "v12-keyex-hs-enc", ResponseFinishRsp, func(b []byte) { b[10] ^= 1 }, func(t *testing.T, err error) {
			var se *secured.Error
			if !errors.As(err, &se) || se.Reason != secured.ReasonAuthFailed {
				t.Fatalf("err = %v", err)
			}
		}},
		{"finish-rsp-session-id", "v12-keyex-hs-enc", ResponseFinishRsp, func(b []byte) { b[0] ^= 1 }, func(t *testing.T, err error) {
			var se *secured.Error
			if !errors.As(err, &se) || se.Reason != secured.ReasonWrongSessionID {
				t.Fatalf("err = %v", err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, rp, ss, _ := sessionReplayRun(t, c.file)
			useRecordedDHE(t, r, rp, ss[0])
			rp.tamper = func(pos int, rsp []byte) []byte {
				m := rp.msgs[pos+1]
				if ResponseCode(m.spdm(t)[1]) == c.code {
					c.tweak(rsp)
				}
				return rsp
			}
			_, err := r.KeyExchange(context.Background(), KeyExchangeOpts{MeasurementSummaryType: SummaryAll, SessionPolicy: 1, SecuredTransport: replayLeg{rp, 2}})
			if err == nil {
				t.Fatal("tampered handshake accepted")
			}
			c.check(t, err)
		})
	}
}
