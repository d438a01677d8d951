package gate_test

import (
	"encoding/hex"
	"path/filepath"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/gate"
	"github.com/vfio-gate/vfio-gate/gate/evstore"
	"github.com/vfio-gate/vfio-gate/internal/testutil/logfill"
	"github.com/vfio-gate/vfio-gate/tpm"
)

// Every recorded decision's evidence is stored by the digest its verdict
// event names, and re-verifies offline.
func TestDecisionStoresEvidenceBundle(t *testing.T) {
	w := newWorld(t, policyOpts{}, dev{bdf: "0000:01:00.0", profile: "good"})
	store := evstore.Open(filepath.Join(w.dir, "state", "evidence"), evstore.Options{})
	ds := check(t, w.gate(func(o *gate.Options) { o.Evidence = store }), true, bdf(t, "0000:01:00.0"))
	vs := w.verifyLog()
	if len(vs) != 1 || hex.EncodeToString(vs[0].EvidenceDigest) != hex.EncodeToString(ds[0].EvidenceDigest) {
		t.Fatalf("verdicts %+v", vs)
	}
	b, err := store.Get(hex.EncodeToString(vs[0].EvidenceDigest))
	if err != nil {
		t.Fatalf("bundle of the recorded verdict: %v", err)
	}
	if b.Decision.Verdict != "allow" || b.Decision.BDF != "0000:01:00.0" || b.Decision.Rule != "nvme" {
		t.Fatalf("bundle decision %+v", b.Decision)
	}
	ev := ds[0].Evidence
	rep, _ := attest.VerifyOffline(ev, nil, time.Now())
	if !rep.OK {
		t.Fatalf("offline re-check: %+v", rep.Checks)
	}
}

// Issue 14 item 2: a log of 250k records (over the old 64 MiB / 200,000
// record cap that denied every decision) neither denies a decision nor
// slows it down.
func TestDecisionNotDeniedOrSlowedByLogSize(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 250k-record log (-short)")
	}
	small := newWorld(t, policyOpts{}, dev{bdf: "0000:01:00.0", profile: "good"})
	g := small.gate()
	median := func(g *gate.Gate) time.Duration {
		var ds []time.Duration
		for range 7 {
			start := time.Now()
			d := check(t, g, true, bdf(t, "0000:01:00.0"))[0]
			ds = append(ds, time.Since(start))
			if !d.Allowed() || !d.Recorded {
				t.Fatalf("decision denied or not recorded: %v %v", d.Verdict.Reasons, d.Err)
			}
		}
		for i := range ds {
			for j := i; j > 0 && ds[j] < ds[j-1]; j-- {
				ds[j], ds[j-1] = ds[j-1], ds[j]
			}
		}
		return ds[len(ds)/2]
	}
	base := median(g)
	small.tp.Close()

	big := newWorld(t, policyOpts{}, dev{bdf: "0000:01:00.0", profile: "good"})
	logfill.Fill(t, big.tp, big.logPath, big.rec.PCR(), 250_000)
	// The fill is a new boot for the TPM: the recorder continues it.
	cost := median(big.gate())
	t.Logf("median decision: %v with an empty log, %v on 250k records", base, cost)
	if cost > 3*base+50*time.Millisecond {
		t.Errorf("a decision on a 250k-record log took %v, on an empty log %v", cost, base)
	}
	b, err := tpm.FindBoot(big.logPath, 0)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tpm.ReadLog(b.Segments[len(b.Segments)-1])
	if err != nil || l.Records[len(l.Records)-1].RecNum < 250_000+7 {
		t.Fatalf("the decisions did not continue the 250k-record boot: %v", err)
	}
}
