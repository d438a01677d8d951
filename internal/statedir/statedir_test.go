package statedir_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/vfio-gate/vfio-gate/internal/statedir"
)

func TestWriteAndReadDoNotFollowSymlinks(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	r, err := statedir.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("created state dir: %v %v", st.Mode(), err)
	}
	other := filepath.Join(dir, "other")
	if err := os.WriteFile(other, []byte("other"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A symlink at the temporary name, inside the directory: replaced, not followed.
	if err := os.Symlink(other, filepath.Join(dir, "f.tmp")); err != nil {
		t.Fatal(err)
	}
	if err := statedir.WriteFile(r, "f", []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(other); string(b) != "other" {
		t.Fatalf("symlink target written: %q", b)
	}
	if b, err := statedir.ReadFile(r, "f", 10); err != nil || string(b) != "new" {
		t.Fatalf("read back %q %v", b, err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "f.tmp")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary file left: %v", err)
	}
	// Reading through a symlink is refused.
	if err := os.Symlink(other, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if _, err := statedir.ReadFile(r, "link", 10); err == nil {
		t.Fatal("read through a symlink")
	}
	if _, err := statedir.ReadFile(r, "f", 2); err == nil {
		t.Fatal("oversize read accepted")
	}
	if err := statedir.Remove(r, "f"); err != nil {
		t.Fatal(err)
	}
	if err := statedir.Remove(r, "f"); err != nil {
		t.Fatalf("removing a missing file: %v", err)
	}
}

func TestOpenRefusesAWritableDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o770); err != nil {
		t.Fatal(err)
	}
	if _, err := statedir.Open(dir); !errors.Is(err, statedir.ErrUnsafe) {
		t.Fatalf("group-writable: %v", err)
	}
	if err := statedir.Check(dir); !errors.Is(err, statedir.ErrUnsafe) {
		t.Fatalf("Check: %v", err)
	}
	if err := statedir.Check(filepath.Join(dir, "missing")); err != nil {
		t.Fatalf("missing dir: %v", err)
	}
}
