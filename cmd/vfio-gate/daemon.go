package main

import (
	"context"
	"os"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/daemon"
	"github.com/vfio-gate/vfio-gate/gate"
	"github.com/vfio-gate/vfio-gate/hooks/libvirt/conn"
)

func newDaemonCmd(e *env, g *globals) *cobra.Command {
	var f gateFlags
	var o daemonOptions
	c := &cobra.Command{
		Use:     "daemon",
		Short:   "Run the vfio-gate daemon (the libvirt hook's and the CLI's server)",
		Long:    helpText("daemon.long", "StateFileName", daemon.StateFileName),
		Example: helpText("daemon.example"),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDaemon(cmd.Context(), e, g, &f, o)
		},
	}
	f.add(c)
	f.audit.add(c)
	c.Flags().StringVar(&o.uri, "libvirt-uri", "qemu:///system", "libvirt URI to watch")
	c.Flags().StringVar(&o.socket, "libvirt-socket", conn.DefaultSocket, "libvirtd's read-write socket")
	c.Flags().BoolVar(&o.noLibvirt, "no-libvirt", false, "do not watch libvirt (lifecycle, hot-plug)")
	c.Flags().DurationVar(&o.poll, "poll-interval", 30*time.Second, "how often to re-read TDISP states and look for hot-plugged hostdevs")
	c.Flags().DurationVar(&o.tpmWait, "tpm-wait", 30*time.Second, "how long to wait for a --tpm device node that does not exist yet (a TPM driver loaded late at boot)")
	c.Flags().StringVar(&o.metricsListen, "metrics-listen", "", `also serve /metrics on this loopback TCP address (e.g. 127.0.0.1:9464); "" = only on the daemon socket`)
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
	// A node still missing after --tpm-wait is left for the TPM's open to report (exit 5).
	daemon.WaitForDevice(ctx, g.tpm, o.tpmWait, g.log, nil)
	metrics := daemon.NewMetrics(daemon.MetricsOptions{EventLog: eventLogDir(g)})
	s, err := openGate(e, g, f, metrics)
	if err != nil {
		return err
	}
	defer s.Close()
	var watch func(*daemon.GateBackend) daemon.Watcher
	if o.noLibvirt {
		g.log.Info("not watching libvirt (--no-libvirt)")
	} else {
		watch = conn.DaemonWatch(o.uri, o.socket, s.Policy.Libvirt.Hotplug, g.log)
	}
	return daemon.Run(ctx, daemon.Config{Gate: s.Gate, Recorder: s.Recorder, System: s.System, StateDir: g.stateDir,
		OpenSession: attest.SessionOpenerFor(s.System, f.lockDir, &attest.Options{Timeout: f.timeout, Logger: g.log}, s.Policy.TrustAnchors), Socket: g.daemonSocket,
		Metrics: metrics, MetricsListen: o.metricsListen, Watch: watch, Poll: o.poll, TPM: gate.TPMName(g.tpm, g.tpmThrowaway), Logger: g.log,
		Signals: []os.Signal{syscall.SIGTERM, syscall.SIGINT}})
}
