package policy

import (
	"crypto"
	_ "crypto/sha256" // registers SHA-256 for digestAlg.hash
	_ "crypto/sha3"   // registers SHA3-*
	_ "crypto/sha512" // registers SHA-384/512

	"github.com/vfio-gate/vfio-gate/attest"
)

// The policy file's algorithm vocabulary is spdm's, as attest reports it;
// these lists are derived from it, never typed twice.
var (
	asymNames = attest.AsymNames()
	hashNames = attest.HashNames()
)

// digestAlg is one reference-value digest algorithm: the measurement hash
// name Evidence reports, the prefix a policy file writes, the digest size.
type digestAlg struct {
	measHash string // attest.Algorithms.MeasurementHash
	ref      string // "sha384" in "sha384:…"
	size     int
	hash     crypto.Hash
}

// digestAlgs is the one table of reference-value digest algorithms.
var digestAlgs = []digestAlg{
	{"sha-256", "sha256", 32, crypto.SHA256},
	{"sha-384", "sha384", 48, crypto.SHA384},
	{"sha-512", "sha512", 64, crypto.SHA512},
	{"sha3-256", "sha3-256", 32, crypto.SHA3_256},
	{"sha3-384", "sha3-384", 48, crypto.SHA3_384},
	{"sha3-512", "sha3-512", 64, crypto.SHA3_512},
}

// RefAlg is the reference-value prefix for a measurement hash name as
// Evidence reports it ("sha-384" → "sha384"); "" when the policy file has
// none (raw bit streams, SM3).
func RefAlg(measHash string) string {
	for _, a := range digestAlgs {
		if a.measHash == measHash {
			return a.ref
		}
	}
	return ""
}

func digestAlgOf(ref string) (digestAlg, bool) {
	for _, a := range digestAlgs {
		if a.ref == ref {
			return a, true
		}
	}
	return digestAlg{}, false
}

// DigestOf is the digest of b under a reference-value algorithm ("sha384"),
// nil for an unknown one.
func DigestOf(ref string, b []byte) []byte {
	a, ok := digestAlgOf(ref)
	if !ok || !a.hash.Available() {
		return nil
	}
	h := a.hash.New()
	h.Write(b)
	return h.Sum(nil)
}
