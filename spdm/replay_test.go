package spdm

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"
)

// replayTransport serves a recorded connection: each request must equal the
// recorded one byte for byte; the recorded response goes back with its DOE
// pad (header stripped), as a DOE exchanger would return it.
type replayTransport struct {
	t    testing.TB
	msgs []refMessage
	pos  int
	fail error
	// tamper, when set, may change the response to the recorded request at pos.
	tamper func(pos int, rsp []byte) []byte
}

func newReplay(t testing.TB, f *refFile) *replayTransport {
	var msgs []refMessage
	for _, m := range f.Messages {
		if m.DOEType == 1 {
			msgs = append(msgs, m)
		}
	}
	return &replayTransport{t: t, msgs: msgs}
}

func (rt *replayTransport) Exchange(ctx context.Context, req []byte) ([]byte, error) {
	if rt.pos+1 >= len(rt.msgs) {
		rt.fail = fmt.Errorf("unexpected request % x after the recording ended", req)
		return nil, rt.fail
	}
	want, rsp := rt.msgs[rt.pos], rt.msgs[rt.pos+1]
	if want.Dir != "req" || rsp.Dir != "rsp" {
		rt.fail = fmt.Errorf("recording out of step at %d", rt.pos)
		return nil, rt.fail
	}
	if w := want.spdm(rt.t); !bytes.Equal(req, w) {
		rt.fail = fmt.Errorf("request %d (%s) differs:\n got % x\nwant % x", rt.pos, want.SPDMName, req, w)
		return nil, rt.fail
	}
	rt.pos += 2
	out := bytes.Clone(rsp.doe(rt.t))
	if rt.tamper != nil {
		out = rt.tamper(rt.pos-2, out)
	}
	return out, nil
}

func (rt *replayTransport) done() bool { return rt.pos == len(rt.msgs) }

// replayOptions reproduces the recorded requester: versions from config,
// capability and algorithm offers decoded from its own recorded requests,
// and Rand fed the recorded nonces and requester contexts in order.
func replayOptions(t testing.TB, f *refFile, msgs []refMessage) *Options {
	o := &Options{Now: func() time.Time { return time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC) }}
	var rnd bytes.Buffer
	for _, m := range msgs {
		if m.Dir != "req" {
			continue
		}
		b := m.spdm(t)
		v := Version(b[0])
		switch RequestCode(b[1]) {
		case RequestGetVersion:
		case RequestGetCapabilities:
			c, err := decodeGetCapabilitiesReq(b)
			if err != nil {
				t.Fatal(err)
			}
			o.MinVersion, o.MaxVersion = v, v
			o.CapabilityFlags, o.CTExponent, o.DataTransferSize, o.MaxSPDMmsgSize = c.Flags, c.CTExponent, c.DataTransferSize, c.MaxSPDMmsgSize
		case RequestNegotiateAlgorithms:
			a, err := decodeNegotiateAlgorithmsReq(b)
			if err != nil {
				t.Fatal(err)
			}
			o.AsymAlgos, o.HashAlgos, o.MELSpec = a.BaseAsym, a.BaseHash, a.MELSpec
			o.MultiKeyConn = a.OtherParams&otherParamsMultiKeyConn != 0
			for _, s := range a.Algs {
				switch s.Type {
				case algTypeDHE:
					o.DHEAlgos = DHEAlgo(s.Supported)
				case algTypeAEAD:
					o.AEADAlgos = AEADAlgo(s.Supported)
				case algTypeReqBaseAsym:
					o.ReqAsymAlgos = AsymAlgo(s.Supported)
				case algTypeKeySchedule:
					o.KeySchedules = KeySchedule(s.Supported)
				}
			}
		case RequestChallenge:
			q, err := decodeChallengeReq(b)
			if err != nil {
				t.Fatal(err)
			}
			rnd.Write(q.Nonce[:])
			if v >= Version13 {
				rnd.Write(q.Context[:])
			}
		case RequestGetMeasurements:
			q, err := decodeGetMeasurementsReq(b)
			if err != nil {
				t.Fatal(err)
			}
			if q.signed() {
				rnd.Write(q.Nonce[:])
			}
			if v >= Version13 {
				rnd.Write(q.Context[:])
			}
		}
	}
	o.Rand = &rnd
	return o
}

func anchors(t testing.TB, names ...string) []*x509.Certificate {
	var out []*x509.Certificate
	for _, n := range names {
		c, err := x509.ParseCertificate(loadDER(t, n))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

type replayOutcome struct {
	r             *Requester
	challenges    []*ChallengeResult
	signedMeas    []*MeasurementsResult
	measErrors    int
	slotsRead     []uint8
	lastBlocks    []MeasurementBlock
	oneByOneCount int
}

// replayRun drives the requester with the steps in the recorded order.
// tamper, when set, may change a response before it is returned.
func replayRun(t testing.TB, name string, roots []*x509.Certificate, tamper func(int, []byte) []byte) (*replayOutcome, error) {
	f := loadRef(t, name)
	rt := newReplay(t, f)
	rt.tamper = tamper
	o := replayOptions(t, f, rt.msgs)
	o.Roots = roots
	r := NewRequester(rt, o)
	out := &replayOutcome{r: r}
	ctx := context.Background()
	for i := 0; i < len(rt.msgs); {
		if rt.fail != nil {
			return out, rt.fail
		}
		if i < rt.pos {
			i = rt.pos
			continue
		}
		b := rt.msgs[i].spdm(t)
		var err error
		switch RequestCode(b[1]) {
		case RequestGetVersion:
			_, err = r.Negotiate(ctx)
		case RequestGetDigests:
			_, err = r.Digests(ctx)
		case RequestGetCertificate:
			_, err = r.Certificate(ctx, b[2])
			out.slotsRead = append(out.slotsRead, b[2])
		case RequestChallenge:
			var c *ChallengeResult
			c, err = r.Challenge(ctx, b[2], b[3])
			out.challenges = append(out.challenges, c)
		case RequestGetMeasurements:
			if b[3] == MeasOpCount && name == "v12-p384-onebyone" {
				var blocks []MeasurementBlock
				var last *MeasurementsResult
				blocks, last, err = r.MeasurementsOneByOne(ctx, MeasOpts{Signed: true})
				out.oneByOneCount = len(blocks)
				if err == nil {
					out.signedMeas = append(out.signedMeas, last)
				}
				break
			}
			var m *MeasurementsResult
			m, err = r.Measurements(ctx, MeasOpts{Index: b[3], Signed: b[2]&1 != 0})
			if errors.Is(err, ErrorCodeInvalidRequest) {
				out.measErrors++
				err = nil
			} else if err == nil && m.Signed {
				out.signedMeas = append(out.signedMeas, m)
				out.lastBlocks = m.Blocks
			}
		default:
			t.Fatalf("no step for recorded %s", rt.msgs[i].SPDMName)
		}
		if err != nil {
			return out, err
		}
		if i == rt.pos {
			t.Fatalf("step for %s sent nothing", rt.msgs[i].SPDMName)
		}
	}
	if rt.fail != nil {
		return out, rt.fail
	}
	if !rt.done() {
		return out, fmt.Errorf("recording not consumed: %d/%d", rt.pos, len(rt.msgs))
	}
	return out, nil
}

var replayCases = []struct {
	name         string
	anchor, alt  string
	signedMeas   int
	otherSlot    uint8
	firstVersion string
}{
	{"v11-p256", "ecp256-ca.der", "ecp256-ca1.der", 1, 1, "1.1"},
	{"v12-p384", "ecp384-ca.der", "ecp384-ca1.der", 1, 1, "1.2"},
	{"v13-p384", "ecp384-ca.der", "ecp384-ca1.der", 1, 4, "1.3"},
	{"v12-rsapss3072", "rsa3072-ca.der", "rsa3072-ca1.der", 1, 1, "1.2"},
	// One by one: MeasurementsOneByOne itself sends pass 2 (8 signed reads
	// after the gapped pass 1), byte for byte as recorded; it returns the last.
	{"v12-p384-onebyone", "ecp384-ca.der", "ecp384-ca1.der", 1, 1, "1.2"},
}

// TestReplay replays each recorded connection through our requester: every
// request we send equals the recorded one byte for byte, and the recorded
// CHALLENGE_AUTH and MEASUREMENTS signatures verify through our transcripts.
func TestReplay(t *testing.T) {
	for _, tc := range replayCases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := replayRun(t, tc.name, anchors(t, tc.anchor, tc.alt), nil)
			if err != nil {
				t.Fatal(err)
			}
			n, _ := out.r.Negotiated()
			if n.Version.String() != tc.firstVersion {
				t.Fatalf("version %s", n.Version)
			}
			// The 1.3 recording is a multi-key connection (both sides
			// MULTI_KEY_CAP 10b, the reference requester sets MultiKeyConn):
			// its CHALLENGE_AUTH and MEASUREMENTS verifying below is the
			// evidence that M1 = A‖B‖C and L1 = A‖M take no message D.
			if want := n.Version >= Version13; n.MultiKey != want {
				t.Fatalf("MULTI_KEY_CONN_RSP %v, want %v", n.MultiKey, want)
			}
			if len(out.challenges) != 1 || !out.challenges[0].Verified {
				t.Fatalf("challenges %+v", out.challenges)
			}
			if len(out.signedMeas) != tc.signedMeas {
				t.Fatalf("%d signed measurement responses, want %d", len(out.signedMeas), tc.signedMeas)
			}
			for i, m := range out.signedMeas {
				if !m.Verified || len(m.Signature) != n.BaseAsym.SignatureSize() {
					t.Fatalf("signed measurements %d not verified", i)
				}
			}
			if tc.name == "v12-p384-onebyone" {
				if out.oneByOneCount != 8 || out.measErrors != 0 {
					t.Fatalf("one by one: %d blocks", out.oneByOneCount)
				}
			} else if len(out.lastBlocks) != 8 {
				t.Fatalf("%d blocks", len(out.lastBlocks))
			} else {
				checkRecordedBlocks(t, out.lastBlocks)
				// MeasurementSummaryHash (type 0xFF) = H(all blocks).
				want, _ := hashOf(n.BaseHash, marshalMeasurementRecord(out.lastBlocks))
				if !bytes.Equal(out.challenges[0].SummaryHash, want) {
					t.Fatal("summary hash is not the hash of the measurement record")
				}
			}
			for _, slot := range []uint8{0, tc.otherSlot} {
				rep, err := out.r.VerifyChain(slot)
				if err != nil || !rep.Verified {
					t.Fatalf("slot %d: %v", slot, err)
				}
				if rep.CMASAN != nil || rep.DeviceInfo == nil || *rep.DeviceInfo != "ACME:WIDGET:1234567890" {
					t.Fatalf("slot %d names: %+v %v", slot, rep.CMASAN, rep.DeviceInfo)
				}
			}
			st := out.r.Stats()
			if st.RoundTrips != 11 && tc.name != "v12-p384-onebyone" {
				t.Fatalf("round trips %d", st.RoundTrips)
			}
		})
	}
}

func checkRecordedBlocks(t *testing.T, blocks []MeasurementBlock) {
	idx := ""
	for _, b := range blocks {
		idx += strconv.FormatUint(uint64(b.Index), 16) + ","
	}
	if idx != "1,2,3,4,10,11,fd,fe," {
		t.Fatalf("indices %s", idx)
	}
	if blocks[4].SVN == nil || !blocks[4].RawBitStream || blocks[4].Type != MeasTypeFirmwareSVN {
		t.Fatalf("SVN block %+v", blocks[4])
	}
	if blocks[7].DeviceMode == nil || blocks[7].DeviceMode.OperationalModeCapabilities != 0x3f {
		t.Fatalf("device mode block %+v", blocks[7])
	}
	if blocks[5].Type != MeasTypeHashExtended || blocks[0].TypeName() != "immutable-rom" {
		t.Fatalf("types %+v", blocks)
	}
}
