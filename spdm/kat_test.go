package spdm

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
)

func katFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "kat", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func katKey(t *testing.T, name string) crypto.Signer {
	t.Helper()
	blk, _ := pem.Decode(katFile(t, name))
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(crypto.Signer)
}

// TestSignatureKAT checks our verifier (and, for the deterministic schemes,
// our signer) against signatures made by the OpenSSL CLI over the SPDM
// signing input built in shell (testdata/kat/gen.sh).
func TestSignatureKAT(t *testing.T) {
	if got, want := combinedPrefix(Version12, ctxChallengeAuth), katFile(t, "prefix12.bin"); !bytes.Equal(got, want) {
		t.Fatalf("combined prefix\n got % x\nwant % x", got, want)
	}
	m := katFile(t, "m.txt")
	cases := []struct {
		sig, key      string
		v             Version
		asym          AsymAlgo
		hash          HashAlgo
		deterministic bool
	}{
		{"ecdsa-p256-v11.sig", "p256.pem", Version11, AsymECDSAP256, HashSHA256, false},
		{"ecdsa-p256-v12.sig", "p256.pem", Version12, AsymECDSAP256, HashSHA256, false},
		{"ecdsa-p384-v12.sig", "p384.pem", Version12, AsymECDSAP384, HashSHA384, false},
		{"ecdsa-p521-v12.sig", "p521.pem", Version12, AsymECDSAP521, HashSHA512, false},
		{"rsassa-2048-v12.sig", "rsa2048.pem", Version12, AsymRSASSA2048, HashSHA256, true},
		{"rsassa-3072-v12.sig", "rsa3072.pem", Version12, AsymRSASSA3072, HashSHA384, true},
		{"rsassa-4096-v12.sig", "rsa4096.pem", Version12, AsymRSASSA4096, HashSHA512, true},
		{"rsapss-2048-v12.sig", "rsa2048.pem", Version12, AsymRSAPSS2048, HashSHA256, false},
		{"rsapss-3072-v12.sig", "rsa3072.pem", Version12, AsymRSAPSS3072, HashSHA384, false},
		{"rsapss-4096-v12.sig", "rsa4096.pem", Version12, AsymRSAPSS4096, HashSHA512, false},
		{"ed25519-v12.sig", "ed25519.pem", Version12, AsymEd25519, HashSHA512, true},
	}
	for _, c := range cases {
		t.Run(c.sig, func(t *testing.T) {
			key := katKey(t, c.key)
			sig := katFile(t, c.sig)
			th, err := hashOf(c.hash, m)
			if err != nil {
				t.Fatal(err)
			}
			if err := verifySignature(c.v, c.asym, c.hash, ctxChallengeAuth, key.Public(), th, sig); err != nil {
				t.Fatalf("OpenSSL signature rejected: %v", err)
			}
			bad := bytes.Clone(sig)
			bad[len(bad)/2] ^= 1
			if verifySignature(c.v, c.asym, c.hash, ctxChallengeAuth, key.Public(), th, bad) == nil {
				t.Fatal("flipped bit accepted")
			}
			if verifySignature(c.v, c.asym, c.hash, ctxMeasurements, key.Public(), th, sig) == nil && c.v >= Version12 {
				t.Fatal("signature accepted under another context")
			}
			ours, err := signTranscript(rand.Reader, c.v, c.asym, c.hash, ctxChallengeAuth, key, th)
			if err != nil {
				t.Fatal(err)
			}
			if c.deterministic && !bytes.Equal(ours, sig) {
				t.Fatalf("our signature differs from OpenSSL's")
			}
			if err := verifySignature(c.v, c.asym, c.hash, ctxChallengeAuth, key.Public(), th, ours); err != nil {
				t.Fatalf("own signature: %v", err)
			}
		})
	}
	// Wrong key type or size for the algorithm is an error, not a skip.
	th, _ := hashOf(HashSHA384, m)
	if verifySignature(Version12, AsymECDSAP384, HashSHA384, ctxChallengeAuth, katKey(t, "p256.pem").Public(), th, make([]byte, 96)) == nil {
		t.Fatal("P-256 key accepted for P-384")
	}
	if verifySignature(Version12, AsymSM2P256, HashSHA384, ctxChallengeAuth, katKey(t, "p256.pem").Public(), th, make([]byte, 64)) == nil {
		t.Fatal("SM2 accepted")
	}
}
