package main

import (
	"context"
	"os"
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
	metrics := daemon.NewMetrics(daemon.MetricsOptions{EventLog: eventLogDir(g)})
	s, err := openGate(e, g, f, setupOptions{observer: metrics})
	if err != nil {
		return err
	}
	defer s.Close()
	var watch func(*daemon.GateBackend) daemon.Watcher
	if o.noLibvirt {
		g.log.Info("not watching libvirt (--no-libvirt)")
	} else {
		watch = conn.DaemonWatch(o.uri, o.socket, s.pol.Libvirt.Hotplug, g.log)
	}
	return daemon.Run(ctx, daemon.Config{Gate: s.gate, Recorder: s.rec, System: s.sys, StateDir: g.stateDir,
		OpenSession: doeSessionOpener(s.sys, s.pol, f.lockDir, f.timeout, g.log), Socket: g.daemonSocket,
		Metrics: metrics, MetricsListen: o.metricsListen, Watch: watch, Poll: o.poll, TPM: tpmName(g), Logger: g.log,
		Signals: []os.Signal{syscall.SIGTERM, syscall.SIGINT}})
}

// waitForDevice waits up to d for a TPM given as a device path to appear
// (daemon.WaitForDevice); a node still missing after d is left for the TPM's
// open to report (exit 5).
func waitForDevice(ctx context.Context, g *globals, path string, d time.Duration) error {
	daemon.WaitForDevice(ctx, path, d, g.log, nil)
	return nil
}
