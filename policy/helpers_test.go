package policy_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/policy"
)

// now is the fixed evaluation time of every test.
var now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

type certKey struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// pki is a root → intermediate → leaf chain plus CRL helpers, generated per test.
type pki struct {
	t                 *testing.T
	root, inter, leaf certKey
	otherRoot         certKey
	dir               string
	rootPEM, otherPEM string // files
	rootSHA, otherSHA string
	serial            int64
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{t: t, dir: t.TempDir(), serial: 100}
	p.root = p.issue("Test Root CA", nil, true, now.Add(-24*time.Hour), now.Add(10*365*24*time.Hour))
	p.inter = p.issue("Test Intermediate", &p.root, true, now.Add(-24*time.Hour), now.Add(5*365*24*time.Hour))
	p.leaf = p.issue("Test Leaf", &p.inter, false, now.Add(-24*time.Hour), now.Add(365*24*time.Hour))
	p.otherRoot = p.issue("Other Root CA", nil, true, now.Add(-24*time.Hour), now.Add(10*365*24*time.Hour))
	p.rootPEM = p.writePEM("root.pem", "CERTIFICATE", p.root.cert.Raw)
	p.otherPEM = p.writePEM("other.pem", "CERTIFICATE", p.otherRoot.cert.Raw)
	p.rootSHA, p.otherSHA = fp(p.root.cert), fp(p.otherRoot.cert)
	return p
}

func fp(c *x509.Certificate) string {
	s := sha256.Sum256(c.Raw)
	return hex.EncodeToString(s[:])
}

func (p *pki) issue(cn string, parent *certKey, ca bool, nb, na time.Time) certKey {
	p.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		p.t.Fatal(err)
	}
	p.serial++
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(p.serial),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             nb,
		NotAfter:              na,
		BasicConstraintsValid: true,
		IsCA:                  ca,
		KeyUsage:              x509.KeyUsageDigitalSignature,
	}
	if ca {
		tmpl.KeyUsage |= x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	}
	signer, parentCert := key, tmpl
	if parent != nil {
		signer, parentCert = parent.key, parent.cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, &key.PublicKey, signer)
	if err != nil {
		p.t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		p.t.Fatal(err)
	}
	return certKey{cert: c, key: key}
}

func (p *pki) writePEM(name, typ string, der []byte) string {
	p.t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o644); err != nil {
		p.t.Fatal(err)
	}
	return path
}

// crl writes a CRL signed by issuer, revoking serials, valid [this, next].
func (p *pki) crl(name string, issuer certKey, this, next time.Time, revoked ...*big.Int) string {
	p.t.Helper()
	var entries []x509.RevocationListEntry
	for _, s := range revoked {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: s, RevocationTime: now.Add(-time.Hour)})
	}
	p.serial++
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(p.serial), ThisUpdate: this, NextUpdate: next, RevokedCertificateEntries: entries,
	}, issuer.cert, issuer.key)
	if err != nil {
		p.t.Fatal(err)
	}
	return p.writePEM(name, "X509 CRL", der)
}

// writePolicy writes text as policy.yaml next to the PKI files and loads it
// (permission checks off: see permissions_test.go for those).
func (p *pki) load(text string) (*policy.Policy, error) {
	p.t.Helper()
	path := filepath.Join(p.dir, "policy.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		p.t.Fatal(err)
	}
	return policy.Load(path, &policy.LoadOptions{Now: func() time.Time { return now }, SkipPermissionCheck: true})
}

func (p *pki) mustLoad(text string) *policy.Policy {
	p.t.Helper()
	pol, err := p.load(text)
	if err != nil {
		p.t.Fatalf("load: %v\n%s", err, text)
	}
	return pol
}

var (
	fwDigest  = sha512.Sum384([]byte("firmware v7"))
	fwDigest2 = sha512.Sum384([]byte("firmware v8"))
)

func u16(v uint16) *uint16 { return &v }
func u64(v uint64) *uint64 { return &v }

// goodEvidence is what a healthy, fully attested acme NIC yields.
func (p *pki) goodEvidence() *attest.Evidence {
	yes := true
	svn := make([]byte, 8)
	binary.LittleEndian.PutUint64(svn, 9)
	dsn := uint64(0x0011223344556677)
	return &attest.Evidence{
		Identity: attest.Identity{BDF: "0000:3b:00.0", VendorID: 0x1234, DeviceID: 0x5678, SubsystemVendorID: 0x1234,
			SubsystemID: 0x0001, Class: 0x020000, Revision: 1, DSN: &dsn},
		HasCMA:     true,
		Version:    "1.2",
		Algorithms: attest.Algorithms{BaseAsym: "ecdsa-p384", BaseHash: "sha-384", MeasurementHash: "sha-384"},
		Chains: []attest.ChainState{{
			Slot: 0, Verified: true, AnchorSHA256: p.rootSHA,
			CMASAN: &attest.CMASAN{Raw: "Vendor=1234:Device=5678:CC=020000:REV=01:SSVID=1234:SSID=0001", VendorID: 0x1234,
				DeviceID: 0x5678, Class: 0x020000, Revision: 1, SubsystemVendorID: u16(0x1234), SubsystemID: u16(1),
				MatchesIdentity: &yes},
			Certificates: []attest.CertInfo{
				{Subject: "CN=Test Root CA", NotAfter: p.root.cert.NotAfter},
				{Subject: "CN=Test Intermediate", NotAfter: p.inter.cert.NotAfter},
				{Subject: "CN=Test Leaf", NotAfter: p.leaf.cert.NotAfter},
			},
			Chain: [][]byte{p.root.cert.Raw, p.inter.cert.Raw, p.leaf.cert.Raw},
		}},
		ChallengeVerified:             true,
		MeasurementsSignatureVerified: true,
		Measurements: []attest.MeasurementBlock{
			{Index: 1, Type: 1, Value: fwDigest[:], Spec: 1},
			{Index: 2, Type: 7, Raw: true, Value: svn, Spec: 1},
			{Index: 0xfe, Type: 5, Raw: true, Value: make([]byte, 16), Spec: 1},
		},
		Session: &attest.Session{Established: true, Version: "1.2"},
		TDISP:   &attest.TDISP{Version: "1.0", State: "CONFIG_LOCKED", LockedFor: "vm1"},
	}
}
