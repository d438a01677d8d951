package report

import (
	"bytes"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/daemon"
	"github.com/vfio-gate/vfio-gate/pci"
)

func TestWriteStatus(t *testing.T) {
	var b bytes.Buffer
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := WriteStatus(&b, &daemon.Status{Started: at, Policy: "/p.yaml", Phase: "recovering TDIs"}); err != nil {
		t.Fatal(err)
	}
	if want := "daemon up since 2026-01-02 03:04:05, policy /p.yaml\nTPM: -\nSTARTING: recovering TDIs (requests wait for it)\n"; b.String() != want {
		t.Fatalf("empty: got %q, want %q", b.String(), want)
	}
	bdf, _ := pci.ParseBDF("0000:3b:00.0")
	st := &daemon.Status{Started: at, Policy: "/p.yaml", TPM: "/dev/tpmrm0", Ready: true, TDISP: "available",
		Domains:   map[string][]string{"vm2": {"0000:3b:00.0"}, "vm1": {"0000:3c:00.0"}},
		Devices:   []daemon.DeviceStatus{{BDF: bdf, Domain: "vm2", Decision: daemon.DecisionDeferred, Since: at}},
		TDIs:      []daemon.TDIStatus{{BDF: bdf, Domain: "vm2", State: "RUN", SessionID: 0xff, Since: at}},
		Sessions:  []daemon.SessionStatus{{BDF: bdf, SessionID: 0xff, Since: at}},
		Decisions: []daemon.DeviceDecision{{BDF: bdf, Decision: "deny", Reasons: []daemon.Reason{{Code: "no-cma"}, {Code: "lock"}}}},
		Released:  []daemon.ReleaseRecord{{Domain: "vm0", BDFs: []pci.BDF{bdf}, Recorded: true, Time: at}},
		Reports:   []daemon.Report{{Kind: "hotplug", BDF: "0000:3b:00.0", Message: "m", Time: at}}}
	b.Reset()
	if err := WriteStatus(&b, st); err != nil {
		t.Fatal(err)
	}
	want := `daemon up since 2026-01-02 03:04:05, policy /p.yaml
TPM: /dev/tpmrm0
DOMAIN  DEVICES
vm1     [0000:3c:00.0]
vm2     [0000:3b:00.0]

DEVICE        DOMAIN  RULE                                BOUND BY DAEMON  DRIVER NOW  ORIGINAL DRIVER  SINCE
0000:3b:00.0  vm2     (deferred: checked at start begin)  false            -           -                2026-01-02 03:04:05

TDI           DOMAIN  STATE  SESSION  SINCE
0000:3b:00.0  vm2     RUN    0xff     03:04:05

SESSION  DEVICE        SINCE
0xff     0000:3b:00.0  03:04:05

DEVICE        DECISION  RULE  TDI  REASONS
0000:3b:00.0  deny      -     -    no-cma,lock

RELEASED  DEVICES         RECORDED  TIME                 ERRORS
vm0       [0000:3b:00.0]  true      2026-01-02 03:04:05  -

REPORT   DOMAIN  DEVICE        TIME      MESSAGE
hotplug  -       0000:3b:00.0  03:04:05  m

TDISP: available
`
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
}
