package emu

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"testing"

	"github.com/vfio-gate/vfio-gate/doe"
	"github.com/vfio-gate/vfio-gate/doe/socket"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/spdm"
	"github.com/vfio-gate/vfio-gate/spdm/secured"
	"github.com/vfio-gate/vfio-gate/tdisp"
)

var testBDF = pci.BDF{Bus: 0x3a, Device: 0, Function: 1}

// sessionTransports returns the CMA and secured-CMA transports of d over
// the DOE register model or over spdm-socket.
func sessionTransports(t testing.TB, d *Device, kind string) (plain, sec spdm.Transport) {
	t.Helper()
	switch kind {
	case "doe":
		mbs, err := doe.Find(d, nil)
		if err != nil {
			t.Fatal(err)
		}
		fs, err := mbs[0].Discover(context.Background())
		if err != nil || len(fs) != 3 || fs[2] != doe.FeatureSecuredCMA {
			t.Fatalf("Discover: %v %v", fs, err)
		}
		return mbs[0].Exchanger(doe.FeatureCMA), mbs[0].Exchanger(doe.FeatureSecuredCMA)
	case "socket":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		served := make(chan error, 1)
		go func() { served <- socket.Serve(ctx, ln, d.Features(), d.Handler()) }()
		c, err := socket.Dial(ctx, ln.Addr().String())
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = c.Close()
			cancel()
			<-served
		})
		return c.Exchanger(doe.FeatureCMA), c.Exchanger(doe.FeatureSecuredCMA)
	case "direct":
		return d.Direct(), d.DirectSecured()
	}
	t.Fatalf("transport %q", kind)
	return nil, nil
}

func newSessionDevice(t testing.TB, sc SessionConfig, faults ...Fault) *Device {
	t.Helper()
	d, err := New(Config{BDF: testBDF, Algorithms: spdm.AsymECDSAP384, Session: sc, Faults: faults})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func openSession(t testing.TB, d *Device, kind string) (*spdm.Requester, *spdm.Session) {
	t.Helper()
	plain, sec := sessionTransports(t, d, kind)
	r, s, err := spdm.OpenSession(context.Background(), plain, sec, &spdm.Options{Roots: d.Anchors()}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return r, s
}

func tdiClient(t testing.TB, s tdisp.Session) *tdisp.Client {
	id, err := tdisp.InterfaceIDFor(testBDF)
	if err != nil {
		t.Fatal(err)
	}
	return tdisp.NewClient(s, id, nil)
}

func wantState(t *testing.T, c *tdisp.Client, want tdisp.State) {
	t.Helper()
	got, err := c.State(context.Background())
	if err != nil || got != want {
		t.Fatalf("state = %v, %v; want %v", got, err, want)
	}
}

// TestSessionTDISPLifecycle: a session with each AEAD over the DOE register
// model and over the socket; TDISP lock → report → start → stop with the
// state checked after every step; heartbeat, key update and signed
// measurements inside the session; END_SESSION.
func TestSessionTDISPLifecycle(t *testing.T) {
	ctx := context.Background()
	for _, kind := range []string{"doe", "socket"} {
		for _, aead := range []spdm.AEADAlgo{spdm.AEADAES128GCM, spdm.AEADAES256GCM, spdm.AEADChaCha20Poly1305} {
			t.Run(kind+"/"+aead.String(), func(t *testing.T) {
				d := newSessionDevice(t, SessionConfig{AEAD: aead, HeartbeatPeriod: 10})
				// Program BAR0 as firmware would, before the lock.
				var bar [4]byte
				binary.LittleEndian.PutUint32(bar[:], 0xfe000000)
				if _, err := d.WriteAt(bar[:], 0x10); err != nil {
					t.Fatal(err)
				}
				_, s := openSession(t, d, kind)
				if in := s.Info(); in.AEAD != aead || in.DHE != spdm.DHESECP384R1 || in.HeartbeatPeriod.Seconds() != 10 {
					t.Fatalf("info %+v", in)
				}
				c := tdiClient(t, s)
				if _, err := c.GetVersion(ctx); err != nil {
					t.Fatal(err)
				}
				if _, err := c.GetCapabilities(ctx, 0); err != nil {
					t.Fatal(err)
				}
				wantState(t, c, tdisp.StateConfigUnlocked)
				nonce, err := c.Lock(ctx, tdisp.LockParams{Flags: tdisp.LockNoFWUpdate, MMIOReportingOffset: 0x1000_0000})
				if err != nil {
					t.Fatal(err)
				}
				wantState(t, c, tdisp.StateConfigLocked)
				rep, raw, err := c.Report(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if len(rep.MMIORanges) != 2 || rep.MMIORanges[0].FirstPage != 0xfe000+0x10000 || rep.MMIORanges[0].Pages != 15 ||
					rep.MMIORanges[1].Attributes != tdisp.RangeNonTEEMem || len(raw) == 0 {
					t.Fatalf("report %+v", rep)
				}
				if err := s.Heartbeat(ctx); err != nil {
					t.Fatal(err)
				}
				if err := c.Start(ctx, nonce); err != nil {
					t.Fatal(err)
				}
				wantState(t, c, tdisp.StateRun)
				if err := s.KeyUpdate(ctx, spdm.KeyUpdateAllKeys); err != nil {
					t.Fatal(err)
				}
				if err := s.KeyUpdate(ctx, spdm.KeyUpdateKey); err != nil {
					t.Fatal(err)
				}
				wantState(t, c, tdisp.StateRun)
				m, err := s.Measurements(ctx, spdm.MeasOpts{Index: spdm.MeasOpAll, Signed: true})
				if err != nil || !m.Verified {
					t.Fatalf("measurements in session: %v", err)
				}
				if err := c.Stop(ctx); err != nil {
					t.Fatal(err)
				}
				wantState(t, c, tdisp.StateConfigUnlocked)
				if err := s.End(ctx); err != nil {
					t.Fatal(err)
				}
				if d.TDI().State() != tdisp.StateConfigUnlocked {
					t.Fatalf("TDI %v after a clean stop and END_SESSION", d.TDI().State())
				}
			})
		}
	}
}

// TestTDISPIllegalTransitions: the device refuses every request its state
// forbids with INVALID_INTERFACE_STATE, mapped to a typed error; the
// client's own tracking refuses them before sending.
func TestTDISPIllegalTransitions(t *testing.T) {
	ctx := context.Background()
	d := newSessionDevice(t, SessionConfig{})
	_, s := openSession(t, d, "direct")
	var nonce [tdisp.NonceSize]byte
	nonce[0] = 1
	// A fresh client knows no state: the device is the one refusing.
	for name, op := range map[string]func(c *tdisp.Client) error{
		"start-unlocked":  func(c *tdisp.Client) error { return c.Start(ctx, nonce) },
		"stop-unlocked":   func(c *tdisp.Client) error { return c.Stop(ctx) },
		"report-unlocked": func(c *tdisp.Client) error { _, _, err := c.Report(ctx); return err },
	} {
		err := op(tdiClient(t, s))
		var de *tdisp.DeviceError
		if !errors.As(err, &de) || de.Code != tdisp.ErrorInvalidInterfaceState || !errors.Is(err, tdisp.ErrorInvalidInterfaceState) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	c := tdiClient(t, s)
	if _, err := c.Lock(ctx, tdisp.LockParams{}); err != nil {
		t.Fatal(err)
	}
	// Tracked: LOCK again is refused before sending.
	if _, err := c.Lock(ctx, tdisp.LockParams{}); !errors.Is(err, tdisp.ErrorInvalidInterfaceState) {
		t.Fatalf("second lock (tracked): %v", err)
	}
	// Untracked: the device refuses it.
	var de *tdisp.DeviceError
	if _, err := tdiClient(t, s).Lock(ctx, tdisp.LockParams{}); !errors.As(err, &de) || de.Code != tdisp.ErrorInvalidInterfaceState {
		t.Fatalf("second lock (device): %v", err)
	}
	// Wrong START nonce: INVALID_NONCE, state unchanged.
	if err := c.Start(ctx, nonce); !errors.As(err, &de) || de.Code != tdisp.ErrorInvalidNonce {
		t.Fatalf("wrong nonce: %v", err)
	}
	wantState(t, c, tdisp.StateConfigLocked)
	// A config write to a locked register moves the TDI to ERROR; the
	// client notices the disagreement.
	if _, err := d.WriteAt([]byte{0x06, 0}, 0x04); err != nil {
		t.Fatal(err)
	}
	if st, err := c.State(ctx); st != tdisp.StateError || !errors.Is(err, tdisp.ErrStateMismatch) {
		t.Fatalf("after locked write: %v %v", st, err)
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	wantState(t, c, tdisp.StateConfigUnlocked)
	// Unlocked again: config writes are harmless.
	if _, err := d.WriteAt([]byte{0x06, 0}, 0x04); err != nil {
		t.Fatal(err)
	}
	wantState(t, c, tdisp.StateConfigUnlocked)
}

// TestTDISPSessionEndErrorsTDI: ending the session that locked the TDI
// moves it to ERROR; a new session sees ERROR and can STOP it.
func TestTDISPSessionEndErrorsTDI(t *testing.T) {
	ctx := context.Background()
	d := newSessionDevice(t, SessionConfig{})
	r, s := openSession(t, d, "doe")
	c := tdiClient(t, s)
	nonce, err := c.Lock(ctx, tdisp.LockParams{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx, nonce); err != nil {
		t.Fatal(err)
	}
	s2, err := r.KeyExchange(ctx, spdm.KeyExchangeOpts{SecuredTransport: d.DirectSecured()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.End(ctx); err != nil { // another session ending leaves the TDI alone
		t.Fatal(err)
	}
	if d.TDI().State() != tdisp.StateRun {
		t.Fatalf("TDI %v after an unrelated END_SESSION", d.TDI().State())
	}
	if err := s.End(ctx); err != nil {
		t.Fatal(err)
	}
	if d.TDI().State() != tdisp.StateError {
		t.Fatalf("TDI %v after its session ended", d.TDI().State())
	}
	_, s3 := openSession(t, d, "doe")
	c3 := tdiClient(t, s3)
	wantState(t, c3, tdisp.StateError)
	if err := c3.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	wantState(t, c3, tdisp.StateConfigUnlocked)
}

// TestTDISPOutsideSession: TDISP over plain CMA is refused.
func TestTDISPOutsideSession(t *testing.T) {
	d := newSessionDevice(t, SessionConfig{})
	r, _ := openSession(t, d, "direct")
	_, err := r.VendorDefined(context.Background(), tdisp.StandardIDPCISIG, tdisp.VendorIDPCISIG, []byte{tdisp.ProtocolID, 0x10, 0x81, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	if !errors.Is(err, spdm.ErrorCodeUnspecified) {
		t.Fatalf("TDISP outside a session: %v", err)
	}
}

// TestSessionDeviceFaults: each injected session fault leaves the session
// dead (or never established) with the specific error.
func TestSessionDeviceFaults(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		fault Fault
		check func(t *testing.T, s *spdm.Session, openErr error)
	}{
		{FaultBadVerifyData, func(t *testing.T, s *spdm.Session, err error) {
			var ve *spdm.VerificationError
			if !errors.As(err, &ve) || ve.Step != "responder-verify-data" {
				t.Fatalf("open: %v", err)
			}
		}},
		{FaultBadTag, func(t *testing.T, s *spdm.Session, _ error) {
			_, err := tdiClient(t, s).State(ctx)
			var se *secured.Error
			if !errors.As(err, &se) || se.Reason != secured.ReasonAuthFailed {
				t.Fatalf("bad tag: %v", err)
			}
		}},
		{FaultWrongSessionID, func(t *testing.T, s *spdm.Session, _ error) {
			err := s.Heartbeat(ctx)
			var se *secured.Error
			if !errors.As(err, &se) || se.Reason != secured.ReasonWrongSessionID {
				t.Fatalf("wrong session id: %v", err)
			}
		}},
		{FaultKeyUpdateMismatch, func(t *testing.T, s *spdm.Session, _ error) {
			err := s.KeyUpdate(ctx, spdm.KeyUpdateKey)
			var ke *spdm.KeyUpdateError
			if !errors.As(err, &ke) || !errors.Is(err, spdm.ErrorCodeDecryptError) {
				t.Fatalf("key update mismatch: %v", err)
			}
		}},
	}
	for _, c := range cases {
		for _, kind := range []string{"doe", "socket"} {
			t.Run(c.fault.String()+"/"+kind, func(t *testing.T) {
				d := newSessionDevice(t, SessionConfig{}, c.fault)
				plain, sec := sessionTransports(t, d, kind)
				_, s, err := spdm.OpenSession(ctx, plain, sec, &spdm.Options{Roots: d.Anchors()}, 0)
				if c.fault == FaultBadVerifyData {
					if err == nil {
						t.Fatal("session established")
					}
					c.check(t, nil, err)
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				c.check(t, s, nil)
				if !errors.Is(s.Err(), secured.ErrSessionDead) {
					t.Fatalf("session not dead: %v", s.Err())
				}
			})
		}
	}
}

// TestSessionDefaultCapabilities: with sessions the device advertises
// HBEAT_CAP and KEY_UPD_CAP by default and announces a non-zero
// HeartbeatPeriod (a requester such as libspdm's sends HEARTBEAT only then);
// NoHeartbeat and NoKeyUpdate withhold them.
func TestSessionDefaultCapabilities(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name          string
		sc            SessionConfig
		hbeat, keyUpd bool
		period        float64
	}{
		{"default", SessionConfig{}, true, true, DefaultHeartbeatPeriod},
		{"period", SessionConfig{HeartbeatPeriod: 7}, true, true, 7},
		{"no-heartbeat", SessionConfig{NoHeartbeat: true}, false, true, 0},
		{"no-key-update", SessionConfig{NoKeyUpdate: true}, true, false, DefaultHeartbeatPeriod},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newSessionDevice(t, tc.sc)
			r, s := openSession(t, d, "direct")
			n, _ := r.Negotiated()
			if got := n.Caps&spdm.CapHBeat != 0; got != tc.hbeat {
				t.Fatalf("HBEAT_CAP %v, want %v (caps %#x)", got, tc.hbeat, n.Caps)
			}
			if got := n.Caps&spdm.CapKeyUpd != 0; got != tc.keyUpd {
				t.Fatalf("KEY_UPD_CAP %v, want %v (caps %#x)", got, tc.keyUpd, n.Caps)
			}
			in := s.Info()
			if in.HeartbeatPeriod.Seconds() != tc.period || in.CanHeartbeat != tc.hbeat || in.CanKeyUpdate != tc.keyUpd {
				t.Fatalf("session info %+v", in)
			}
			if tc.hbeat {
				if err := s.Heartbeat(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if tc.keyUpd {
				if err := s.KeyUpdate(ctx, spdm.KeyUpdateAllKeys); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
