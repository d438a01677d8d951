package doe_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/doe"
)

// BenchmarkExchange4KiB: one exchange of a 4 KiB object (4 KiB back)
// against the register model with a device latency, with adaptive polling
// and with the fixed 7.8 ms poll interval of Linux doe.c (HZ/128).
//
// Metrics: accesses/op (config reads + writes), min-accesses/op (1 write
// per request DW + 2 per response DW + Go + 1 Status read), access-ratio
// (target <= 1.2), poll-delay-µs/op and p50-poll-delay-µs (mean and median
// time from the model turning ready to the requester's first access that
// sees it; target <= 50 µs). ns/op includes
// the ~3000 register accesses of the transfer itself.
func BenchmarkExchange4KiB(b *testing.B) {
	const dw = 2 + 1024
	minAccesses := float64(dw + 2*dw + 1 + 1)
	modes := []struct {
		name string
		opts *doe.Options
	}{
		{"adaptive", nil},
		{"fixed7.8ms", &doe.Options{PollMin: 7812500 * time.Nanosecond, PollMax: 7812500 * time.Nanosecond, Spin: -1}},
	}
	for _, lat := range []time.Duration{0, 50 * time.Microsecond, time.Millisecond} {
		for _, mode := range modes {
			b.Run(fmt.Sprintf("latency=%v/%s", lat, mode.name), func(b *testing.B) {
				m, mb, _ := newMailbox(b, mode.opts)
				m.SetFault(doe.Fault{Latency: lat})
				req := make([]byte, 4096)
				ctx := context.Background()
				before, mbefore := mb.Stats(), m.Stats()
				var lates []time.Duration
				for b.Loop() {
					l0 := m.Stats().Late
					if _, err := mb.Exchange(ctx, doe.FeatureCMA, req); err != nil {
						b.Fatal(err)
					}
					lates = append(lates, m.Stats().Late-l0)
				}
				s, ms := mb.Stats(), m.Stats()
				acc := float64(s.Accesses()-before.Accesses()) / float64(b.N)
				b.ReportMetric(acc, "accesses/op")
				b.ReportMetric(minAccesses, "min-accesses/op")
				b.ReportMetric(acc/minAccesses, "access-ratio")
				if lat > 0 {
					b.ReportMetric(float64(ms.Late-mbefore.Late)/float64(ms.Ready-mbefore.Ready)/1e3, "poll-delay-µs/op")
					slices.Sort(lates)
					b.ReportMetric(float64(lates[len(lates)/2])/1e3, "p50-poll-delay-µs")
				}
			})
		}
	}
}
