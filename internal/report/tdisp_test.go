package report

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/vfio-gate/vfio-gate/daemon"
	"github.com/vfio-gate/vfio-gate/pci"

	"github.com/vfio-gate/vfio-gate/spdm"
	"github.com/vfio-gate/vfio-gate/tdisp"
)

func TestTDISPDocuments(t *testing.T) {
	if TDISPInterfaceReportOf(nil) != nil {
		t.Error("nil report")
	}
	empty, err := json.Marshal(TDISPInterfaceReportOf(&tdisp.InterfaceReport{}))
	if err != nil || !strings.Contains(string(empty), `"mmio_ranges":[]`) || strings.Contains(string(empty), "null") {
		t.Errorf("empty report: %s %v", empty, err)
	}
	rep := &tdisp.InterfaceReport{InterfaceInfo: 3, MMIORanges: []tdisp.MMIORange{{FirstPage: 0xf, Pages: 1, Attributes: 4, RangeID: 1}},
		DeviceSpecificInfo: []byte("dev")}
	cr := &tdisp.CycleResult{Steps: []tdisp.CycleStep{{Request: "LOCK_INTERFACE", State: tdisp.StateConfigLocked},
		{Request: "START_INTERFACE", State: tdisp.StateConfigLocked, Err: errors.New("refused")}}, Report: rep, FinalState: tdisp.StateConfigUnlocked}
	c := TDISPCycleOf(cr)
	if len(c.Steps) != 2 || !c.Steps[0].OK || c.Steps[0].Error != nil || c.Steps[1].OK || *c.Steps[1].Error != "refused" || c.Report == nil {
		t.Errorf("cycle %+v", c)
	}
	var b strings.Builder
	if err := WriteTDISPCycle(&b, cr); err != nil {
		t.Fatal(err)
	}
	want := `LOCK_INTERFACE   ok               state CONFIG_LOCKED
START_INTERFACE  FAILED: refused  state CONFIG_LOCKED
interface info        0x0003
mmio range 1          first page 0xf, 1 pages, attributes 0x0004
device specific info  "dev"
final state: CONFIG_UNLOCKED
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	if err := WriteTDISPState(&b, "socket:h:1", 0x3a01, tdisp.StateRun); err != nil || b.String() != "socket:h:1 (interface 0000:3a:00.1): RUN\n" {
		t.Errorf("state %q %v", b.String(), err)
	}
	s := TDISPSessionOf(spdm.SessionInfo{ID: 7, AEAD: spdm.AEADAES256GCM, DHE: spdm.DHESECP384R1})
	if s.ID != 7 || s.AEAD != "aes-256-gcm" || s.DHE != "secp384r1" {
		t.Errorf("session %+v", s)
	}
	st := &daemon.TDIStatus{BDF: pci.BDF{Bus: 0x3a, Device: 0, Function: 1}, State: "CONFIG_LOCKED", Domain: "vm1", SessionID: 0xff}
	b.Reset()
	if err := WriteTDI(&b, st, "/run/s"); err != nil || b.String() != "0000:3a:00.1: TDI CONFIG_LOCKED for domain vm1, session 0x000000ff (held by the daemon at /run/s)\n" {
		t.Errorf("tdi %q %v", b.String(), err)
	}
	b.Reset()
	if err := WriteTDI(&b, &daemon.TDIStatus{BDF: st.BDF, State: "CONFIG_UNLOCKED"}, "/run/s"); err != nil ||
		b.String() != "0000:3a:00.1: TDI CONFIG_UNLOCKED (held by the daemon at /run/s)\n" {
		t.Errorf("tdi without owner %q %v", b.String(), err)
	}
	b.Reset()
	if err := WriteTDIState(&b, &daemon.TDIStatus{BDF: st.BDF, State: "RUN", SessionID: 0xff}); err != nil ||
		b.String() != "0000:3a:00.1: RUN (domain -, session 0x000000ff, held by the daemon)\n" {
		t.Errorf("tdi state %q %v", b.String(), err)
	}
}

// `tdisp report`'s text: the state line, then the report.
func TestWriteTDISPStateReport(t *testing.T) {
	rep := &tdisp.InterfaceReport{InterfaceInfo: 3, DeviceSpecificInfo: []byte("dev")}
	var b, want strings.Builder
	if err := WriteTDISPStateReport(&b, "0000:3a:00.1", 0x3a01, tdisp.StateConfigLocked, rep); err != nil {
		t.Fatal(err)
	}
	if err := WriteTDISPState(&want, "0000:3a:00.1", 0x3a01, tdisp.StateConfigLocked); err != nil {
		t.Fatal(err)
	}
	if err := WriteTDISPReport(&want, rep); err != nil {
		t.Fatal(err)
	}
	if b.String() != want.String() || !strings.HasPrefix(b.String(), "0000:3a:00.1 (interface 0000:3a:00.1): CONFIG_LOCKED\ninterface info") {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want.String())
	}
}
