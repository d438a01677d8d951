package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/gate"
	"github.com/vfio-gate/vfio-gate/hooks/libvirt/phase"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/policy"
)

func testDecisions(t *testing.T) []gate.Decision {
	t.Helper()
	b1, _ := pci.ParseBDF("0000:3b:00.0")
	b2, _ := pci.ParseBDF("0000:3c:00.0")
	allow := gate.Decision{BDF: b1, Identity: attest.Identity{BDF: b1.String(), VendorID: 0x1b36, DeviceID: 0x10}, Recorded: true,
		EvidenceDigest: []byte{0xab, 0xcd}, Verdict: policy.Verdict{Decision: policy.DecisionAllow, Allow: true, Rule: "r1",
			Checks: []policy.Check{{Name: "rule", Expected: "r1", Got: strings.Repeat("x", 60), Pass: true}, {Name: "svn", Expected: ">= 3", Pass: false}}}}
	deny := gate.Decision{BDF: b2, Identity: attest.Identity{Socket: "127.0.0.1:2323", VendorID: 0x8086, DeviceID: 0x1234},
		Verdict: policy.Verdict{Decision: policy.DecisionDeny, Reasons: []policy.Reason{{Code: policy.CodeNoCMA, Message: "no CMA"}}},
		Err:     errors.New("boom")}
	return []gate.Decision{allow, deny}
}

func TestDecisionsOf(t *testing.T) {
	ds := testDecisions(t)
	j := DecisionsOf(ds[:1], policy.ModeEnforce, false)
	if j.Decision != policy.DecisionAllow || len(j.Devices) != 1 || j.Devices[0].EvidenceDigest != "abcd" ||
		j.Devices[0].VendorID != "0x1b36" || j.Devices[0].Reasons == nil || j.Devices[0].Checks != nil {
		t.Fatalf("allow: %+v", j)
	}
	j = DecisionsOf(ds, policy.ModeAudit, true)
	if j.Decision != policy.DecisionDeny || j.Mode != policy.ModeAudit || len(j.Devices[0].Checks) != 2 ||
		j.Devices[1].Error != "boom" || j.Devices[1].Socket != "127.0.0.1:2323" || j.Devices[1].BDF != "" {
		t.Fatalf("deny: %+v", j)
	}
	// An allowed verdict with an error (a bind that failed) is a deny.
	failed := ds[0]
	failed.Err = errors.New("bind")
	if j := DecisionsOf([]gate.Decision{failed}, policy.ModeEnforce, false); j.Decision != policy.DecisionDeny || j.Devices[0].Decision != policy.DecisionDeny {
		t.Fatalf("failed bind: %+v", j)
	}
	// No identity read: the BDF asked for.
	bare := gate.Decision{BDF: ds[0].BDF}
	if j := DecisionsOf([]gate.Decision{bare}, policy.ModeEnforce, false); j.Devices[0].BDF != "0000:3b:00.0" {
		t.Fatalf("bare: %+v", j)
	}
	b, err := json.Marshal(DecisionsOf(nil, policy.ModeEnforce, false))
	if err != nil || string(b) != `{"decision":"allow","mode":"enforce","devices":[]}` {
		t.Fatalf("empty: %s %v", b, err)
	}
}

func TestPreflightOf(t *testing.T) {
	ds := testDecisions(t)
	def := []phase.Deferred{{BDF: ds[1].BDF, Message: "later"}}
	j := PreflightOf(ds[:1], policy.ModeEnforce, def)
	if j.Decision != "deferred" || len(j.Devices) != 2 || j.Devices[1].Decision != "deferred" ||
		j.Devices[1].Reasons[0].Code != "deferred" || j.Devices[1].Reasons[0].Message != "later" {
		t.Fatalf("allow+deferred: %+v", j)
	}
	if j := PreflightOf(ds, policy.ModeEnforce, def); j.Decision != policy.DecisionDeny {
		t.Fatalf("deny+deferred: %+v", j)
	}
	if j := PreflightOf(ds[:1], policy.ModeEnforce, nil); j.Decision != policy.DecisionAllow {
		t.Fatalf("allow: %+v", j)
	}
}

func TestWriteDecisions(t *testing.T) {
	ds := testDecisions(t)
	ds[0].Bound = true
	var b bytes.Buffer
	WriteDecisions(&b, ds, policy.ModeAudit, true)
	want := `DEVICE          ID         DECISION  RULE  REASONS  BOUND
0000:3b:00.0    1b36:0010  allow     r1    -        true
127.0.0.1:2323  8086:1234  deny      -     no-cma   false
  127.0.0.1:2323 no-cma: no CMA
  127.0.0.1:2323 error: boom
policy mode is audit: denies are recorded and reported, nothing is blocked
`
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	ds[0].Verdict.WouldDeny = true
	WriteDecisions(&b, ds[:1], policy.ModeEnforce, false)
	if want := "DEVICE        ID         DECISION                   RULE  REASONS\n0000:3b:00.0  1b36:0010  allow (audit: would deny)  r1    -\n"; b.String() != want {
		t.Fatalf("got\n%q\nwant\n%q", b.String(), want)
	}
}

func TestWritePreflight(t *testing.T) {
	ds := testDecisions(t)
	def := []phase.Deferred{{BDF: ds[1].BDF, Message: "checked at start begin"}}
	var b bytes.Buffer
	WritePreflight(&b, nil, policy.ModeEnforce, def)
	if b.String() != "0000:3c:00.0  deferred: checked at start begin\n" {
		t.Fatalf("only deferred: %q", b.String())
	}
	b.Reset()
	WritePreflight(&b, ds[:1], policy.ModeEnforce, def)
	if !strings.HasPrefix(b.String(), "DEVICE") || !strings.HasSuffix(b.String(), "deferred: checked at start begin\n") {
		t.Fatalf("checked+deferred: %q", b.String())
	}
}

func TestWriteChecks(t *testing.T) {
	var b bytes.Buffer
	WriteChecks(&b, testDecisions(t)[0])
	want := "CHECK  EXPECTED  GOT                                               RESULT\n" +
		"rule   r1        " + strings.Repeat("x", 45) + "...  pass\n" +
		"svn    >= 3      -                                                 FAIL\n\n"
	if b.String() != want {
		t.Fatalf("got\n%q\nwant\n%q", b.String(), want)
	}
}

func TestProgress(t *testing.T) {
	var b bytes.Buffer
	done := Progress(&b, "checking", 3)
	done()
	if !strings.HasPrefix(b.String(), "vfio-gate: checking 3 functions...\nvfio-gate: checking done in ") {
		t.Fatalf("3 functions: %q", b.String())
	}
	b.Reset()
	done = Progress(&b, "checking", 1)
	done()
	if b.Len() != 0 {
		t.Fatalf("one quick function: %q", b.String())
	}
	if testing.Short() {
		return
	}
	done = Progress(&b, "binding", 1)
	time.Sleep(1100 * time.Millisecond)
	done()
	if !strings.HasPrefix(b.String(), "vfio-gate: binding 1 function (attesting, this may take a while)...\nvfio-gate: binding done in 1.") {
		t.Fatalf("one slow function: %q", b.String())
	}
}

func TestReleases(t *testing.T) {
	ds := testDecisions(t)
	rs := []gate.Released{{BDF: ds[0].BDF, Driver: "nvme", Recorded: true}, {BDF: ds[1].BDF, Recorded: true}, {BDF: ds[1].BDF, Err: errors.New("unbind: busy")}}
	j, err := json.Marshal(ReleasesOf(rs))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"released":[{"bdf":"0000:3b:00.0","released":true,"restored_driver":"nvme","recorded":true},` +
		`{"bdf":"0000:3c:00.0","released":true,"restored_driver":"","recorded":true},` +
		`{"bdf":"0000:3c:00.0","released":false,"restored_driver":"","recorded":false,"error":"unbind: busy"}]}`
	if string(j) != want {
		t.Fatalf("json\n%s\nwant\n%s", j, want)
	}
	if j, _ := json.Marshal(ReleasesOf(nil)); string(j) != `{"released":null}` {
		t.Fatalf("none: %s", j)
	}
	var b bytes.Buffer
	WriteReleases(&b, ReleasesOf(rs))
	if want := "0000:3b:00.0: released, driver nvme restored\n0000:3c:00.0: released (left without a driver, as before bind)\n" +
		"0000:3c:00.0: not released: unbind: busy\n"; b.String() != want {
		t.Fatalf("text\n%s\nwant\n%s", b.String(), want)
	}
}
