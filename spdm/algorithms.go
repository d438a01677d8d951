package spdm

import (
	"crypto"
	_ "crypto/sha256" // register SHA-256 for crypto.Hash
	_ "crypto/sha3"   // register SHA3 for crypto.Hash
	_ "crypto/sha512" // register SHA-384/512 for crypto.Hash
	"fmt"
	"math/bits"
	"sort"
	"strings"
)

// AsymAlgo is the BaseAsymAlgo bit field (also ReqBaseAsymAlg). DSP0274 1.3 Table 15.
type AsymAlgo uint32

// Asymmetric signature algorithms.
const (
	AsymRSASSA2048 AsymAlgo = 1 << 0
	AsymRSAPSS2048 AsymAlgo = 1 << 1
	AsymRSASSA3072 AsymAlgo = 1 << 2
	AsymRSAPSS3072 AsymAlgo = 1 << 3
	AsymECDSAP256  AsymAlgo = 1 << 4
	AsymRSASSA4096 AsymAlgo = 1 << 5
	AsymRSAPSS4096 AsymAlgo = 1 << 6
	AsymECDSAP384  AsymAlgo = 1 << 7
	AsymECDSAP521  AsymAlgo = 1 << 8
	AsymSM2P256    AsymAlgo = 1 << 9
	AsymEd25519    AsymAlgo = 1 << 10
	AsymEd448      AsymAlgo = 1 << 11
)

// AsymVerifiable is every asymmetric algorithm this package can verify.
const AsymVerifiable = AsymRSASSA2048 | AsymRSAPSS2048 | AsymRSASSA3072 | AsymRSAPSS3072 | AsymECDSAP256 |
	AsymRSASSA4096 | AsymRSAPSS4096 | AsymECDSAP384 | AsymECDSAP521 | AsymEd25519

// HashAlgo is the BaseHashAlgo bit field. DSP0274 1.3 Table 15.
type HashAlgo uint32

// Hash algorithms.
const (
	HashSHA256   HashAlgo = 1 << 0
	HashSHA384   HashAlgo = 1 << 1
	HashSHA512   HashAlgo = 1 << 2
	HashSHA3_256 HashAlgo = 1 << 3
	HashSHA3_384 HashAlgo = 1 << 4
	HashSHA3_512 HashAlgo = 1 << 5
	HashSM3_256  HashAlgo = 1 << 6
)

// HashSupported is every base hash this package computes.
const HashSupported = HashSHA256 | HashSHA384 | HashSHA512 | HashSHA3_256 | HashSHA3_384 | HashSHA3_512

// MeasHashAlgo is the MeasurementHashAlgo field of ALGORITHMS. Bit 0 means
// raw bit streams only.
type MeasHashAlgo uint32

// Measurement hash algorithms.
const (
	MeasHashRawBitStream MeasHashAlgo = 1 << 0
	MeasHashSHA256       MeasHashAlgo = 1 << 1
	MeasHashSHA384       MeasHashAlgo = 1 << 2
	MeasHashSHA512       MeasHashAlgo = 1 << 3
	MeasHashSHA3_256     MeasHashAlgo = 1 << 4
	MeasHashSHA3_384     MeasHashAlgo = 1 << 5
	MeasHashSHA3_512     MeasHashAlgo = 1 << 6
	MeasHashSM3_256      MeasHashAlgo = 1 << 7
)

// DHEAlgo is AlgStruct type 2.
type DHEAlgo uint16

// DHE groups.
const (
	DHEFFDHE2048 DHEAlgo = 1 << 0
	DHEFFDHE3072 DHEAlgo = 1 << 1
	DHEFFDHE4096 DHEAlgo = 1 << 2
	DHESECP256R1 DHEAlgo = 1 << 3
	DHESECP384R1 DHEAlgo = 1 << 4
	DHESECP521R1 DHEAlgo = 1 << 5
	DHESM2P256   DHEAlgo = 1 << 6
)

// AEADAlgo is AlgStruct type 3.
type AEADAlgo uint16

// AEAD suites.
const (
	AEADAES128GCM        AEADAlgo = 1 << 0
	AEADAES256GCM        AEADAlgo = 1 << 1
	AEADChaCha20Poly1305 AEADAlgo = 1 << 2
	AEADSM4GCM           AEADAlgo = 1 << 3
)

// KeySchedule is AlgStruct type 5.
type KeySchedule uint16

// KeyScheduleSPDM is the SPDM key schedule.
const KeyScheduleSPDM KeySchedule = 1 << 0

// AlgStruct types (NEGOTIATE_ALGORITHMS / ALGORITHMS, 1.1+).
const (
	algTypeDHE         uint8 = 2
	algTypeAEAD        uint8 = 3
	algTypeReqBaseAsym uint8 = 4
	algTypeKeySchedule uint8 = 5
)

// MeasurementSpecDMTF is bit 0 of MeasurementSpecification.
const MeasurementSpecDMTF uint8 = 1 << 0

var asymNames = map[AsymAlgo]string{
	AsymRSASSA2048: "rsassa-2048", AsymRSAPSS2048: "rsapss-2048", AsymRSASSA3072: "rsassa-3072",
	AsymRSAPSS3072: "rsapss-3072", AsymECDSAP256: "ecdsa-p256", AsymRSASSA4096: "rsassa-4096",
	AsymRSAPSS4096: "rsapss-4096", AsymECDSAP384: "ecdsa-p384", AsymECDSAP521: "ecdsa-p521",
	AsymSM2P256: "sm2-p256", AsymEd25519: "ed25519", AsymEd448: "ed448",
}

var hashNames = map[HashAlgo]string{
	HashSHA256: "sha-256", HashSHA384: "sha-384", HashSHA512: "sha-512", HashSHA3_256: "sha3-256",
	HashSHA3_384: "sha3-384", HashSHA3_512: "sha3-512", HashSM3_256: "sm3-256",
}

var measHashNames = map[MeasHashAlgo]string{
	MeasHashRawBitStream: "raw-bit-stream", MeasHashSHA256: "sha-256", MeasHashSHA384: "sha-384",
	MeasHashSHA512: "sha-512", MeasHashSHA3_256: "sha3-256", MeasHashSHA3_384: "sha3-384",
	MeasHashSHA3_512: "sha3-512", MeasHashSM3_256: "sm3-256",
}

var dheNames = map[DHEAlgo]string{
	DHEFFDHE2048: "ffdhe2048", DHEFFDHE3072: "ffdhe3072", DHEFFDHE4096: "ffdhe4096",
	DHESECP256R1: "secp256r1", DHESECP384R1: "secp384r1", DHESECP521R1: "secp521r1", DHESM2P256: "sm2-p256",
}

var aeadNames = map[AEADAlgo]string{
	AEADAES128GCM: "aes-128-gcm", AEADAES256GCM: "aes-256-gcm", AEADChaCha20Poly1305: "chacha20-poly1305",
	AEADSM4GCM: "sm4-gcm",
}

func bitNames[T ~uint16 | ~uint32](v T, names map[T]string) string {
	if v == 0 {
		return "none"
	}
	var out []string
	for i := 0; i < 32; i++ {
		b := T(1) << i
		if v&b == 0 {
			continue
		}
		if n, ok := names[b]; ok {
			out = append(out, n)
		} else {
			out = append(out, fmt.Sprintf("bit%d", i))
		}
	}
	sort.Strings(out)
	return strings.Join(out, "|")
}

func (a AsymAlgo) String() string     { return bitNames(a, asymNames) }
func (h HashAlgo) String() string     { return bitNames(h, hashNames) }
func (m MeasHashAlgo) String() string { return bitNames(m, measHashNames) }
func (d DHEAlgo) String() string      { return bitNames(d, dheNames) }
func (a AEADAlgo) String() string     { return bitNames(a, aeadNames) }

// oneBit reports whether exactly one bit is set.
func oneBit[T ~uint8 | ~uint16 | ~uint32](v T) bool { return v != 0 && v&(v-1) == 0 }

// SignatureSize is the signature length in bytes for one algorithm bit, 0 if unknown.
func (a AsymAlgo) SignatureSize() int {
	switch a {
	case AsymRSASSA2048, AsymRSAPSS2048:
		return 256
	case AsymRSASSA3072, AsymRSAPSS3072:
		return 384
	case AsymRSASSA4096, AsymRSAPSS4096:
		return 512
	case AsymECDSAP256, AsymSM2P256, AsymEd25519:
		return 64
	case AsymECDSAP384:
		return 96
	case AsymECDSAP521:
		return 132
	case AsymEd448:
		return 114
	}
	return 0
}

// CryptoHash maps one HashAlgo bit to crypto.Hash (0 if unsupported).
func (h HashAlgo) CryptoHash() crypto.Hash {
	switch h {
	case HashSHA256:
		return crypto.SHA256
	case HashSHA384:
		return crypto.SHA384
	case HashSHA512:
		return crypto.SHA512
	case HashSHA3_256:
		return crypto.SHA3_256
	case HashSHA3_384:
		return crypto.SHA3_384
	case HashSHA3_512:
		return crypto.SHA3_512
	}
	return 0
}

// Size is the digest length of one HashAlgo bit, 0 if unknown.
func (h HashAlgo) Size() int {
	switch h {
	case HashSHA256, HashSHA3_256, HashSM3_256:
		return 32
	case HashSHA384, HashSHA3_384:
		return 48
	case HashSHA512, HashSHA3_512:
		return 64
	}
	return 0
}

// CryptoHash maps one MeasHashAlgo bit to crypto.Hash (0 for raw or unsupported).
func (m MeasHashAlgo) CryptoHash() crypto.Hash {
	switch m {
	case MeasHashSHA256:
		return crypto.SHA256
	case MeasHashSHA384:
		return crypto.SHA384
	case MeasHashSHA512:
		return crypto.SHA512
	case MeasHashSHA3_256:
		return crypto.SHA3_256
	case MeasHashSHA3_384:
		return crypto.SHA3_384
	case MeasHashSHA3_512:
		return crypto.SHA3_512
	}
	return 0
}

// Size is the digest length of one MeasHashAlgo bit (0 for raw bit stream).
func (m MeasHashAlgo) Size() int {
	switch m {
	case MeasHashSHA256, MeasHashSHA3_256, MeasHashSM3_256:
		return 32
	case MeasHashSHA384, MeasHashSHA3_384:
		return 48
	case MeasHashSHA512, MeasHashSHA3_512:
		return 64
	}
	return 0
}

func popcount8(v uint8) int { return bits.OnesCount8(v) }

// OtherParams bits (NEGOTIATE_ALGORITHMS OtherParamsSupport / ALGORITHMS
// OtherParamsSelection). DSP0274 1.3 Table 15/16.
const (
	otherParamsOpaqueFmt1    uint8 = 0x02 // OpaqueDataFmt1 (general opaque data table)
	otherParamsMultiKeyConn  uint8 = 0x10 // 1.3
	otherParamsOpaqueFmtMask uint8 = 0x0F
)
