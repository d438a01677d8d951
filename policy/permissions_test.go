package policy_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vfio-gate/vfio-gate/internal/testutil"
	"github.com/vfio-gate/vfio-gate/policy"
)

// secureDir returns a fresh directory that passes the checks (root-owned 0755
// when running as root).
func secureDir(t *testing.T) string {
	d := filepath.Join(t.TempDir(), "etc")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestPermissionChecks(t *testing.T) {
	// Ownership must be root: a non-root test cannot create root-owned
	// files, so every strict load would fail for the owner alone.
	testutil.Require(t, testutil.Root)
	p := newPKI(t)
	write := func(dir, name, text string, mode os.FileMode) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil { // umask-proof
			t.Fatal(err)
		}
		return path
	}
	good := "version: 1\n"
	cases := []struct {
		name  string
		setup func(dir string) string // returns the policy path
		want  string                  // "" = loads
	}{
		{"0644 root file in 0755 root dir", func(d string) string { return write(d, "p.yaml", good, 0o644) }, ""},
		{"0600", func(d string) string { return write(d, "p.yaml", good, 0o600) }, ""},
		{"group-writable", func(d string) string { return write(d, "p.yaml", good, 0o664) }, "writable by group or others"},
		{"world-writable", func(d string) string { return write(d, "p.yaml", good, 0o646) }, "writable by group or others"},
		{"not owned by root", func(d string) string {
			path := write(d, "p.yaml", good, 0o644)
			if err := os.Chown(path, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			return path
		}, "owned by uid 65534"},
		{"world-writable directory", func(d string) string {
			if err := os.Chmod(d, 0o777); err != nil {
				t.Fatal(err)
			}
			return write(d, "p.yaml", good, 0o644)
		}, "etc is writable by group or others"},
		{"sticky world-writable directory", func(d string) string {
			if err := os.Chmod(d, 0o1777); err != nil {
				t.Fatal(err)
			}
			return write(d, "p.yaml", good, 0o644)
		}, "etc is writable by group or others"},
		{"directory not owned by root", func(d string) string {
			if err := os.Chown(d, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			return write(d, "p.yaml", good, 0o644)
		}, "etc is owned by uid 65534"},
		{"anchor world-writable", func(d string) string {
			a := write(d, "a.pem", string(mustRead(t, p.rootPEM)), 0o666)
			return write(d, "p.yaml", fmt.Sprintf("version: 1\nrules:\n  - name: r\n    match: {vendor: 1}\n    spdm: {trust_anchors: [%s]}\n", a), 0o644)
		}, "p.yaml:5:"},
		{"CRL not owned by root", func(d string) string {
			a := write(d, "a.pem", string(mustRead(t, p.rootPEM)), 0o644)
			c := write(d, "c.crl", string(mustRead(t, p.crl("x.crl", p.root, now, now.AddDate(0, 0, 1)))), 0o644)
			if err := os.Chown(c, 65534, 0); err != nil {
				t.Fatal(err)
			}
			return write(d, "p.yaml", fmt.Sprintf("version: 1\nrules:\n  - name: r\n    match: {vendor: 1}\n    spdm:\n      trust_anchors: [%s]\n      crls: [%s]\n", a, c), 0o644)
		}, "p.yaml:7:"},
		{"anchor fine", func(d string) string {
			a := write(d, "a.pem", string(mustRead(t, p.rootPEM)), 0o444)
			return write(d, "p.yaml", fmt.Sprintf("version: 1\nrules:\n  - name: r\n    match: {vendor: 1}\n    spdm: {trust_anchors: [%s]}\n", filepath.Base(a)), 0o644)
		}, ""},
		{"symlink to a world-writable file", func(d string) string {
			target := write(d, "real.yaml", good, 0o666)
			link := filepath.Join(d, "p.yaml")
			if err := os.Symlink(target, link); err != nil {
				t.Fatal(err)
			}
			return link
		}, "writable by group or others"},
		{"directory instead of file", func(d string) string {
			path := filepath.Join(d, "p.yaml")
			if err := os.Mkdir(path, 0o755); err != nil {
				t.Fatal(err)
			}
			return path
		}, "not a regular file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := c.setup(secureDir(t))
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
			if strings.Contains(c.want, "writable") || strings.Contains(c.want, "owned") || strings.HasSuffix(c.want, ":") {
				if !errors.Is(err, policy.ErrInsecure) {
					t.Errorf("error does not wrap ErrInsecure: %v", err)
				}
			}
			// The same file loads when the checks are explicitly skipped.
			if strings.Contains(c.want, "writable") || strings.Contains(c.want, "owned") {
				if _, err := policy.Load(path, &policy.LoadOptions{SkipPermissionCheck: true}); err != nil {
					t.Errorf("with SkipPermissionCheck: %v", err)
				}
			}
		})
	}
}

func TestMissingPolicyIsAnError(t *testing.T) {
	_, err := policy.Load(filepath.Join(t.TempDir(), "none.yaml"), nil)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing policy: %v", err)
	}
}

func TestOversizePolicyIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(path, []byte("version: 1\n#"+strings.Repeat("x", 1<<20)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := policy.Load(path, &policy.LoadOptions{SkipPermissionCheck: true}); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("oversize policy: %v", err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
