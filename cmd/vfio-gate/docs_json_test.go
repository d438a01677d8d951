package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vfio-gate/vfio-gate/internal/testutil/schematest"
	"github.com/vfio-gate/vfio-gate/pci/sysfstest"
)

// docBlockAfter returns the lines of docs/FILE after the line that is exactly
// prompt (a "$ vfio-gate ..." line inside a code block), up to the next line
// starting with "$ " or the end of the block.
func docBlockAfter(t *testing.T, file, prompt string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", file))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if l != prompt {
			continue
		}
		var out []string
		for _, m := range lines[i+1:] {
			if strings.HasPrefix(m, "$ ") || strings.HasPrefix(m, "```") || m == "" {
				break
			}
			out = append(out, m)
		}
		return strings.Join(out, "\n") + "\n"
	}
	t.Fatalf("docs/%s has no line %q", file, prompt)
	return ""
}

// TestDocsScanJSONProduced: docs/guide.md's `scan --json` example is what
// the command prints for a function with those attributes (a virtio-net
// function with no IOMMU group, as on the host it was first taken from).
func TestDocsScanJSONProduced(t *testing.T) {
	sys := t.TempDir()
	tr, err := sysfstest.New(sys)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Add(sysfstest.Function{BDF: "0000:00:03.0", Vendor: 0x1af4, Device: 0x1041, SubVendor: 0x1af4, SubDev: 0x1041,
		Class: 0x020000, Revision: 1, Driver: "virtio-pci", IOMMUGroup: -1}); err != nil {
		t.Fatal(err)
	}
	const prompt = "$ vfio-gate scan --json --no-doe 0000:00:03.0"
	want := docBlockAfter(t, "guide.md", prompt)
	code, got, errs := runCLI(t, "--sysfs-root", sys, "scan", "--json", "--no-doe", "0000:00:03.0")
	if code != 0 {
		t.Fatalf("scan: exit %d: %s", code, errs)
	}
	if got != want {
		t.Fatalf("docs/guide.md's example differs from the output; replace it with:\n%s\n(doc has)\n%s", got, want)
	}
}

// TestDocsJSONExamplesMatchSchemas: every complete JSON object in a ```json
// block of docs/ and the README that names a schema validates against that
// schema's file, so an example cannot drift from what the commands print.
func TestDocsJSONExamplesMatchSchemas(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join("..", "..", "README.md"))
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, blk := range strings.Split(string(b), "```json\n")[1:] {
			end := strings.Index(blk, "```")
			if end < 0 {
				t.Fatalf("%s: unterminated json block", f)
			}
			body := bytes.TrimSpace([]byte(blk[:end]))
			var doc struct {
				Schema string `json:"schema"`
			}
			if json.Unmarshal(body, &doc) != nil || !strings.HasPrefix(doc.Schema, "vfio-gate/") {
				continue // a fragment or an example of something else
			}
			kind := strings.TrimSuffix(strings.TrimPrefix(doc.Schema, "vfio-gate/"), "/v1")
			t.Run(filepath.Base(f)+"/"+kind, func(t *testing.T) { schematest.Validate(t, kind, body) })
			n++
		}
	}
	if n < 2 {
		t.Fatalf("found only %d JSON examples naming a schema in docs/", n)
	}
}
