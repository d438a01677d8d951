package spdm

import (
	"context"
	"testing"
)

// TestResponderAnswersReferenceRequester replays the requests DMTF's
// reference requester sent (spdm-ref recordings, DOE padding included) to
// the Responder, configured with the recorded algorithm, and checks that it
// answers each with the recorded response code and makes the recorded
// algorithm selection, up to the first read of a slot it does not have.
func TestResponderAnswersReferenceRequester(t *testing.T) {
	for _, tc := range []struct {
		file string
		asym AsymAlgo
		hash HashAlgo
		mk   MultiKeyCap // the reference responder's MULTI_KEY_CAP
	}{
		{"v11-p256", AsymECDSAP256, HashSHA256, 0},
		{"v12-p384", AsymECDSAP384, HashSHA384, 0},
		{"v12-p384-onebyone", AsymECDSAP384, HashSHA384, 0},
		{"v13-p384", AsymECDSAP384, HashSHA384, MultiKeyNegotiated},
	} {
		t.Run(tc.file, func(t *testing.T) {
			f := loadRef(t, tc.file)
			r := rspTestResponder(t, tc.asym, nil)
			// The reference requester asks for a multi-key connection
			// (OtherParamsSupport 0x12), which a responder without
			// MULTI_KEY_CAP must refuse (DSP0274 1.3.0 Table 32).
			r.cfg.MultiKey = tc.mk
			var req []byte
			matched := 0
			for _, m := range f.Messages {
				if m.DOEType != 1 {
					continue
				}
				if m.Dir == "req" {
					req = m.doe(t)
					continue
				}
				q := req
				if RequestCode(q[1]) == RequestGetCertificate && q[2]&0x0F != 0 {
					break // the reference device has more slots than ours
				}
				rsp, err := r.Respond(context.Background(), q)
				if err != nil {
					t.Fatal(err)
				}
				want := m.spdm(t)
				if rsp[1] != want[1] || rsp[0] != want[0] {
					t.Fatalf("request %s: answered %s (%#x), reference %s", RequestCode(q[1]), ResponseCode(rsp[1]), rsp[0], m.name())
				}
				if ResponseCode(rsp[1]) == ResponseAlgorithms {
					got, err := decodeAlgorithmsRsp(rsp)
					if err != nil || got.BaseAsym != tc.asym || got.BaseHash != tc.hash {
						t.Fatalf("ALGORITHMS %v / %v", got, err)
					}
					if len(rsp) != len(want) {
						t.Errorf("ALGORITHMS is %d bytes, reference %d", len(rsp), len(want))
					}
				}
				matched++
			}
			if matched < 5 {
				t.Fatalf("only %d exchanges compared", matched)
			}
		})
	}
}
