package pci_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/pci"
)

const (
	envLockHelper = "VFIOGATE_PCI_LOCK_HELPER" // "<lockdir>|<logfile>|<iterations>"
)

// TestLockHelperProcess is not a test: it is the child of
// TestLockTwoProcesses, re-executed from the test binary.
func TestLockHelperProcess(t *testing.T) {
	spec := os.Getenv(envLockHelper)
	if spec == "" {
		t.Skip("helper process for TestLockTwoProcesses")
	}
	parts := strings.Split(spec, "|")
	n, _ := strconv.Atoi(parts[2])
	bdf := pci.BDF{Bus: 0x3b}
	log, err := os.OpenFile(parts[1], os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	for i := 0; i < n; i++ {
		unlock, err := pci.LockFunction(context.Background(), parts[0], bdf)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(log, "enter %d %d\n", os.Getpid(), time.Now().UnixNano())
		time.Sleep(time.Millisecond)
		fmt.Fprintf(log, "exit %d %d\n", os.Getpid(), time.Now().UnixNano())
		if err := unlock(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLockTwoProcesses(t *testing.T) {
	dir := t.TempDir()
	logf := filepath.Join(dir, "log")
	if err := os.WriteFile(logf, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	const iters = 40
	var cmds []*exec.Cmd
	for i := 0; i < 2; i++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestLockHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s|%s|%d", envLockHelper, filepath.Join(dir, "locks"), logf, iters))
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	for _, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("helper: %v", err)
		}
	}
	f, err := os.Open(logf)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var holder string
	var lastTS int64
	lines, pids := 0, map[string]int{}
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) != 3 {
			t.Fatalf("bad log line %q", sc.Text())
		}
		ts, _ := strconv.ParseInt(fs[2], 10, 64)
		if ts < lastTS {
			t.Fatalf("line %d: time went backwards: overlapping holders", lines)
		}
		lastTS = ts
		switch fs[0] {
		case "enter":
			if holder != "" {
				t.Fatalf("line %d: %s entered while %s held the lock", lines, fs[1], holder)
			}
			holder = fs[1]
			pids[fs[1]]++
		case "exit":
			if holder != fs[1] {
				t.Fatalf("line %d: %s exited but holder was %q", lines, fs[1], holder)
			}
			holder = ""
		}
		lines++
	}
	if lines != 2*2*iters || len(pids) != 2 {
		t.Fatalf("%d lines from %d processes, want %d from 2", lines, len(pids), 4*iters)
	}
	st, err := os.Stat(filepath.Join(dir, "locks"))
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("lock dir mode %v %v, want 0700", st.Mode(), err)
	}
}

func TestLockInProcess(t *testing.T) {
	dir := t.TempDir()
	bdf := pci.BDF{Bus: 1}
	var mu sync.Mutex
	inside, maxInside := 0, 0
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Go(func() {
			for j := 0; j < 20; j++ {
				unlock, err := pci.LockFunction(context.Background(), dir, bdf)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				inside++
				maxInside = max(maxInside, inside)
				mu.Unlock()
				time.Sleep(50 * time.Microsecond)
				mu.Lock()
				inside--
				mu.Unlock()
				if err := unlock(); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if maxInside != 1 {
		t.Fatalf("%d holders at once", maxInside)
	}
}

func TestLockContext(t *testing.T) {
	dir := t.TempDir()
	bdf := pci.BDF{Bus: 2}
	unlock, err := pci.LockFunction(context.Background(), dir, bdf)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := pci.LockFunction(ctx, dir, bdf); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second lock: %v, want deadline exceeded", err)
	}
	// Another function is independent.
	u2, err := pci.LockFunction(context.Background(), dir, pci.BDF{Bus: 3})
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(u2(), unlock()); err != nil {
		t.Fatal(err)
	}
	if err := unlock(); err == nil {
		t.Fatal("double unlock not reported")
	}
	// Released: available again.
	u3, err := pci.LockFunction(context.Background(), dir, bdf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "0000:02:00.0.lock")); err != nil {
		t.Fatalf("lock file: %v", err)
	}
	u3()
}

func TestLockForeignFlockHolder(t *testing.T) {
	// A holder outside this package (another process's flock; here a
	// second open file description) is waited for, bounded by ctx.
	dir := t.TempDir()
	bdf := pci.BDF{Bus: 4}
	unlock, err := pci.LockFunction(context.Background(), dir, bdf)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		time.Sleep(20 * time.Millisecond)
		done <- unlock()
	}()
	start := time.Now()
	u, err := pci.LockFunction(context.Background(), dir, bdf)
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < 15*time.Millisecond {
		t.Fatal("second holder did not wait")
	}
	if err := errors.Join(<-done, u()); err != nil {
		t.Fatal(err)
	}
}
