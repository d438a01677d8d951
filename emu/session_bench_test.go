package emu

import (
	"context"
	"testing"

	"github.com/vfio-gate/vfio-gate/spdm"
	"github.com/vfio-gate/vfio-gate/tdisp"
)

// BenchmarkSessionEstablish: KEY_EXCHANGE + FINISH (+ END_SESSION to free
// the slot) against the software device after one VCA/certificate read,
// over the DOE register model and directly. Round trips and bytes are for
// the establishment alone.
func BenchmarkSessionEstablish(b *testing.B) {
	ctx := context.Background()
	for _, kind := range []string{"doe", "direct"} {
		for _, aead := range []spdm.AEADAlgo{spdm.AEADAES128GCM, spdm.AEADAES256GCM, spdm.AEADChaCha20Poly1305} {
			b.Run(kind+"/"+aead.String(), func(b *testing.B) {
				d := newSessionDevice(b, SessionConfig{AEAD: aead})
				plain, sec := sessionTransports(b, d, kind)
				r, s, err := spdm.OpenSession(ctx, plain, sec, &spdm.Options{Roots: d.Anchors()}, 0)
				if err != nil {
					b.Fatal(err)
				}
				if err := s.End(ctx); err != nil {
					b.Fatal(err)
				}
				var rt, sent, recv int
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					st0 := r.Stats()
					s, err := r.KeyExchange(ctx, spdm.KeyExchangeOpts{SecuredTransport: sec})
					if err != nil {
						b.Fatal(err)
					}
					st := r.Stats()
					rt, sent, recv = st.RoundTrips-st0.RoundTrips, st.BytesSent-st0.BytesSent, st.BytesRecv-st0.BytesRecv
					if s.Info().HandshakeInClear {
						b.Fatal("handshake in the clear")
					}
					// FINISH went sealed: count it from the session.
					fs := s.Stats()
					rt, sent, recv = rt+fs.RoundTrips, sent+fs.BytesSent, recv+fs.BytesRecv
					if err := s.End(ctx); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(rt), "round-trips/op")
				b.ReportMetric(float64(sent), "bytes-sent/op")
				b.ReportMetric(float64(recv), "bytes-recv/op")
			})
		}
	}
}

// BenchmarkSessionRoundTrip: one encrypted round trip (HEARTBEAT) inside an
// established session.
func BenchmarkSessionRoundTrip(b *testing.B) {
	ctx := context.Background()
	for _, kind := range []string{"doe", "direct"} {
		for _, aead := range []spdm.AEADAlgo{spdm.AEADAES128GCM, spdm.AEADAES256GCM, spdm.AEADChaCha20Poly1305} {
			b.Run(kind+"/"+aead.String(), func(b *testing.B) {
				d := newSessionDevice(b, SessionConfig{AEAD: aead})
				_, s := openSession(b, d, kind)
				st0 := s.Stats()
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if err := s.Heartbeat(ctx); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				st := s.Stats()
				n := float64(b.N)
				b.ReportMetric(float64(st.RoundTrips-st0.RoundTrips)/n, "round-trips/op")
				b.ReportMetric(float64(st.BytesSent-st0.BytesSent)/n, "bytes-sent/op")
				b.ReportMetric(float64(st.BytesRecv-st0.BytesRecv)/n, "bytes-recv/op")
			})
		}
	}
}

// BenchmarkTDISPLockReportStart: LOCK → REPORT → START inside a session
// (STOP after each, not counted in the round trips).
func BenchmarkTDISPLockReportStart(b *testing.B) {
	ctx := context.Background()
	for _, kind := range []string{"doe", "direct"} {
		b.Run(kind, func(b *testing.B) {
			d := newSessionDevice(b, SessionConfig{})
			_, s := openSession(b, d, kind)
			c := tdiClient(b, s)
			if _, err := c.GetVersion(ctx); err != nil {
				b.Fatal(err)
			}
			var rt, sent, recv int
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				st0 := s.Stats()
				nonce, err := c.Lock(ctx, tdisp.LockParams{})
				if err != nil {
					b.Fatal(err)
				}
				if _, _, err := c.Report(ctx); err != nil {
					b.Fatal(err)
				}
				if err := c.Start(ctx, nonce); err != nil {
					b.Fatal(err)
				}
				st := s.Stats()
				rt, sent, recv = st.RoundTrips-st0.RoundTrips, st.BytesSent-st0.BytesSent, st.BytesRecv-st0.BytesRecv
				if err := c.Stop(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(rt), "round-trips/op")
			b.ReportMetric(float64(sent), "bytes-sent/op")
			b.ReportMetric(float64(recv), "bytes-recv/op")
		})
	}
}
