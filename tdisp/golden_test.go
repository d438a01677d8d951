package tdisp

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"testing"
)

// The recorded spdm-emu run 6 (../spdm/testdata/spdm-ref/README.md) carries a
// TDISP 1.0 flow inside its first secure session, messages 54..75:
// GET_VERSION, GET_CAPABILITIES, GET_STATE, LOCK, GET_STATE, GET_REPORT ×2,
// START, GET_STATE, STOP, GET_STATE. The decrypted SPDM messages are in the
// recording (and spdm/secured's tests prove that decryption).
const recording = "../spdm/testdata/spdm-ref/v12-keyex.json"

type goldenMsg struct {
	Dir     string
	Payload []byte // VENDOR_DEFINED payload (protocol ID first)
}

func loadGolden(t testing.TB) []goldenMsg {
	t.Helper()
	b, err := os.ReadFile(recording)
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Messages []struct {
			Dir       string `json:"dir"`
			Decrypted *struct {
				SpdmHex string `json:"spdm_hex"`
			} `json:"decrypted"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	var out []goldenMsg
	for i := 54; i <= 75; i++ {
		m := r.Messages[i]
		spdm, err := hex.DecodeString(m.Decrypted.SpdmHex)
		if err != nil {
			t.Fatal(err)
		}
		p, err := vendorPayload(spdm, m.Dir == "req")
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		out = append(out, goldenMsg{Dir: m.Dir, Payload: p})
	}
	return out
}

// vendorPayload strips the SPDM VENDOR_DEFINED header (DSP0274): version,
// code 0xFE/0x7E, params, StandardID(2)=3, Len(1)=2, VendorID=0x0001,
// payload length(2).
func vendorPayload(b []byte, req bool) ([]byte, error) {
	code := byte(0x7E)
	if req {
		code = 0xFE
	}
	if len(b) < 11 || b[1] != code || binary.LittleEndian.Uint16(b[4:]) != StandardIDPCISIG || b[6] != 2 ||
		!bytes.Equal(b[7:9], VendorIDPCISIG) || int(binary.LittleEndian.Uint16(b[9:])) != len(b)-11 {
		return nil, fmt.Errorf("not a PCI-SIG vendor-defined message: %x", b)
	}
	return b[11:], nil
}

func TestGoldenDecode(t *testing.T) {
	msgs := loadGolden(t)
	want := []MessageType{MsgGetVersion, MsgVersion, MsgGetCapabilities, MsgCapabilities, MsgGetState, MsgState,
		MsgLockInterface, MsgLockInterfaceRsp, MsgGetState, MsgState, MsgGetReport, MsgReport, MsgGetReport, MsgReport,
		MsgStartInterface, MsgStartInterfaceRsp, MsgGetState, MsgState, MsgStopInterface, MsgStopInterfaceRsp,
		MsgGetState, MsgState}
	var pk []*Packet
	for i, m := range msgs {
		p, err := Decode(m.Payload)
		if err != nil {
			t.Fatalf("message %d: %v", 54+i, err)
		}
		if p.Type != want[i] || p.Version != Version10 || p.Interface != 0xBEEF {
			t.Fatalf("message %d: %+v", 54+i, p.Header)
		}
		if re := Encode(p.Header, p.Msg); !bytes.Equal(re, m.Payload) {
			t.Fatalf("message %d: re-encoded %x, recorded %x", 54+i, re, m.Payload)
		}
		pk = append(pk, p)
	}
	if v := pk[1].Msg.(*Version).Versions; !bytes.Equal(v, []byte{0x10}) {
		t.Errorf("versions %x", v)
	}
	c := pk[3].Msg.(*Capabilities)
	if c.LockFlagsSupported != LockNoFWUpdate|LockSystemCacheLineSize|LockMSIX || c.DevAddrWidth != 48 || c.ReqMsgsSupported[0] != 0xFE {
		t.Errorf("capabilities %+v", c)
	}
	for i := MsgGetVersion; i <= MsgStopInterface; i++ {
		if !c.Supports(i) {
			t.Errorf("capabilities do not list %v", i)
		}
	}
	if c.Supports(MsgBindP2PStream) {
		t.Error("BIND_P2P listed")
	}
	lock := pk[6].Msg.(*LockInterface)
	if lock.Flags != 7 || lock.MMIOReportingOffset != 0xD0000000 {
		t.Errorf("lock %+v", lock)
	}
	if pk[7].Msg.(*LockInterfaceResponse).Nonce != pk[14].Msg.(*StartInterface).Nonce {
		t.Error("START nonce differs from LOCK nonce")
	}
	var states []State
	for _, i := range []int{5, 9, 17, 21} {
		states = append(states, pk[i].Msg.(*StateResponse).State)
	}
	if fmt.Sprint(states) != "[CONFIG_UNLOCKED CONFIG_LOCKED RUN CONFIG_UNLOCKED]" {
		t.Errorf("states %v", states)
	}
	r1, r2 := pk[11].Msg.(*ReportPortion), pk[13].Msg.(*ReportPortion)
	if len(r1.Portion) != 0x40 || r1.Remainder != 0x24 || len(r2.Portion) != 0x24 || r2.Remainder != 0 {
		t.Fatalf("portions %d/%d %d/%d", len(r1.Portion), r1.Remainder, len(r2.Portion), r2.Remainder)
	}
	rep, err := ParseInterfaceReport(append(append([]byte{}, r1.Portion...), r2.Portion...))
	if err != nil {
		t.Fatal(err)
	}
	checkEmuReport(t, rep)
}

// checkEmuReport checks the spdm-emu sample report (SPEC-FACTS §6.3).
func checkEmuReport(t *testing.T, rep *InterfaceReport) {
	t.Helper()
	if rep.InterfaceInfo != InfoNoFWUpdateAfterLock|InfoDMAWithoutPASID || len(rep.MMIORanges) != 4 {
		t.Fatalf("report %+v", rep)
	}
	want := []MMIORange{{0, 1, RangeNonTEEMem, 1}, {0x8000, 4, RangeMemAttrUpdatable, 2},
		{0x10000, 8, RangeMemAttrUpdatable, 3}, {0x20000, 8, RangeMemAttrUpdatable, 4}}
	for i, r := range rep.MMIORanges {
		if r != want[i] {
			t.Errorf("range %d = %+v, want %+v", i, r, want[i])
		}
	}
	if string(bytes.TrimRight(rep.DeviceSpecificInfo, "\x00")) != "tdisp_dev_emu" {
		t.Errorf("device info %q", rep.DeviceSpecificInfo)
	}
}

// replaySession answers from the recording and fails on any request that is
// not byte-identical to what spdm-emu's requester sent.
type replaySession struct {
	t    *testing.T
	msgs []goldenMsg
	i    int
}

func (r *replaySession) VendorDefined(_ context.Context, std uint16, vid, payload []byte) ([]byte, error) {
	if std != StandardIDPCISIG || !bytes.Equal(vid, VendorIDPCISIG) {
		r.t.Fatalf("framing %d %x", std, vid)
	}
	if r.i+1 >= len(r.msgs) {
		r.t.Fatalf("unexpected extra request %x", payload)
	}
	if want := r.msgs[r.i].Payload; !bytes.Equal(payload, want) {
		r.t.Fatalf("request %d:\n got %x\nwant %x", r.i/2, payload, want)
	}
	rsp := r.msgs[r.i+1].Payload
	r.i += 2
	return rsp, nil
}

// TestGoldenReplay drives the Client through the recorded flow: every request
// it sends must equal spdm-emu's byte for byte.
func TestGoldenReplay(t *testing.T) {
	ctx := context.Background()
	rs := &replaySession{t: t, msgs: loadGolden(t)}
	c := NewClient(rs, 0xBEEF, &ClientOptions{PortionSize: 0x40})
	if _, err := c.GetVersion(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetCapabilities(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if s, err := c.State(ctx); err != nil || s != StateConfigUnlocked {
		t.Fatal(s, err)
	}
	nonce, err := c.Lock(ctx, LockParams{Flags: 7, MMIOReportingOffset: 0xD0000000})
	if err != nil {
		t.Fatal(err)
	}
	if s, err := c.State(ctx); err != nil || s != StateConfigLocked {
		t.Fatal(s, err)
	}
	rep, raw, err := c.Report(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) != 100 {
		t.Fatalf("raw report %d bytes", len(raw))
	}
	checkEmuReport(t, rep)
	if err := c.Start(ctx, nonce); err != nil {
		t.Fatal(err)
	}
	if s, err := c.State(ctx); err != nil || s != StateRun {
		t.Fatal(s, err)
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if s, err := c.State(ctx); err != nil || s != StateConfigUnlocked {
		t.Fatal(s, err)
	}
	if rs.i != len(rs.msgs) {
		t.Fatalf("replayed %d of %d messages", rs.i, len(rs.msgs))
	}
}
