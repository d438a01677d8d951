package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/internal/testutil"
)

func TestParse(t *testing.T) {
	text := "# comment\nversion: 1\ntpm: /dev/tpmrm0\ndaemon:\n  poll-interval: 30s\n  metrics-listen: 127.0.0.1:9464\ndoctor:\n"
	c, err := Parse("x.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	want := &File{Path: "x.yaml", Version: 1, Flags: map[string][]Value{
		"":       {{Name: "tpm", Value: "/dev/tpmrm0", Line: 3}},
		"daemon": {{Name: "poll-interval", Value: "30s", Line: 5}, {Name: "metrics-listen", Value: "127.0.0.1:9464", Line: 6}},
		"doctor": {{Line: 7}},
	}}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("Parse = %+v, want %+v", c, want)
	}
	if c, err := Parse("empty", nil); err != nil || c.Version != 0 || len(c.Flags) != 0 {
		t.Fatalf("empty file: %+v, %v", c, err)
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{"version: 2\n", `config x.yaml:1: version "2": this vfio-gate reads version 1`},
		{"tpm: /dev/tpmrm0\n", `config x.yaml: no "version: 1"`},
		{"- a\n", "config x.yaml: want a mapping of flag names to values"},
		{"version: 1\ntpm: a\ntpm: b\n", `config x.yaml:3: "tpm" given twice`},
		{"version: 1\ndaemon:\n  x: [1, 2]\n", "config x.yaml:3: daemon.x: want a single value"},
		{"version: 1\nx: [1, 2]\n", `config x.yaml:2: "x": want a value or a mapping of a command's flags`},
		{"version: 1\n\tx: 1\n", "config x.yaml: yaml:"},
	} {
		f, err := Parse("x.yaml", []byte(c.body))
		if f != nil || err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("Parse(%q) = %+v, %v; want error %q", c.body, f, err, c.want)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	if c, err := Load(filepath.Join(dir, "absent.yaml"), false, 1000); c != nil || err != nil {
		t.Fatalf("absent, not required: %v, %v", c, err)
	}
	if _, err := Load(filepath.Join(dir, "absent.yaml"), true, 1000); err == nil || !strings.HasPrefix(err.Error(), "config: open") {
		t.Fatalf("absent, required: %v", err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, []byte("version: 1\n#"+strings.Repeat("x", MaxSize)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(big, true, 1000); err == nil || !strings.Contains(err.Error(), "larger than 65536 bytes") {
		t.Fatalf("oversized: %v", err)
	}
	if _, err := Load(dir, true, 1000); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("a directory: %v", err)
	}
	ok := filepath.Join(dir, "ok.yaml")
	if err := os.WriteFile(ok, []byte("version: 1\nlog-level: info\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err := Load(ok, true, 1000); err != nil || c.Path != ok || len(c.Flags[""]) != 1 {
		t.Fatalf("ok: %+v, %v", c, err)
	}
}

// TestLoadPermissions: for root, a configuration file others can write is
// refused (it names the policy and the TPM); another user's file too.
func TestLoadPermissions(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "vfio-gate.yaml")
	if err := os.WriteFile(cfg, []byte("version: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(cfg, 0o666); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(cfg, true, 0); err == nil || !strings.Contains(err.Error(), "not group/other writable") {
		t.Fatalf("world-writable config for root: %v", err)
	}
	if _, err := Load(cfg, true, 1000); err != nil {
		t.Fatalf("a non-root run reads its own config: %v", err)
	}
	if err := os.Chmod(cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(cfg, true, 0)
	if os.Getuid() == 0 && err != nil {
		t.Fatalf("root's 0644 config: %v", err)
	}
	if os.Getuid() != 0 && (err == nil || !strings.Contains(err.Error(), "owned by uid")) {
		t.Fatalf("a config owned by uid %d, for root: %v", os.Getuid(), err)
	}
}

// TestLoadPathWalk: for root, every directory on the way to the file, from
// "/" and through every symlink, must be root's and not group/other
// writable, as the policy file's: a root-owned 0644 file in a directory
// others can write could be swapped by them. A non-root run is unchanged.
func TestLoadPathWalk(t *testing.T) {
	testutil.Require(t, testutil.Root) // root-owned files; chown to another uid
	mkdir := func(t *testing.T, path string, uid int, mode os.FileMode) string {
		t.Helper()
		if err := os.Mkdir(path, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := errors.Join(os.Chown(path, uid, uid), os.Chmod(path, mode)); err != nil {
			t.Fatal(err)
		}
		return path
	}
	write := func(t *testing.T, path string) string {
		t.Helper()
		if err := os.WriteFile(path, []byte("version: 1\nlog-level: info\n"), 0o644); err != nil {
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
	cases := []struct {
		name  string
		setup func(t *testing.T, base, etc string) (path, want string) // want "" = loads
	}{
		{"root's file in root's directory", func(t *testing.T, base, etc string) (string, string) {
			return write(t, filepath.Join(etc, "vfio-gate.yaml")), ""
		}},
		{"link to root's file in root's directory", func(t *testing.T, base, etc string) (string, string) {
			write(t, filepath.Join(mkdir(t, filepath.Join(base, "safe"), 0, 0o755), "c.yaml"))
			return link(t, "../safe/./c.yaml", filepath.Join(etc, "vfio-gate.yaml")), ""
		}},
		{"world-writable directory", func(t *testing.T, base, etc string) (string, string) {
			ww := mkdir(t, filepath.Join(base, "ww"), 0, 0o777)
			return write(t, filepath.Join(ww, "vfio-gate.yaml")),
				"directory " + ww + " is writable by group or others (mode 0777): chmod go-w it"
		}},
		{"sticky world-writable directory", func(t *testing.T, base, etc string) (string, string) {
			ww := mkdir(t, filepath.Join(base, "ww"), 0, 0o1777)
			return write(t, filepath.Join(ww, "vfio-gate.yaml")), "directory " + ww + " is writable by group or others"
		}},
		{"world-writable directory two levels up", func(t *testing.T, base, etc string) (string, string) {
			ww := mkdir(t, filepath.Join(base, "ww"), 0, 0o777)
			deep := mkdir(t, filepath.Join(ww, "deep"), 0, 0o755)
			return write(t, filepath.Join(deep, "vfio-gate.yaml")), "directory " + ww + " is writable by group or others"
		}},
		{"link into another user's directory", func(t *testing.T, base, etc string) (string, string) {
			other := mkdir(t, filepath.Join(base, "other"), 65534, 0o755)
			return link(t, write(t, filepath.Join(other, "c.yaml")), filepath.Join(etc, "vfio-gate.yaml")),
				"directory " + other + " is owned by uid 65534, not root: chown root it"
		}},
		{"directory link to a world-writable directory", func(t *testing.T, base, etc string) (string, string) {
			ww := mkdir(t, filepath.Join(base, "ww"), 0, 0o777)
			write(t, filepath.Join(ww, "c.yaml"))
			return filepath.Join(link(t, ww, filepath.Join(etc, "d")), "c.yaml"), "directory " + ww + " is writable"
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := t.TempDir()
			etc := mkdir(t, filepath.Join(base, "etc"), 0, 0o755)
			path, want := c.setup(t, base, etc)
			if want == "" {
				if f, err := Load(path, true, 0); err != nil || f.Path != path || len(f.Flags[""]) != 1 {
					t.Fatalf("refused: %+v, %v", f, err)
				}
				return
			}
			f, err := Load(path, true, 0)
			if f != nil || err == nil || !strings.HasPrefix(err.Error(), "config "+path+": ") || !strings.Contains(err.Error(), want) {
				t.Fatalf("Load as root = %+v, %v; want an error naming %q", f, err, want)
			}
			if f, err := Load(path, true, 1000); err != nil || f == nil {
				t.Fatalf("a non-root run reads it as before: %v", err)
			}
		})
	}
}

// TestCheckPathSameFile: the walk's file must be the one Load has open (a
// file swapped between the open and the walk is refused).
func TestCheckPathSameFile(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	if err := errors.Join(os.WriteFile(a, nil, 0o644), os.WriteFile(b, nil, 0o644)); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(a)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := checkPath(f, a); err != nil {
		t.Fatalf("the open file: %v", err)
	}
	if err := checkPath(f, b); err == nil || !strings.Contains(err.Error(), "replaced while it was read") {
		t.Fatalf("another file: %v", err)
	}
}

// TestLoadFIFORefusedAtOnce: a FIFO given as the file is refused, not
// waited on.
func TestLoadFIFORefusedAtOnce(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "config.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := Load(fifo, true, 1000); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("FIFO config: %v", err)
		}
	case <-time.After(5 * time.Second):
		if f, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			f.Close()
		}
		t.Fatal("loading a FIFO config still waits after 5 s")
	}
}

// FuzzParse: any bytes give exactly one of a file and an error; a file's
// values have lines.
func FuzzParse(f *testing.F) {
	f.Add([]byte("version: 1\ntpm: /dev/tpmrm0\ndaemon:\n  poll-interval: 30s\n"))
	f.Add([]byte("- a\n"))
	f.Add([]byte("version: 1\nx: [1, 2]\n"))
	f.Add([]byte("version: 1\ndoctor:\n"))
	f.Add([]byte("version: 1\ntpm: a\ntpm: b\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse("fuzz", b)
		if (c == nil) == (err == nil) {
			t.Fatalf("result %v and error %v", c, err)
		}
		if c == nil {
			return
		}
		for sect, vals := range c.Flags {
			for _, v := range vals {
				if v.Line < 1 {
					t.Fatalf("section %q value %+v", sect, v)
				}
			}
		}
	})
}
