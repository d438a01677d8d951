package archtest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// maxTracked is the size above which a tracked file outside testdata is taken
// for a build output (a 10 MB test/vm guest binary was committed once).
const maxTracked = 1 << 20

// emBPF is ELF e_machine for eBPF: bpf2go's committed objects are the one
// kind of ELF file the tree keeps outside testdata.
const emBPF = 247

// buildOutputs returns, for the given repository-relative paths under root,
// the ones that look like build outputs: over maxTracked bytes, or an ELF
// file that is not an eBPF object, unless a path element is "testdata".
func buildOutputs(root string, paths []string) ([]string, error) {
	var bad []string
	for _, p := range paths {
		if slices.Contains(strings.Split(filepath.ToSlash(p), "/"), "testdata") {
			continue
		}
		f, err := os.Open(filepath.Join(root, p))
		if err != nil {
			if os.IsNotExist(err) {
				continue // deleted in the work tree
			}
			return nil, err
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, err
		}
		head := make([]byte, 20)
		n, _ := io.ReadFull(f, head)
		f.Close()
		head = head[:n]
		switch {
		case st.Size() > maxTracked:
			bad = append(bad, fmt.Sprintf("%s: %d bytes (over %d)", p, st.Size(), maxTracked))
		case bytes.HasPrefix(head, []byte("\x7fELF")) && (n < 20 || binary.LittleEndian.Uint16(head[18:20]) != emBPF):
			bad = append(bad, p+": an ELF binary")
		}
	}
	return bad, nil
}

// TestNoBuildOutputsTracked fails when git tracks a build output outside
// testdata (issue 14.13): CI runs it on every submission.
func TestNoBuildOutputsTracked(t *testing.T) {
	root := repoRoot(t)
	paths := trackedFiles(t, root)
	bad, err := buildOutputs(root, paths)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bad {
		t.Errorf("tracked build output (remove it, add it to .gitignore): %s", b)
	}
}

func TestBuildOutputsDetects(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	elf := func(machine uint16) []byte {
		h := make([]byte, 64)
		copy(h, "\x7fELF")
		binary.LittleEndian.PutUint16(h[18:], machine)
		return h
	}
	write("guest", elf(62)) // x86-64
	write("audit/prog_bpfel.o", elf(emBPF))
	write("big.txt", bytes.Repeat([]byte("a"), maxTracked+1))
	write("pkg/testdata/big.bin", bytes.Repeat([]byte("a"), maxTracked+1))
	write("pkg/testdata/tool", elf(62))
	write("small.go", []byte("package x\n"))
	bad, err := buildOutputs(dir, []string{"guest", "audit/prog_bpfel.o", "big.txt", "pkg/testdata/big.bin", "pkg/testdata/tool", "small.go", "gone"})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(bad, "\n")
	if len(bad) != 2 || !strings.Contains(got, "guest: an ELF binary") || !strings.Contains(got, "big.txt:") {
		t.Fatalf("build outputs found:\n%s", got)
	}
}

// repoRoot is the repository's root directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// trackedFiles lists what git tracks under root (skips without a checkout).
func trackedFiles(t *testing.T, root string) []string {
	t.Helper()
	out, err := exec.Command("git", "-C", root, "ls-files", "-z").Output()
	if err != nil {
		t.Skipf("needs a git checkout: %v", err)
	}
	paths := strings.Split(strings.TrimRight(string(out), "\x00"), "\x00")
	if len(paths) < 50 {
		t.Fatalf("git ls-files listed %d files; expected the whole tree", len(paths))
	}
	return paths
}

// writeTreeFile writes text to root/name, making its directories: the
// synthetic trees the checkers' own tests run on.
func writeTreeFile(t *testing.T, root, name, text string) {
	t.Helper()
	p := filepath.Join(root, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}
