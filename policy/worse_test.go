package policy_test

import (
	"testing"

	"github.com/vfio-gate/vfio-gate/policy"
)

// The order that decides an exit code: TPM, then deny, then attestation
// failure, then unavailable, then nothing; an unknown class is a deny.
func TestWorse(t *testing.T) {
	order := []policy.Class{0, policy.ClassUnavailable, policy.ClassAttestation, policy.ClassDenied, policy.ClassTPM}
	for i, a := range order {
		for j, b := range order {
			want := a
			if j > i {
				want = b
			}
			if got := policy.Worse(a, b); got != want {
				t.Errorf("Worse(%d, %d) = %d, want %d", a, b, got, want)
			}
		}
	}
	unknown := policy.Class(99)
	if got := policy.Worse(unknown, policy.ClassAttestation); got != unknown {
		t.Errorf("an unknown class lost to an attestation failure: %d", got)
	}
	if got := policy.Worse(unknown, policy.ClassTPM); got != policy.ClassTPM {
		t.Errorf("an unknown class beat a TPM failure: %d", got)
	}
}
