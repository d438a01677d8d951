package daemon

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vfio-gate/vfio-gate/gate"
	"github.com/vfio-gate/vfio-gate/tdisp"
	"github.com/vfio-gate/vfio-gate/tpm"
)

// PathMetrics is where the daemon serves Prometheus metrics (on its socket,
// root peers only, and on the optional loopback listener).
const PathMetrics = "/metrics"

// MetricsOptions configure NewMetrics; every field is optional.
type MetricsOptions struct {
	// Held lists the TDIs the daemon holds (tdisp.Broker.Held), for the
	// sessions and TDIs gauges; nil reports none.
	Held func() []tdisp.Held
	// EventLog is the TPM event log directory, for the size of its newest
	// boot's segments.
	EventLog string
}

// Metrics are the daemon's Prometheus metrics. It implements gate.Observer.
// Safe for concurrent use.
type Metrics struct {
	reg       *prometheus.Registry
	decisions *prometheus.CounterVec
	attest    *prometheus.HistogramVec
	record    *prometheus.HistogramVec
	// held lists the TDIs for the gauges (MetricsOptions.Held, or the
	// broker Run starts after the gate, which observes into m, exists).
	held atomic.Pointer[func() []tdisp.Held]
}

// trackTDIs points the TDI and session gauges at held.
func (m *Metrics) trackTDIs(held func() []tdisp.Held) { m.held.Store(&held) }

var _ gate.Observer = (*Metrics)(nil)

// NewMetrics builds the registry: decisions by decision and reason code,
// attestation and TPM record durations, sessions and TDIs held by state,
// the event log's size, plus the Go and process collectors.
func NewMetrics(o MetricsOptions) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vfio_gate_decisions_total",
		Help: "Decisions on PCI functions, by decision (allow, deny) and first reason code (\"none\" for a clean allow).",
	}, []string{"decision", "reason"})
	m.attest = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "vfio_gate_attestation_duration_seconds",
		Help:    "Duration of one function's attestation (DOE/SPDM/TDISP), by decision.",
		Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	}, []string{"decision"})
	m.record = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "vfio_gate_tpm_record_duration_seconds",
		Help:    "Duration of one TPM record (PCR extends and event log append), by result (ok, error).",
		Buckets: []float64{.005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"result"})
	if o.Held != nil {
		m.trackTDIs(o.Held)
	}
	held := func() []tdisp.Held {
		if f := m.held.Load(); f != nil {
			return (*f)()
		}
		return nil
	}
	tdis := prometheus.NewDesc("vfio_gate_tdis_held", "TDIs the daemon holds, by TDISP state.", []string{"state"}, nil)
	sessions := prometheus.NewDesc("vfio_gate_sessions_held", "SPDM sessions the daemon holds, by health (alive, lost).", []string{"health"}, nil)
	logSize := prometheus.NewDesc("vfio_gate_event_log_bytes", "Size of the newest boot's TPM event log (all its segments).", nil, nil)
	m.reg.MustRegister(m.decisions, m.attest, m.record,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectorFunc{descs: []*prometheus.Desc{tdis, sessions, logSize}, collect: func(ch chan<- prometheus.Metric) {
			byState := map[string]float64{}
			health := map[string]float64{"alive": 0, "lost": 0}
			for _, h := range held() {
				byState[h.State.String()]++
				if h.Err != nil {
					health["lost"]++
				} else {
					health["alive"]++
				}
			}
			for s, n := range byState {
				ch <- prometheus.MustNewConstMetric(tdis, prometheus.GaugeValue, n, s)
			}
			for s, n := range health {
				ch <- prometheus.MustNewConstMetric(sessions, prometheus.GaugeValue, n, s)
			}
			if o.EventLog != "" {
				var size float64
				if b, err := tpm.FindBoot(o.EventLog, 0); err == nil {
					size = float64(b.Bytes)
				}
				ch <- prometheus.MustNewConstMetric(logSize, prometheus.GaugeValue, size)
			}
		}})
	return m
}

// collectorFunc is a prometheus.Collector made of a function.
type collectorFunc struct {
	descs   []*prometheus.Desc
	collect func(chan<- prometheus.Metric)
}

func (c collectorFunc) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c collectorFunc) Collect(ch chan<- prometheus.Metric) { c.collect(ch) }

// Decided implements gate.Observer.
func (m *Metrics) Decided(d *gate.Decision) {
	reason := "none"
	if len(d.Verdict.Reasons) > 0 {
		reason = string(d.Verdict.Reasons[0].Code)
	}
	decision := d.Verdict.Decision
	if decision == "" {
		decision = "deny"
	}
	m.decisions.WithLabelValues(decision, reason).Inc()
	if d.Evidence != nil && d.Evidence.Duration > 0 {
		m.attest.WithLabelValues(decision).Observe(d.Evidence.Duration.Seconds())
	}
}

// Recorded implements gate.Observer.
func (m *Metrics) Recorded(took time.Duration, _ int, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.record.WithLabelValues(result).Observe(took.Seconds())
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// ServeMetricsTCP serves /metrics alone on addr, which must be a loopback
// address (the socket's peer check does not apply there), until ctx ends.
// It returns the address once listening.
func ServeMetricsTCP(ctx context.Context, addr string, m *Metrics) (net.Addr, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("daemon: metrics address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("daemon: metrics address %q is not loopback (127.0.0.1, ::1): refusing to expose metrics", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("daemon: metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+PathMetrics, m.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	go func() { _ = srv.Serve(ln) }() // ends with Shutdown (ErrServerClosed)
	return ln.Addr(), nil
}
