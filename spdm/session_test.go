package spdm

import (
	"context"
	"crypto/x509"
	"errors"
	"testing"

	"github.com/vfio-gate/vfio-gate/spdm/secured"
)

// loopback connects a Requester to a Responder: plain CMA and secured CMA.
type loopPlain struct{ r *Responder }

func (l loopPlain) Exchange(ctx context.Context, req []byte) ([]byte, error) {
	return l.r.Respond(ctx, req)
}

type loopSecured struct{ r *Responder }

func (l loopSecured) Exchange(ctx context.Context, req []byte) ([]byte, error) {
	return l.r.RespondSecured(ctx, req)
}

type sessionRig struct {
	rsp   *Responder
	req   *Requester
	ended []uint32
}

func newSessionRig(t *testing.T, asym AsymAlgo, ver Version, aead AEADAlgo, inClear bool, mod func(*ResponderSessionConfig)) *sessionRig {
	t.Helper()
	rig := &sessionRig{}
	rig.rsp = rspTestResponder(t, asym, func(c *ResponderConfig) {
		c.Session = ResponderSessionConfig{DHE: DHESECP256R1 | DHESECP384R1, AEAD: aead, HandshakeInClear: inClear, HeartbeatPeriod: 30,
			Ended: func(id uint32) { rig.ended = append(rig.ended, id) }}
		if mod != nil {
			mod(&c.Session)
		}
		c.VendorDefined = func(ctx context.Context, std uint16, vid, p []byte) ([]byte, error) {
			id, ok := SessionIDFromContext(ctx)
			if !ok {
				return []byte("outside"), nil
			}
			return append([]byte{byte(id)}, p...), nil
		}
	})
	root, err := x509.ParseCertificate(rspKey(t, asym).chain[0])
	if err != nil {
		t.Fatal(err)
	}
	o := &Options{Roots: []*x509.Certificate{root}, MinVersion: ver, MaxVersion: ver}
	EnableSessions(o, inClear)
	rig.req = NewRequester(loopPlain{rig.rsp}, o)
	ctx := context.Background()
	if _, err := rig.req.Negotiate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := rig.req.Digests(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := rig.req.Certificate(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if rep, err := rig.req.VerifyChain(0); err != nil || !rep.Verified {
		t.Fatalf("chain: %v %+v", err, rep)
	}
	return rig
}

func (rig *sessionRig) open(t *testing.T) (*Session, error) {
	return rig.req.KeyExchange(context.Background(), KeyExchangeOpts{MeasurementSummaryType: SummaryAll, SecuredTransport: loopSecured{rig.rsp}})
}

func TestSessionLoopback(t *testing.T) {
	ctx := context.Background()
	for _, ver := range []Version{Version11, Version12, Version13} {
		for _, aead := range []AEADAlgo{AEADAES128GCM, AEADAES256GCM, AEADChaCha20Poly1305} {
			for _, inClear := range []bool{false, true} {
				name := ver.String() + "/" + aead.String()
				if inClear {
					name += "/clear"
				}
				t.Run(name, func(t *testing.T) {
					rig := newSessionRig(t, AsymECDSAP384, ver, aead, inClear, nil)
					s, err := rig.open(t)
					if err != nil {
						t.Fatal(err)
					}
					in := s.Info()
					if in.AEAD != aead || in.HandshakeInClear != inClear || in.Version != ver || in.DHE != DHESECP384R1 || in.HeartbeatPeriod.Seconds() != 30 {
						t.Fatalf("info %+v", in)
					}
					got, err := s.VendorDefined(ctx, 3, []byte{1, 0}, []byte{1, 2, 3})
					if err != nil || string(got) != string([]byte{byte(s.ID()), 1, 2, 3}) {
						t.Fatalf("VendorDefined = %x, %v", got, err)
					}
					m, err := s.Measurements(ctx, MeasOpts{Index: MeasOpAll, Signed: true})
					if err != nil || !m.Verified {
						t.Fatalf("measurements: %v", err)
					}
					if err := s.Heartbeat(ctx); err != nil {
						t.Fatal(err)
					}
					for _, op := range []KeyUpdateOp{KeyUpdateKey, KeyUpdateAllKeys, KeyUpdateAllKeys} {
						if err := s.KeyUpdate(ctx, op); err != nil {
							t.Fatalf("%v: %v", op, err)
						}
						if err := s.Heartbeat(ctx); err != nil {
							t.Fatalf("after %v: %v", op, err)
						}
					}
					// The plain connection is still usable next to the session.
					if _, err := rig.req.Measurements(ctx, MeasOpts{Index: 1}); err != nil {
						t.Fatal(err)
					}
					if err := s.End(ctx); err != nil {
						t.Fatal(err)
					}
					if len(rig.ended) != 1 || rig.ended[0] != s.ID() {
						t.Fatalf("responder ended %x", rig.ended)
					}
					if err := s.Heartbeat(ctx); !errors.Is(err, ErrSessionEnded) {
						t.Fatalf("heartbeat after End: %v", err)
					}
				})
			}
		}
	}
}

func TestSessionManyAtOnce(t *testing.T) {
	ctx := context.Background()
	rig := newSessionRig(t, AsymECDSAP256, Version12, AEADAES256GCM, false, nil)
	var ss []*Session
	for range 4 {
		s, err := rig.open(t)
		if err != nil {
			t.Fatal(err)
		}
		ss = append(ss, s)
	}
	if _, err := rig.open(t); !errors.Is(err, ErrorCodeSessionLimitExceeded) {
		t.Fatalf("fifth session: %v", err)
	}
	for i := len(ss) - 1; i >= 0; i-- {
		if err := ss[i].Heartbeat(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if ss[0].ID() == ss[1].ID() {
		t.Fatal("duplicate session IDs")
	}
}

func TestSessionFaults(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name    string
		inClear bool
		fault   func(*ResponderSessionFaults)
		atOpen  bool
		check   func(t *testing.T, err error)
	}{
		{"bad-verify-data-in-keyex-rsp", false, func(f *ResponderSessionFaults) { f.BadVerifyData = true }, true, func(t *testing.T, err error) {
			var ve *VerificationError
			if !errors.As(err, &ve) || ve.Step != "responder-verify-data" {
				t.Fatalf("err = %v", err)
			}
		}},
		{"bad-verify-data-in-finish-rsp", true, func(f *ResponderSessionFaults) { f.BadVerifyData = true }, true, func(t *testing.T, err error) {
			if !errors.Is(err, secured.ErrVerifyData) {
				t.Fatalf("err = %v", err)
			}
		}},
		{"bad-tag", false, func(f *ResponderSessionFaults) { f.BadTag = true }, false, func(t *testing.T, err error) {
			var se *secured.Error
			if !errors.As(err, &se) || se.Reason != secured.ReasonAuthFailed || !errors.Is(err, secured.ErrSessionDead) {
				t.Fatalf("err = %v", err)
			}
		}},
		{"wrong-session-id", false, func(f *ResponderSessionFaults) { f.WrongSessionID = true }, false, func(t *testing.T, err error) {
			var se *secured.Error
			if !errors.As(err, &se) || se.Reason != secured.ReasonWrongSessionID {
				t.Fatalf("err = %v", err)
			}
		}},
		{"key-update-mismatch", false, func(f *ResponderSessionFaults) { f.KeyUpdateMismatch = true }, false, func(t *testing.T, err error) {
			var ke *KeyUpdateError
			if !errors.As(err, &ke) || !errors.Is(err, secured.ErrSessionDead) {
				t.Fatalf("err = %v", err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rig := newSessionRig(t, AsymECDSAP384, Version12, AEADAES128GCM, c.inClear, func(s *ResponderSessionConfig) { c.fault(&s.Faults) })
			s, err := rig.open(t)
			if c.atOpen {
				if err == nil {
					t.Fatal("session established")
				}
				c.check(t, err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.name == "key-update-mismatch" {
				err = s.KeyUpdate(ctx, KeyUpdateAllKeys)
			} else {
				err = s.Heartbeat(ctx)
			}
			if err == nil {
				t.Fatal("fault not detected")
			}
			c.check(t, err)
			var sessErr *SessionError
			if !errors.As(err, &sessErr) {
				t.Fatalf("not a *SessionError: %T", err)
			}
			if again := s.Heartbeat(ctx); again != err {
				t.Fatalf("dead session answered %v, want the sticky %v", again, err)
			}
		})
	}
}

// TestSessionWithoutHeartbeatCap: HEARTBEAT and KEY_UPDATE are refused
// locally (ErrNotNegotiated) when a side lacks the capability, and the
// session stays usable.
func TestSessionWithoutHeartbeatCap(t *testing.T) {
	ctx := context.Background()
	r := rspTestResponder(t, AsymECDSAP256, func(c *ResponderConfig) {
		c.Session = ResponderSessionConfig{DHE: DHESECP256R1}
	})
	root, _ := x509.ParseCertificate(rspKey(t, AsymECDSAP256).chain[0])
	o := &Options{Roots: []*x509.Certificate{root}, CapabilityFlags: CapCert | CapChal | CapKeyEx | CapEncrypt | CapMAC}
	EnableSessions(o, false)
	o.CapabilityFlags &^= CapHBeat | CapKeyUpd
	_, s, err := OpenSession(ctx, loopPlain{r}, loopSecured{r}, o, 0)
	if err != nil {
		t.Fatal(err)
	}
	if in := s.Info(); in.CanHeartbeat || in.CanKeyUpdate {
		t.Fatalf("info %+v", in)
	}
	if err := s.Heartbeat(ctx); !errors.Is(err, ErrNotNegotiated) {
		t.Fatalf("heartbeat: %v", err)
	}
	if err := s.KeyUpdate(ctx, KeyUpdateKey); !errors.Is(err, ErrNotNegotiated) {
		t.Fatalf("key update: %v", err)
	}
	if _, err := s.Measurements(ctx, MeasOpts{Index: 1}); err != nil || s.Err() != nil {
		t.Fatalf("session harmed: %v %v", err, s.Err())
	}
}
