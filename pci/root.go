package pci

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Root is a sysfs tree (production: "/sys"; tests: a fixture directory).
// Every access is confined below it by os.Root: absolute or escaping symlinks
// are rejected, so a hostile name can never leave the tree.
type Root struct {
	dir string
	r   *os.Root
}

// OpenRoot opens the sysfs tree at dir.
func OpenRoot(dir string) (*Root, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("pci: open sysfs root: %w", err)
	}
	return &Root{dir: dir, r: r}, nil
}

// Close releases the root directory.
func (r *Root) Close() error { return r.r.Close() }

// Dir returns the directory the root was opened at.
func (r *Root) Dir() string { return r.dir }

// OS returns the underlying os.Root.
func (r *Root) OS() *os.Root { return r.r }

// ReadString reads a small attribute file (at most 4 KiB, a sysfs page) and
// trims the trailing newline.
func (r *Root) ReadString(name string) (string, error) {
	f, err := r.r.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\n"), nil
}

// WriteString writes v to an existing attribute file in a single write(2), as
// sysfs expects. It never creates files.
func (r *Root) WriteString(name, v string) error {
	f, err := r.r.OpenFile(name, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, werr := f.Write([]byte(v))
	return errors.Join(werr, f.Close())
}

// Readlink returns the target of a symlink (sysfs links are relative).
func (r *Root) Readlink(name string) (string, error) {
	return r.r.Readlink(name)
}

// LinkBase returns the last element of a symlink's target: the driver name of
// "driver", the group number of "iommu_group".
func (r *Root) LinkBase(name string) (string, error) {
	t, err := r.Readlink(name)
	if err != nil {
		return "", err
	}
	return filepath.Base(t), nil
}

// Exists reports whether name exists (following links inside the root).
func (r *Root) Exists(name string) bool {
	_, err := r.r.Stat(name)
	return err == nil
}

// ReadDir lists a directory inside the root.
func (r *Root) ReadDir(name string) ([]fs.DirEntry, error) {
	f, err := r.r.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.ReadDir(-1)
}

// OpenFile opens a file inside the root.
func (r *Root) OpenFile(name string, flag int) (*os.File, error) {
	return r.r.OpenFile(name, flag, 0)
}
