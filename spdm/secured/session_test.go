package secured

import (
	"bytes"
	"crypto"
	"encoding/json"
	"errors"
	"math"
	"os"
	"strings"
	"testing"
)

type indepVector struct {
	Version   uint8  `json:"version"`
	Hash      string `json:"hash"`
	AEAD      string `json:"aead"`
	SessionID uint32 `json:"session_id"`
	Records   []struct {
		Phase  string `json:"phase"`
		Dir    string `json:"dir"`
		Seq    uint64 `json:"seq"`
		Spdm   string `json:"spdm"`
		Record string `json:"record"`
	} `json:"records"`
	raw map[string]json.RawMessage
}

func loadIndependent(t *testing.T) []indepVector {
	b, err := os.ReadFile("testdata/kat-independent.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Vectors []json.RawMessage `json:"vectors"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	var out []indepVector
	for _, raw := range f.Vectors {
		var v indepVector
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, &v.raw); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	if len(out) != 3 {
		t.Fatalf("want 3 vectors, got %d", len(out))
	}
	return out
}

func (v indepVector) field(t *testing.T, k string) []byte {
	t.Helper()
	var s string
	if err := json.Unmarshal(v.raw[k], &s); err != nil {
		t.Fatalf("field %s: %v", k, err)
	}
	return unhex(t, s)
}

func (v indepVector) kiv(t *testing.T, k string) (key, iv []byte) {
	t.Helper()
	var m map[string]string
	if err := json.Unmarshal(v.raw[k], &m); err != nil {
		t.Fatal(err)
	}
	return unhex(t, m["key"]), unhex(t, m["iv"])
}

func (v indepVector) suite(t *testing.T) Suite {
	s := Suite{Version: v.Version}
	switch v.Hash {
	case "SHA256":
		s.Hash = crypto.SHA256
	case "SHA384":
		s.Hash = crypto.SHA384
	case "SHA512":
		s.Hash = crypto.SHA512
	default:
		t.Fatalf("hash %s", v.Hash)
	}
	switch v.AEAD {
	case "AES128GCM":
		s.AEAD = AES128GCM
	case "AES256GCM":
		s.AEAD = AES256GCM
	case "CHACHA20POLY1305":
		s.AEAD = ChaCha20Poly1305
	default:
		t.Fatalf("aead %s", v.AEAD)
	}
	return s
}

// TestIndependentKAT checks the schedule and the record layer for AES-128-GCM,
// ChaCha20-Poly1305 and AES-256-GCM (SPDM 1.2/1.3/1.1, SHA-256/384/512)
// against vectors computed by testdata/gen_kat.py with Python cryptography.
func TestIndependentKAT(t *testing.T) {
	for _, v := range loadIndependent(t) {
		t.Run(v.AEAD, func(t *testing.T) {
			s := v.suite(t)
			hs, err := NewHandshakeSecret(s, v.field(t, "shared_secret"))
			if err != nil {
				t.Fatal(err)
			}
			hk, err := hs.HandshakeKeys(v.field(t, "th1_hash"))
			if err != nil {
				t.Fatal(err)
			}
			ms := hk.MasterSecret()
			th2 := v.field(t, "th2_hash")
			dk, err := ms.DataKeys(th2)
			if err != nil {
				t.Fatal(err)
			}
			eq := func(name string, got, want []byte) {
				t.Helper()
				if !bytes.Equal(got, want) {
					t.Errorf("%s = %x, want %x", name, got, want)
				}
			}
			eq("handshake_secret", hs.secret, v.field(t, "handshake_secret"))
			eq("request_handshake_secret", hk.req.secret, v.field(t, "request_handshake_secret"))
			eq("response_handshake_secret", hk.rsp.secret, v.field(t, "response_handshake_secret"))
			eq("request_finished_key", hk.reqFinished, v.field(t, "request_finished_key"))
			eq("response_finished_key", hk.rspFinished, v.field(t, "response_finished_key"))
			eq("master_secret", ms.secret, v.field(t, "master_secret"))
			eq("request_data_secret", dk.req.secret, v.field(t, "request_data_secret"))
			eq("response_data_secret", dk.rsp.secret, v.field(t, "response_data_secret"))
			eq("export_master_secret", dk.ExportMasterSecret(), v.field(t, "export_master_secret"))
			eq("RequesterVerifyData", hk.RequesterVerifyData(th2), v.field(t, "request_verify_data"))
			eq("ResponderVerifyData", hk.ResponderVerifyData(v.field(t, "th1_hash")), v.field(t, "responder_verify_data"))
			for name, tk := range map[string]trafficKeys{"request_handshake": hk.req, "response_handshake": hk.rsp, "request_data": dk.req, "response_data": dk.rsp} {
				k, iv := v.kiv(t, name)
				eq(name+".key", tk.key, k)
				eq(name+".iv", tk.iv[:], iv)
			}

			req, _ := NewSession(v.SessionID, RoleRequester, hk)
			rsp, _ := NewSession(v.SessionID, RoleResponder, hk)
			phase := "handshake"
			n := 0
			for _, r := range v.Records {
				if r.Phase != phase {
					switch r.Phase {
					case "data":
						for _, x := range []*Session{req, rsp} {
							if err := x.EnterDataPhase(th2); err != nil {
								t.Fatal(err)
							}
						}
					case "update1":
						for _, x := range []*Session{req, rsp} {
							if err := x.UpdateKey(Request); err != nil {
								t.Fatal(err)
							}
							if err := x.UpdateKey(Response); err != nil {
								t.Fatal(err)
							}
						}
					}
					phase = r.Phase
				}
				sealer, opener, d := req, rsp, Request
				if r.Dir == "response" {
					sealer, opener, d = rsp, req, Response
				}
				if sealer.Sequence(d) != r.Seq {
					t.Fatalf("%s %s: sequence %d, vector %d", r.Phase, r.Dir, sealer.Sequence(d), r.Seq)
				}
				msg, want := unhex(t, r.Spdm), unhex(t, r.Record)
				got, err := sealer.Seal(msg)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("%s %s seq %d: sealed\n%x\nwant\n%x", r.Phase, r.Dir, r.Seq, got, want)
				}
				pt, err := opener.Open(want)
				if err != nil || !bytes.Equal(pt, msg) {
					t.Fatalf("%s %s seq %d: open = %x, %v", r.Phase, r.Dir, r.Seq, pt, err)
				}
				n++
			}
			if n != 18 {
				t.Fatalf("checked %d records", n)
			}
		})
	}
}

// pairFor returns a requester and responder end in the data phase.
func pairFor(t *testing.T, a AEAD) (req, rsp *Session) {
	t.Helper()
	s := Suite{Version: 0x12, Hash: crypto.SHA256, AEAD: a}
	hs, err := NewHandshakeSecret(s, bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	hk, err := hs.HandshakeKeys(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	req, _ = NewSession(0xAABBCCDD, RoleRequester, hk)
	rsp, _ = NewSession(0xAABBCCDD, RoleResponder, hk)
	for _, x := range []*Session{req, rsp} {
		if err := x.EnterDataPhase(bytes.Repeat([]byte{2}, 32)); err != nil {
			t.Fatal(err)
		}
	}
	return req, rsp
}

func wantDead(t *testing.T, s *Session, err error, r Reason) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Reason != r || !errors.Is(err, ErrSessionDead) {
		t.Fatalf("err = %v, want dead with %v", err, r)
	}
	if s.Phase() != PhaseDead || s.Err() == nil {
		t.Fatalf("phase %v err %v after fatal error", s.Phase(), s.Err())
	}
	// Sticky: a valid-looking call now fails with the same error.
	if _, err2 := s.Seal([]byte{0x12, 0xe8, 0, 0}); !errors.Is(err2, ErrSessionDead) || err2.Error() != err.Error() {
		t.Fatalf("not sticky: %v", err2)
	}
	if !strings.Contains(err.Error(), r.String()) {
		t.Fatalf("error %q does not say why", err)
	}
}

func TestRecordFailuresKillSession(t *testing.T) {
	msg := []byte{0x12, 0xe8, 0, 0}
	for _, a := range []AEAD{AES128GCM, AES256GCM, ChaCha20Poly1305} {
		t.Run(a.String(), func(t *testing.T) {
			t.Run("bad tag", func(t *testing.T) {
				req, rsp := pairFor(t, a)
				rec, _ := req.Seal(msg)
				rec[len(rec)-1] ^= 0x80
				_, err := rsp.Open(rec)
				wantDead(t, rsp, err, ReasonAuthFailed)
			})
			t.Run("corrupt ciphertext", func(t *testing.T) {
				req, rsp := pairFor(t, a)
				rec, _ := req.Seal(msg)
				rec[7] ^= 1
				_, err := rsp.Open(rec)
				wantDead(t, rsp, err, ReasonAuthFailed)
			})
			t.Run("wrong session ID", func(t *testing.T) {
				req, rsp := pairFor(t, a)
				rec, _ := req.Seal(msg)
				rec[0] ^= 1
				_, err := rsp.Open(rec)
				wantDead(t, rsp, err, ReasonWrongSessionID)
			})
			t.Run("replay", func(t *testing.T) {
				req, rsp := pairFor(t, a)
				rec, _ := req.Seal(msg)
				if _, err := rsp.Open(rec); err != nil {
					t.Fatal(err)
				}
				_, err := rsp.Open(rec)
				wantDead(t, rsp, err, ReasonAuthFailed)
			})
			t.Run("reorder", func(t *testing.T) {
				req, rsp := pairFor(t, a)
				_, _ = req.Seal(msg)
				second, _ := req.Seal(msg)
				_, err := rsp.Open(second)
				wantDead(t, rsp, err, ReasonAuthFailed)
			})
			t.Run("malformed", func(t *testing.T) {
				req, rsp := pairFor(t, a)
				rec, _ := req.Seal(msg)
				_, err := rsp.Open(append(rec, 0, 0, 0, 1))
				wantDead(t, rsp, err, ReasonMalformed)
			})
			t.Run("own direction", func(t *testing.T) {
				// A record sealed with the responder's keys, fed back to the
				// responder (a reflection attack), fails the tag.
				_, rsp := pairFor(t, a)
				rec, _ := rsp.Seal(msg)
				_, err := rsp.Open(rec)
				wantDead(t, rsp, err, ReasonAuthFailed)
			})
			t.Run("handshake keys after switch", func(t *testing.T) {
				s := Suite{Version: 0x12, Hash: crypto.SHA256, AEAD: a}
				hs, _ := NewHandshakeSecret(s, []byte{1, 2, 3})
				hk, _ := hs.HandshakeKeys(make([]byte, 32))
				req, _ := NewSession(1, RoleRequester, hk)
				rsp, _ := NewSession(1, RoleResponder, hk)
				rec, _ := req.Seal(msg)
				if err := rsp.EnterDataPhase(make([]byte, 32)); err != nil {
					t.Fatal(err)
				}
				_, err := rsp.Open(rec)
				wantDead(t, rsp, err, ReasonAuthFailed)
			})
		})
	}
}

func TestDOEPaddingAccepted(t *testing.T) {
	req, rsp := pairFor(t, AES256GCM)
	msg := []byte{0x12, 0xe8, 0, 0, 9}
	rec, _ := req.Seal(msg)
	if len(rec)%4 == 0 {
		t.Fatal("test wants an unaligned record")
	}
	padded := append(rec, make([]byte, 4-len(rec)%4)...)
	pt, err := rsp.Open(padded)
	if err != nil || !bytes.Equal(pt, msg) {
		t.Fatalf("padded record: %x, %v", pt, err)
	}
}

func TestSequenceExhausted(t *testing.T) {
	req, rsp := pairFor(t, ChaCha20Poly1305)
	req.ch[Request].seq = math.MaxUint64 - 1
	rsp.ch[Request].seq = math.MaxUint64 - 1
	rec, err := req.Seal([]byte{1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rsp.Open(rec); err != nil {
		t.Fatal(err)
	}
	if req.Remaining(Request) != 0 {
		t.Fatalf("remaining %d", req.Remaining(Request))
	}
	_, err = req.Seal([]byte{1})
	wantDead(t, req, err, ReasonSequenceExhausted)
	_, err = rsp.Open(rec)
	wantDead(t, rsp, err, ReasonSequenceExhausted)
}

func TestKeyUpdate(t *testing.T) {
	req, rsp := pairFor(t, AES128GCM)
	for range 3 {
		rec, _ := req.Seal([]byte{1})
		if _, err := rsp.Open(rec); err != nil {
			t.Fatal(err)
		}
	}
	old, _ := req.Seal([]byte{2}) // sealed with the old key at seq 3, never delivered
	if err := req.UpdateKey(Request); err != nil {
		t.Fatal(err)
	}
	if req.Sequence(Request) != 0 || req.Sequence(Response) != 0 {
		t.Fatalf("sequence after update: %d/%d", req.Sequence(Request), req.Sequence(Response))
	}
	if err := rsp.UpdateKey(Request); err != nil {
		t.Fatal(err)
	}
	rec, _ := req.Seal([]byte{3})
	if pt, err := rsp.Open(rec); err != nil || !bytes.Equal(pt, []byte{3}) {
		t.Fatalf("after update: %x %v", pt, err)
	}
	// The response direction is untouched.
	r2, _ := rsp.Seal([]byte{4})
	if _, err := req.Open(r2); err != nil {
		t.Fatal(err)
	}
	// A record under the old key is rejected after the update.
	_, err := rsp.Open(old)
	wantDead(t, rsp, err, ReasonAuthFailed)

	// Mismatch: one side updates, the other does not.
	req, rsp = pairFor(t, AES128GCM)
	_ = req.UpdateKey(Request)
	rec, _ = req.Seal([]byte{5})
	_, err = rsp.Open(rec)
	wantDead(t, rsp, err, ReasonAuthFailed)
}

func TestPhaseRules(t *testing.T) {
	s := Suite{Version: 0x12, Hash: crypto.SHA384, AEAD: AES256GCM}
	hs, _ := NewHandshakeSecret(s, []byte{1})
	if _, err := hs.HandshakeKeys(make([]byte, 32)); err == nil {
		t.Fatal("TH1 of the wrong size accepted")
	}
	hk, _ := hs.HandshakeKeys(make([]byte, 48))
	x, _ := NewSession(5, RoleRequester, hk)
	if err := x.UpdateKey(Request); err == nil {
		t.Fatal("key update in the handshake phase accepted")
	}
	if _, err := x.ExportMasterSecret(); err == nil {
		t.Fatal("export master before data phase")
	}
	if err := x.EnterDataPhase(make([]byte, 47)); err == nil {
		t.Fatal("short TH2 accepted")
	}
	if err := x.EnterDataPhase(make([]byte, 48)); err != nil {
		t.Fatal(err)
	}
	if err := x.EnterDataPhase(make([]byte, 48)); err == nil {
		t.Fatal("second data switch accepted")
	}
	if em, err := x.ExportMasterSecret(); err != nil || len(em) != 48 {
		t.Fatalf("export master %x %v", em, err)
	}
	x.Close()
	if _, err := x.Seal([]byte{1}); !errors.Is(err, ErrSessionDead) {
		t.Fatalf("seal after close: %v", err)
	}
	var e *Error
	if _, err := x.Open(make([]byte, 30)); !errors.As(err, &e) || e.Reason != ReasonEnded {
		t.Fatalf("open after close: %v", err)
	}
	for _, bad := range []Suite{
		{Version: 0x10, Hash: crypto.SHA256, AEAD: AES128GCM},
		{Version: 0x12, Hash: crypto.MD5, AEAD: AES128GCM},
		{Version: 0x12, Hash: crypto.SHA256, AEAD: 8},
	} {
		if _, err := NewHandshakeSecret(bad, []byte{1}); !errors.Is(err, ErrUnsupportedSuite) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
	if _, err := NewHandshakeSecret(s, nil); err == nil {
		t.Fatal("empty secret accepted")
	}
}

func TestBinConcat(t *testing.T) {
	s := Suite{Version: 0x13, Hash: crypto.SHA256, AEAD: AES128GCM}
	got := s.binConcat(32, "derived", []byte{0xAA})
	want := "\x20\x00spdm1.3 derived\xaa"
	if got != want {
		t.Fatalf("binConcat = %q, want %q", got, want)
	}
}

func FuzzParseRecord(f *testing.F) {
	for _, file := range []string{"v12-keyex.json", "v12-keyex-hs-enc.json"} {
		rec := loadRecording(f, file)
		for _, m := range rec.Messages {
			if m.DOEType == 2 {
				f.Add(m.doePayload(f))
			}
		}
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRecord(b)
		if (r == nil) == (err == nil) {
			t.Fatalf("result %v with error %v", r, err)
		}
		if err != nil {
			return
		}
		enc := r.Encode()
		if !bytes.HasPrefix(b, enc) || len(b)-len(enc) > 3 {
			t.Fatalf("round trip: %x from %x", enc, b)
		}
		for i := range len(enc) {
			if _, err := ParseRecord(enc[:i]); err == nil {
				t.Fatalf("proper prefix of %d bytes decoded", i)
			}
		}
	})
}

// FuzzOpen feeds arbitrary records to a live session: no panic, and a
// failure always kills the session with a typed error.
func FuzzOpen(f *testing.F) {
	req, _ := pairForF(f)
	for _, m := range [][]byte{{0x12, 0xe8, 0, 0}, make([]byte, 100)} {
		rec, _ := req.Seal(m)
		f.Add(rec)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, rsp := pairForF(t)
		pt, err := rsp.Open(b)
		if (pt == nil) == (err == nil) && !(err == nil && len(pt) == 0) {
			t.Fatalf("plaintext %x with error %v", pt, err)
		}
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || rsp.Phase() != PhaseDead {
				t.Fatalf("untyped or non-fatal failure %v", err)
			}
		}
	})
}

func pairForF(tb testing.TB) (req, rsp *Session) {
	s := Suite{Version: 0x12, Hash: crypto.SHA256, AEAD: AES256GCM}
	hs, _ := NewHandshakeSecret(s, []byte{9})
	hk, _ := hs.HandshakeKeys(make([]byte, 32))
	req, _ = NewSession(0xAABBCCDD, RoleRequester, hk)
	rsp, _ = NewSession(0xAABBCCDD, RoleResponder, hk)
	return req, rsp
}

func BenchmarkSealOpen(b *testing.B) {
	for _, a := range []AEAD{AES128GCM, AES256GCM, ChaCha20Poly1305} {
		b.Run(a.String(), func(b *testing.B) {
			s := Suite{Version: 0x12, Hash: crypto.SHA384, AEAD: a}
			hs, _ := NewHandshakeSecret(s, make([]byte, 48))
			hk, _ := hs.HandshakeKeys(make([]byte, 48))
			req, _ := NewSession(1, RoleRequester, hk)
			rsp, _ := NewSession(1, RoleResponder, hk)
			msg := make([]byte, 64)
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for b.Loop() {
				rec, err := req.Seal(msg)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := rsp.Open(rec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkKeySchedule(b *testing.B) {
	s := Suite{Version: 0x12, Hash: crypto.SHA384, AEAD: AES256GCM}
	th := make([]byte, 48)
	b.ReportAllocs()
	for b.Loop() {
		hs, _ := NewHandshakeSecret(s, th)
		hk, _ := hs.HandshakeKeys(th)
		if _, err := hk.MasterSecret().DataKeys(th); err != nil {
			b.Fatal(err)
		}
	}
}
