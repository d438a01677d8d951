package securepath

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/internal/testutil"
)

// fakeInfo is a FileInfo with a chosen mode and owner.
type fakeInfo struct {
	mode fs.FileMode
	sys  any
}

func (f fakeInfo) Name() string       { return "x" }
func (f fakeInfo) Size() int64        { return 0 }
func (f fakeInfo) Mode() fs.FileMode  { return f.mode }
func (f fakeInfo) ModTime() time.Time { return time.Time{} }
func (f fakeInfo) IsDir() bool        { return f.mode.IsDir() }
func (f fakeInfo) Sys() any           { return f.sys }

func TestCheckOwnerMode(t *testing.T) {
	other := uint32(65534)
	if os.Geteuid() == int(other) {
		other = 65533
	}
	for _, c := range []struct {
		name string
		st   fakeInfo
		want string // "" = accepted
	}{
		{"root 0644", fakeInfo{0o644, &syscall.Stat_t{Uid: 0}}, ""},
		{"own 0600", fakeInfo{0o600, &syscall.Stat_t{Uid: uint32(os.Geteuid())}}, ""},
		{"group-writable", fakeInfo{0o664, &syscall.Stat_t{Uid: 0}}, "file /f is writable by group or others (mode 0664): chmod go-w it"},
		{"world-writable", fakeInfo{0o646, &syscall.Stat_t{Uid: 0}}, "file /f is writable by group or others (mode 0646): chmod go-w it"},
		{"another user's", fakeInfo{0o644, &syscall.Stat_t{Uid: other}}, fmt.Sprintf("file /f is owned by uid %d, not root: chown root it", other)},
		{"owner unknown", fakeInfo{0o644, nil}, "cannot tell the owner of the file /f on this system"},
	} {
		err := CheckOwnerMode(c.st, "file /f")
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		var ue *UnsafeError
		if !errors.As(err, &ue) || err.Error() != c.want {
			t.Errorf("%s: %v (%T), want *UnsafeError %q", c.name, err, err, c.want)
		}
	}
}

// safeDir returns a fresh directory Resolve accepts (under the test's
// temporary directory, owned by the user running the test, mode 0755).
func safeDir(t *testing.T) string {
	d := filepath.Join(t.TempDir(), "etc")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

func write(t *testing.T, path string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestResolve(t *testing.T) {
	t.Run("plain file", func(t *testing.T) {
		f := write(t, filepath.Join(safeDir(t), "f"))
		if got, err := Resolve(f); err != nil || got != f {
			t.Fatalf("Resolve(%s) = %q, %v", f, got, err)
		}
	})
	t.Run("relative link through ..", func(t *testing.T) {
		d := safeDir(t)
		sub := filepath.Join(d, "sub")
		if err := os.Mkdir(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		f := write(t, filepath.Join(d, "f"))
		if err := os.Symlink("../f", filepath.Join(sub, "l")); err != nil {
			t.Fatal(err)
		}
		if got, err := Resolve(filepath.Join(sub, "l")); err != nil || got != f {
			t.Fatalf("Resolve = %q, %v; want %q", got, err, f)
		}
	})
	t.Run("world-writable directory", func(t *testing.T) {
		d := safeDir(t)
		f := write(t, filepath.Join(d, "f"))
		if err := os.Chmod(d, 0o777); err != nil {
			t.Fatal(err)
		}
		_, err := Resolve(f)
		var ue *UnsafeError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "directory "+d+" is writable by group or others (mode 0777)") {
			t.Fatalf("Resolve under a 0777 directory: %v", err)
		}
	})
	t.Run("sticky directory is still the file's own", func(t *testing.T) {
		d := safeDir(t)
		f := write(t, filepath.Join(d, "f"))
		if err := os.Chmod(d, 0o1777); err != nil {
			t.Fatal(err)
		}
		if _, err := Resolve(f); err == nil || !strings.Contains(err.Error(), d+" is writable by group or others") {
			t.Fatalf("Resolve in a sticky 1777 directory: %v", err)
		}
	})
	t.Run("link into a world-writable directory", func(t *testing.T) {
		d := safeDir(t)
		bad := filepath.Join(filepath.Dir(d), "bad")
		if err := os.Mkdir(bad, 0o755); err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(bad, "f"))
		if err := os.Chmod(bad, 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join(bad, "f"), filepath.Join(d, "l")); err != nil {
			t.Fatal(err)
		}
		if _, err := Resolve(filepath.Join(d, "l")); err == nil || !strings.Contains(err.Error(), "directory "+bad+" is writable") {
			t.Fatalf("Resolve through a link into a 0777 directory: %v", err)
		}
	})
	t.Run("symlink loop", func(t *testing.T) {
		d := safeDir(t)
		a, b := filepath.Join(d, "a"), filepath.Join(d, "b")
		if err := errors.Join(os.Symlink(b, a), os.Symlink(a, b)); err != nil {
			t.Fatal(err)
		}
		_, err := Resolve(a)
		var ue *UnsafeError
		if err == nil || errors.As(err, &ue) || !strings.Contains(err.Error(), "more than 40 symlinks") {
			t.Fatalf("Resolve of a loop: %v", err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		if _, err := Resolve(filepath.Join(safeDir(t), "none")); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Resolve of a missing file: %v", err)
		}
	})
}

// TestResolveOtherOwner: a directory on the way owned by another user is
// refused (root only: chown).
func TestResolveOtherOwner(t *testing.T) {
	testutil.Require(t, testutil.Root)
	d := safeDir(t)
	f := write(t, filepath.Join(d, "f"))
	if err := os.Chown(d, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := Resolve(f); err == nil || !strings.Contains(err.Error(), "directory "+d+" is owned by uid 65534, not root: chown root it") {
		t.Fatalf("Resolve under another user's directory: %v", err)
	}
}
