package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/spf13/cobra/doc"
)

var updateCLIDocs = flag.Bool("update-cli-docs", false, "rewrite docs/cli from the commands' help")

// TestCLIDocsCurrent keeps docs/cli, the per-command reference, equal to what
// the commands' own help generates. After changing a command's help:
//
//	go test ./cmd/vfio-gate -run TestCLIDocsCurrent -update-cli-docs
func TestCLIDocsCurrent(t *testing.T) {
	root := newRootCmd(&env{getenv: func(string) string { return "" }})
	root.DisableAutoGenTag = true
	gen := t.TempDir()
	if err := doc.GenMarkdownTree(root, gen); err != nil {
		t.Fatal(err)
	}
	want := readTree(t, gen)
	dir := filepath.Join("..", "..", "docs", "cli")
	if *updateCLIDocs {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range want {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	got := readTree(t, dir)
	var names []string
	for n := range want {
		names = append(names, n)
	}
	for n := range got {
		if _, ok := want[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		if !bytes.Equal(got[n], want[n]) {
			t.Errorf("docs/cli/%s is stale (or extra); regenerate: go test ./cmd/vfio-gate -run TestCLIDocsCurrent -update-cli-docs", n)
		}
	}
	if len(want) < 20 {
		t.Fatalf("generated only %d pages", len(want))
	}
}

func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}
