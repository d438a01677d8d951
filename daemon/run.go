package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync"
	"time"

	"github.com/vfio-gate/vfio-gate/gate"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/tdisp"
	"github.com/vfio-gate/vfio-gate/tpm"
)

// Config is what Run needs. Gate, Recorder, StateDir and Socket are
// required; the caller (cmd) opens the gate (policy, TPM, sysfs) and closes
// it after Run returns.
type Config struct {
	Gate *gate.Gate
	// Recorder is the gate's recorder (BackendOptions.Recorder).
	Recorder *tpm.Recorder
	// System is the gate's sysfs tree (BackendOptions.System).
	System *pci.System
	// StateDir holds the state file (StateFileName) and the TDISP journal.
	StateDir string
	// OpenSession opens the secure SPDM session the TDISP broker holds a
	// TDI in (tdisp.BrokerConfig.Open).
	OpenSession tdisp.OpenFunc
	// Socket is the API socket's path: the one socket systemd passes
	// (socket activation) must be this one, else Run creates it (Listen)
	// and removes it when it stops.
	Socket string
	// Metrics, when set, is served on the socket's GET /metrics and, with
	// MetricsListen (a loopback TCP address), there too; Run points its
	// TDI gauges at the broker.
	Metrics       *Metrics
	MetricsListen string
	// Watch, when set, makes the hypervisor watcher for the backend (the
	// libvirt one is hooks/libvirt/conn.NewDaemonWatcher); nil: no watcher.
	Watch func(*GateBackend) Watcher
	// Poll is how often the TDISP states of held TDIs are re-read and the
	// watcher reconciles (hot-plug); it must be positive.
	Poll time.Duration
	// TPM names the TPM for Status.
	TPM    string
	Logger *slog.Logger
	// Notify sends one systemd notification ("READY=1", "STATUS=..."); nil
	// is sd_notify on $NOTIFY_SOCKET (nothing without it).
	Notify func(state string)
	// RecoverTimeout bounds the TDISP journal recovery at start (default 60 s).
	RecoverTimeout time.Duration
	// Signals, when set, stop Run as ctx ending does (the process's
	// SIGTERM and SIGINT: cmd sets them); nil: only ctx stops it.
	Signals []os.Signal

	// newBroker builds the TDISP session owner (tests); nil: tdisp.NewBroker.
	newBroker func(tdisp.BrokerConfig) (broker, error)
}

// Watcher follows the hypervisor's domains for the daemon: stopped domains
// are released, hot-plugged hostdevs without a decision found. daemon cannot
// import the libvirt one (hooks/libvirt imports daemon), so Config.Watch
// makes it.
type Watcher interface {
	// Run follows lifecycle events until ctx ends, reconnecting as needed.
	Run(ctx context.Context)
	// Reconcile compares the running domains with what the daemon holds;
	// it does nothing while not connected.
	Reconcile(ctx context.Context) error
}

// broker is the TDISP session owner Run drives: *tdisp.Broker.
type broker interface {
	TDIOwner
	Recover(ctx context.Context, owned func(owner string) bool) ([]tdisp.RecoverResult, error)
	Close(ctx context.Context) error
}

// Run is the daemon: it starts the TDISP session owner (its journal in
// StateDir) and the backend, listens on Socket, recovers the TDIs an
// earlier run left locked (requests wait for it, Starting), says READY=1,
// then watches the hypervisor and polls every Poll until ctx ends. It
// returns nil when ctx ended, else why it could not run.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Poll <= 0 {
		return errors.New("daemon: Config.Poll must be positive")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Notify == nil {
		cfg.Notify = sdNotify(cfg.Logger)
	}
	if cfg.newBroker == nil {
		cfg.newBroker = func(c tdisp.BrokerConfig) (broker, error) { return tdisp.NewBroker(c) }
	}
	if len(cfg.Signals) > 0 {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, cfg.Signals...)
		defer stop()
	}
	d := &run{cfg: cfg, log: cfg.Logger}
	return d.run(ctx)
}

// run is one Run: its steps in order, each needing the ones before.
type run struct {
	cfg     Config
	log     *slog.Logger
	reports *Reports
	journal *tdisp.Journal
	broker  broker
	backend *GateBackend
	api     *Starting
	ln      net.Listener
	systemd bool // ln came from systemd
}

func (d *run) run(ctx context.Context) error {
	// Reports exist before the broker and the backend: the broker's Lost
	// callback may fire from its keeper goroutines at any time after
	// NewBroker and must reach Status (never a variable assigned later).
	d.reports = NewReports(d.log, nil)
	if err := d.startBroker(); err != nil {
		return err
	}
	defer d.journal.Close()
	defer d.closeBroker()
	b, err := NewBackend(BackendOptions{Gate: d.cfg.Gate, Recorder: d.cfg.Recorder, System: d.cfg.System, StateDir: d.cfg.StateDir,
		Logger: d.log, TDIs: d.broker, Reports: d.reports})
	if err != nil {
		return err
	}
	d.backend = b
	if d.cfg.Metrics != nil {
		d.cfg.Metrics.trackTDIs(d.broker.Held)
	}
	// Listen first, then recover: a hook or CLI request that arrives while
	// TDIs an earlier run left locked are being stopped waits for it
	// (bounded, Starting) instead of finding no daemon.
	if d.ln, d.systemd, err = listen(d.cfg.Socket); err != nil {
		return err
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	serrc, err := d.serve(ctx)
	if err != nil {
		stop()
		<-serrc
		return err
	}
	d.recover(ctx)
	var wg sync.WaitGroup
	d.watch(ctx, &wg)
	serr := <-serrc
	d.cfg.Notify("STOPPING=1")
	stop()
	wg.Wait()
	if !d.systemd {
		_ = os.Remove(d.cfg.Socket) // systemd's socket (vfio-gate.socket) stays: it owns it
	}
	if serr != nil && !errors.Is(serr, context.Canceled) {
		return fmt.Errorf("vfio-gate daemon: %w", serr)
	}
	d.log.Info("daemon stopped")
	return nil
}

// startBroker opens the TDISP journal and the session owner; a session that
// dies is reported.
func (d *run) startBroker() error {
	j, err := tdisp.OpenJournal(d.cfg.StateDir, nil)
	if err != nil {
		return err
	}
	reports := d.reports
	br, err := d.cfg.newBroker(tdisp.BrokerConfig{Open: d.cfg.OpenSession, Journal: j, Logger: d.log,
		Lost: func(bdf pci.BDF, owner string, err error) {
			reports.Add(context.Background(), Report{Kind: "tdisp-session-lost", Domain: owner, BDF: bdf.String(),
				Message: fmt.Sprintf("the SPDM session holding TDI %s of domain %s died (%v): the device has moved the TDI to ERROR", bdf, owner, err)})
		}})
	if err != nil {
		j.Close()
		return err
	}
	d.journal, d.broker = j, br
	return nil
}

// closeBroker ends the sessions the broker holds (bounded).
func (d *run) closeBroker() {
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.broker.Close(cctx); err != nil {
		d.log.Warn("ending TDISP sessions", "err", err)
	}
}

// serve starts the API server (Starting until recover is done) and the
// optional loopback metrics listener; the server's result comes on the
// channel.
func (d *run) serve(ctx context.Context) (<-chan error, error) {
	pol := d.cfg.Gate.Policy()
	d.api = &Starting{Backend: d.backend, TPM: d.cfg.TPM, Policy: pol.Path}
	d.api.SetPhase("recovering the TDISP journal")
	d.cfg.Notify("STATUS=recovering the TDISP journal")
	so := ServerOptions{Logger: d.log}
	if d.cfg.Metrics != nil {
		so.Metrics = d.cfg.Metrics.Handler()
	}
	serrc := make(chan error, 1)
	ln := d.ln
	go func() { serrc <- Serve(ctx, ln, d.api, so) }()
	if d.cfg.MetricsListen != "" && d.cfg.Metrics != nil {
		addr, err := ServeMetricsTCP(ctx, d.cfg.MetricsListen, d.cfg.Metrics)
		if err != nil {
			return serrc, err
		}
		d.log.Info("metrics on loopback", "addr", addr.String())
	}
	d.log.Info("daemon listening (starting)", "socket", d.cfg.Socket, "from_systemd", d.systemd, "policy", pol.Path, "mode", pol.Mode, "tpm", d.cfg.TPM)
	return serrc, nil
}

// recover stops the TDIs an earlier run left locked (the TDISP journal),
// reports what it did, and makes the daemon ready.
func (d *run) recover(ctx context.Context) {
	timeout := d.cfg.RecoverTimeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	recovered, err := d.broker.Recover(rctx, func(string) bool { return false })
	cancel()
	if err != nil {
		d.reports.Add(ctx, Report{Kind: "tdisp-journal", Message: "TDISP journal recovery: " + err.Error() + " (treat every journalled TDI as possibly locked)"})
	}
	for _, r := range recovered {
		msg := fmt.Sprintf("TDI %s left %s by %q in an earlier run: %s", r.Entry.BDF, r.Entry.State, r.Entry.Owner, r.Action)
		if r.Err != nil {
			msg += ": " + r.Err.Error()
		}
		d.reports.Add(ctx, Report{Kind: "tdisp-recovered", Domain: r.Entry.Owner, BDF: r.Entry.BDF, Message: msg})
	}
	d.api.Ready()
	d.cfg.Notify("READY=1\nSTATUS=ready: policy " + d.cfg.Gate.Policy().Path + ", TPM " + d.cfg.TPM)
	d.log.Info("daemon ready", "recovered_tdis", len(recovered))
}

// watch starts the hypervisor watcher (when configured) and the poll loop:
// every Poll the held TDIs' states are re-read and the watcher reconciles.
func (d *run) watch(ctx context.Context, wg *sync.WaitGroup) {
	var w Watcher
	if d.cfg.Watch != nil {
		w = d.cfg.Watch(d.backend)
	}
	if w != nil {
		wg.Go(func() { w.Run(ctx) })
	}
	wg.Go(func() {
		t := time.NewTicker(d.cfg.Poll)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if left, err := d.backend.PollTDIs(ctx); err != nil {
				d.log.Warn("TDISP state poll", "err", err, "left", len(left))
			}
			if w != nil {
				if err := w.Reconcile(ctx); err != nil {
					d.log.Debug("reconcile with libvirt failed (the watcher reconnects)", "err", err)
				}
			}
		}
	})
}
