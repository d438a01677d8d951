package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/vfio-gate/vfio-gate/daemon"
	"github.com/vfio-gate/vfio-gate/hooks/libvirt/conn"
)

func newDaemonCmd(e *env, g *globals) *cobra.Command {
	var f gateFlags
	var uri, lvSocket string
	var noLibvirt bool
	var poll time.Duration
	c := &cobra.Command{
		Use:   "daemon",
		Short: "Run the vfio-gate daemon (the libvirt hook's and the CLI's server)",
		Long: `daemon loads --policy (a missing or invalid policy refuses to start: exit 1), opens the TPM
(--tpm) and the sysfs tree (--sysfs-root), and serves the versioned HTTP+JSON API on the unix
socket --daemon-socket (mode 0600 in a 0700 directory; only root peers, checked with SO_PEERCRED)
until SIGTERM or SIGINT. What it holds (which domain has which functions, original drivers) is
kept in <--state-dir>/` + daemon.StateFileName + `, so a restart knows it.

When libvirtd's socket exists (and --no-libvirt is not given) it follows domain lifecycle
events on --libvirt-uri, reconnecting when libvirtd restarts: a held domain that stops or
crashes is released (libvirt's release hook does it too; release is idempotent). Every
--poll-interval it re-reads the TDISP state of running domains' TDIs and looks for PCI
hostdevs on running domains without a gate decision (hot-plug calls no hook): they are
reported at warn level and in "vfio-gate status", and detached when the policy says
libvirt: {hotplug: detach}.

TDISP session ownership (lock/start/stop/state) is not built in yet: those endpoints answer
HTTP 501 with code tdisp-unavailable, and a rule with tdisp.require_lock denies at check.

Exit codes: 0 stopped by a signal; 1 bad policy, socket in use or internal error; 5 TPM error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDaemon(cmd.Context(), e, g, &f, daemonOptions{uri: uri, socket: lvSocket, noLibvirt: noLibvirt, poll: poll})
		},
	}
	f.add(c)
	c.Flags().StringVar(&uri, "libvirt-uri", "qemu:///system", "libvirt URI to watch")
	c.Flags().StringVar(&lvSocket, "libvirt-socket", conn.DefaultSocket, "libvirtd's read-write socket")
	c.Flags().BoolVar(&noLibvirt, "no-libvirt", false, "do not watch libvirt (lifecycle, hot-plug)")
	c.Flags().DurationVar(&poll, "poll-interval", 30*time.Second, "how often to re-read TDISP states and look for hot-plugged hostdevs")
	return c
}

type daemonOptions struct {
	uri, socket string
	noLibvirt   bool
	poll        time.Duration
}

func runDaemon(ctx context.Context, e *env, g *globals, f *gateFlags, o daemonOptions) error {
	if o.poll <= 0 {
		return usageErrorf("--poll-interval must be positive")
	}
	s, err := openGate(e, g, f, setupOptions{})
	if err != nil {
		return err
	}
	defer s.Close()
	b, err := daemon.NewBackend(daemon.BackendOptions{Gate: s.gate, Recorder: s.rec, System: s.sys, StateDir: g.stateDir, Logger: g.log})
	if err != nil {
		return err
	}
	ln, err := daemon.Listen(g.daemonSocket)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	g.log.Info("daemon listening", "socket", g.daemonSocket, "policy", s.pol.Path, "mode", s.pol.Mode, "sysfs_root", g.sysfsRoot)
	g.log.Warn("TDISP session ownership unavailable", "why", daemon.TDISPUnavailable)

	var wg sync.WaitGroup
	var mu sync.Mutex
	var cur *conn.Conn // the watcher's current libvirtd connection
	var m *conn.Monitor
	if o.noLibvirt {
		g.log.Info("not watching libvirt (--no-libvirt)")
	} else if _, err := os.Stat(o.socket); err != nil {
		g.log.Info("libvirtd socket absent: not watching libvirt", "socket", o.socket)
	} else {
		m = &conn.Monitor{Backend: b, Hotplug: s.pol.Libvirt.Hotplug, Logger: g.log}
		w := &conn.Watcher{URI: o.uri, Socket: o.socket, Logger: g.log, OnEvent: m.OnEvent,
			OnReconnect: func(ctx context.Context, c *conn.Conn) {
				mu.Lock()
				cur = c
				mu.Unlock()
				g.log.Info("watching libvirt", "uri", o.uri)
				if err := m.Reconcile(ctx, c); err != nil {
					g.log.Warn("reconcile with libvirt failed", "err", err)
				}
			}}
		wg.Add(1)
		go func() { defer wg.Done(); w.Run(ctx) }()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(o.poll)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			pollTDIs(ctx, b, g)
			mu.Lock()
			c := cur
			mu.Unlock()
			if m != nil && c != nil {
				if err := m.Reconcile(ctx, c); err != nil {
					g.log.Debug("reconcile with libvirt failed (the watcher reconnects)", "err", err)
				}
			}
		}
	}()
	serr := daemon.Serve(ctx, ln, b, daemon.ServerOptions{Logger: g.log})
	stop()
	wg.Wait()
	_ = os.Remove(g.daemonSocket)
	if serr != nil && !errors.Is(serr, context.Canceled) {
		return fmt.Errorf("vfio-gate daemon: %w", serr)
	}
	g.log.Info("daemon stopped")
	return nil
}

// pollTDIs reports the TDIs of running domains that left CONFIG_LOCKED/RUN.
func pollTDIs(ctx context.Context, b *daemon.GateBackend, g *globals) {
	left, err := b.PollTDIs(ctx)
	if err != nil {
		g.log.Warn("TDISP state poll failed", "err", err)
		return
	}
	for _, t := range left {
		b.Report(ctx, daemon.Report{Kind: "tdisp-exit", Domain: t.Domain, BDF: t.BDF.String(),
			Message: fmt.Sprintf("TDI %s of domain %s left CONFIG_LOCKED/RUN: now %s", t.BDF, t.Domain, t.State)})
	}
}
