package secured

import (
	"bytes"
	"crypto"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// Recorded spdm-emu sessions (testdata/README.md): run 6 (handshake in the
// clear, app traffic, a nested PSK session) and run 6b (FINISH under the
// handshake keys). Negotiated: SPDM 1.2, SHA-384, AES-256-GCM.
var recordedSuite = Suite{Version: 0x12, Hash: crypto.SHA384, AEAD: AES256GCM}

type recording struct {
	Config struct {
		HandshakeInTheClear bool `json:"handshake_in_the_clear"`
	} `json:"config"`
	Messages []recMsg     `json:"messages"`
	Sessions []recSession `json:"sessions"`
}

type recMsg struct {
	Dir       string `json:"dir"`
	DOEType   int    `json:"doe_type"`
	Hex       string `json:"hex"`
	SpdmLen   int    `json:"spdm_len"`
	SessionID string `json:"session_id"`
	Decrypted *struct {
		KeyPhase      string `json:"key_phase"`
		DirectionKey  string `json:"direction_key"`
		Seq           uint64 `json:"sequence_number"`
		AppDataLength int    `json:"app_data_length"`
		SpdmHex       string `json:"spdm_hex"`
	} `json:"decrypted"`
}

type recSession struct {
	SessionID     string            `json:"session_id"`
	Kind          string            `json:"kind"`
	ExchangeIndex int               `json:"exchange_request_index"`
	SlotID        *int              `json:"slot_id"`
	Secrets       map[string]string `json:"secrets"`
}

func loadRecording(t testing.TB, name string) *recording {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "spdm-ref", name)) // the spdm package's copy of the DMTF recordings
	if err != nil {
		t.Fatal(err)
	}
	var r recording
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Sessions) == 0 {
		t.Fatalf("%s: no sessions", name)
	}
	return &r
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func (s recSession) id(t testing.TB) uint32 {
	v, err := strconv.ParseUint(s.SessionID, 0, 32)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(v)
}

func (s recSession) secret(t testing.TB, k string) []byte {
	t.Helper()
	v, ok := s.Secrets[k]
	if !ok {
		t.Fatalf("session %s: no secret %q", s.SessionID, k)
	}
	return unhex(t, v)
}

// doePayload strips the 8-byte DOE header; padding stays (the record layer
// must accept it).
func (m recMsg) doePayload(t testing.TB) []byte { return unhex(t, m.Hex)[8:] }

// spdm returns the exact SPDM bytes of a plain (type 1) message, or the
// decrypted inner message of a secured one.
func (m recMsg) spdm(t testing.TB) []byte {
	t.Helper()
	if m.DOEType == 2 {
		return unhex(t, m.Decrypted.SpdmHex)
	}
	return m.doePayload(t)[:m.SpdmLen]
}

func sessionKeys(t *testing.T, s recSession) *HandshakeKeys {
	t.Helper()
	ikm := s.Secrets["dhe_shared_secret"]
	if s.Kind == "PSK_EXCHANGE" {
		ikm = s.Secrets["psk"]
	}
	hs, err := NewHandshakeSecret(recordedSuite, unhex(t, ikm))
	if err != nil {
		t.Fatal(err)
	}
	hk, err := hs.HandshakeKeys(s.secret(t, "th1_hash"))
	if err != nil {
		t.Fatal(err)
	}
	return hk
}

// TestKeyScheduleKAT derives every logged secret, finished key, key and IV of
// every recorded session from the logged DHE secret (or PSK) and TH hashes.
func TestKeyScheduleKAT(t *testing.T) {
	for _, file := range []string{"v12-keyex.json", "v12-keyex-hs-enc.json"} {
		rec := loadRecording(t, file)
		for i, s := range rec.Sessions {
			t.Run(file+"/"+strconv.Itoa(i), func(t *testing.T) {
				ikm := s.Secrets["dhe_shared_secret"]
				if s.Kind == "PSK_EXCHANGE" {
					ikm = s.Secrets["psk"]
				}
				hs, err := NewHandshakeSecret(recordedSuite, unhex(t, ikm))
				if err != nil {
					t.Fatal(err)
				}
				hk, err := hs.HandshakeKeys(s.secret(t, "th1_hash"))
				if err != nil {
					t.Fatal(err)
				}
				ms := hk.MasterSecret()
				dk, err := ms.DataKeys(s.secret(t, "th2_hash"))
				if err != nil {
					t.Fatal(err)
				}
				got := map[string][]byte{
					"handshake_secret":          hs.secret,
					"request_handshake_secret":  hk.req.secret,
					"response_handshake_secret": hk.rsp.secret,
					"request_finished_key":      hk.reqFinished,
					"response_finished_key":     hk.rspFinished,
					"request_handshake_key":     hk.req.key,
					"response_handshake_key":    hk.rsp.key,
					"request_handshake_iv":      hk.req.iv[:],
					"response_handshake_iv":     hk.rsp.iv[:],
					"master_secret":             ms.secret,
					"request_data_secret":       dk.req.secret,
					"response_data_secret":      dk.rsp.secret,
					"export_master_secret":      dk.ExportMasterSecret(),
					"request_data_key":          dk.req.key,
					"response_data_key":         dk.rsp.key,
					"request_data_iv":           dk.req.iv[:],
					"response_data_iv":          dk.rsp.iv[:],
				}
				checked := 0
				for k, want := range s.Secrets {
					if k == "dhe_shared_secret" || k == "psk" || k == "th1_hash" || k == "th2_hash" {
						continue
					}
					g, ok := got[k]
					if !ok {
						t.Errorf("logged secret %q not derived by the test", k)
						continue
					}
					if !bytes.Equal(g, unhex(t, want)) {
						t.Errorf("%s = %x, want %s", k, g, want)
					}
					checked++
				}
				if checked < 10 {
					t.Fatalf("only %d secrets checked", checked)
				}
			})
		}
	}
}

// TestRecordedSecuredMessages opens every recorded type-2 object with a
// responder-role and a requester-role Session, compares the plaintext with the
// recorded decryption, and re-seals it byte for byte.
func TestRecordedSecuredMessages(t *testing.T) {
	for _, file := range []string{"v12-keyex.json", "v12-keyex-hs-enc.json"} {
		t.Run(file, func(t *testing.T) {
			rec := loadRecording(t, file)
			type pair struct {
				rs  recSession
				req *Session // requester end
				rsp *Session // responder end
			}
			byExchange := map[int]recSession{}
			for _, s := range rec.Sessions {
				byExchange[s.ExchangeIndex] = s
			}
			live := map[uint32]*pair{}
			opened := 0
			for i, m := range rec.Messages {
				if s, ok := byExchange[i]; ok {
					hk := sessionKeys(t, s)
					a, err := NewSession(s.id(t), RoleRequester, hk)
					if err != nil {
						t.Fatal(err)
					}
					b, err := NewSession(s.id(t), RoleResponder, hk)
					if err != nil {
						t.Fatal(err)
					}
					live[s.id(t)] = &pair{rs: s, req: a, rsp: b}
				}
				if m.DOEType != 2 {
					continue
				}
				id, err := strconv.ParseUint(m.SessionID, 0, 32)
				if err != nil {
					t.Fatal(err)
				}
				p := live[uint32(id)]
				if p == nil {
					t.Fatalf("message %d: no live session %s", i, m.SessionID)
				}
				if m.Decrypted.KeyPhase == "data" && p.req.Phase() == PhaseHandshake {
					th2 := p.rs.secret(t, "th2_hash")
					if err := p.req.EnterDataPhase(th2); err != nil {
						t.Fatal(err)
					}
					if err := p.rsp.EnterDataPhase(th2); err != nil {
						t.Fatal(err)
					}
				}
				opener, sealer, dir := p.rsp, p.req, Request
				if m.Dir == "rsp" {
					opener, sealer, dir = p.req, p.rsp, Response
				}
				if m.Decrypted.DirectionKey != dir.String() {
					t.Fatalf("message %d: direction %s vs %s", i, m.Decrypted.DirectionKey, dir)
				}
				if got := opener.Sequence(dir); got != m.Decrypted.Seq {
					t.Fatalf("message %d: next %s sequence %d, recorded %d", i, dir, got, m.Decrypted.Seq)
				}
				payload := m.doePayload(t)
				pt, err := opener.Open(payload)
				if err != nil {
					t.Fatalf("message %d: open: %v", i, err)
				}
				want := unhex(t, m.Decrypted.SpdmHex)
				if !bytes.Equal(pt, want) || len(pt) != m.Decrypted.AppDataLength {
					t.Fatalf("message %d: plaintext %x, want %x", i, pt, want)
				}
				ct, err := sealer.Seal(pt)
				if err != nil {
					t.Fatal(err)
				}
				n := int(binary.LittleEndian.Uint16(payload[4:]))
				if !bytes.Equal(ct, payload[:6+n]) {
					t.Fatalf("message %d: re-sealed\n%x\nrecorded\n%x", i, ct, payload[:6+n])
				}
				opened++
			}
			want := 0
			for _, m := range rec.Messages {
				if m.DOEType == 2 {
					want++
				}
			}
			t.Logf("opened and re-sealed %d records", opened)
			if opened != want || opened < 12 {
				t.Fatalf("opened %d of %d secured records", opened, want)
			}
		})
	}
}

// TestTranscriptHashes recomputes TH1 and TH2 from the recorded plain (and
// decrypted) messages, with the DSP0274 rules: A ‖ Hash(cert chain) ‖ K for
// KEY_EXCHANGE, A ‖ K for PSK, and checks both verify data fields.
func TestTranscriptHashes(t *testing.T) {
	h := recordedSuite.Hash
	H := h.Size()
	hash := func(parts ...[]byte) []byte {
		d := h.New()
		for _, p := range parts {
			d.Write(p)
		}
		return d.Sum(nil)
	}
	for _, file := range []string{"v12-keyex.json", "v12-keyex-hs-enc.json"} {
		rec := loadRecording(t, file)
		msgs := rec.Messages
		// A = the six VCA messages (indices 6..11 after DOE discovery).
		var a []byte
		for i := 6; i < 12; i++ {
			a = append(a, msgs[i].spdm(t)...)
		}
		if a[1] != 0x84 || msgs[11].spdm(t)[1] != 0x63 {
			t.Fatalf("%s: VCA not at 6..11", file)
		}
		for si, s := range rec.Sessions {
			t.Run(file+"/"+strconv.Itoa(si), func(t *testing.T) {
				x := s.ExchangeIndex
				hk := sessionKeys(t, s)
				ex, exRsp := msgs[x].spdm(t), msgs[x+1].spdm(t)
				fin, finRsp := msgs[x+2].spdm(t), msgs[x+3].spdm(t)
				var prefix []byte // A ‖ Hash(cert chain), or A for PSK
				var th1, k []byte
				rvdInExchange := !rec.Config.HandshakeInTheClear || s.Kind == "PSK_EXCHANGE"
				if s.Kind == "KEY_EXCHANGE" {
					chain := certChain(t, msgs[:x], *s.SlotID)
					prefix = append(append([]byte{}, a...), hash(chain)...)
				} else {
					prefix = a
				}
				if rvdInExchange {
					body, rvd := exRsp[:len(exRsp)-H], exRsp[len(exRsp)-H:]
					th1 = hash(prefix, ex, body)
					if err := hk.CheckResponderVerifyData(th1, rvd); err != nil {
						t.Errorf("exchange ResponderVerifyData: %v", err)
					}
				} else {
					th1 = hash(prefix, ex, exRsp)
				}
				k = append(append([]byte{}, ex...), exRsp...)
				if !bytes.Equal(th1, s.secret(t, "th1_hash")) {
					t.Fatalf("TH1 %x, logged %s", th1, s.Secrets["th1_hash"])
				}
				// FINISH / PSK_FINISH: header ‖ RequesterVerifyData (no mutual auth).
				if len(fin) != 4+H {
					t.Fatalf("FINISH is %d bytes", len(fin))
				}
				if err := hk.CheckRequesterVerifyData(hash(prefix, k, fin[:4]), fin[4:]); err != nil {
					t.Errorf("RequesterVerifyData: %v", err)
				}
				bad := append([]byte{}, fin[4:]...)
				bad[0] ^= 1
				if hk.CheckRequesterVerifyData(hash(prefix, k, fin[:4]), bad) == nil {
					t.Error("flipped RequesterVerifyData accepted")
				}
				if s.Kind == "KEY_EXCHANGE" && rec.Config.HandshakeInTheClear {
					if len(finRsp) != 4+H {
						t.Fatalf("FINISH_RSP is %d bytes", len(finRsp))
					}
					if err := hk.CheckResponderVerifyData(hash(prefix, k, fin, finRsp[:4]), finRsp[4:]); err != nil {
						t.Errorf("FINISH_RSP ResponderVerifyData: %v", err)
					}
				}
				th2 := hash(prefix, k, fin, finRsp)
				if !bytes.Equal(th2, s.secret(t, "th2_hash")) {
					t.Fatalf("TH2 %x, logged %s", th2, s.Secrets["th2_hash"])
				}
			})
		}
	}
}

// certChain rebuilds the certificate chain buffer of slot from the
// GET_CERTIFICATE/CERTIFICATE pairs in msgs (the latest read wins).
func certChain(t *testing.T, msgs []recMsg, slot int) []byte {
	t.Helper()
	var chain []byte
	for i := 0; i+1 < len(msgs); i++ {
		q := msgs[i]
		if q.DOEType != 1 || q.Dir != "req" {
			continue
		}
		b := q.spdm(t)
		if b[1] != 0x82 || int(b[2]&0x0f) != slot {
			continue
		}
		off := binary.LittleEndian.Uint16(b[4:])
		r := msgs[i+1].spdm(t)
		portion := binary.LittleEndian.Uint16(r[4:])
		if off == 0 {
			chain = nil
		}
		chain = append(chain, r[8:8+int(portion)]...)
	}
	if len(chain) < 4 || int(binary.LittleEndian.Uint16(chain)) != len(chain) {
		t.Fatalf("slot %d chain of %d bytes does not match its Length field", slot, len(chain))
	}
	return chain
}
