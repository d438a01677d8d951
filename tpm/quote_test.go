package tpm

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/big"
	"os"
	"testing"

	"github.com/google/go-eventlog/register"
	"github.com/google/go-eventlog/tcg"
	"github.com/google/go-tpm/tpm2"
)

// The PCR file matches, byte for byte, the one tpm2_quote -o wrote for the
// same value (testdata/tpm2-tools/README.md).
func TestTPM2ToolsPCRsGolden(t *testing.T) {
	want, err := os.ReadFile("testdata/tpm2-tools/quote-sha256-pcr13.pcrs")
	if err != nil {
		t.Fatal(err)
	}
	v := sha256.Sum256(append(make([]byte, 32), append(make([]byte, 31), 1)...))
	if got := TPM2ToolsPCRs(13, v[:]); !bytes.Equal(got, want) {
		t.Fatalf("PCR file differs from tpm2_quote's:\n got %x\nwant %x", got, want)
	}
}

// The AK is created once and persisted; a quote over the recorded PCR
// carries the nonce, verifies with the AK's public key over TPMS_ATTEST,
// and its pcrDigest is SHA-256 of the PCR value the log replays to.
func TestQuoteAndTCG2Export(t *testing.T) {
	_, tp := openSimT(t)
	r, dir := newRec(t, tp, DefaultPCR)
	r.segRecords = 8 // two segments, chained
	recordSample(t, r, true)
	recordSample(t, r, false)

	ak, err := EnsureAK(tp)
	if err != nil || !ak.Created {
		t.Fatalf("EnsureAK: %+v %v", ak, err)
	}
	again, err := EnsureAK(tp)
	if err != nil || again.Created || !again.Public.Equal(ak.Public) || !bytes.Equal(again.Name, ak.Name) {
		t.Fatalf("second EnsureAK: %+v %v", again, err)
	}
	nonce := []byte("verifier nonce")
	q, err := Quote(tp, ak, DefaultPCR, nonce)
	if err != nil {
		t.Fatal(err)
	}
	att, err := tpm2.Unmarshal[tpm2.TPMSAttest](q.Attest)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(att.ExtraData.Buffer, nonce) || att.Type != tpm2.TPMSTAttestQuote {
		t.Fatalf("attest %+v", att)
	}
	sig, err := tpm2.Unmarshal[tpm2.TPMTSignature](q.Signature)
	if err != nil {
		t.Fatal(err)
	}
	es, err := sig.Signature.ECDSA()
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(q.Attest)
	if !ecdsa.Verify(ak.Public, h[:], new(big.Int).SetBytes(es.SignatureR.Buffer), new(big.Int).SetBytes(es.SignatureS.Buffer)) {
		t.Fatal("quote signature does not verify with the AK")
	}
	h[0] ^= 1
	if ecdsa.Verify(ak.Public, h[:], new(big.Int).SetBytes(es.SignatureR.Buffer), new(big.Int).SetBytes(es.SignatureS.Buffer)) {
		t.Fatal("signature verifies over other data")
	}

	recs, start, err := ExtendedRecords(dir, 0)
	if err != nil || len(recs) != 12 {
		t.Fatalf("%d records, %v", len(recs), err)
	}
	replay, err := ReplayTCG2Value(recs, start["sha256"], "sha256")
	if err != nil || !bytes.Equal(replay, q.PCR) {
		t.Fatalf("replay %x, quoted PCR %x (%v)", replay, q.PCR, err)
	}
	bin, err := EncodeTCG2(recs)
	if err != nil {
		t.Fatal(err)
	}
	// go-eventlog, an independent parser, replays it to the quoted value.
	mr := []register.MR{register.PCR{Index: DefaultPCR, Digest: q.PCR, DigestAlg: crypto.SHA256}}
	evs, err := tcg.ParseAndReplay(bin, mr, tcg.ParseOpts{})
	if err != nil || len(evs) != len(recs) {
		t.Fatalf("go-eventlog: %d events, %v", len(evs), err)
	}
	if evs[len(evs)-1].UntrustedType() != tcg.EventType(EvEventTag) {
		t.Errorf("verdict exported as %v", evs[len(evs)-1].UntrustedType())
	}
	// Records a resync baseline acknowledged as never extended are not
	// exported: the binary log holds only what the PCR holds.
	rewriteLines(t, dir, func(l []string) []string {
		rec, _ := ParseRecord([]byte(l[len(l)-1]))
		rec.RecNum++
		b, _ := rec.MarshalJSON()
		return append(l, string(b))
	})
	recordSample(t, r, true)
	recs2, _, err := ExtendedRecords(dir, 0)
	if err != nil || len(recs2) != 18 {
		t.Fatalf("after resync: %d records, %v", len(recs2), err)
	}
	q2, err := Quote(tp, ak, DefaultPCR, nonce)
	if err != nil {
		t.Fatal(err)
	}
	bin2, _ := EncodeTCG2(recs2)
	if _, err := tcg.ParseAndReplay(bin2, []register.MR{register.PCR{Index: DefaultPCR, Digest: q2.PCR, DigestAlg: crypto.SHA256}}, tcg.ParseOpts{}); err != nil {
		t.Fatalf("after resync: %v", err)
	}
}

// The EK certificate is read from its NV index when the TPM has one (here
// defined by the test, as a manufacturer would), and its absence is not an
// error.
func TestEKCertificate(t *testing.T) {
	_, tp := openSimT(t)
	if _, _, found, err := EKCertificate(tp); err != nil || found {
		t.Fatalf("fresh simulator: found %v, %v", found, err)
	}
	cert := bytes.Repeat([]byte{0x30, 0x82, 0xaa, 0x55}, 300) // 1200 bytes: three reads
	def := tpm2.TPMSNVPublic{NVIndex: tpm2.TPMHandle(NVIndexEKCertECC), NameAlg: tpm2.TPMAlgSHA256,
		Attributes: tpm2.TPMANV{OwnerWrite: true, AuthWrite: true, AuthRead: true, OwnerRead: true, NoDA: true}, DataSize: uint16(len(cert))}
	if _, err := (tpm2.NVDefineSpace{AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
		PublicInfo: tpm2.New2B(def)}).Execute(tp); err != nil {
		t.Fatal(err)
	}
	rp, err := (tpm2.NVReadPublic{NVIndex: tpm2.TPMHandle(NVIndexEKCertECC)}).Execute(tp)
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(cert); off += 512 {
		end := min(off+512, len(cert))
		if _, err := (tpm2.NVWrite{AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
			NVIndex: tpm2.NamedHandle{Handle: tpm2.TPMHandle(NVIndexEKCertECC), Name: rp.NVName},
			Data:    tpm2.TPM2BMaxNVBuffer{Buffer: cert[off:end]}, Offset: uint16(off)}).Execute(tp); err != nil {
			t.Fatal(err)
		}
	}
	der, idx, found, err := EKCertificate(tp)
	if err != nil || !found || idx != NVIndexEKCertECC || !bytes.Equal(der, cert) {
		t.Fatalf("EKCertificate: %d bytes at 0x%08x, found %v, %v", len(der), idx, found, err)
	}
}

// ReplayTCG2Value is the value of pcr in bank name after extending the
// digests of recs from start, for checks of an export.
func ReplayTCG2Value(recs []*Record, start []byte, name string) ([]byte, error) {
	b, ok := bankByName(name)
	if !ok {
		return nil, fmt.Errorf("tpm: unknown bank %q", name)
	}
	cur := bytes.Clone(start)
	for _, r := range recs {
		d, err := hex.DecodeString(digestOf(r, name))
		if err != nil {
			return nil, err
		}
		cur = b.extendValue(cur, d)
	}
	return cur, nil
}
