//go:build linux && amd64

package audit

import (
	"testing"

	"github.com/vfio-gate/vfio-gate/internal/testutil"
)

// TestProbe: where the BPF object loads, Probe says so and leaves nothing
// loaded (a second probe and a monitor load as well).
func TestProbe(t *testing.T) {
	testutil.Require(t, testutil.BPF)
	for range 2 {
		if err := Probe(); err != nil {
			t.Fatal(err)
		}
	}
	m, err := New(Options{})
	if err != nil {
		t.Fatalf("after two probes: %v", err)
	}
	m.Close()
}
