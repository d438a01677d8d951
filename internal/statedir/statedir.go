package statedir

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"syscall"
)

// ErrUnsafe is wrapped by every refusal of the directory's owner or mode.
var ErrUnsafe = errors.New("statedir: unsafe state directory")

// Open creates dir (0700, with its parents) when missing, checks it (Check)
// and returns it as an os.Root.
func Open(dir string) (*os.Root, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("statedir: %w", err)
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("statedir: %w", err)
	}
	f, err := r.Open(".")
	if err == nil {
		var st fs.FileInfo
		st, err = f.Stat()
		f.Close()
		if err == nil {
			err = check(dir, st)
		}
	}
	if err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// Check refuses dir unless it is a directory owned by root or by the
// effective user and not writable by group or others. A missing dir passes
// (Open creates it safe).
func Check(dir string) error {
	st, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("statedir: %w", err)
	}
	return check(dir, st)
}

func check(dir string, st fs.FileInfo) error {
	if !st.IsDir() {
		return fmt.Errorf("%w: %s is not a directory", ErrUnsafe, dir)
	}
	if st.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%w: %s is writable by group or others (mode %04o): chmod 0700 it", ErrUnsafe, dir, st.Mode().Perm())
	}
	s, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%w: cannot tell the owner of %s", ErrUnsafe, dir)
	}
	if s.Uid != 0 && int64(s.Uid) != int64(os.Geteuid()) {
		return fmt.Errorf("%w: %s is owned by uid %d, not root: chown root it", ErrUnsafe, dir, s.Uid)
	}
	return nil
}

// ReadFile reads name (relative to r) without following a symlink as its
// last component, at most max bytes (more is an error). A missing file is
// an error wrapping fs.ErrNotExist.
func ReadFile(r *os.Root, name string, max int64) ([]byte, error) {
	f, err := r.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("statedir: %s is not a regular file", name)
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("statedir: %s is larger than %d bytes", name, max)
	}
	return b, nil
}

// WriteFile replaces name (relative to r) atomically and durably: it writes
// name+".tmp" (a symlink there is refused, never followed), fsyncs it,
// renames it over name and fsyncs the directory. The parent directory of
// name must exist (MkdirAll).
func WriteFile(r *os.Root, name string, data []byte, perm fs.FileMode) error {
	tmp := name + ".tmp"
	if err := r.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("statedir: %w", err)
	}
	f, err := r.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, perm)
	if err != nil {
		return fmt.Errorf("statedir: %w", err)
	}
	_, werr := f.Write(data)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		_ = r.Remove(tmp)
		return fmt.Errorf("statedir: writing %s: %w", tmp, err)
	}
	if err := r.Rename(tmp, name); err != nil {
		_ = r.Remove(tmp)
		return fmt.Errorf("statedir: %w", err)
	}
	return syncDir(r, path.Dir(name))
}

// Remove removes name (a missing one is not an error) and fsyncs its directory.
func Remove(r *os.Root, name string) error {
	if err := r.Remove(name); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("statedir: %w", err)
	}
	return syncDir(r, path.Dir(name))
}

// MkdirAll creates dir (relative to r) and its parents, 0700.
func MkdirAll(r *os.Root, dir string) error {
	if err := r.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("statedir: %w", err)
	}
	return nil
}

func syncDir(r *os.Root, dir string) error {
	d, err := r.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return fmt.Errorf("statedir: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("statedir: fsync %s: %w", dir, err)
	}
	return nil
}
