//go:build linux

package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The EXPORT lines the guest prints carry the directory byte for byte, in
// lines the serial log keeps whole, with a size and hash that catch a lost
// line (test/vm/run reassembles them the same way: the data lines joined,
// base64-decoded, hashed, untarred).
func TestShipExportRoundTrip(t *testing.T) {
	dir := t.TempDir()
	want := map[string][]byte{
		"eventlog.bin":      bytes.Repeat([]byte{0, 1, 2, 0xff}, 5000),
		"quote.msg":         []byte("\xffTCG\x80\x18"),
		"bundles/ab12.json": []byte(`{"schema":"vfio-gate/evidence-bundle/v1"}`),
		"manifest.json":     []byte("{}\n"),
		"bundles/cd34.json": incompressible(9000), // several EXPORT lines
	}
	for name, data := range want {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o700)
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tgz, files, err := tarGz(dir)
	if err != nil || files != len(want) {
		t.Fatalf("tarGz: %d files, %v", files, err)
	}
	var out bytes.Buffer
	n := shipExport(&out, tgz)
	if n < 3 {
		t.Fatalf("%d data lines for %d bytes: want several", n, len(tgz))
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != n+2 || lines[len(lines)-1] != "EXPORT END" {
		t.Fatalf("%d lines for %d data lines:\n%s", len(lines), n, out.String())
	}
	var size int
	var sum string
	if _, err := fmt.Sscanf(lines[0], "EXPORT BEGIN %d %s", &size, &sum); err != nil {
		t.Fatalf("%q: %v", lines[0], err)
	}
	var b64 strings.Builder
	for _, l := range lines[1 : len(lines)-1] {
		d, ok := strings.CutPrefix(l, "EXPORT ")
		if !ok || len(d) > exportChunk || len(d) == 0 {
			t.Fatalf("data line %q", l[:min(len(l), 40)])
		}
		b64.WriteString(d)
	}
	got, err := base64.StdEncoding.DecodeString(b64.String())
	if err != nil || len(got) != size || fmt.Sprintf("%x", sha256.Sum256(got)) != sum {
		t.Fatalf("reassembled %d bytes (%v), BEGIN says %d %s", len(got), err, size, sum)
	}
	zr, err := gzip.NewReader(bytes.NewReader(got))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	seen := 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeDir {
			continue
		}
		data, _ := io.ReadAll(tr)
		if !bytes.Equal(data, want[h.Name]) {
			t.Errorf("%s: %d bytes, want %d", h.Name, len(data), len(want[h.Name]))
		}
		seen++
	}
	if seen != len(want) {
		t.Errorf("%d files in the tar, want %d", seen, len(want))
	}
}

// incompressible returns n bytes of a SHA-256 chain.
func incompressible(n int) []byte {
	var b []byte
	h := sha256.Sum256(nil)
	for len(b) < n {
		h = sha256.Sum256(h[:])
		b = append(b, h[:]...)
	}
	return b[:n]
}
