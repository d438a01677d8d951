package tdisp

import (
	"bytes"
	"context"
	"reflect"
	"testing"
)

func allMessages() []Message {
	n := [NonceSize]byte{1, 2, 3}
	return []Message{
		&GetVersion{}, &Version{Versions: []uint8{0x10, 0x11}}, &GetCapabilities{TSMCaps: 9}, DefaultCapabilities(),
		&LockInterface{Flags: 5, DefaultStreamID: 2, MMIOReportingOffset: 1 << 40, BindP2PAddressMask: 0xfff},
		&LockInterfaceResponse{Nonce: n}, &GetReport{Offset: 3, Length: 0x40},
		&ReportPortion{Remainder: 7, Portion: []byte{1, 2, 3}}, &GetState{}, &StateResponse{State: StateRun},
		&StartInterface{Nonce: n}, &StopInterface{}, &BindP2PStream{StreamID: 4}, &UnbindP2PStream{StreamID: 4},
		&SetMMIOAttribute{Range: MMIORange{FirstPage: 5, Pages: 6, Attributes: RangeMemAttrUpdatable, RangeID: 7}},
		&Empty{T: MsgStartInterfaceRsp}, &Empty{T: MsgStopInterfaceRsp}, &Empty{T: MsgBindP2PStreamRsp},
		&Empty{T: MsgUnbindP2PStreamRsp}, &Empty{T: MsgSetMMIOAttributeRsp},
		&VDM{T: MsgVDMRequest, Body: []byte{0, 2, 1, 0}}, &VDM{T: MsgVDMResponse},
		&ErrorResponse{Code: ErrorInvalidNonce, Data: 1}, &ErrorResponse{Code: ErrorVendorSpecific, Extended: []byte{0, 2, 1, 0, 9}},
	}
}

// open-ended bodies: a shorter body is a different valid message.
func openEnded(t MessageType) bool { return t == MsgVDMRequest || t == MsgVDMResponse || t == MsgError }

func TestEveryMessageRoundTrips(t *testing.T) {
	for _, m := range allMessages() {
		b := Encode(Header{Version: Version10, Interface: 0x1234}, m)
		p, err := Decode(b)
		if err != nil {
			t.Fatalf("%v: %v", m.Type(), err)
		}
		if !reflect.DeepEqual(p.Msg, m) || p.Type != m.Type() {
			t.Fatalf("%v: decoded %+v, want %+v", m.Type(), p.Msg, m)
		}
		if !openEnded(m.Type()) {
			for i := range len(b) {
				if _, err := Decode(b[:i]); err == nil {
					t.Fatalf("%v: prefix of %d bytes decoded", m.Type(), i)
				}
			}
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, g := range loadGolden(f) {
		f.Add(g.Payload)
	}
	for _, m := range allMessages() {
		f.Add(Encode(Header{Version: Version10, Interface: 0xBEEF}, m))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Decode(b)
		if (p == nil) == (err == nil) {
			t.Fatalf("packet %v with error %v", p, err)
		}
		if err != nil {
			return
		}
		re := Encode(p.Header, p.Msg)
		p2, err := Decode(re)
		if err != nil || !reflect.DeepEqual(p, p2) {
			t.Fatalf("round trip: %+v vs %+v (%v)", p, p2, err)
		}
		if len(re) != len(b) {
			t.Fatalf("re-encoded %d bytes from %d", len(re), len(b))
		}
		if !openEnded(p.Type) {
			for i := range len(b) {
				if _, err := Decode(b[:i]); err == nil {
					t.Fatalf("proper prefix of %d bytes decoded", i)
				}
			}
		}
	})
}

func FuzzParseInterfaceReport(f *testing.F) {
	gs := loadGolden(f)
	r1, _ := Decode(gs[11].Payload)
	r2, _ := Decode(gs[13].Payload)
	f.Add(append(append([]byte{}, r1.Msg.(*ReportPortion).Portion...), r2.Msg.(*ReportPortion).Portion...))
	f.Add((&InterfaceReport{MMIORanges: []MMIORange{{1, 2, 3, 4}}, DeviceSpecificInfo: []byte("x")}).Marshal())
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseInterfaceReport(b)
		if (r == nil) == (err == nil) {
			t.Fatalf("report %v with error %v", r, err)
		}
		if err != nil {
			return
		}
		m := r.Marshal()
		if len(m) != len(b) {
			t.Fatalf("marshal %d bytes from %d", len(m), len(b))
		}
		r2, err := ParseInterfaceReport(m)
		if err != nil || !reflect.DeepEqual(r, r2) {
			t.Fatalf("round trip %+v vs %+v (%v)", r, r2, err)
		}
		for i := range len(b) {
			if _, err := ParseInterfaceReport(b[:i]); err == nil {
				t.Fatalf("proper prefix of %d bytes parsed", i)
			}
		}
	})
}

// FuzzDeviceHandle: whatever a requester sends, the device answers with a
// well-formed response for its own interface and never panics.
func FuzzDeviceHandle(f *testing.F) {
	for _, g := range loadGolden(f) {
		if g.Dir == "req" {
			f.Add(g.Payload)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d := NewDevice(DeviceConfig{Interface: 0xBEEF, Rand: bytes.NewReader(bytes.Repeat([]byte{1}, 64)),
			Ranges: []MMIORange{{FirstPage: 1, Pages: 1}}})
		ctx := context.Background()
		for range 2 { // twice: the second sees whatever state the first left
			p, err := Decode(d.Handle(ctx, b))
			if err != nil {
				t.Fatalf("device sent undecodable response: %v", err)
			}
			if p.Type.IsRequest() || p.Interface != 0xBEEF {
				t.Fatalf("device response %+v", p.Header)
			}
		}
	})
}
