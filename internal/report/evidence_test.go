package report

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/gate/evstore"
	"github.com/vfio-gate/vfio-gate/internal/evexport"
	"github.com/vfio-gate/vfio-gate/policy"
)

func testBundle() *evstore.Bundle {
	return &evstore.Bundle{Schema: "s1", Digest: "3f1c", Evidence: json.RawMessage(`{"a": 1}`),
		Decision: evstore.Decision{BDF: "0000:3b:00.0", Verdict: "allow", Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}}
}

// The documents keep the key order of the maps they replaced (sorted).
func TestEvidenceDocuments(t *testing.T) {
	b := testBundle()
	j, err := json.Marshal(EvidenceShowOf(b))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(map[string]any{"bundle_schema": b.Schema, "digest": b.Digest, "decision": b.Decision, "evidence": b.Evidence})
	if !bytes.Equal(j, want) {
		t.Fatalf("show:\n%s\nwant\n%s", j, want)
	}
	rep := &attest.OfflineReport{OK: true, Checks: []attest.OfflineCheck{{Name: "chain", OK: true}}}
	j, _ = json.Marshal(EvidenceVerifyOf(b, rep, nil))
	want, _ = json.Marshal(map[string]any{"digest": b.Digest, "decision": b.Decision, "ok": rep.OK, "checks": rep.Checks})
	if !bytes.Equal(j, want) {
		t.Fatalf("verify:\n%s\nwant\n%s", j, want)
	}
	v := policy.Verdict{Decision: "deny", Reasons: []policy.Reason{{Code: policy.CodeNoCMA, Message: "m"}}}
	j, _ = json.Marshal(EvidenceVerifyOf(b, rep, &v))
	want, _ = json.Marshal(map[string]any{"digest": b.Digest, "decision": b.Decision, "ok": rep.OK, "checks": rep.Checks, "policy_verdict": v})
	if !bytes.Equal(j, want) {
		t.Fatalf("verify with policy:\n%s\nwant\n%s", j, want)
	}
}

func TestWriteEvidenceVerify(t *testing.T) {
	rep := &attest.OfflineReport{Checks: []attest.OfflineCheck{{Name: "chain", OK: true, Detail: "to root"}, {Name: "measurements-signature", Detail: "bad"}}}
	v := policy.Verdict{Decision: "deny", Reasons: []policy.Reason{{Code: policy.CodeNoCMA, Message: "m"}}}
	var b bytes.Buffer
	WriteEvidenceVerify(&b, EvidenceVerifyOf(testBundle(), rep, &v), "/p.yaml")
	want := `bundle 3f1c: 0000:3b:00.0 ALLOW (recorded 2026-01-02T03:04:05Z)
  ok   chain                  to root
  FAIL measurements-signature bad
policy /p.yaml: deny
  no-cma: m
`
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestWriteExport(t *testing.T) {
	var b bytes.Buffer
	m := &evexport.Manifest{Boot: 3, Events: 7, Bundles: []string{"a", "b"}, MissingBundles: []string{"c"}}
	if err := WriteExport(&b, "/tmp/x", m, 16, "00ff"); err != nil {
		t.Fatal(err)
	}
	if want := "/tmp/x: boot 3, 7 events, PCR 16 quoted with nonce 00ff; 2 bundles (1 missing)\n"; b.String() != want {
		t.Fatalf("got %q, want %q", b.String(), want)
	}
}
