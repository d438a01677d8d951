package spdm

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestOfflineBundle(t *testing.T) {
	out, err := replayRun(t, "v12-p384", anchors(t, "ecp384-ca.der"), nil)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := out.r.Negotiated()
	buf := out.r.chains[0].Buffer
	c, m := out.challenges[0], out.signedMeas[0]
	if err := VerifyTranscriptSignature(SignatureChallengeAuth, n.Version, n.BaseAsym, n.BaseHash, buf, c.Transcript, c.Signature); err != nil {
		t.Fatal(err)
	}
	if err := VerifyTranscriptSignature(SignatureMeasurements, n.Version, n.BaseAsym, n.BaseHash, buf, m.Transcript, m.Signature); err != nil {
		t.Fatal(err)
	}
	// The transcript begins with VCA and is not DOE-padded (M1 = 6 VCA + B + C).
	if !bytes.HasPrefix(c.Transcript, out.r.VCA()) || !bytes.HasPrefix(m.Transcript, out.r.VCA()) {
		t.Fatal("transcripts do not start with VCA")
	}
	if err := VerifyTranscriptSignature(SignatureMeasurements, n.Version, n.BaseAsym, n.BaseHash, buf, c.Transcript, c.Signature); err == nil {
		t.Fatal("challenge signature accepted as a measurements signature")
	}
	bad := bytes.Clone(m.Transcript)
	bad[len(bad)-1] ^= 1
	if err := VerifyTranscriptSignature(SignatureMeasurements, n.Version, n.BaseAsym, n.BaseHash, buf, bad, m.Signature); err == nil {
		t.Fatal("tampered transcript accepted")
	}
	if got := capString(n.Caps); got == "" || !bytes.Contains([]byte(got), []byte("meas-sig")) || !bytes.Contains([]byte(got), []byte("chunk")) {
		t.Fatalf("caps %q", got)
	}
}

// BenchmarkReplayFullFlow runs VCA + digests + 2 certificate chains +
// challenge + digests/certificate + signed measurements (the recorded
// v12-p384 connection) with full verification, over an in-memory replay.
func BenchmarkReplayFullFlow(b *testing.B) {
	f := loadRef(b, "v12-p384")
	rt := newReplay(b, f)
	o := replayOptions(b, f, rt.msgs)
	o.Roots = anchors(b, "ecp384-ca.der", "ecp384-ca1.der")
	rnd := o.Rand.(*bytes.Buffer).Bytes()
	ctx := context.Background()
	var st Stats
	b.ReportAllocs()
	for b.Loop() {
		rt.pos = 0
		o.Rand = bytes.NewReader(rnd)
		r := NewRequester(rt, o)
		if _, err := r.Negotiate(ctx); err != nil {
			b.Fatal(err)
		}
		must := func(err error) {
			if err != nil {
				b.Fatal(err)
			}
		}
		_, err := r.Digests(ctx)
		must(err)
		_, err = r.Certificate(ctx, 0)
		must(err)
		_, err = r.Certificate(ctx, 1)
		must(err)
		_, err = r.VerifyChain(0)
		must(err)
		_, err = r.Challenge(ctx, 0, SummaryAll)
		must(err)
		_, err = r.Digests(ctx)
		must(err)
		_, err = r.Certificate(ctx, 0)
		must(err)
		_, err = r.Digests(ctx)
		must(err)
		_, err = r.Measurements(ctx, MeasOpts{Index: MeasOpAll, Signed: true})
		must(err)
		st = r.Stats()
	}
	b.ReportMetric(float64(st.RoundTrips), "roundtrips/op")
	b.ReportMetric(float64(st.BytesSent), "bytes-sent/op")
	b.ReportMetric(float64(st.BytesRecv), "bytes-recv/op")
}

// String lists the capability names joined by "|".
func capString(flags uint32) string { return strings.Join(CapabilityNames(flags), "|") }
