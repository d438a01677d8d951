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
	}{
		{"v11-p256", AsymECDSAP256, HashSHA256},
		{"v12-p384", AsymECDSAP384, HashSHA384},
		{"v12-p384-onebyone", AsymECDSAP384, HashSHA384},
		{"v13-p384", AsymECDSAP384, HashSHA384},
	} {
		t.Run(tc.file, func(t *testing.T) {
			f := loadRef(t, tc.file)
			r := rspTestResponder(t, tc.asym, nil)
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
