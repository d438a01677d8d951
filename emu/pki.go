package emu

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"embed"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"
)

// KeyType is the kind of key a certificate chain is built on. One RSA key
// serves both RSASSA (PKCS #1 v1.5) and RSA-PSS.
type KeyType int

// Key types of the software device.
const (
	KeyECDSAP256 KeyType = iota + 1
	KeyECDSAP384
	KeyECDSAP521
	KeyRSA2048
	KeyRSA3072
	KeyRSA4096
	KeyEd25519
)

// KeyTypes lists every key type, in a stable order.
var KeyTypes = []KeyType{KeyECDSAP256, KeyECDSAP384, KeyECDSAP521, KeyRSA2048, KeyRSA3072, KeyRSA4096, KeyEd25519}

var keyTypeNames = map[KeyType]string{
	KeyECDSAP256: "ecdsa-p256", KeyECDSAP384: "ecdsa-p384", KeyECDSAP521: "ecdsa-p521",
	KeyRSA2048: "rsa-2048", KeyRSA3072: "rsa-3072", KeyRSA4096: "rsa-4096", KeyEd25519: "ed25519",
}

func (k KeyType) String() string {
	if n, ok := keyTypeNames[k]; ok {
		return n
	}
	return fmt.Sprintf("KeyType(%d)", int(k))
}

// generate makes a fresh private key of type k.
func (k KeyType) generate() (crypto.Signer, error) {
	switch k {
	case KeyECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case KeyECDSAP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case KeyECDSAP521:
		return ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case KeyRSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case KeyRSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	case KeyRSA4096:
		return rsa.GenerateKey(rand.Reader, 4096)
	case KeyEd25519:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	}
	return nil, fmt.Errorf("emu: unknown key type %d", int(k))
}

// Identity is what the function says it is: the config-space IDs that the CMA
// subject-alt-name of the leaf certificate repeats (PCIe r6.1 §6.31.3).
type Identity struct {
	Vendor, Device       uint16
	Class                uint32 // 24-bit class code
	Revision             uint8
	SubVendor, SubDevice uint16
	DSN                  uint64 // Device Serial Number; 0 = no DSN capability
}

// CMAName is the CMA SAN value for id: lowercase hex,
// "Vendor=%04x:Device=%04x:CC=%06x:REV=%02x:SSVID=%04x:SSID=%04x", then
// ":%016x" when the function has a Device Serial Number.
func (id Identity) CMAName() string {
	s := fmt.Sprintf("Vendor=%04x:Device=%04x:CC=%06x:REV=%02x:SSVID=%04x:SSID=%04x",
		id.Vendor, id.Device, id.Class&0xffffff, id.Revision, id.SubVendor, id.SubDevice)
	if id.DSN != 0 {
		s += fmt.Sprintf(":%016x", id.DSN)
	}
	return s
}

// OIDCMA is the PCI-SIG otherName type-id of the CMA subject-alt-name.
var OIDCMA = asn1.ObjectIdentifier{2, 23, 147}

// oidSPDMResponderAuth is the DMTF SPDM responder-authentication EKU.
var oidSPDMResponderAuth = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 412, 274, 3}

var oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}

// cmaSANExtension builds a subjectAltName extension holding one otherName
// (type-id 2.23.147, value [0] EXPLICIT UTF8String name). RFC 5280 §4.2.1.6:
// GeneralName otherName is [0] IMPLICIT OtherName.
func cmaSANExtension(name string) (pkix.Extension, error) {
	oid, err := asn1.Marshal(OIDCMA)
	if err != nil {
		return pkix.Extension{}, err
	}
	utf8, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagUTF8String, Bytes: []byte(name)})
	if err != nil {
		return pkix.Extension{}, err
	}
	value, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: utf8})
	if err != nil {
		return pkix.Extension{}, err
	}
	gn, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: append(oid, value...)})
	if err != nil {
		return pkix.Extension{}, err
	}
	seq, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: gn})
	if err != nil {
		return pkix.Extension{}, err
	}
	return pkix.Extension{Id: oidSubjectAltName, Value: seq}, nil
}

// CMANameFromCert returns the CMA SAN value of a certificate and whether it
// has one. It is the inverse of cmaSANExtension, for tests and the CLI.
func CMANameFromCert(c *x509.Certificate) (string, bool) {
	for _, e := range c.Extensions {
		if !e.Id.Equal(oidSubjectAltName) {
			continue
		}
		var names []asn1.RawValue
		if rest, err := asn1.Unmarshal(e.Value, &names); err != nil || len(rest) != 0 {
			return "", false
		}
		for _, gn := range names {
			if gn.Class != asn1.ClassContextSpecific || gn.Tag != 0 {
				continue
			}
			var oid asn1.ObjectIdentifier
			rest, err := asn1.Unmarshal(gn.Bytes, &oid)
			if err != nil || !oid.Equal(OIDCMA) {
				continue
			}
			var explicit, str asn1.RawValue
			if _, err := asn1.Unmarshal(rest, &explicit); err != nil {
				continue
			}
			if _, err := asn1.Unmarshal(explicit.Bytes, &str); err != nil || str.Tag != asn1.TagUTF8String {
				continue
			}
			return string(str.Bytes), true
		}
	}
	return "", false
}

// ChainOptions shape a generated certificate chain, including the faults a
// lying device would show.
type ChainOptions struct {
	Identity Identity
	Now      time.Time // validity is centred here; zero = time.Now()
	// ExpiredLeaf makes the leaf's validity end a day before Now.
	ExpiredLeaf bool
	// WrongRoot roots the presented chain at a CA that has the same subject
	// name as the published anchor but a different key.
	WrongRoot bool
	// SANMismatch puts a CMA SAN with another Device ID in the leaf.
	SANMismatch bool
	// NoSAN leaves the CMA SAN out of the leaf.
	NoSAN bool
	// FreshKeys generates new keys instead of the published test keys of
	// emu/testkeys (RSA-4096 generation takes about a second per key).
	FreshKeys bool
}

// Chain is a root → intermediate → leaf certificate chain.
type Chain struct {
	Type KeyType
	// Anchor is the root CA the device's maker publishes: what
	// `attest --trust-anchor` should be given. Equal to Certs[0] unless the
	// chain was built with WrongRoot.
	Anchor *x509.Certificate
	// Certs is the presented chain, root first, leaf last.
	Certs []*x509.Certificate
	// LeafKey signs CHALLENGE_AUTH and MEASUREMENTS.
	LeafKey crypto.Signer

	interKey crypto.Signer
	opts     ChainOptions
	now      time.Time
}

// Reissue returns a chain with the same root, intermediate and leaf key but
// a new leaf certificate (another serial number): what a device shows in a
// second certificate slot.
func (c *Chain) Reissue() (*Chain, error) {
	inter := c.Certs[len(c.Certs)-2]
	leaf, err := makeLeaf(c.Type, c.opts, c.LeafKey, inter, c.interKey, c.now)
	if err != nil {
		return nil, err
	}
	out := *c
	out.Certs = append(slices.Clone(c.Certs[:len(c.Certs)-1]), leaf)
	return &out, nil
}

// DER returns the presented certificates as DER, root first.
func (c *Chain) DER() [][]byte {
	out := make([][]byte, len(c.Certs))
	for i, cert := range c.Certs {
		out[i] = cert.Raw
	}
	return out
}

// Leaf is the last certificate of the chain.
func (c *Chain) Leaf() *x509.Certificate { return c.Certs[len(c.Certs)-1] }

// AnchorPEM is the published root CA in PEM.
func (c *Chain) AnchorPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Anchor.Raw})
}

// NewChain builds a chain on keys of type k: the published test keys, or
// fresh ones with o.FreshKeys. Certificates are always new (fresh serials,
// validity around o.Now).
func NewChain(k KeyType, o ChainOptions) (*Chain, error) {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	now := o.Now.UTC().Truncate(time.Second)
	keys, err := chainKeys(k, o.FreshKeys)
	if err != nil {
		return nil, err
	}
	rootKey, interKey, leafKey := keys[0], keys[1], keys[2]
	rootName := pkix.Name{Organization: []string{"vfio-gate emu"}, CommonName: "vfio-gate emu root CA " + k.String()}
	root, err := makeCA(rootName, rootKey, nil, nil, now, 1)
	if err != nil {
		return nil, err
	}
	anchor := root
	if o.WrongRoot {
		otherKey := keys[3]
		if root, err = makeCA(rootName, otherKey, nil, nil, now, 1); err != nil {
			return nil, err
		}
		rootKey = otherKey
	}
	interName := pkix.Name{Organization: []string{"vfio-gate emu"}, CommonName: "vfio-gate emu intermediate CA " + k.String()}
	inter, err := makeCA(interName, interKey, root, rootKey, now, 0)
	if err != nil {
		return nil, err
	}
	leaf, err := makeLeaf(k, o, leafKey, inter, interKey, now)
	if err != nil {
		return nil, err
	}
	return &Chain{Type: k, Anchor: anchor, Certs: []*x509.Certificate{root, inter, leaf}, LeafKey: leafKey,
		interKey: interKey, opts: o, now: now}, nil
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
}

// makeCA creates a CA certificate; parent == nil makes it self-signed.
func makeCA(name pkix.Name, key crypto.Signer, parent *x509.Certificate, parentKey crypto.Signer, now time.Time, maxPath int) (*x509.Certificate, error) {
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               name,
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(20, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            maxPath,
		MaxPathLenZero:        maxPath == 0,
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return nil, fmt.Errorf("emu: create CA certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}

func makeLeaf(k KeyType, o ChainOptions, key crypto.Signer, parent *x509.Certificate, parentKey crypto.Signer, now time.Time) (*x509.Certificate, error) {
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{Organization: []string{"vfio-gate emu"}, CommonName: fmt.Sprintf("vfio-gate emu device %04x:%04x %s", o.Identity.Vendor, o.Identity.Device, k)},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		UnknownExtKeyUsage:    []asn1.ObjectIdentifier{oidSPDMResponderAuth},
		BasicConstraintsValid: true,
		IsCA:                  false,
	}
	if o.ExpiredLeaf {
		tmpl.NotBefore = now.AddDate(-2, 0, 0)
		tmpl.NotAfter = now.AddDate(0, 0, -1)
	}
	if !o.NoSAN {
		id := o.Identity
		if o.SANMismatch {
			id.Device ^= 0x5a5a
		}
		ext, err := cmaSANExtension(id.CMAName())
		if err != nil {
			return nil, err
		}
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, ext)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return nil, fmt.Errorf("emu: create leaf certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}

//go:embed testkeys/*.pem
var testKeys embed.FS

// chainKeys returns root, intermediate, leaf and other-root keys of type k.
func chainKeys(k KeyType, fresh bool) ([4]crypto.Signer, error) {
	var out [4]crypto.Signer
	if fresh {
		for i := range out {
			key, err := k.generate()
			if err != nil {
				return out, err
			}
			out[i] = key
		}
		return out, nil
	}
	b, err := testKeys.ReadFile("testkeys/" + k.String() + ".pem")
	if err != nil {
		return out, fmt.Errorf("emu: no test keys for %s: %w", k, err)
	}
	for i := range out {
		var blk *pem.Block
		if blk, b = pem.Decode(b); blk == nil {
			return out, fmt.Errorf("emu: test keys for %s: want 4 PEM blocks, got %d", k, i)
		}
		key, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return out, fmt.Errorf("emu: test key %d for %s: %w", i, k, err)
		}
		s, ok := key.(crypto.Signer)
		if !ok {
			return out, fmt.Errorf("emu: test key %d for %s is %T", i, k, key)
		}
		out[i] = s
	}
	return out, nil
}

// ErrNoChain is returned when a device has no chain for a key type.
var ErrNoChain = errors.New("emu: no certificate chain for this key type")
