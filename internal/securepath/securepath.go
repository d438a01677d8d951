package securepath

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// UnsafeError refuses one path component for its owner or mode. Its text
// names the component and the fix ("directory /x is writable by group or
// others (mode 0777): chmod go-w it").
type UnsafeError struct{ msg string }

func (e *UnsafeError) Error() string { return e.msg }

func unsafef(format string, args ...any) error {
	return &UnsafeError{msg: fmt.Sprintf(format, args...)}
}

// maxSymlinks bounds the symlinks one resolution follows (Linux: 40).
const maxSymlinks = 40

// Resolve resolves path one component at a time, the way the kernel
// does, and refuses it unless every directory it looks a name up in is
// safe (CheckOwnerMode; for a directory other than the file's own, a
// root-owned sticky one such as /tmp is also safe: nobody else can rename
// or remove root's entries in it). Symlinks are followed (at most
// maxSymlinks) and the directories they lead through are checked the same
// way, so a link in, or into, a directory another user controls is refused:
// that user could point it at any file, root-owned or not. It returns the
// resolved path, whose last component is not a symlink; the file itself is
// not checked (the caller opens it and checks the open file).
func Resolve(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	root, err := os.Lstat("/")
	if err != nil {
		return "", err
	}
	if err := checkDirMode(root, "/", false); err != nil {
		return "", err
	}
	cur, pending, links := "/", splitPath(abs), 0
	for len(pending) > 0 {
		name := pending[0]
		pending = pending[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur) // already checked on the way down
			continue
		}
		next := filepath.Join(cur, name)
		st, err := os.Lstat(next)
		if err != nil {
			return "", err
		}
		if st.Mode()&fs.ModeSymlink != 0 {
			if links++; links > maxSymlinks {
				return "", fmt.Errorf("%s: more than %d symlinks", path, maxSymlinks)
			}
			target, err := os.Readlink(next)
			if err != nil {
				return "", err
			}
			if filepath.IsAbs(target) {
				cur = "/"
			}
			pending = append(splitPath(target), pending...)
			continue
		}
		if len(pending) == 0 {
			return next, nil // the file: the caller opens and checks it
		}
		if !st.IsDir() {
			return "", fmt.Errorf("%s: not a directory", next)
		}
		if err := checkDirMode(st, next, lastDir(pending)); err != nil {
			return "", err
		}
		cur = next
	}
	return cur, nil
}

// lastDir reports whether the pending components end the path in the
// current directory (only ".", "" or the file name are left).
func lastDir(pending []string) bool {
	n := 0
	for _, p := range pending {
		if p != "" && p != "." {
			n++
		}
	}
	return n <= 1 && !slices.Contains(pending, "..")
}

func splitPath(p string) []string { return strings.Split(strings.Trim(p, "/"), "/") }

// checkDirMode is CheckOwnerMode for a directory on the way to a file: above
// the file's own directory a root-owned sticky directory is accepted.
func checkDirMode(st fs.FileInfo, path string, own bool) error {
	if !own && st.Mode()&fs.ModeSticky != 0 {
		if uid, ok := ownerUID(st); ok && uid == 0 {
			return nil
		}
	}
	return CheckOwnerMode(st, "directory "+path)
}

// CheckOwnerMode refuses anything not owned by root (or by the user running
// vfio-gate) or writable by group or others (a sticky directory such as /tmp
// is still refused as a file's own directory: others could create the files
// it names there). what names it in the error ("file /etc/x.yaml").
func CheckOwnerMode(st fs.FileInfo, what string) error {
	if st.Mode().Perm()&0o022 != 0 {
		return unsafef("%s is writable by group or others (mode %04o): chmod go-w it", what, st.Mode().Perm())
	}
	uid, ok := ownerUID(st)
	if !ok {
		return unsafef("cannot tell the owner of the %s on this system", what)
	}
	if uid != 0 && int64(uid) != int64(os.Geteuid()) {
		return unsafef("%s is owned by uid %d, not root: chown root it", what, uid)
	}
	return nil
}
