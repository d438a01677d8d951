package evstore

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func sample(i int) *Bundle {
	ev := []byte(`{"identity":{"bdf":"0000:3b:00.0","vendor_id":32902},"note":"<&> kept as is","n":` + string(rune('0'+i%10)) + `}`)
	return New(ev, Decision{BDF: "0000:3b:00.0", Verdict: "allow", Rule: "r", Time: time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)})
}

// Bundles round-trip by digest with their evidence bytes intact (no HTML
// escaping), and an altered file is refused.
func TestPutGetRoundTrip(t *testing.T) {
	s := Open(t.TempDir(), Options{})
	b := sample(1)
	if err := s.Put(b); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(strings.ToUpper(b.Digest))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Evidence, b.Evidence) || got.Decision.BDF != "0000:3b:00.0" || got.Schema != Schema {
		t.Fatalf("got %+v", got)
	}
	p := filepath.Join(s.Dir(), b.Digest+".json")
	raw, _ := os.ReadFile(p)
	os.WriteFile(p, bytes.Replace(raw, []byte("kept as is"), []byte("kept as it"), 1), 0o640)
	if _, err := s.Get(b.Digest); err == nil || !strings.Contains(err.Error(), "does not hash") {
		t.Fatalf("altered bundle: %v", err)
	}
	for _, bad := range []string{"", "../x", strings.Repeat("g", 64), b.Digest[:63]} {
		if _, err := s.Get(bad); err == nil {
			t.Errorf("Get(%q) accepted", bad)
		}
	}
	// A symlink in place of a bundle is not followed.
	target := filepath.Join(t.TempDir(), "elsewhere.json")
	data, _ := sample(2).Marshal()
	os.WriteFile(target, data, 0o640)
	os.Remove(p)
	os.Symlink(target, p)
	if _, err := s.Get(b.Digest); err == nil {
		t.Fatal("followed a symlink")
	}
}

// The store keeps at most MaxFiles bundles, removing the oldest first.
func TestPruneOldestFirst(t *testing.T) {
	s := Open(t.TempDir(), Options{MaxFiles: 3, MaxBytes: -1})
	var ds []string
	for i := range 6 {
		b := sample(i)
		if err := s.Put(b); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(s.Dir(), b.Digest+".json")
		os.Chtimes(p, time.Unix(int64(1000+i), 0), time.Unix(int64(1000+i), 0))
		ds = append(ds, b.Digest)
	}
	removed, err := s.Prune()
	if err != nil || len(removed) != 3 {
		t.Fatalf("removed %v %v", removed, err)
	}
	for i, d := range ds {
		_, err := s.Get(d)
		if (i >= 3) != (err == nil) {
			t.Errorf("bundle %d: %v", i, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	data, _ := sample(1).Marshal()
	f.Add(data)
	f.Add([]byte(`{"schema":"vfio-gate/evidence-bundle/v1"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := Parse(data)
		if (b == nil) == (err == nil) {
			t.Fatalf("result %v, err %v", b, err)
		}
		if err != nil {
			return
		}
		again, err := b.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		b2, err := Parse(again)
		if err != nil || b2.Digest != b.Digest || !bytes.Equal(b2.Evidence, b.Evidence) {
			t.Fatalf("re-parse: %v", err)
		}
	})
}
