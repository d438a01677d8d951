package tpm

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// Full segments roll over to a new one that starts with a "segment"
// baseline; Verify chains them; a lost index is rebuilt from the last
// segment; a deleted middle segment is named.
func TestSegmentsRollOverAndChain(t *testing.T) {
	_, tp := openSimT(t)
	r, dir := newRec(t, tp, DefaultPCR)
	r.segRecords = 10
	for range 5 {
		recordSample(t, r, true) // 6 events each
	}
	b, err := FindBoot(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Segments) < 3 {
		t.Fatalf("%d segments, want rollover", len(b.Segments))
	}
	res := mustVerify(t, tp, dir, DefaultPCR)
	if !res.OK || res.Segments != len(b.Segments) || res.Checked != 30 || res.Records != 30+len(b.Segments) {
		t.Fatalf("%+v", res)
	}
	// Every segment starts with a baseline; only the first is "boot".
	for i, p := range b.Segments {
		bd, err := firstBaseline(p)
		if err != nil || (i == 0) != (bd.Reason == "boot") || (i > 0 && bd.Reason != "segment") {
			t.Fatalf("segment %d: %+v %v", i+1, bd, err)
		}
	}

	// Record reads neither earlier segments nor what the index covers:
	// garbage there (same size) goes unnoticed by Record, and Verify names it.
	first, _ := os.ReadFile(b.Segments[0])
	os.WriteFile(b.Segments[0], bytes.Repeat([]byte("x"), len(first)), 0o640)
	recordSample(t, r, true)
	if res := mustVerify(t, tp, dir, DefaultPCR); res.OK || hasProblem(res, ProblemMalformed) == nil {
		t.Fatalf("garbage segment: %+v", res)
	}
	os.WriteFile(b.Segments[0], first, 0o640)
	res = mustVerify(t, tp, dir, DefaultPCR)
	if !res.OK {
		t.Fatalf("restored: %+v", res.Problems)
	}

	// Lost index: rebuilt, and recording continues the numbering.
	if err := os.Remove(filepath.Join(dir, indexName)); err != nil {
		t.Fatal(err)
	}
	recs := recordSample(t, r, false)
	if n := uint64(res.Records); recs[0].RecNum != n+1 && recs[0].RecNum != n+2 { // +2: after a segment baseline
		t.Fatalf("after rebuild recnum %d, want %d (or %d)", recs[0].RecNum, n+1, n+2)
	}
	// A corrupt index is not trusted either.
	os.WriteFile(filepath.Join(dir, indexName), []byte(`{"schema":"vfio-gate/log-index/v1","boot":1,"segment":1,"size":5,"next_recnum":2,"values":{"sha256":"00"}}`), 0o640)
	recordSample(t, r, false)
	if res := mustVerify(t, tp, dir, DefaultPCR); !res.OK {
		t.Fatalf("after index rebuilds: %+v", res.Problems)
	}

	// A deleted middle segment: the record numbers have a gap.
	if boots, _ := ListBoots(dir); len(boots) != 1 {
		t.Fatalf("a corrupt index started a new boot: %+v", boots)
	}
	b, _ = FindBoot(dir, 0)
	os.Remove(b.Segments[1])
	res = mustVerify(t, tp, dir, DefaultPCR)
	if res.OK || hasProblem(res, ProblemMissing) == nil {
		t.Fatalf("deleted segment: %+v", res)
	}
	// A deleted first segment: the boot baseline is gone.
	os.Remove(b.Segments[0])
	res = mustVerify(t, tp, dir, DefaultPCR)
	if res.OK || hasProblem(res, ProblemOrder) == nil {
		t.Fatalf("deleted first segment: %+v", res)
	}
}

// Records appended after the index but never extended (a crash between the
// append and the extend) are acknowledged by a resync baseline in a new
// segment; Verify warns instead of failing.
func TestTailPastIndexNeverExtended(t *testing.T) {
	_, tp := openSimT(t)
	r, dir := newRec(t, tp, DefaultPCR)
	recordSample(t, r, true)
	rewriteLines(t, dir, func(l []string) []string {
		rec, _ := ParseRecord([]byte(l[len(l)-1]))
		rec.RecNum++
		b, _ := rec.MarshalJSON()
		return append(l, string(b))
	})
	if res := mustVerify(t, tp, dir, DefaultPCR); hasProblem(res, ProblemUnextended) == nil {
		t.Fatalf("before the next Record: %+v", res)
	}
	recordSample(t, r, true)
	if bd, err := firstBaseline(lastSegment(t, dir)); err != nil || bd.Reason != "resync" {
		t.Fatalf("new segment baseline %+v %v", bd, err)
	}
	res := mustVerify(t, tp, dir, DefaultPCR)
	if !res.OK || hasWarning(res, WarnAcknowledged) == nil {
		t.Fatalf("%+v", res)
	}
}

// Earlier boots beyond the retention are removed oldest first when a new
// boot starts; the current boot never is.
func TestRetentionPrunesOldestBoots(t *testing.T) {
	sim, tp := openSimT(t)
	r, dir := newRec(t, tp, DefaultPCR)
	r.ret = Retention{MaxBytes: 1} // keep no earlier boot
	for i := range 3 {
		recordSample(t, r, true)
		boots, err := ListBoots(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(boots) != 1 || boots[0].Seq != i+1 {
			t.Fatalf("after boot %d: %+v", i+1, boots)
		}
		if err := sim.Reset(); err != nil {
			t.Fatal(err)
		}
	}
	r.ret = Retention{MaxBytes: -1} // unbounded
	for range 2 {
		recordSample(t, r, true)
		if err := sim.Reset(); err != nil {
			t.Fatal(err)
		}
	}
	boots, _ := ListBoots(dir)
	if len(boots) != 3 || boots[0].Seq != 3 || boots[2].Seq != 5 {
		t.Fatalf("unbounded: %+v", boots)
	}
	// Prune never removes the boot being kept, however small the bound.
	if removed, err := prune(dir, 5, Retention{MaxBytes: 1}, r.now()); err != nil || len(removed) != 2 {
		t.Fatalf("removed %v %v", removed, err)
	}
	if boots, _ := ListBoots(dir); len(boots) != 1 || boots[0].Seq != 5 {
		t.Fatalf("after prune: %+v", boots)
	}
}
