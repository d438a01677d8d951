package tpm

import (
	"path/filepath"
	"testing"

	"github.com/google/go-tpm-tools/simulator"
	"github.com/google/go-tpm/tpm2/transport"
)

// BenchmarkRecordDecision records one decision (4 measurement blocks,
// authority, verdict: 6 appends with fsync and 6 extends) on the simulator.
func BenchmarkRecordDecision(b *testing.B) {
	s, err := simulator.Get()
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	tp := transport.FromReadWriteCloser(s)
	r, err := NewRecorder(tp, RecorderOptions{Dir: filepath.Join(b.TempDir(), "events")})
	if err != nil {
		b.Fatal(err)
	}
	evs := sampleEvents(true)
	for b.Loop() {
		if _, err := r.Record(b.Context(), evs...); err != nil {
			b.Fatal(err)
		}
	}
}
