package tpm_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-tpm-tools/simulator"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/vfio-gate/vfio-gate/internal/testutil/logfill"
	"github.com/vfio-gate/vfio-gate/tpm"
)

func openSim(tb testing.TB) transport.TPM {
	tb.Helper()
	s, err := simulator.Get()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return transport.FromReadWriteCloser(s)
}

// verdict is one small event, as a decision without SPDM evidence records.
func verdict() tpm.Event {
	return tpm.VerdictEvent(tpm.Decision{BDF: "0000:3b:00.0", VendorID: 0x8086, DeviceID: 0x0d58, Allow: true, Mode: "enforce"})
}

// BenchmarkRecordLogSize records one event on top of a log of 0, 100k and
// 1M records (written directly, not through the TPM). The cost must stay
// flat: Record reads the index and the tail only.
func BenchmarkRecordLogSize(b *testing.B) {
	for _, n := range []int{0, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			tp := openSim(b)
			dir := filepath.Join(b.TempDir(), "events")
			if n > 0 {
				logfill.Fill(b, tp, dir, tpm.DefaultPCR, n)
			}
			r, err := tpm.NewRecorder(tp, tpm.RecorderOptions{Dir: dir})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := r.Record(b.Context(), verdict()); err != nil { // first Record after Fill builds the index
				b.Fatal(err)
			}
			before := readChars(b)
			ops := 0
			for b.Loop() {
				if _, err := r.Record(b.Context(), verdict()); err != nil {
					b.Fatal(err)
				}
				ops++
			}
			// Bytes read(2) by the process per Record: the log is not re-read.
			b.ReportMetric(float64(readChars(b)-before)/float64(ops), "read-B/op")
		})
	}
}

// readChars is rchar of /proc/self/io: bytes this process read with read(2)
// and friends.
func readChars(tb testing.TB) int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		tb.Skipf("no /proc/self/io: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "rchar: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	tb.Skip("no rchar in /proc/self/io")
	return 0
}

// recordCost is the median time of k Records after a warm-up one.
func recordCost(t *testing.T, r *tpm.Recorder, k int) time.Duration {
	t.Helper()
	if _, err := r.Record(t.Context(), verdict()); err != nil {
		t.Fatal(err)
	}
	ds := make([]time.Duration, k)
	for i := range ds {
		start := time.Now()
		if _, err := r.Record(t.Context(), verdict()); err != nil {
			t.Fatalf("Record %d: %v", i, err)
		}
		ds[i] = time.Since(start)
	}
	for i := range ds { // insertion sort; k is small
		for j := i; j > 0 && ds[j] < ds[j-1]; j-- {
			ds[j], ds[j-1] = ds[j-1], ds[j]
		}
	}
	return ds[k/2]
}

// A log of 250k records (several segments, more than the old 64 MiB /
// 200,000-record cap that denied every decision) neither makes Record fail
// nor slows it down: its cost is within a small factor of an empty log's
// (timings on a shared machine are noisy, so the bound is loose; the
// benchmark above gives the numbers).
func TestRecordCostIndependentOfLogSize(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 250k-record log (-short)")
	}
	tp := openSim(t) // one simulator per process at a time
	empty, err := tpm.NewRecorder(tp, tpm.RecorderOptions{Dir: filepath.Join(t.TempDir(), "events")})
	if err != nil {
		t.Fatal(err)
	}
	base := recordCost(t, empty, 15)

	dir := filepath.Join(t.TempDir(), "events")
	logfill.Fill(t, tp, dir, tpm.DefaultPCR, 250_000)
	var size int64
	b, err := tpm.FindBoot(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range b.Segments {
		fi, _ := os.Stat(s)
		size += fi.Size()
	}
	if size <= tpm.MaxLogBytes || len(b.Segments) < 5 {
		t.Fatalf("filler is %d bytes in %d segments; want more than the old cap", size, len(b.Segments))
	}
	big, err := tpm.NewRecorder(tp, tpm.RecorderOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	cost := recordCost(t, big, 15)
	t.Logf("median Record: %v on an empty log, %v on %d records (%d MiB)", base, cost, 250_000, size>>20)
	if cost > 3*base+20*time.Millisecond { // reading the whole log (263 MiB) would take far longer
		t.Errorf("Record on a 250k-record log took %v, an empty log %v", cost, base)
	}
	// The records it appended continue the boot's numbering.
	l, err := tpm.ReadLog(b.Segments[len(b.Segments)-1])
	if err != nil {
		t.Fatal(err)
	}
	if last := l.Records[len(l.Records)-1].RecNum; last != 250_000+16 {
		t.Errorf("last recnum %d, want %d", last, 250_000+16)
	}
}
