package tdisp

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"testing"

	"github.com/vfio-gate/vfio-gate/internal/wire"
	"github.com/vfio-gate/vfio-gate/spdm/secured"
)

// sessionPipe carries TDISP over real secured records: the requester end
// wraps the payload in SPDM VENDOR_DEFINED_REQUEST (DSP0274), seals it, the
// responder end opens it, hands the payload to the Device, and the response
// travels back the same way. It stands in for spdm.Requester + DOE + emu.
type sessionPipe struct {
	req, rsp *secured.Session
	dev      *Device
	tamper   func(rec []byte) // optional, on the request record
}

func vendorMsg(code uint8, std uint16, vid, p []byte) []byte {
	return wire.NewBuilder(nil).AddU8(0x12).AddU8(code).AddZeros(2).AddU16(std).AddU8(uint8(len(vid))).
		AddBytes(vid).AddU16(uint16(len(p))).AddBytes(p).Bytes()
}

func (s *sessionPipe) VendorDefined(ctx context.Context, std uint16, vid, p []byte) ([]byte, error) {
	rec, err := s.req.Seal(vendorMsg(0xFE, std, vid, p))
	if err != nil {
		return nil, err
	}
	if s.tamper != nil {
		s.tamper(rec)
	}
	in, err := s.rsp.Open(rec)
	if err != nil {
		return nil, fmt.Errorf("responder: %w", err)
	}
	payload, err := vendorPayload(in, true)
	if err != nil {
		return nil, err
	}
	out, err := s.dev.VendorDefined(ctx, std, vid, payload)
	if err != nil {
		return nil, err
	}
	back, err := s.rsp.Seal(vendorMsg(0x7E, std, vid, out))
	if err != nil {
		return nil, err
	}
	plain, err := s.req.Open(back)
	if err != nil {
		return nil, err
	}
	return vendorPayload(plain, false)
}

func newPipe(t *testing.T, a secured.AEAD, dev *Device) *sessionPipe {
	t.Helper()
	suite := secured.Suite{Version: 0x12, Hash: crypto.SHA384, AEAD: a}
	hs, err := secured.NewHandshakeSecret(suite, bytes.Repeat([]byte{0x42}, 48))
	if err != nil {
		t.Fatal(err)
	}
	hk, err := hs.HandshakeKeys(bytes.Repeat([]byte{1}, 48))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := secured.NewSession(0xFFFEFFFF, secured.RoleRequester, hk)
	rsp, _ := secured.NewSession(0xFFFEFFFF, secured.RoleResponder, hk)
	for _, s := range []*secured.Session{req, rsp} {
		if err := s.EnterDataPhase(bytes.Repeat([]byte{2}, 48)); err != nil {
			t.Fatal(err)
		}
	}
	return &sessionPipe{req: req, rsp: rsp, dev: dev}
}

// TestLifecycleOverSecuredSession: lock → report → start → state → stop
// inside a secure session, for each AEAD, with a key update in the middle.
func TestLifecycleOverSecuredSession(t *testing.T) {
	ctx := context.Background()
	for _, a := range []secured.AEAD{secured.AES128GCM, secured.AES256GCM, secured.ChaCha20Poly1305} {
		t.Run(a.String(), func(t *testing.T) {
			d, id := testDevice(t)
			p := newPipe(t, a, d)
			c := NewClient(p, id, &ClientOptions{PortionSize: 40})
			if _, err := c.GetVersion(ctx); err != nil {
				t.Fatal(err)
			}
			nonce, err := c.Lock(ctx, LockParams{Flags: LockNoFWUpdate})
			if err != nil {
				t.Fatal(err)
			}
			rep, _, err := c.Report(ctx)
			if err != nil || len(rep.MMIORanges) != 3 {
				t.Fatal(rep, err)
			}
			for _, s := range []*secured.Session{p.req, p.rsp} {
				if err := s.UpdateKey(secured.Request); err != nil {
					t.Fatal(err)
				}
				if err := s.UpdateKey(secured.Response); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.Start(ctx, nonce); err != nil {
				t.Fatal(err)
			}
			if s, err := c.State(ctx); err != nil || s != StateRun {
				t.Fatal(s, err)
			}
			if err := c.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			if p.req.Sequence(secured.Request) != 3 { // START, GET_STATE, STOP
				t.Fatalf("request sequence after update: %d", p.req.Sequence(secured.Request))
			}
			// A tampered record kills the session and the TDISP call fails.
			p.tamper = func(rec []byte) { rec[len(rec)-3] ^= 4 }
			_, err = c.State(ctx)
			if !errors.Is(err, secured.ErrSessionDead) {
				t.Fatalf("tampered record: %v", err)
			}
			// The session that locked the TDI is gone: the device faults it.
			if _, err := c.Lock(ctx, LockParams{}); err == nil {
				t.Fatal("dead session still usable")
			}
		})
	}
}
