package evstore

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// Load takes a digest from the store or a bundle file.
func TestLoad(t *testing.T) {
	s := Open(t.TempDir(), Options{})
	b := sample(1)
	if err := s.Put(b); err != nil {
		t.Fatal(err)
	}
	if got, err := Load(s.Dir(), b.Digest); err != nil || got.Digest != b.Digest {
		t.Fatalf("by digest: %v %v", got, err)
	}
	data, err := sample(2).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "b.json")
	if err := os.WriteFile(f, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := Load(s.Dir(), f); err != nil || got.Digest != sample(2).Digest {
		t.Fatalf("by file: %v %v", got, err)
	}
	var pe *fs.PathError
	if _, err := Load(s.Dir(), filepath.Join(t.TempDir(), "missing.json")); !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &pe) || pe.Op != "stat" {
		t.Fatalf("missing file: %v", err)
	}
	if _, err := Load(s.Dir(), sample(3).Digest); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("digest not stored: %v", err)
	}
}
