package policy

// Decoding a rule's spdm section: versions, algorithms, trust anchors, CRLs
// and measurements.

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// KnownHash reports whether name is a hash spdm.algorithms.hash may list.
func KnownHash(name string) bool { return slices.Contains(hashNames, name) }

var versionRE = regexp.MustCompile(`^1\.[0-9]$`)

func (d *decoder) spdm(n *yaml.Node) *SPDM {
	s := &SPDM{}
	var anchorNodes []*yaml.Node
	var crlNodes []*yaml.Node
	d.mapping(n, map[string]func(*yaml.Node){
		"min_version": func(v *yaml.Node) {
			// 1.2 unquoted is a YAML float: take the text either way.
			if v.Kind != yaml.ScalarNode || (v.Tag != "!!str" && v.Tag != "!!float") || !versionRE.MatchString(v.Value) {
				d.errorf(v, "spdm.min_version: want \"1.0\" .. \"1.9\" (quoted), got %s", describe(v))
				return
			}
			s.MinVersion = v.Value
		},
		"algorithms": func(v *yaml.Node) {
			d.mapping(v, map[string]func(*yaml.Node){
				"asym": func(v *yaml.Node) { s.Asym = d.names(v, "spdm.algorithms.asym", asymNames) },
				"hash": func(v *yaml.Node) { s.Hash = d.names(v, "spdm.algorithms.hash", hashNames) },
			})
		},
		"trust_anchors": func(v *yaml.Node) { anchorNodes = d.seq(v) },
		"crls":          func(v *yaml.Node) { crlNodes = d.seq(v) },
		"require_session": func(v *yaml.Node) {
			s.RequireSession = d.boolean(v)
		},
		"require_cma_san": func(v *yaml.Node) { s.RequireCMASAN = d.boolean(v) },
	})
	if n.Kind != yaml.MappingNode {
		return s
	}
	if len(anchorNodes) == 0 {
		d.errorf(n, "spdm needs at least one trust_anchors file: without one no chain can be trusted")
	}
	for _, an := range anchorNodes {
		if p, ok := d.str(an); ok {
			s.Anchors = append(s.Anchors, d.anchors(an, p)...)
		}
	}
	seen := map[string]int{}
	for _, a := range s.Anchors {
		if l, dup := seen[a.SHA256]; dup {
			d.errorf(&yaml.Node{Line: a.Line}, "trust anchor %s (sha256 %s) is already listed at line %d", a.File, a.SHA256, l)
		}
		seen[a.SHA256] = a.Line
	}
	for _, cn := range crlNodes {
		if p, ok := d.str(cn); ok {
			if c := d.crl(cn, p, s.Anchors); c != nil {
				s.CRLs = append(s.CRLs, c)
			}
		}
	}
	return s
}

func (d *decoder) names(n *yaml.Node, what string, known []string) []string {
	var out []string
	items := d.seq(n)
	if n.Kind == yaml.SequenceNode && len(items) == 0 {
		d.errorf(n, "%s is empty: it would allow nothing", what)
	}
	for _, it := range items {
		s, ok := d.str(it)
		if !ok {
			continue
		}
		found := false
		for _, k := range known {
			if s == k {
				found = true
			}
		}
		if !found {
			d.errorf(it, "%s: unknown algorithm %q (known: %s)", what, s, strings.Join(known, ", "))
			continue
		}
		out = append(out, s)
	}
	return out
}

func (d *decoder) resolve(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(d.dir, p)
}

func (d *decoder) readRef(n *yaml.Node, p, what string) ([]byte, string, bool) {
	if p == "" {
		d.errorf(n, "empty %s path", what)
		return nil, "", false
	}
	path := d.resolve(p)
	b, err := readSecure(path, d.opts)
	if err != nil {
		d.errAt(n, err, "%s %s: %v", what, path, err)
		return nil, path, false
	}
	return b, path, true
}

// anchors loads every certificate of a PEM file (CERTIFICATE blocks only) or
// one DER certificate.
func (d *decoder) anchors(n *yaml.Node, p string) []*Anchor {
	b, path, ok := d.readRef(n, p, "trust anchor")
	if !ok {
		return nil
	}
	ders, err := pemOrDER(b, "CERTIFICATE")
	if err != nil {
		d.errorf(n, "trust anchor %s: %v", path, err)
		return nil
	}
	var out []*Anchor
	for _, der := range ders {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			d.errorf(n, "trust anchor %s: %v", path, err)
			continue
		}
		sum := sha256.Sum256(c.Raw)
		a := &Anchor{File: path, Line: n.Line, Cert: c, SHA256: hex.EncodeToString(sum[:])}
		now := d.opts.now()
		if now.After(c.NotAfter) {
			d.warnf(n, "trust anchor %s (%s) expired on %s", path, c.Subject, c.NotAfter.UTC().Format("2006-01-02"))
		}
		if !c.IsCA {
			d.warnf(n, "trust anchor %s (%s) is not a CA certificate", path, c.Subject)
		}
		out = append(out, a)
	}
	return out
}

func (d *decoder) crl(n *yaml.Node, p string, anchors []*Anchor) *CRL {
	b, path, ok := d.readRef(n, p, "CRL")
	if !ok {
		return nil
	}
	ders, err := pemOrDER(b, "X509 CRL")
	if err == nil && len(ders) != 1 {
		err = fmt.Errorf("holds %d CRLs, want one per file", len(ders))
	}
	if err != nil {
		d.errorf(n, "CRL %s: %v", path, err)
		return nil
	}
	l, err := x509.ParseRevocationList(ders[0])
	if err != nil {
		d.errorf(n, "CRL %s: %v", path, err)
		return nil
	}
	c := &CRL{File: path, Line: n.Line, List: l}
	for _, a := range anchors {
		if bytes.Equal(a.Cert.RawSubject, l.RawIssuer) {
			if err := l.CheckSignatureFrom(a.Cert); err != nil {
				continue
			}
			c.SignedBy = a.SHA256
			break
		}
	}
	if c.SignedBy == "" {
		issuedByAnchor := false
		for _, a := range anchors {
			if bytes.Equal(a.Cert.RawSubject, l.RawIssuer) {
				issuedByAnchor = true
			}
		}
		if issuedByAnchor {
			d.errorf(n, "CRL %s: signature does not verify against the trust anchor %s that issued it", path, l.Issuer)
			return nil
		}
		d.warnf(n, "CRL %s: issuer %s is not a trust anchor of this rule; it is verified against the device's chain at each check", path, l.Issuer)
	}
	now := d.opts.now()
	if !l.NextUpdate.IsZero() && now.After(l.NextUpdate) {
		d.warnf(n, "CRL %s is past its nextUpdate (%s): every device of this rule is denied (crl-expired) until it is replaced", path, l.NextUpdate.UTC().Format("2006-01-02 15:04"))
	}
	return c
}

// pemOrDER returns the DER blocks of a PEM file (only blocks of type want,
// at least one), or b itself when it is not PEM.
func pemOrDER(b []byte, want string) ([][]byte, error) {
	trimmed := bytes.TrimSpace(b)
	if !bytes.HasPrefix(trimmed, []byte("-----BEGIN")) {
		if len(trimmed) == 0 {
			return nil, errors.New("empty file")
		}
		return [][]byte{b}, nil
	}
	var out [][]byte
	rest := trimmed
	for len(bytes.TrimSpace(rest)) > 0 {
		blk, r := pem.Decode(rest)
		if blk == nil {
			return nil, errors.New("malformed PEM")
		}
		if blk.Type != want {
			return nil, fmt.Errorf("PEM block %q, want only %q", blk.Type, want)
		}
		out = append(out, blk.Bytes)
		rest = r
	}
	return out, nil
}

func (d *decoder) measurements(n *yaml.Node) *Measurements {
	m := &Measurements{}
	d.mapping(n, map[string]func(*yaml.Node){
		"require_signed":    func(v *yaml.Node) { m.RequireSigned = d.boolean(v) },
		"forbid_debug_mode": func(v *yaml.Node) { m.ForbidDebugMode = d.boolean(v) },
		"min_svn": func(v *yaml.Node) {
			if x, ok := d.uint(v, 64); ok {
				m.MinSVN = &x
			}
		},
		"reference": func(v *yaml.Node) {
			if v.Kind != yaml.MappingNode {
				d.errorf(v, "measurements.reference: want a mapping index -> list of \"alg:hex\"")
				return
			}
			m.Reference = map[uint8][]Digest{}
			for i := 0; i+1 < len(v.Content); i += 2 {
				k, vals := v.Content[i], v.Content[i+1]
				idx, ok := d.uint(k, 8)
				if !ok {
					continue
				}
				if idx == 0 || idx == 0xff {
					d.errorf(k, "measurement index %d: want 1..254", idx)
					continue
				}
				if _, dup := m.Reference[uint8(idx)]; dup {
					d.errorf(k, "measurement index %d listed twice", idx)
					continue
				}
				var ds []Digest
				items := d.seq(vals)
				if len(items) == 0 {
					d.errorf(vals, "measurement index %d has no reference values", idx)
				}
				for _, it := range items {
					if s, ok := d.str(it); ok {
						if dg, err := parseDigest(s); err != nil {
							d.errorf(it, "%v", err)
						} else {
							ds = append(ds, dg)
						}
					}
				}
				m.Reference[uint8(idx)] = ds
			}
		},
	})
	return m
}

func parseDigest(s string) (Digest, error) {
	alg, hx, ok := strings.Cut(s, ":")
	a, known := digestAlgOf(alg)
	n := a.size
	if !ok || !known {
		return Digest{}, fmt.Errorf("reference value %q: want ALG:HEX with ALG one of sha256, sha384, sha512, sha3-256, sha3-384, sha3-512", s)
	}
	v, err := hex.DecodeString(hx)
	if err != nil || len(v) != n {
		return Digest{}, fmt.Errorf("reference value %q: want %d hex digits for %s", s, 2*n, alg)
	}
	return Digest{Alg: alg, Value: v}, nil
}

// String renders a digest as in the policy file.
func (g Digest) String() string { return g.Alg + ":" + hex.EncodeToString(g.Value) }
