//go:build linux

package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// attestSample is the shape of `vfio-gate attest --json` (trimmed) of the
// software device with --tdisp, as the spdm-* scenarios read it.
const attestSample = `{"identity":{"bdf":"0000:00:06.0","vendor_id":6966},"has_cma":true,"version":"1.3",
"algorithms":{"base_asym":"ecdsa-p384","base_hash":"sha-384"},
"certificate_chains":[{"slot":0,"verified":true,"cma_san":{"raw":"Vendor=1b36:Device=0010:CC=010802:REV=02:SSVID=1af4:SSID=1100"}}],
"challenge_verified":true,"measurements":[{"index":1},{"index":2}],"measurements_signature_verified":true,
"session":{"established":true,"version":"1.2","aead":"aes-256-gcm"},"tdisp":{"version":"1.0","state":"CONFIG_UNLOCKED"},
"round_trips":7,"duration_ns":10075794,
"timings":[{"step":"version","duration_ns":323700},{"step":"digests","duration_ns":52488}]}`

func TestAttestJSONBenchAndProved(t *testing.T) {
	var a attestJSON
	if err := json.Unmarshal([]byte(attestSample), &a); err != nil {
		t.Fatal(err)
	}
	got := a.bench("spdm-guest-sysfs@6.12")
	want := "BENCH spdm-guest-sysfs@6.12 round_trips=7 total_ms=10.08 per_exchange_ms=1.439 vca_ms=0.32 vca_per_exchange_ms=0.108"
	if got != want {
		t.Errorf("bench:\n got %s\nwant %s", got, want)
	}
	p := a.proved()
	for _, w := range []string{"SPDM 1.3 ecdsa-p384/sha-384", "chain verified=true SAN Vendor=1b36:Device=0010", "2 measurements signed=true",
		"session established=true (1.2 aes-256-gcm)", "TDISP 1.0 CONFIG_UNLOCKED", "7 round trips"} {
		if !strings.Contains(p, w) {
			t.Errorf("proved() = %q, missing %q", p, w)
		}
	}
	// No round trips (a failed attestation): no division by zero.
	var z attestJSON
	if b := z.bench("x"); !strings.Contains(b, "round_trips=0 total_ms=0.00 per_exchange_ms=0.000") {
		t.Errorf("bench of an empty attestation: %s", b)
	}
}
