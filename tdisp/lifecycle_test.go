package tdisp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/vfio-gate/vfio-gate/pci"
)

func testDevice(t *testing.T) (*Device, InterfaceID) {
	t.Helper()
	id, err := InterfaceIDFor(pci.BDF{Domain: 0, Bus: 0x3b, Device: 0, Function: 0})
	if err != nil {
		t.Fatal(err)
	}
	d := NewDevice(DeviceConfig{
		Interface:     id,
		InterfaceInfo: InfoNoFWUpdateAfterLock | InfoDMAWithoutPASID,
		MSIXControl:   0x8003,
		Ranges: []MMIORange{
			{FirstPage: 0xfe000, Pages: 4, RangeID: 0},
			{FirstPage: 0xfe004, Pages: 1, Attributes: RangeMSIXTable, RangeID: 0},
			{FirstPage: 0xfd000, Pages: 16, Attributes: RangeNonTEEMem, RangeID: 2},
		},
		DeviceSpecificInfo: []byte("vfio-gate emu"),
		Rand:               bytes.NewReader(bytes.Repeat([]byte{0x5a, 0xa5, 0x11}, 1000)),
	})
	return d, id
}

func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	d, id := testDevice(t)
	c := NewClient(d, id, &ClientOptions{PortionSize: 24}) // small portions: several round trips
	if _, known := c.Tracked(); known {
		t.Fatal("state known before asking")
	}
	if v, err := c.GetVersion(ctx); err != nil || !bytes.Equal(v, []byte{0x10}) {
		t.Fatal(v, err)
	}
	caps, err := c.GetCapabilities(ctx, 0)
	if err != nil || caps.DevAddrWidth != 52 {
		t.Fatal(caps, err)
	}
	if s, err := c.State(ctx); err != nil || s != StateConfigUnlocked {
		t.Fatal(s, err)
	}
	if _, err := c.Lock(ctx, LockParams{Flags: LockBindP2P}); err == nil {
		t.Fatal("unsupported lock flag sent")
	}
	nonce, err := c.Lock(ctx, LockParams{Flags: LockNoFWUpdate | LockMSIX, MMIOReportingOffset: 0x1_0000_0000})
	if err != nil {
		t.Fatal(err)
	}
	if s, err := c.State(ctx); err != nil || s != StateConfigLocked || d.State() != StateConfigLocked {
		t.Fatal(s, err)
	}
	rep, raw, err := c.Report(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) != 16+3*16+4+13 {
		t.Fatalf("report %d bytes", len(raw))
	}
	if rep.MMIORanges[0].FirstPage != 0xfe000+0x100000 || rep.MMIORanges[1].Attributes != RangeMSIXTable ||
		rep.MSIXControl != 0x8003 || string(rep.DeviceSpecificInfo) != "vfio-gate emu" {
		t.Fatalf("report %+v", rep)
	}
	if err := c.Start(ctx, nonce); err != nil {
		t.Fatal(err)
	}
	if s, err := c.State(ctx); err != nil || s != StateRun {
		t.Fatal(s, err)
	}
	// The report stays readable in RUN.
	if _, _, err := c.Report(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if s, err := c.State(ctx); err != nil || s != StateConfigUnlocked {
		t.Fatal(s, err)
	}
	// A second lock gives a fresh nonce; the old one no longer starts.
	n2, err := c.Lock(ctx, LockParams{})
	if err != nil || n2 == nonce {
		t.Fatalf("second lock: %x %v", n2, err)
	}
	if err := c.Start(ctx, nonce); !errors.Is(err, ErrorInvalidNonce) {
		t.Fatalf("stale nonce: %v", err)
	}
	if err := c.Start(ctx, n2); err != nil {
		t.Fatal(err)
	}
}

func TestWrongStartNonce(t *testing.T) {
	ctx := context.Background()
	d, id := testDevice(t)
	c := NewClient(d, id, nil)
	nonce, err := c.Lock(ctx, LockParams{})
	if err != nil {
		t.Fatal(err)
	}
	bad := nonce
	bad[31] ^= 1
	err = c.Start(ctx, bad)
	var de *DeviceError
	if !errors.As(err, &de) || de.Code != ErrorInvalidNonce || de.Request != MsgStartInterface {
		t.Fatalf("wrong nonce: %v", err)
	}
	if d.State() != StateConfigLocked {
		t.Fatalf("device moved to %v on a wrong nonce", d.State())
	}
	if s, err := c.State(ctx); err != nil || s != StateConfigLocked {
		t.Fatal(s, err)
	}
	if err := c.Start(ctx, nonce); err != nil {
		t.Fatal(err)
	}
}

// TestIllegalTransitions sends every state-changing request in every state,
// straight to the Device (enforcement) and through a Client that tracks the
// state (refused before sending). Both give ErrorInvalidInterfaceState.
func TestIllegalTransitions(t *testing.T) {
	ctx := context.Background()
	reach := func(t *testing.T, s State) (*Device, *Client, [NonceSize]byte) {
		d, id := testDevice(t)
		c := NewClient(d, id, nil)
		var n [NonceSize]byte
		var err error
		if s != StateConfigUnlocked {
			if n, err = c.Lock(ctx, LockParams{}); err != nil {
				t.Fatal(err)
			}
		}
		if s == StateRun {
			if err := c.Start(ctx, n); err != nil {
				t.Fatal(err)
			}
		}
		if s == StateError {
			d.LockedConfigWrite(0x10)
		}
		if d.State() != s {
			t.Fatalf("reached %v, want %v", d.State(), s)
		}
		return d, c, n
	}
	reqs := map[MessageType]func(n [NonceSize]byte) Message{
		MsgLockInterface:  func([NonceSize]byte) Message { return &LockInterface{} },
		MsgStartInterface: func(n [NonceSize]byte) Message { return &StartInterface{Nonce: n} },
		MsgStopInterface:  func([NonceSize]byte) Message { return &StopInterface{} },
		MsgGetReport:      func([NonceSize]byte) Message { return &GetReport{Length: 16} },
	}
	legal := map[State][]MessageType{
		StateConfigUnlocked: {MsgLockInterface},
		StateConfigLocked:   {MsgStartInterface, MsgStopInterface, MsgGetReport},
		StateRun:            {MsgStopInterface, MsgGetReport},
		StateError:          {MsgStopInterface},
	}
	illegal := 0
	for _, s := range []State{StateConfigUnlocked, StateConfigLocked, StateRun, StateError} {
		for typ, mk := range reqs {
			ok := false
			for _, l := range legal[s] {
				ok = ok || l == typ
			}
			t.Run(s.String()+"/"+typ.String(), func(t *testing.T) {
				d, c, n := reach(t, s)
				rsp, err := Decode(d.Handle(ctx, Encode(Header{Version: Version10, Interface: c.Interface()}, mk(n))))
				if err != nil {
					t.Fatal(err)
				}
				e, isErr := rsp.Msg.(*ErrorResponse)
				if ok == isErr {
					t.Fatalf("device answered %v (%+v) in %v", rsp.Type, rsp.Msg, s)
				}
				if isErr && e.Code != ErrorInvalidInterfaceState {
					t.Fatalf("device error %v", e.Code)
				}
				if isErr && d.State() != s {
					t.Fatalf("refused request moved the device to %v", d.State())
				}
				if ok {
					return
				}
				// The client refuses too (its tracked state is exact here,
				// except ERROR, which it learns from GET_STATE).
				d2, c2, n2 := reach(t, s)
				switch s {
				case StateError:
					if _, err := c2.State(ctx); !errors.Is(err, ErrStateMismatch) {
						t.Fatalf("fault not reported as mismatch: %v", err)
					}
				case StateConfigUnlocked:
					if _, err := c2.State(ctx); err != nil {
						t.Fatal(err)
					}
				}
				var cerr error
				switch typ {
				case MsgLockInterface:
					_, cerr = c2.Lock(ctx, LockParams{})
				case MsgStartInterface:
					cerr = c2.Start(ctx, n2)
				case MsgStopInterface:
					cerr = c2.Stop(ctx)
				case MsgGetReport:
					_, _, cerr = c2.Report(ctx)
				}
				var te *TransitionError
				if !errors.Is(cerr, ErrorInvalidInterfaceState) || !errors.As(cerr, &te) {
					t.Fatalf("client: %v", cerr)
				}
				if d2.State() != s {
					t.Fatalf("client request changed device to %v", d2.State())
				}
			})
			if !ok {
				illegal++
			}
		}
	}
	if illegal != 9 {
		t.Fatalf("%d illegal combinations tested", illegal)
	}
}

// TestDeviceRefusalUntracked: a client that does not know the state sends
// the request; the device's INVALID_INTERFACE_STATE comes back typed.
func TestDeviceRefusalUntracked(t *testing.T) {
	ctx := context.Background()
	d, id := testDevice(t)
	c := NewClient(d, id, nil)
	err := c.Stop(ctx)
	var de *DeviceError
	if !errors.As(err, &de) || !errors.Is(err, ErrorInvalidInterfaceState) || de.Request != MsgStopInterface {
		t.Fatalf("stop in CONFIG_UNLOCKED: %v", err)
	}
	if _, known := c.Tracked(); known {
		t.Fatal("tracked state kept after the device refused")
	}
}

func TestFaultAndMismatch(t *testing.T) {
	ctx := context.Background()
	d, id := testDevice(t)
	c := NewClient(d, id, nil)
	n, _ := c.Lock(ctx, LockParams{})
	if err := c.Start(ctx, n); err != nil {
		t.Fatal(err)
	}
	if s := d.LockedConfigWrite(0x10); s != StateError {
		t.Fatalf("config write in RUN: %v", s)
	}
	s, err := c.State(ctx)
	var me *StateMismatchError
	if !errors.As(err, &me) || me.Tracked != StateRun || me.Reported != StateError || s != StateError {
		t.Fatalf("mismatch: %v %v", s, err)
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("stop from ERROR: %v", err)
	}
	// A config write while unlocked changes nothing.
	if s := d.LockedConfigWrite(0x10); s != StateConfigUnlocked {
		t.Fatal(s)
	}
	// Session end moves a locked TDI to ERROR.
	if _, err := c.Lock(ctx, LockParams{}); err != nil {
		t.Fatal(err)
	}
	if s := d.SessionEnded(); s != StateError {
		t.Fatal(s)
	}
}

func TestDeviceRejects(t *testing.T) {
	ctx := context.Background()
	d, id := testDevice(t)
	h := Header{Version: Version10, Interface: id}
	cases := []struct {
		name string
		in   []byte
		code ErrorCode
	}{
		{"wrong interface", Encode(Header{Version: Version10, Interface: id + 1}, &GetState{}), ErrorInvalidInterface},
		{"wrong version", Encode(Header{Version: 0x20, Interface: id}, &GetState{}), ErrorVersionMismatch},
		{"short", Encode(h, &GetState{})[:10], ErrorInvalidRequest},
		{"trailing", append(Encode(h, &GetState{}), 0), ErrorInvalidRequest},
		{"unknown type", append(Encode(h, &GetState{})[:2:2], append([]byte{0x9F}, Encode(h, &GetState{})[3:]...)...), ErrorUnsupportedRequest},
		{"response type", Encode(h, &StateResponse{}), ErrorUnsupportedRequest},
		{"unsupported request", Encode(h, &BindP2PStream{StreamID: 1}), ErrorUnsupportedRequest},
		{"unaligned reporting offset", Encode(h, &LockInterface{MMIOReportingOffset: 0x800}), ErrorInvalidRequest},
	}
	for _, tc := range cases {
		p, err := Decode(d.Handle(ctx, tc.in))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		e, ok := p.Msg.(*ErrorResponse)
		if !ok || e.Code != tc.code {
			t.Errorf("%s: %+v, want %v", tc.name, p.Msg, tc.code)
		}
	}
	if _, err := d.VendorDefined(ctx, 0, VendorIDPCISIG, nil); err == nil {
		t.Error("DMTF standard ID accepted")
	}
	// No entropy: LOCK fails with INSUFFICIENT_ENTROPY and stays unlocked.
	d2 := NewDevice(DeviceConfig{Interface: id, Rand: bytes.NewReader(nil)})
	p, _ := Decode(d2.Handle(ctx, Encode(h, &LockInterface{})))
	if e, ok := p.Msg.(*ErrorResponse); !ok || e.Code != ErrorInsufficientEntropy || d2.State() != StateConfigUnlocked {
		t.Fatalf("no entropy: %+v %v", p.Msg, d2.State())
	}
}

// lyingSession wraps a Device and rewrites its answers.
type lyingSession struct {
	d       *Device
	rewrite func(req *Packet, rsp []byte) []byte
}

func (l *lyingSession) VendorDefined(ctx context.Context, std uint16, vid, p []byte) ([]byte, error) {
	rsp, err := l.d.VendorDefined(ctx, std, vid, p)
	if err != nil {
		return nil, err
	}
	req, _ := Decode(p)
	return l.rewrite(req, rsp), nil
}

func TestClientRejectsLyingDevice(t *testing.T) {
	ctx := context.Background()
	type tc struct {
		name    string
		rewrite func(req *Packet, rsp []byte) []byte
		run     func(c *Client) error
	}
	report := func(c *Client) error {
		if _, err := c.Lock(ctx, LockParams{}); err != nil {
			return err
		}
		_, _, err := c.Report(ctx)
		return err
	}
	portion := func(req *Packet, rsp []byte, f func(r *ReportPortion)) []byte {
		p, _ := Decode(rsp)
		if r, ok := p.Msg.(*ReportPortion); ok {
			f(r)
			return Encode(p.Header, r)
		}
		return rsp
	}
	cases := []tc{
		{"other interface", func(_ *Packet, rsp []byte) []byte {
			p, _ := Decode(rsp)
			p.Interface++
			return Encode(p.Header, p.Msg)
		}, func(c *Client) error { _, err := c.State(ctx); return err }},
		{"wrong response type", func(_ *Packet, rsp []byte) []byte {
			p, _ := Decode(rsp)
			return Encode(p.Header, &Empty{T: MsgStopInterfaceRsp})
		}, func(c *Client) error { _, err := c.State(ctx); return err }},
		{"zero nonce", func(_ *Packet, rsp []byte) []byte {
			p, _ := Decode(rsp)
			if _, ok := p.Msg.(*LockInterfaceResponse); ok {
				return Encode(p.Header, &LockInterfaceResponse{})
			}
			return rsp
		}, func(c *Client) error { _, err := c.Lock(ctx, LockParams{}); return err }},
		{"garbage", func(_ *Packet, rsp []byte) []byte { return rsp[:5] },
			func(c *Client) error { _, err := c.GetVersion(ctx); return err }},
		{"no 1.0", func(_ *Packet, rsp []byte) []byte {
			p, _ := Decode(rsp)
			return Encode(p.Header, &Version{Versions: []uint8{0x11}})
		}, func(c *Client) error { _, err := c.GetVersion(ctx); return err }},
		{"growing report", func(req *Packet, rsp []byte) []byte {
			return portion(req, rsp, func(r *ReportPortion) { r.Remainder += uint16(req.Msg.(*GetReport).Offset) + 1 })
		}, report},
		{"oversized portion", func(req *Packet, rsp []byte) []byte {
			return portion(req, rsp, func(r *ReportPortion) { r.Portion = append(r.Portion, make([]byte, 100)...) })
		}, report},
		{"stalled report", func(req *Packet, rsp []byte) []byte {
			return portion(req, rsp, func(r *ReportPortion) { r.Remainder += uint16(len(r.Portion)); r.Portion = nil })
		}, report},
		{"huge report", func(req *Packet, rsp []byte) []byte {
			return portion(req, rsp, func(r *ReportPortion) { r.Remainder = 0xFFFF })
		}, report},
		{"truncated report", func(req *Packet, rsp []byte) []byte {
			return portion(req, rsp, func(r *ReportPortion) {
				if r.Remainder == 0 {
					r.Portion = r.Portion[:len(r.Portion)-1]
				}
			})
		}, report},
	}
	for _, x := range cases {
		t.Run(x.name, func(t *testing.T) {
			d, id := testDevice(t)
			c := NewClient(&lyingSession{d: d, rewrite: x.rewrite}, id, &ClientOptions{PortionSize: 32})
			if err := x.run(c); err == nil {
				t.Fatal("lie accepted")
			} else {
				t.Log(err)
			}
		})
	}
}

func TestInterfaceIDFor(t *testing.T) {
	for _, tc := range []struct {
		bdf  string
		want InterfaceID
	}{
		{"0000:3b:00.0", 0x3b00},
		{"0000:00:1f.7", 0x00ff},
		{"0001:02:03.4", 0x0101021c},
		{"00ff:ff:1f.7", 0x01ffffff},
	} {
		b, err := pci.ParseBDF(tc.bdf)
		if err != nil {
			t.Fatal(err)
		}
		got, err := InterfaceIDFor(b)
		if err != nil || got != tc.want {
			t.Errorf("%s: %#x %v, want %#x", tc.bdf, uint32(got), err, uint32(tc.want))
		}
		if got.String() != tc.bdf {
			t.Errorf("%s: String %s", tc.bdf, got)
		}
	}
	if _, err := InterfaceIDFor(pci.BDF{Domain: 0x100}); err == nil {
		t.Error("segment 0x100 accepted")
	}
}

// countingSession counts round trips and bytes.
type countingSession struct {
	s                Session
	trips, sent, got int
}

func (c *countingSession) VendorDefined(ctx context.Context, std uint16, vid, p []byte) ([]byte, error) {
	r, err := c.s.VendorDefined(ctx, std, vid, p)
	c.trips++
	c.sent += len(p)
	c.got += len(r)
	return r, err
}

// BenchmarkLockReportStart: one TDISP lock → report → start → stop cycle
// against the in-memory Device (no session crypto), with round trips/op.
func BenchmarkLockReportStart(b *testing.B) {
	ctx := context.Background()
	d := NewDevice(DeviceConfig{Interface: 0x100, Ranges: make([]MMIORange, 8), DeviceSpecificInfo: make([]byte, 64)})
	cs := &countingSession{s: d}
	c := NewClient(cs, 0x100, nil)
	b.ReportAllocs()
	for b.Loop() {
		n, err := c.Lock(ctx, LockParams{})
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := c.Report(ctx); err != nil {
			b.Fatal(err)
		}
		if err := c.Start(ctx, n); err != nil {
			b.Fatal(err)
		}
		if err := c.Stop(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cs.trips)/float64(b.N), "roundtrips/op")
	b.ReportMetric(float64(cs.sent+cs.got)/float64(b.N), "bytes/op")
}

func TestStateJSONAndLargePortions(t *testing.T) {
	for s := StateConfigUnlocked; s <= StateError; s++ {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var back State
		if err := json.Unmarshal(b, &back); err != nil || back != s {
			t.Fatalf("%s: %s → %v %v", s, b, back, err)
		}
	}
	var x State
	if err := json.Unmarshal([]byte(`"LOCKED"`), &x); err == nil {
		t.Fatal("unknown state name accepted")
	}
	// A big report read with the largest portions stays within MaxPayload.
	ctx := context.Background()
	d := NewDevice(DeviceConfig{Interface: 1, Ranges: make([]MMIORange, 1000)})
	c := NewClient(d, 1, &ClientOptions{PortionSize: 0xFFFF})
	if _, err := c.Lock(ctx, LockParams{}); err != nil {
		t.Fatal(err)
	}
	rep, raw, err := c.Report(ctx)
	if err != nil || len(rep.MMIORanges) != 1000 || len(raw) != 16+16000+4 {
		t.Fatalf("%d bytes, %v", len(raw), err)
	}
}
