package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	sddaemon "github.com/coreos/go-systemd/v22/daemon"
	"github.com/spf13/cobra"

	"github.com/vfio-gate/vfio-gate/daemon"
	"github.com/vfio-gate/vfio-gate/hooks/libvirt/conn"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/tdisp"
)

func newDaemonCmd(e *env, g *globals) *cobra.Command {
	var f gateFlags
	var uri, lvSocket string
	var noLibvirt bool
	var poll, tpmWait time.Duration
	var metricsListen string
	c := &cobra.Command{
		Use:   "daemon",
		Short: "Run the vfio-gate daemon (the libvirt hook's and the CLI's server)",
		Long: `daemon loads --policy (a missing or invalid policy refuses to start: exit 1), opens the TPM
(--tpm) and the sysfs tree (--sysfs-root), and serves the versioned HTTP+JSON API on the unix
socket --daemon-socket (mode 0600 in a 0700 directory; only root peers, checked with SO_PEERCRED)
until SIGTERM or SIGINT. What it holds (which domain has which functions, original drivers) is
kept in <--state-dir>/` + daemon.StateFileName + `, so a restart knows it.

Checks come in two phases (see libvirt-hook --help): at libvirt's prepare a managed='yes'
hostdev still on its host driver is answered "deferred" (not attested, not recorded, reserved
for the domain) and checked at start begin, once libvirt moved it to vfio-pci; one still on a
host driver then is denied mailbox-owned. Release forgets deferrals that were never checked.

When libvirtd's socket exists (and --no-libvirt is not given) it follows domain lifecycle
events on --libvirt-uri, reconnecting when libvirtd restarts: a held domain that stops or
crashes is released (libvirt's release hook does it too; release is idempotent). Every
--poll-interval it re-reads the TDISP state of running domains' TDIs and looks for PCI
hostdevs on running domains without a gate decision (hot-plug calls no hook): they are
reported at warn level and in "vfio-gate status", and detached when the policy says
libvirt: {hotplug: detach}.

It owns the TDISP sessions (tdisp.Broker). A confidential domain's check (the prepare hook, or
start for a deferred function) of a function whose policy rule has tdisp.require_lock attests
it inside a secure SPDM session, locks its TDI in that same session for the domain and decides
on the locked evidence (state, interface report); an allowed TDI stays locked, its session kept
alive (heartbeat, key update) until release, a denied one is stopped at once. /v1/tdisp/lock
locks a TDI on request (a new session, authenticated by the matching rule's trust anchors). The
started hook starts a domain's locked TDIs; release stops them. Every lock and start is in the
TDISP journal (<--state-dir>/tdisp-journal.json); at start-up the daemon stops the TDIs an earlier
run left locked (their sessions are gone) and reports what it did.

Start-up: it waits up to --tpm-wait for a --tpm device node that is not there yet, listens, then
runs the TDISP recovery; meanwhile every request but status waits for it (bounded; then HTTP 503
"starting", which the hook retries within its --budget) and status answers ready=false. Under
systemd (Type=notify) it sends STATUS= lines and READY=1 once recovered. --tpm sim is refused
unless asked for as a throwaway TPM (--tpm sim:throwaway); status names the TPM in use.

Metrics (Prometheus text) are served on the socket's GET /metrics (root only) and, with
--metrics-listen, on a loopback TCP address: vfio_gate_decisions_total{decision,reason},
vfio_gate_attestation_duration_seconds, vfio_gate_tpm_record_duration_seconds,
vfio_gate_tdis_held{state}, vfio_gate_sessions_held{health}, vfio_gate_event_log_bytes.

Exit codes: 0 stopped by a signal; 1 bad policy, socket in use or internal error; 5 TPM error.`,
		Example: `  # as the systemd unit runs it (settings in the configuration file)
  vfio-gate daemon --config /etc/vfio-gate/vfio-gate.yaml
  # a test instance: fixture sysfs tree, swtpm, no libvirt
  vfio-gate daemon --sysfs-root /tmp/sys --tpm tcp:127.0.0.1:2321 --state-dir /tmp/st \
      --daemon-socket /tmp/vg.sock --no-libvirt --log-level info`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDaemon(cmd.Context(), e, g, &f, daemonOptions{uri: uri, socket: lvSocket, noLibvirt: noLibvirt, poll: poll,
				tpmWait: tpmWait, metricsListen: metricsListen})
		},
	}
	f.add(c)
	f.audit.add(c)
	c.Flags().StringVar(&uri, "libvirt-uri", "qemu:///system", "libvirt URI to watch")
	c.Flags().StringVar(&lvSocket, "libvirt-socket", conn.DefaultSocket, "libvirtd's read-write socket")
	c.Flags().BoolVar(&noLibvirt, "no-libvirt", false, "do not watch libvirt (lifecycle, hot-plug)")
	c.Flags().DurationVar(&poll, "poll-interval", 30*time.Second, "how often to re-read TDISP states and look for hot-plugged hostdevs")
	c.Flags().DurationVar(&tpmWait, "tpm-wait", 30*time.Second, "how long to wait for a --tpm device node that does not exist yet (a TPM driver loaded late at boot)")
	c.Flags().StringVar(&metricsListen, "metrics-listen", "", `also serve /metrics on this loopback TCP address (e.g. 127.0.0.1:9464); "" = only on the daemon socket`)
	return c
}

type daemonOptions struct {
	uri, socket   string
	noLibvirt     bool
	poll          time.Duration
	tpmWait       time.Duration
	metricsListen string
}

func runDaemon(ctx context.Context, e *env, g *globals, f *gateFlags, o daemonOptions) error {
	if o.poll <= 0 {
		return usageErrorf("--poll-interval must be positive")
	}
	if err := waitForDevice(ctx, g, g.tpm, o.tpmWait); err != nil {
		return err
	}
	var broker *tdisp.Broker
	metrics := daemon.NewMetrics(daemon.MetricsOptions{EventLog: eventLogDir(g), Held: func() []tdisp.Held {
		if broker == nil {
			return nil
		}
		return broker.Held()
	}})
	s, err := openGate(e, g, f, setupOptions{observer: metrics})
	if err != nil {
		return err
	}
	defer s.Close()
	// The TDISP session owner: its journal lives in the state dir; TDIs a
	// previous run left locked are stopped before anything else (Recover).
	journal, err := tdisp.OpenJournal(g.stateDir, nil)
	if err != nil {
		return err
	}
	defer journal.Close()
	var b *daemon.GateBackend
	broker, err = tdisp.NewBroker(tdisp.BrokerConfig{Open: doeSessionOpener(s.sys, s.pol, f.lockDir, f.timeout, g.log), Journal: journal, Logger: g.log,
		Lost: func(bdf pci.BDF, owner string, err error) {
			if b != nil {
				b.Report(context.Background(), daemon.Report{Kind: "tdisp-session-lost", Domain: owner, BDF: bdf.String(),
					Message: fmt.Sprintf("the SPDM session holding TDI %s of domain %s died (%v): the device has moved the TDI to ERROR", bdf, owner, err)})
			}
		}})
	if err != nil {
		return err
	}
	b, err = daemon.NewBackend(daemon.BackendOptions{Gate: s.gate, Recorder: s.rec, System: s.sys, StateDir: g.stateDir, Logger: g.log, TDIs: broker})
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := broker.Close(cctx); err != nil {
			g.log.Warn("ending TDISP sessions", "err", err)
		}
	}()
	// Listen first, then recover: a hook or CLI request that arrives while
	// TDIs an earlier run left locked are being stopped waits for it
	// (bounded, daemon.Starting) instead of finding no daemon.
	ln, activated, err := daemonListener(g)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	api := &daemon.Starting{Backend: b, TPM: tpmName(g), Policy: s.pol.Path}
	api.SetPhase("recovering the TDISP journal")
	notify(g, "STATUS=recovering the TDISP journal")
	serrc := make(chan error, 1)
	go func() {
		serrc <- daemon.Serve(ctx, ln, api, daemon.ServerOptions{Logger: g.log, Metrics: metrics.Handler()})
	}()
	if o.metricsListen != "" {
		addr, err := daemon.ServeMetricsTCP(ctx, o.metricsListen, metrics)
		if err != nil {
			stop()
			<-serrc
			return err
		}
		g.log.Info("metrics on loopback", "addr", addr.String())
	}
	g.log.Info("daemon listening (starting)", "socket", g.daemonSocket, "from_systemd", activated, "policy", s.pol.Path, "mode", s.pol.Mode, "sysfs_root", g.sysfsRoot, "tpm", tpmName(g))

	rctx, rcancel := context.WithTimeout(ctx, 60*time.Second)
	recovered, rerr := broker.Recover(rctx, func(string) bool { return false })
	rcancel()
	if rerr != nil {
		b.Report(ctx, daemon.Report{Kind: "tdisp-journal", Message: "TDISP journal recovery: " + rerr.Error() + " (treat every journalled TDI as possibly locked)"})
	}
	for _, r := range recovered {
		msg := fmt.Sprintf("TDI %s left %s by %q in an earlier run: %s", r.Entry.BDF, r.Entry.State, r.Entry.Owner, r.Action)
		if r.Err != nil {
			msg += ": " + r.Err.Error()
		}
		b.Report(ctx, daemon.Report{Kind: "tdisp-recovered", Domain: r.Entry.Owner, BDF: r.Entry.BDF, Message: msg})
	}
	api.Ready()
	notify(g, "READY=1\nSTATUS=ready: policy "+s.pol.Path+", TPM "+tpmName(g))
	g.log.Info("daemon ready", "recovered_tdis", len(recovered))

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
	serr := <-serrc
	notify(g, "STOPPING=1")
	stop()
	wg.Wait()
	if !activated {
		_ = os.Remove(g.daemonSocket) // systemd's socket (vfio-gate.socket) stays: it owns it
	}
	if serr != nil && !errors.Is(serr, context.Canceled) {
		return fmt.Errorf("vfio-gate daemon: %w", serr)
	}
	g.log.Info("daemon stopped")
	return nil
}

// pollTDIs re-reads the held TDIs' states; the backend reports (and per
// policy records) those that left CONFIG_LOCKED/RUN.
func pollTDIs(ctx context.Context, b *daemon.GateBackend, g *globals) {
	if left, err := b.PollTDIs(ctx); err != nil {
		g.log.Warn("TDISP state poll", "err", err, "left", len(left))
	}
}

// notify tells systemd (Type=notify) how the start goes: READY=1 once the
// daemon listens and has recovered, STATUS= lines meanwhile. Without
// NOTIFY_SOCKET (not under systemd) it does nothing.
func notify(g *globals, state string) {
	if _, err := sddaemon.SdNotify(false, state); err != nil {
		g.log.Warn("sd_notify failed", "state", state, "err", err)
	}
}

// waitForDevice waits up to d for a TPM given as a device path to appear:
// at boot the TPM driver may bind after the daemon starts (there is no
// tpm2.target before systemd 256). Other TPM specs return at once; a node
// still missing after d is left for tpm.Open to report (exit 5).
func waitForDevice(ctx context.Context, g *globals, path string, d time.Duration) error {
	if !strings.HasPrefix(path, "/") {
		return nil
	}
	if _, err := os.Stat(path); err == nil || d <= 0 {
		return nil
	}
	notify(g, "STATUS=waiting for "+path)
	g.log.Info("waiting for the TPM device", "path", path, "up_to", d)
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if _, err := os.Stat(path); err == nil {
				return nil
			}
		}
	}
}

// daemonListener is the API socket: the one systemd passes (socket
// activation, vfio-gate.socket: LISTEN_FDS) or one the daemon creates
// (daemon.Listen). A passed socket must be exactly one unix stream socket at
// --daemon-socket with mode 0600, so that clients find it and only root
// connects (peer credentials are checked on every request either way).
func daemonListener(g *globals) (net.Listener, bool, error) {
	files := activation.Files(true)
	if len(files) == 0 {
		ln, err := daemon.Listen(g.daemonSocket)
		return ln, false, err
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	if len(files) != 1 {
		return nil, false, fmt.Errorf("vfio-gate daemon: systemd passed %d sockets, want 1 (ListenStream=%s)", len(files), g.daemonSocket)
	}
	ln, err := net.FileListener(files[0])
	if err != nil {
		return nil, false, fmt.Errorf("vfio-gate daemon: the socket systemd passed: %w", err)
	}
	ua, ok := ln.Addr().(*net.UnixAddr)
	if !ok || ua.Name != g.daemonSocket {
		ln.Close()
		return nil, false, fmt.Errorf("vfio-gate daemon: systemd passed %v, but --daemon-socket is %s: make ListenStream= and daemon-socket agree", ln.Addr(), g.daemonSocket)
	}
	if fi, err := os.Stat(ua.Name); err != nil || fi.Mode().Perm()&0o077 != 0 {
		ln.Close()
		return nil, false, fmt.Errorf("vfio-gate daemon: the socket systemd passed (%s) is not mode 0600 (%v): set SocketMode=0600", ua.Name, err)
	}
	return ln, true, nil
}
