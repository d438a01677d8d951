package policy

// Reading policy, anchor and CRL files safely: owner and mode checks along the path.

import (
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/vfio-gate/vfio-gate/internal/securepath"
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

// resolveSafe is securepath.Resolve with its refusals wrapping ErrInsecure.
func resolveSafe(path string) (string, error) {
	real, err := securepath.Resolve(path)
	return real, insecure(err)
}

// checkOwnerMode is securepath.CheckOwnerMode wrapping ErrInsecure.
func checkOwnerMode(st fs.FileInfo, what string) error {
	return insecure(securepath.CheckOwnerMode(st, what))
}

// insecure wraps ErrInsecure around a refusal for an owner or a mode
// ("policy: unsafe file permissions: directory /x is ..."); other errors
// (a missing component, too many symlinks) pass unchanged.
func insecure(err error) error {
	if _, ok := errors.AsType[*securepath.UnsafeError](err); ok {
		return fmt.Errorf("%w: %w", ErrInsecure, err)
	}
	return err
}
