package gate_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/gate"
	"github.com/vfio-gate/vfio-gate/pci"
)

// benchLatency is each software device's response latency (DOE Data Object
// Ready comes this long after Go).
var benchLatencies = []time.Duration{10 * time.Millisecond, 50 * time.Millisecond}

// BenchmarkCheck checks 1, 8 and 32 software devices, each answering every
// DOE object after a fixed latency (10 ms, 50 ms), through the whole pipeline (lock, attest,
// evaluate, TPM record in the simulator). Metric x-of-1 is the wall time of
// one check of N devices over that of one device (measured in the same
// sub-benchmark); the target is <= 1.3 for N = 8.
func BenchmarkCheck(b *testing.B) {
	for _, lat := range benchLatencies {
		for _, n := range []int{1, 8, 32} {
			b.Run(fmt.Sprintf("latency=%s/devices=%d", lat, n), func(b *testing.B) {
				var devs []dev
				var bdfs []pci.BDF
				for i := range n {
					bd := pci.BDF{Bus: uint8(0x10 + i)}
					devs = append(devs, dev{bdf: bd.String(), profile: "good", latency: lat})
					bdfs = append(bdfs, bd)
				}
				w := newWorld(b, policyOpts{}, devs...)
				g := w.gate(func(o *gate.Options) { o.Concurrency = 32 })
				run := func(bs []pci.BDF) time.Duration {
					start := time.Now()
					ds, err := g.Check(b.Context(), gate.Request{BDFs: bs, Confidential: true})
					el := time.Since(start)
					if err != nil {
						b.Fatal(err)
					}
					for _, d := range ds {
						if !d.Allowed() {
							b.Fatalf("%s denied: %v", d.BDF, codes(d))
						}
					}
					return el
				}
				var one time.Duration
				for range 3 {
					one += run(bdfs[:1])
				}
				one /= 3
				b.ResetTimer()
				var total time.Duration
				for range b.N {
					total += run(bdfs)
				}
				b.StopTimer()
				per := total / time.Duration(b.N)
				b.ReportMetric(float64(per.Milliseconds()), "ms/check")
				b.ReportMetric(float64(one.Milliseconds()), "ms/1-device")
				b.ReportMetric(float64(per)/float64(one), "x-of-1")
			})
		}
	}
}
