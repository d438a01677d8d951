//go:build linux

package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/vfio-gate/vfio-gate/audit"
)

// benchWindow is how long each half of the audit benchmark reads.
const benchWindow = 3 * time.Second

// readLoop reads the dword at 0x0 of a config file as fast as it can for d
// and returns the reads per second.
func readLoop(c *configFile, d time.Duration) (float64, int, error) {
	n := 0
	start := time.Now()
	deadline := start.Add(d)
	for {
		for range 256 {
			if _, err := c.read32(0); err != nil {
				return 0, n, err
			}
			n++
		}
		if time.Now().After(deadline) {
			break
		}
	}
	return float64(n) / time.Since(start).Seconds(), n, nil
}

// benchAudit (issue 9 "Benchmark"): a tight loop of 4-byte sysfs preads of a
// guarded function's config space, without and then with the monitor
// attached (probes, guard map, ring buffer and its reader, all in this
// process, on the guest's one CPU); the events per second the reader
// consumed and the lost counter. Prints one BENCH line; PASS when every
// read produced exactly one event and none was lost.
func benchAudit(ctx context.Context, h *Harness) Result {
	nic, err := h.findOne("e1000e endpoint", isNIC)
	if err != nil {
		return failf("%v", err)
	}
	c, err := openConfig(h.devPath(nic.BDF, "config"), false)
	if err != nil {
		return failf("%v", err)
	}
	defer c.Close()
	if _, _, err := readLoop(c, 200*time.Millisecond); err != nil { // warm up
		return failf("%v", err)
	}
	off, _, err := readLoop(c, benchWindow)
	if err != nil {
		return failf("%v", err)
	}

	m, err := audit.New(audit.Options{})
	if err != nil {
		return failf("audit.New: %v", err)
	}
	defer m.Close()
	if _, err := m.Attach(); err != nil {
		return failf("Attach: %v", err)
	}
	// Probes attached, function not guarded: the cost of the probes alone.
	probes, _, err := readLoop(c, benchWindow)
	if err != nil {
		return failf("%v", err)
	}
	if err := m.Guard(nic.BDF); err != nil {
		return failf("Guard: %v", err)
	}
	var events atomic.Int64
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- m.Run(rctx, func(a *audit.Access) {
			if a.Device == nic.BDF {
				events.Add(1)
			}
		})
	}()
	select {
	case <-m.Started():
	case err := <-done:
		return failf("Run: %v", err)
	}
	t0 := time.Now()
	on, nOn, err := readLoop(c, benchWindow)
	if err != nil {
		return failf("%v", err)
	}
	if err := m.Sync(ctx); err != nil {
		return failf("Sync: %v", err)
	}
	drain := time.Since(t0)
	got := events.Load()
	lost, err := m.Lost()
	if err != nil {
		return failf("Lost: %v", err)
	}
	cancel()
	<-done
	evRate := float64(got) / drain.Seconds()
	overhead := 100 * (off - on) / off
	fmt.Printf("BENCH audit reads_per_s_off=%.0f reads_per_s_probes_unguarded=%.0f reads_per_s_on=%.0f overhead_pct=%.1f events=%d reads_on=%d events_per_s=%.0f lost=%d window_s=%.1f\n",
		off, probes, on, overhead, got, nOn, evRate, lost, benchWindow.Seconds())
	if lost != 0 || got != int64(nOn) {
		return failf("%d reads with the monitor attached gave %d events, %d lost (%.0f events/s)", nOn, got, lost, evRate)
	}
	return passf("sysfs 4-byte reads of %s: %.0f/s without the monitor, %.0f/s with probes on an unguarded function, %.0f/s guarded with the reader (overhead %.1f %%, target <= 5 %%); %d events at %.0f events/s, 0 lost (target 100k/s: the TCG guest reaches %.0f reads/s)",
		nic.BDF, off, probes, on, overhead, got, evRate, on)
}
