package emu

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/vfio-gate/vfio-gate/internal/pemcert"

	"github.com/vfio-gate/vfio-gate/spdm"
)

// PKI is an operator-supplied set of signing identities: the device serves
// them instead of generating its own test chains, so it can stand in for a
// vendor's test device and be verified against the operator's roots.
type PKI struct {
	// Slots[n] are the chains of certificate slot n, at most one per key
	// type. Slot 0 must not be empty.
	Slots [][]*Chain
	// Skipped lists what LoadPKIDir found but could not use (an algorithm
	// the device cannot sign with, such as Ed448 or SM2), one line each.
	Skipped []string
}

// File names of DMTF's sample keys (libspdm unit_test/sample_key/<alg>/,
// spdm-emu): the responder's leaf key, its certificate chain (DER
// certificates concatenated, root first) for slot 0, and for slot N the
// chain bundle_responder.certchainN.der with key end_responderN.key when
// present, else end_responder.key.
const (
	dmtfLeafKey    = "end_responder.key"
	dmtfChainSlot0 = "bundle_responder.certchain.der"
)

// LoadPKIDir loads operator keys and chains from dir, in DMTF's sample-key
// layout: either dir itself or each of its subdirectories (one per
// algorithm: ecp256/, ecp384/, rsa3072/, ... — the name does not matter,
// the key decides) holds end_responder.key and
// bundle_responder.certchain.der, and optionally bundle_responder.certchainN.der
// for slot N. Keys and chains may be PEM or DER. A subdirectory whose key
// the device cannot sign with is listed in Skipped; any other problem is an
// error naming the file.
func LoadPKIDir(dir string) (*PKI, error) {
	p := &PKI{}
	dirs := []string{dir}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("emu: --pki: %w", err)
	}
	for _, e := range ents {
		if e.IsDir() {
			dirs = append(dirs, filepath.Join(dir, e.Name()))
		}
	}
	for _, d := range dirs {
		keyFile := filepath.Join(d, dmtfLeafKey)
		if _, err := os.Stat(keyFile); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		for slot := 0; slot < 8; slot++ {
			chainFile := filepath.Join(d, dmtfChainSlot0)
			kf := keyFile
			if slot > 0 {
				chainFile = filepath.Join(d, "bundle_responder.certchain"+strconv.Itoa(slot)+".der")
				if alt := filepath.Join(d, "end_responder"+strconv.Itoa(slot)+".key"); fileExists(alt) {
					kf = alt
				}
			}
			if !fileExists(chainFile) {
				if slot == 0 {
					return nil, fmt.Errorf("emu: --pki: %s has %s but no %s", d, dmtfLeafKey, dmtfChainSlot0)
				}
				continue
			}
			c, err := LoadKeyChain(kf, chainFile)
			if errors.Is(err, errUnsupportedKey) {
				p.Skipped = append(p.Skipped, fmt.Sprintf("%s: %v", d, err))
				break
			}
			if err != nil {
				return nil, err
			}
			if err := p.add(slot, c); err != nil {
				return nil, fmt.Errorf("emu: --pki: %s: %w", chainFile, err)
			}
		}
	}
	if len(p.Slots) == 0 || len(p.Slots[0]) == 0 {
		return nil, fmt.Errorf("emu: --pki: no usable %s with %s in %s or its subdirectories", dmtfLeafKey, dmtfChainSlot0, dir)
	}
	return p, nil
}

// add puts c into slot n; a slot holds one chain per key type.
func (p *PKI) add(n int, c *Chain) error {
	for len(p.Slots) <= n {
		p.Slots = append(p.Slots, nil)
	}
	for _, o := range p.Slots[n] {
		if o.Type == c.Type {
			return fmt.Errorf("a second %s chain for slot %d", c.Type, n)
		}
	}
	p.Slots[n] = append(p.Slots[n], c)
	return nil
}

func fileExists(name string) bool {
	st, err := os.Stat(name)
	return err == nil && st.Mode().IsRegular()
}

// LoadKeyChain reads one signing identity: a private key (PEM or DER;
// PKCS #8, SEC 1 or PKCS #1) and its certificate chain (PEM blocks or
// concatenated DER, root first or leaf first).
func LoadKeyChain(keyFile, chainFile string) (*Chain, error) {
	kb, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("emu: key: %w", err)
	}
	key, err := ParsePrivateKey(kb)
	if err != nil {
		return nil, fmt.Errorf("emu: key %s: %w", keyFile, err)
	}
	cb, err := os.ReadFile(chainFile)
	if err != nil {
		return nil, fmt.Errorf("emu: chain: %w", err)
	}
	certs, err := ParseCertificates(cb)
	if err != nil {
		return nil, fmt.Errorf("emu: chain %s: %w", chainFile, err)
	}
	c, err := NewOperatorChain(key, certs)
	if err != nil {
		return nil, fmt.Errorf("emu: %s with %s: %w", keyFile, chainFile, err)
	}
	return c, nil
}

// errUnsupportedKey: a well-formed key the device cannot sign with.
var errUnsupportedKey = errors.New("key type not supported by the software device")

// ParsePrivateKey parses a private key in PEM or DER: PKCS #8, SEC 1 (EC)
// or PKCS #1 (RSA).
func ParsePrivateKey(b []byte) (crypto.Signer, error) {
	der := b
	if blk, _ := pem.Decode(b); blk != nil {
		der = blk.Bytes
	} else if bytes.Contains(b, []byte("-----BEGIN")) {
		return nil, errors.New("malformed PEM")
	}
	var key any
	var err error
	if key, err = x509.ParsePKCS8PrivateKey(der); err != nil {
		if k, e := x509.ParseECPrivateKey(der); e == nil {
			key, err = k, nil
		} else if k, e := x509.ParsePKCS1PrivateKey(der); e == nil {
			key, err = k, nil
		}
	}
	if err != nil {
		// Go cannot parse Ed448 or SM2 keys: report them as unsupported,
		// not as corrupt, so a DMTF sample-key tree loads what it can.
		return nil, fmt.Errorf("%w (not a PKCS #8, SEC 1 or PKCS #1 key Go can read: %v)", errUnsupportedKey, err)
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: %T", errUnsupportedKey, key)
	}
	if _, err := keyTypeOf(s.Public()); err != nil {
		return nil, err
	}
	return s, nil
}

// ParseCertificates parses PEM CERTIFICATE blocks or concatenated DER
// (internal/pemcert).
func ParseCertificates(b []byte) ([]*x509.Certificate, error) { return pemcert.Parse(b) }

// keyTypeOf maps a public key to the device's key type.
func keyTypeOf(pub crypto.PublicKey) (KeyType, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return KeyECDSAP256, nil
		case elliptic.P384():
			return KeyECDSAP384, nil
		case elliptic.P521():
			return KeyECDSAP521, nil
		}
		return 0, fmt.Errorf("%w: ECDSA on %s", errUnsupportedKey, k.Curve.Params().Name)
	case *rsa.PublicKey:
		switch k.N.BitLen() {
		case 2048:
			return KeyRSA2048, nil
		case 3072:
			return KeyRSA3072, nil
		case 4096:
			return KeyRSA4096, nil
		}
		return 0, fmt.Errorf("%w: RSA-%d (SPDM: 2048, 3072, 4096)", errUnsupportedKey, k.N.BitLen())
	case ed25519.PublicKey:
		return KeyEd25519, nil
	}
	return 0, fmt.Errorf("%w: %T", errUnsupportedKey, pub)
}

// NewOperatorChain checks an operator's key and chain and returns them as
// a Chain: the certificates are put root first (a leaf-first bundle is
// reversed), each must be signed by the one before it, and the last one's
// public key must be key's. The anchor a verifier should trust is the
// first certificate (the root when the bundle carries one).
func NewOperatorChain(key crypto.Signer, certs []*x509.Certificate) (*Chain, error) {
	if len(certs) == 0 {
		return nil, errors.New("empty certificate chain")
	}
	certs = slices.Clone(certs)
	if !linked(certs) {
		slices.Reverse(certs)
		if !linked(certs) {
			return nil, errors.New("the certificates do not form a chain (each must be signed by the previous one, root first)")
		}
	}
	kt, err := keyTypeOf(key.Public())
	if err != nil {
		return nil, err
	}
	leaf := certs[len(certs)-1]
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if pk, ok := leaf.PublicKey.(equaler); !ok || !pk.Equal(key.Public()) {
		return nil, fmt.Errorf("the private key does not belong to the leaf certificate %q", leaf.Subject.String())
	}
	return &Chain{Type: kt, Anchor: certs[0], Certs: certs, LeafKey: key}, nil
}

// linked reports whether every certificate is signed by the one before it.
func linked(certs []*x509.Certificate) bool {
	for i := 1; i < len(certs); i++ {
		if certs[i].CheckSignatureFrom(certs[i-1]) != nil {
			return false
		}
	}
	return true
}

// KeyTypeAlgorithms is the set of SPDM signature algorithms keys of type k
// sign with.
func KeyTypeAlgorithms(k KeyType) spdm.AsymAlgo {
	for _, ak := range asymKeyTypes {
		if ak.key == k {
			return ak.asym
		}
	}
	return 0
}
