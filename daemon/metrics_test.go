package daemon_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/daemon"
	"github.com/vfio-gate/vfio-gate/gate"
	"github.com/vfio-gate/vfio-gate/internal/testutil"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/tdisp"
)

// metricValue finds one sample in a Prometheus text exposition (-1: absent).
func metricValue(t *testing.T, text, name string) float64 {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` ([0-9.e+-]+)$`)
	m := re.FindStringSubmatch(text)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func scrape(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("scrape %s: %d %v\n%s", url, resp.StatusCode, err, b)
	}
	return string(b)
}

// TestMetricsAfterRealDecisions: real decisions (a software SPDM device and
// a NIC without DOE, the in-process TPM simulator) show up in the counters,
// durations and gauges scraped from the loopback listener, and on the
// daemon socket's /metrics for root.
func TestMetricsAfterRealDecisions(t *testing.T) {
	w := newWorld(t)
	held := []tdisp.Held{{BDF: bdf(t, goodBDF), Owner: "vm1", State: tdisp.StateConfigLocked}}
	m := daemon.NewMetrics(daemon.MetricsOptions{EventLog: w.logPath, Held: func() []tdisp.Held { return held }})
	g, err := gate.New(gate.Options{System: w.sys, Policy: w.pol, Recorder: w.rec, LockDir: filepath.Join(w.dir, "locks"),
		StateDir: w.stateDir, Attest: attest.Options{Timeout: 5 * time.Second}, Bind: w.kernel.ApplyOptions(), Observer: m})
	must(t, err)
	b, err := daemon.NewBackend(daemon.BackendOptions{Gate: g, Recorder: w.rec, System: w.sys, StateDir: w.stateDir})
	must(t, err)
	ctx := t.Context()
	for range 2 {
		if _, err := b.Check(ctx, daemon.CheckRequest{BDFs: []pci.BDF{bdf(t, goodBDF), bdf(t, plainBDF)}}); err != nil {
			t.Fatal(err)
		}
	}

	addr, err := daemon.ServeMetricsTCP(ctx, "127.0.0.1:0", m)
	must(t, err)
	text := scrape(t, http.DefaultClient, "http://"+addr.String()+daemon.PathMetrics)
	for name, want := range map[string]float64{
		`vfio_gate_decisions_total{decision="allow",reason="none"}`:      2,
		`vfio_gate_decisions_total{decision="deny",reason="no-cma"}`:     2,
		`vfio_gate_tpm_record_duration_seconds_count{result="ok"}`:       2,
		`vfio_gate_attestation_duration_seconds_count{decision="allow"}`: 2,
		`vfio_gate_tdis_held{state="CONFIG_LOCKED"}`:                     1,
		`vfio_gate_sessions_held{health="alive"}`:                        1,
	} {
		if got := metricValue(t, text, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if v := metricValue(t, text, "vfio_gate_event_log_bytes"); v <= 0 {
		t.Errorf("vfio_gate_event_log_bytes = %v, want the log's size", v)
	}
	if t.Failed() {
		t.Logf("scraped:\n%s", text)
	}

	if _, err := daemon.ServeMetricsTCP(ctx, "0.0.0.0:0", m); err == nil || !strings.Contains(err.Error(), "not loopback") {
		t.Fatalf("a non-loopback metrics address must be refused: %v", err)
	}

	testutil.Require(t, testutil.Root) // the socket answers root peers only
	sock := filepath.Join(t.TempDir(), "d.sock")
	ln, err := daemon.Listen(sock)
	must(t, err)
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- daemon.Serve(sctx, ln, b, daemon.ServerOptions{Metrics: m.Handler()}) }()
	defer func() { cancel(); <-done }()
	uc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	text = scrape(t, uc, "http://vfio-gate"+daemon.PathMetrics)
	if got := metricValue(t, text, `vfio_gate_decisions_total{decision="allow",reason="none"}`); got != 2 {
		t.Fatalf("socket /metrics: allow count %v\n%s", got, text)
	}
}
