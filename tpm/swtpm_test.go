package tpm

import (
	"testing"

	"github.com/google/go-tpm/tpm2/transport"
	"github.com/vfio-gate/vfio-gate/internal/testutil"
)

func openSwtpm(t *testing.T, unix bool) transport.TPM {
	t.Helper()
	testutil.Require(t, testutil.Swtpm)
	sw := testutil.StartSwtpm(t, unix)
	tp, err := Open(sw.Spec)
	if err != nil {
		t.Fatalf("Open(%s): %v", sw.Spec, err)
	}
	t.Cleanup(func() { tp.Close() })
	return tp
}

// A real swtpm over TCP (MS-simulator framing): extend, read back, replay
// equals the PCR in SHA-256 and SHA-384.
func TestSwtpmTCPRecordVerify(t *testing.T) {
	exerciseBackend(t, openSwtpm(t, false), DefaultPCR)
}

// The same over swtpm's unix socket (raw TPM framing).
func TestSwtpmUnixRecordVerify(t *testing.T) {
	exerciseBackend(t, openSwtpm(t, true), DefaultPCR)
}

// Tampering with a real swtpm: a fresh swtpm per case, so each starts at PCR zero.
func TestSwtpmDetectsTampering(t *testing.T) {
	runTamperCases(t, func(t *testing.T) transport.TPM { return openSwtpm(t, false) })
}
