package evexport

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vfio-gate/vfio-gate/tpm"
)

// TestNothingToExport: a TPM whose current boot has no records is a
// LogError (exit 5 in the CLI), and no output directory is created.
func TestNothingToExport(t *testing.T) {
	tp, err := tpm.Open("sim")
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(filepath.Join(dir, "log"), 0o700); err != nil {
		t.Fatal(err)
	}
	m, err := Write(context.Background(), tp, Options{LogDir: filepath.Join(dir, "log"), EvidenceDir: filepath.Join(dir, "evidence"),
		Out: out, PCR: tpm.DefaultPCR, Nonce: "0102"})
	var le *LogError
	if m != nil || !errors.As(err, &le) || !strings.Contains(err.Error(), "no records") {
		t.Fatalf("Write = %+v, %v; want a LogError", m, err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s created: %v", out, err)
	}
	if _, err := Write(context.Background(), tp, Options{LogDir: dir, Out: out, Nonce: "xyz"}); err == nil || !strings.Contains(err.Error(), "nonce") {
		t.Errorf("bad nonce: %v", err)
	}
}

// TestNothingRecorded: a state directory without an event log is said to
// have recorded nothing yet (not a failure to open the log's lock), and
// nothing is created.
func TestNothingRecorded(t *testing.T) {
	tp, err := tpm.Open("sim")
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	dir := t.TempDir()
	logDir, out := filepath.Join(dir, "events"), filepath.Join(dir, "out")
	_, err = Write(context.Background(), tp, Options{LogDir: logDir, EvidenceDir: filepath.Join(dir, "evidence"), Out: out, PCR: tpm.DefaultPCR, Nonce: "0102"})
	if !errors.Is(err, ErrNothingRecorded) || err.Error() != "no event log under "+logDir+": nothing recorded yet (run check or the daemon first)" {
		t.Fatalf("Write = %v", err)
	}
	for _, p := range []string{logDir, out} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s created: %v", p, err)
		}
	}
}

func TestParseNonce(t *testing.T) {
	for s, ok := range map[string]bool{"01": true, strings.Repeat("ab", 64): true, "": false, "xyz": false, "012": false, strings.Repeat("ab", 65): false} {
		if n, err := ParseNonce(s); (err == nil) != ok || ok && len(n) != len(s)/2 {
			t.Errorf("ParseNonce(%q) = %x, %v; want ok %v", s, n, err, ok)
		}
	}
}

func TestOptionsCheck(t *testing.T) {
	for _, c := range []struct {
		boot, nonce, err string
	}{
		{"current", "0102", ""},
		{"previous", "0102", `--boot "previous": only the current boot can be quoted`},
		{"", "0102", `--boot "": only the current boot can be quoted`},
		{"current", "", "--nonce: want 1 to 64 bytes in hex"},
		{"current", "zz", "--nonce: want 1 to 64 bytes in hex"},
	} {
		err := Options{Boot: c.boot, Nonce: c.nonce}.Check()
		if got := fmt.Sprint(err); c.err == "" && err != nil || c.err != "" && got != c.err {
			t.Errorf("Check(%q, %q) = %v, want %q", c.boot, c.nonce, err, c.err)
		}
	}
}
