package report

import (
	"strings"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/attest"
)

func TestWriteAttest(t *testing.T) {
	grp, dsn, match := 5, uint64(0x1122334455667788), false
	ev := &attest.Evidence{
		Identity: attest.Identity{BDF: "0000:3a:00.1", VendorID: 0x1b36, DeviceID: 0x0010, Class: 0x010802, Revision: 2,
			IOMMUGroup: &grp, DSN: &dsn},
		DOE:        []attest.Mailbox{{Offset: 0x110, Features: []string{"discovery", "cma-spdm"}}, {Offset: 0x130}},
		Version:    "1.3",
		Algorithms: attest.Algorithms{BaseAsym: "ecdsa-p384", BaseHash: "sha-384", MeasurementHash: "sha-384"},
		Chains: []attest.ChainState{{Slot: 0, Digest: "0123456789abcdef0123", Verified: false, ErrorKind: "chain", Error: "unknown authority",
			CMASAN: &attest.CMASAN{Raw: "Vendor=1b36", MatchesIdentity: &match}}},
		Measurements: []attest.MeasurementBlock{{Index: 1, TypeName: "immutable-rom", Value: []byte{0xab, 0xcd}},
			{Index: 5, TypeName: "firmware-version", Raw: true, Value: []byte("1.0")}},
		RoundTrips: 7, BytesSent: 100, BytesRecv: 2000, Duration: 1234567 * time.Nanosecond,
		Failure: &attest.Failure{Kind: attest.FailChain, Step: "certificates", Message: "slot 0: unknown authority"},
	}
	var b strings.Builder
	if err := WriteAttest(&b, ev, 0); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"Device        0000:3a:00.1 [1b36:0010] class 010802 rev 02\n",
		"              driver (none), IOMMU group 5, DSN 1122334455667788\n",
		"DOE           mailbox at 0x110: discovery, cma-spdm\n",
		"DOE           mailbox at 0x130: (not discovered)\n",
		"Slot 0        chain NOT verified (chain): unknown authority, digest 0123456789abcdef…\n",
		"CMA SAN Vendor=1b36 (DOES NOT match the function's IDs)\n",
		"Challenge     NOT verified (slot 0)\n",
		"  INDEX  TYPE              FORM    VALUE\n  1      immutable-rom     digest  abcd\n  5      firmware-version  raw     312e30\n",
		"Traffic: 7 round trips, 100 bytes sent, 2000 received, 1.235ms\n",
		"Result: FAIL chain at certificates: slot 0: unknown authority\n  (no --trust-anchor was given",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// With anchors there is no hint; a pass says PASS; a socket names the peer.
	b.Reset()
	ev.Identity = attest.Identity{Socket: "127.0.0.1:2323", VendorID: 0x1b36, FromCMASAN: true}
	if err := WriteAttest(&b, ev, 1); err != nil || strings.Contains(b.String(), "no --trust-anchor") ||
		!strings.Contains(b.String(), "Device        spdm-socket 127.0.0.1:2323 [1b36:0000] class 000000 rev 00 (IDs from the certificate's CMA SAN)\n") ||
		strings.Contains(b.String(), "driver") {
		t.Errorf("socket with anchors: %v\n%s", err, b.String())
	}
	b.Reset()
	ev.Failure = nil
	if err := WriteAttest(&b, ev, 1); err != nil || !strings.HasSuffix(b.String(), "Result: PASS\n") {
		t.Errorf("pass: %v\n%s", err, b.String())
	}
}
