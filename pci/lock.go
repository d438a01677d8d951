package pci

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultLockDir holds the per-function lock files.
const DefaultLockDir = "/run/vfio-gate/locks"

// inproc serialises holders inside this process: flock(2) locks belong to
// an open file description, so two goroutines would each get their own and
// the kernel would still exclude them, but only by polling; a channel lets
// waiters queue and honour ctx. Keyed by the lock file path. This is the one
// package-level variable in pci: a process-wide lock table has to be.
var inproc sync.Map // string -> chan struct{} (capacity 1)

// ErrLockDir is returned when the lock directory is unusable.
var ErrLockDir = errors.New("pci: lock directory unusable")

// LockFunction takes the exclusive per-function lock of bdf: an in-process
// mutex plus flock(2) on <lockDir>/<bdf>.lock (lockDir "" means
// DefaultLockDir, created 0700). It waits until the lock is free or ctx ends
// (then the error wraps ctx.Err()). unlock releases both; call it once.
func LockFunction(ctx context.Context, lockDir string, bdf BDF) (unlock func() error, err error) {
	if lockDir == "" {
		lockDir = DefaultLockDir
	}
	if err := os.MkdirAll(lockDir, 0o700); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrLockDir, err)
	}
	name := filepath.Join(lockDir, bdf.String()+".lock")
	ch, _ := inproc.LoadOrStore(name, make(chan struct{}, 1))
	sem := ch.(chan struct{})
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("pci: lock %s: %w", bdf, ctx.Err())
	}
	release := func() { <-sem }

	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		release()
		return nil, fmt.Errorf("%w: %v", ErrLockDir, err)
	}
	fd := int(f.Fd())
	wait := 200 * time.Microsecond
	for {
		err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			release()
			return nil, fmt.Errorf("pci: flock %s: %w", name, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			f.Close()
			release()
			return nil, fmt.Errorf("pci: lock %s (held by another process): %w", bdf, ctx.Err())
		}
		wait = min(2*wait, 20*time.Millisecond)
	}
	var once sync.Once
	return func() error {
		err := errors.ErrUnsupported
		once.Do(func() {
			// Closing the last descriptor drops the flock; unlock first so
			// the release does not depend on descriptor sharing.
			err = errors.Join(unix.Flock(fd, unix.LOCK_UN), f.Close())
			release()
		})
		if errors.Is(err, errors.ErrUnsupported) {
			return fmt.Errorf("pci: lock %s released twice", bdf)
		}
		return err
	}, nil
}
