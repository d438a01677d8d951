package tpm

import (
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/vfio-gate/vfio-gate/internal/testutil"
)

func resetPCR16(t *testing.T, tp transport.TPM) {
	t.Helper()
	if _, err := (tpm2.PCRReset{PCRHandle: tpm2.AuthHandle{Handle: 16, Auth: tpm2.PasswordAuth(nil)}}).Execute(tp); err != nil {
		t.Fatalf("reset PCR 16: %v", err)
	}
}

// The real /dev/tpmrm0 (test/vm guest): many back-to-back commands over the
// blocking syscall path never see a short or empty read, and a recorded log
// replays to PCR 16 (test mode), which is reset before and after.
func TestDeviceTPMRM0(t *testing.T) {
	testutil.Require(t, testutil.TPMDevice)
	tp, err := Open("/dev/tpmrm0")
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	banks, err := activeBanks(tp, 16)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 500 {
		if _, err := readPCR(tp, 16, banks); err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
	}
	resetPCR16(t, tp)
	defer resetPCR16(t, tp)
	exerciseBackend(t, tp, 16)
}
