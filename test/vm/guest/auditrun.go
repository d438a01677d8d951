//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// auditRun is a `vfio-gate audit --json` process guarding one function,
// started by startAudit once it has attached.
type auditRun struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	stderr *watchWriter
	exited chan error
	cancel context.CancelFunc
}

// startAudit runs `vfio-gate audit --json --duration dur ARGS...` (ARGS:
// --device BDF, --attach MODE) and waits up to 30 s for it to say it
// attached. The caller ends it with stop or abort.
func (h *Harness) startAudit(ctx context.Context, dur time.Duration, args ...string) (*auditRun, error) {
	actx, cancel := context.WithCancel(ctx)
	a := &auditRun{cancel: cancel, exited: make(chan error, 1),
		stderr: &watchWriter{want: "audit attached", seen: make(chan struct{})}}
	a.cmd = exec.CommandContext(actx, h.VfioGate, append([]string{"audit", "--json", "--log-level", "info", "--duration", dur.String()}, args...)...)
	a.cmd.Cancel = func() error { return a.cmd.Process.Signal(os.Interrupt) }
	a.cmd.WaitDelay = 5 * time.Second
	a.cmd.Stdout = &a.stdout
	a.cmd.Stderr = a.stderr
	if err := a.cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("start audit: %w", err)
	}
	go func() { a.exited <- a.cmd.Wait() }()
	select {
	case <-a.stderr.seen:
		return a, nil
	case err := <-a.exited:
		cancel()
		return nil, fmt.Errorf("audit exited before attaching (%v): %s", err, a.stderr.String())
	case <-time.After(30 * time.Second):
		a.abort()
		return nil, fmt.Errorf("audit did not attach within 30 s: %s", a.stderr.String())
	}
}

// abort ends the audit at once and waits for it.
func (a *auditRun) abort() {
	a.cancel()
	<-a.exited
}

// stop lets the ring buffer drain for drain, interrupts the audit, waits
// for it and returns its exit error and the events it printed.
func (a *auditRun) stop(drain time.Duration) (exit error, events []auditEvent, err error) {
	defer a.cancel()
	time.Sleep(drain)
	_ = a.cmd.Process.Signal(syscall.SIGINT)
	exit = <-a.exited
	for _, l := range strings.Split(strings.TrimSpace(a.stdout.String()), "\n") {
		if l == "" {
			continue
		}
		var e auditEvent
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			return exit, nil, fmt.Errorf("audit line %q: %v", l, err)
		}
		events = append(events, e)
	}
	return exit, events, nil
}
