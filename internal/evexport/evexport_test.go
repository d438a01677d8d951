package evexport

import (
	"context"
	"errors"
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
