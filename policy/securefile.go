package policy

// Reading policy, anchor and CRL files safely: owner and mode checks along the path.

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// readSecure reads the policy, an anchor or a CRL file. The file is opened
// without blocking (a FIFO or device named by mistake must not hang the
// load) and must be a regular file. Unless opts.SkipPermissionCheck is set,
// the path is resolved component by component (resolveSafe): every
// directory looked in on the way, from "/" through every symlink, and the
// file itself must pass checkOwnerMode; the resolved file is then opened
// with O_NOFOLLOW and checked again on the open descriptor.
func readSecure(path string, opts *LoadOptions) ([]byte, error) {
	check := opts == nil || !opts.SkipPermissionCheck
	open := path
	if check {
		real, err := resolveSafe(path)
		if err != nil {
			return nil, err
		}
		open = real
	}
	f, st, err := openRegular(open, check)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if check {
		if err := checkOwnerMode(st, "file "+open); err != nil {
			return nil, err
		}
	}
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxFileSize {
		return nil, fmt.Errorf("larger than %d bytes", maxFileSize)
	}
	return b, nil
}

// ReadRegularFile reads a configuration file the operator names (a trust
// anchor given on the command line): opened without blocking, it must be a
// regular file of at most max bytes. No ownership checks.
func ReadRegularFile(path string, max int64) ([]byte, error) {
	f, _, err := openRegular(path, false)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, max)
	}
	return b, nil
}

// maxSymlinks bounds the symlinks one resolution follows (Linux: 40).
const maxSymlinks = 40

// resolveSafe resolves path one component at a time, the way the kernel
// does, and refuses it unless every directory it looks a name up in is
// safe (checkOwnerMode; for a directory other than the file's own, a
// root-owned sticky one such as /tmp is also safe: nobody else can rename
// or remove root's entries in it). Symlinks are followed (at most
// maxSymlinks) and the directories they lead through are checked the same
// way, so a link in, or into, a directory another user controls is refused:
// that user could point it at any file, root-owned or not. It returns the
// resolved path, whose last component is not a symlink. As sshd's
// StrictModes, but through symlinks.
func resolveSafe(path string) (string, error) {
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

// checkDirMode is checkOwnerMode for a directory on the way to a file: above
// the file's own directory a root-owned sticky directory is accepted.
func checkDirMode(st fs.FileInfo, path string, own bool) error {
	if !own && st.Mode()&fs.ModeSticky != 0 {
		if uid, ok := ownerUID(st); ok && uid == 0 {
			return nil
		}
	}
	return checkOwnerMode(st, "directory "+path)
}

// checkOwnerMode refuses anything not owned by root (or by the user running
// vfio-gate) or writable by group or others (a sticky directory such as /tmp
// is still refused as a file's own directory: others could create the files
// it names there).
func checkOwnerMode(st fs.FileInfo, what string) error {
	if st.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%w: %s is writable by group or others (mode %04o): chmod go-w it", ErrInsecure, what, st.Mode().Perm())
	}
	uid, ok := ownerUID(st)
	if !ok {
		return fmt.Errorf("%w: cannot tell the owner of the %s on this system", ErrInsecure, what)
	}
	if uid != 0 && int64(uid) != int64(os.Geteuid()) {
		return fmt.Errorf("%w: %s is owned by uid %d, not root: chown root it", ErrInsecure, what, uid)
	}
	return nil
}
