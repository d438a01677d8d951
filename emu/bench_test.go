package emu

import (
	"context"
	"testing"

	"github.com/vfio-gate/vfio-gate/spdm"
)

// BenchmarkAttest is the issue-3 benchmark: a full attestation (VCA,
// DIGESTS, CERTIFICATE, CHALLENGE, signed MEASUREMENTS, chain verification)
// against the software device in-process, cold and with a warm chain
// cache, over the DOE register model and over a direct transport. Reports
// round trips and bytes each way per attestation.
func BenchmarkAttest(b *testing.B) {
	for _, a := range []spdm.AsymAlgo{spdm.AsymECDSAP384, spdm.AsymECDSAP256, spdm.AsymRSAPSS3072} {
		d, err := New(Config{Algorithms: a})
		if err != nil {
			b.Fatal(err)
		}
		for _, tn := range []string{"doe", "direct"} {
			for _, warm := range []bool{false, true} {
				name := a.String() + "/" + tn + "/cold"
				if warm {
					name = a.String() + "/" + tn + "/warm-cache"
				}
				b.Run(name, func(b *testing.B) {
					tr := d.Direct()
					if tn == "doe" {
						tr, _ = overDOE(b, d)
					}
					var cache *spdm.MapChainCache
					if warm {
						cache = &spdm.MapChainCache{}
						if _, err := attest(context.Background(), tr, d, spdm.Options{ChainCache: cache}); err != nil {
							b.Fatal(err)
						}
					}
					var st spdm.Stats
					b.ReportAllocs()
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						opts := spdm.Options{}
						if cache != nil {
							opts.ChainCache = cache
						}
						f, err := attest(context.Background(), tr, d, opts)
						if err != nil || !f.meas.Verified || !f.chain.Verified {
							b.Fatalf("%v", err)
						}
						st = f.stats
					}
					b.ReportMetric(float64(st.RoundTrips), "round-trips/op")
					b.ReportMetric(float64(st.BytesSent), "bytes-sent/op")
					b.ReportMetric(float64(st.BytesRecv), "bytes-recv/op")
				})
			}
		}
	}
}
