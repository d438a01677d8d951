package policy_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/internal/testutil"
	"github.com/vfio-gate/vfio-gate/policy"
)

// TestPermissionChecksFollowSymlinks: the checks apply to every directory
// on the way to the file, through every symlink, up to "/": a link whose
// target sits in (or under) a directory another user owns, or a link
// inside such a directory, is refused even when the file itself is
// root-owned (that user could swap the target for any root-owned file).
func TestPermissionChecksFollowSymlinks(t *testing.T) {
	testutil.Require(t, testutil.Root) // chown to another uid
	p := newPKI(t)
	anchorPEM := mustRead(t, p.rootPEM)
	mkdir := func(t *testing.T, path string, uid int, mode os.FileMode) string {
		t.Helper()
		if err := os.MkdirAll(path, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := errors.Join(os.Chown(path, uid, uid), os.Chmod(path, mode)); err != nil {
			t.Fatal(err)
		}
		return path
	}
	writeFile := func(t *testing.T, path string, data []byte) string {
		t.Helper()
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	link := func(t *testing.T, target, path string) string {
		t.Helper()
		if err := os.Symlink(target, path); err != nil {
			t.Fatal(err)
		}
		return path
	}
	withAnchor := func(t *testing.T, dir, anchor string) string {
		return writeFile(t, filepath.Join(dir, "p.yaml"), fmt.Appendf(nil, "version: 1\nrules:\n  - name: r\n    match: {vendor: 1}\n    spdm: {trust_anchors: [%s]}\n", anchor))
	}
	cases := []struct {
		name  string
		setup func(t *testing.T, base, etc string) string // returns the policy path
		want  string                                      // "" = loads
	}{
		{"anchor links to a safe file", func(t *testing.T, base, etc string) string {
			safe := mkdir(t, filepath.Join(base, "safe"), 0, 0o755)
			link(t, writeFile(t, filepath.Join(safe, "a.pem"), anchorPEM), filepath.Join(etc, "a.pem"))
			return withAnchor(t, etc, "a.pem")
		}, ""},
		{"relative link through ..", func(t *testing.T, base, etc string) string {
			safe := mkdir(t, filepath.Join(base, "safe"), 0, 0o755)
			writeFile(t, filepath.Join(safe, "a.pem"), anchorPEM)
			link(t, "../safe/./a.pem", filepath.Join(etc, "a.pem"))
			return withAnchor(t, etc, "a.pem")
		}, ""},
		{"anchor links into a directory another user owns", func(t *testing.T, base, etc string) string {
			other := mkdir(t, filepath.Join(base, "other"), 65534, 0o755)
			link(t, writeFile(t, filepath.Join(other, "a.pem"), anchorPEM), filepath.Join(etc, "a.pem"))
			return withAnchor(t, etc, "a.pem")
		}, "other is owned by uid 65534"},
		{"anchor links to a link in a directory another user owns, pointing at a safe file", func(t *testing.T, base, etc string) string {
			safe := mkdir(t, filepath.Join(base, "safe"), 0, 0o755)
			other := mkdir(t, filepath.Join(base, "other"), 65534, 0o755)
			link(t, writeFile(t, filepath.Join(safe, "bundle.pem"), anchorPEM), filepath.Join(other, "a.pem"))
			link(t, filepath.Join(other, "a.pem"), filepath.Join(etc, "a.pem"))
			return withAnchor(t, etc, "a.pem")
		}, "other is owned by uid 65534"},
		{"anchor links under a directory another user owns, two levels up", func(t *testing.T, base, etc string) string {
			mkdir(t, filepath.Join(base, "x"), 65534, 0o755)
			deep := mkdir(t, filepath.Join(base, "x", "y"), 0, 0o755)
			link(t, writeFile(t, filepath.Join(deep, "a.pem"), anchorPEM), filepath.Join(etc, "a.pem"))
			return withAnchor(t, etc, "a.pem")
		}, "x is owned by uid 65534"},
		{"anchor links under a group-writable directory", func(t *testing.T, base, etc string) string {
			mkdir(t, filepath.Join(base, "g"), 0, 0o775)
			deep := mkdir(t, filepath.Join(base, "g", "y"), 0, 0o755)
			link(t, writeFile(t, filepath.Join(deep, "a.pem"), anchorPEM), filepath.Join(etc, "a.pem"))
			return withAnchor(t, etc, "a.pem")
		}, "g is writable by group or others"},
		{"directory symlink to another user's directory", func(t *testing.T, base, etc string) string {
			other := mkdir(t, filepath.Join(base, "other"), 65534, 0o755)
			writeFile(t, filepath.Join(other, "a.pem"), anchorPEM)
			link(t, other, filepath.Join(etc, "anchors"))
			return withAnchor(t, etc, "anchors/a.pem")
		}, "other is owned by uid 65534"},
		{"policy itself links into another user's directory", func(t *testing.T, base, etc string) string {
			other := mkdir(t, filepath.Join(base, "other"), 65534, 0o755)
			return link(t, writeFile(t, filepath.Join(other, "p.yaml"), []byte("version: 1\n")), filepath.Join(etc, "policy.yaml"))
		}, "other is owned by uid 65534"},
		{"symlink loop", func(t *testing.T, base, etc string) string {
			link(t, filepath.Join(etc, "b.pem"), filepath.Join(etc, "a.pem"))
			link(t, filepath.Join(etc, "a.pem"), filepath.Join(etc, "b.pem"))
			return withAnchor(t, etc, "a.pem")
		}, "symlinks"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := t.TempDir()
			etc := mkdir(t, filepath.Join(base, "etc"), 0, 0o755)
			path := c.setup(t, base, etc)
			_, err := policy.Load(path, nil)
			if c.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
			if c.want != "symlinks" && !errors.Is(err, policy.ErrInsecure) {
				t.Errorf("error does not wrap ErrInsecure: %v", err)
			}
		})
	}
}

// TestFIFOIsRefusedAtOnce: a FIFO named as the policy, an anchor or a
// --trust-anchor file is refused as not a regular file; opening it must
// not wait for a writer.
func TestFIFOIsRefusedAtOnce(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	pol := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(pol, []byte("version: 1\nrules:\n  - name: r\n    match: {vendor: 1}\n    spdm: {trust_anchors: [fifo]}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, load := range map[string]func() error{
		"policy": func() error { _, err := policy.Load(fifo, &policy.LoadOptions{SkipPermissionCheck: true}); return err },
		"anchor": func() error { _, err := policy.Load(pol, &policy.LoadOptions{SkipPermissionCheck: true}); return err },
		"file":   func() error { _, err := policy.ReadRegularFile(fifo, 1<<20); return err },
	} {
		done := make(chan error, 1)
		go func() { done <- load() }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "not a regular file (a FIFO)") {
				t.Errorf("%s: %v, want not a regular file (a FIFO)", name, err)
			}
		case <-time.After(5 * time.Second):
			// Unblock the open so the goroutine ends.
			if f, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
				f.Close()
			}
			t.Fatalf("%s: loading a FIFO still waits after 5 s", name)
		}
	}
}
