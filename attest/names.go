package attest

import (
	"fmt"
	"strings"

	"github.com/vfio-gate/vfio-gate/spdm"
)

// Algorithm names in Evidence are the spdm package's ("ecdsa-p384",
// "ed25519", "sha-384"): the policy file uses the same vocabulary
// (policy/names_test.go keeps the two in step).

// AsymName names one BaseAsymAlgo bit as Evidence reports it.
func AsymName(a spdm.AsymAlgo) string { return a.String() }

func measHashName(m spdm.MeasHashAlgo) string {
	if m == 0 {
		return ""
	}
	return m.String()
}

// AsymNames lists every asymmetric algorithm name Evidence can report, in
// BaseAsymAlgo bit order: the policy file's vocabulary.
func AsymNames() []string {
	return bitNames(func(b uint32) string { return spdm.AsymAlgo(b).String() })
}

// HashNames lists every base hash algorithm name, in BaseHashAlgo bit order.
func HashNames() []string {
	return bitNames(func(b uint32) string { return spdm.HashAlgo(b).String() })
}

// bitNames lists the names spdm knows for single bits ("bitN" is unknown).
func bitNames(name func(uint32) string) []string {
	var out []string
	for i := range 32 {
		if n := name(1 << i); !strings.HasPrefix(n, "bit") {
			out = append(out, n)
		}
	}
	return out
}

// ParseAsym parses an asymmetric algorithm name ("ecdsa-p384", "ed25519").
func ParseAsym(s string) (spdm.AsymAlgo, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	for i := 0; i < 32; i++ {
		a := spdm.AsymAlgo(1) << i
		if n := a.String(); !strings.HasPrefix(n, "bit") && n == s {
			return a, nil
		}
	}
	return 0, fmt.Errorf("attest: unknown asymmetric algorithm %q", s)
}

// ParseHash parses a base hash algorithm name ("sha-384").
func ParseHash(s string) (spdm.HashAlgo, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	for i := 0; i < 32; i++ {
		h := spdm.HashAlgo(1) << i
		if n := h.String(); !strings.HasPrefix(n, "bit") && n == s {
			return h, nil
		}
	}
	return 0, fmt.Errorf("attest: unknown hash algorithm %q", s)
}

// ParseVersion parses "1.0" … "1.3".
func ParseVersion(s string) (spdm.Version, error) {
	for _, v := range []spdm.Version{spdm.Version10, spdm.Version11, spdm.Version12, spdm.Version13} {
		if v.String() == strings.TrimSpace(s) {
			return v, nil
		}
	}
	return 0, fmt.Errorf("attest: unknown SPDM version %q (want 1.0, 1.1, 1.2 or 1.3)", s)
}
