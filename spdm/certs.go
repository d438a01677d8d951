package spdm

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"sync"

	"github.com/vfio-gate/vfio-gate/internal/wire"
)

// Digests is the DIGESTS answer: one digest per provisioned slot.
type Digests struct {
	SlotMask      uint8 // provisioned slots
	SupportedMask uint8 // 1.3
	Digests       [maxSlots][]byte
	// Multi-key connections (1.3), per slot.
	KeyPairID    [maxSlots]uint8
	CertInfo     [maxSlots]uint8
	KeyUsageMask [maxSlots]uint16
}

// Slots lists the provisioned slots in increasing order.
func (d *Digests) Slots() []uint8 {
	var s []uint8
	for i := uint8(0); i < maxSlots; i++ {
		if d.SlotMask&(1<<i) != 0 {
			s = append(s, i)
		}
	}
	return s
}

// Digests sends GET_DIGESTS. DSP0274 1.3 §10.6.
func (r *Requester) Digests(ctx context.Context) (*Digests, error) {
	var out *Digests
	err := r.step(ctx, func() (err error) {
		out, err = r.getDigests(ctx)
		return err
	})
	return out, err
}

// getDigests is one GET_DIGESTS/DIGESTS exchange (Digests). Precondition: VCA done.
func (r *Requester) getDigests(ctx context.Context) (*Digests, error) {
	if err := r.ready(RequestGetDigests); err != nil {
		return nil, err
	}
	n := r.neg
	if n.Caps&CapCert == 0 {
		return nil, protoErr(RequestGetDigests, "responder has no CERT_CAP")
	}
	req := (&getDigestsReq{Version: n.Version}).marshal()
	rsp, err := r.exchange(ctx, req, false)
	if err != nil {
		return nil, err
	}
	hs := n.BaseHash.Size()
	dr, err := decodePadded(rsp, func(b []byte) (*digestsRsp, error) { return decodeDigestsRsp(b, hs, n.MultiKey) })
	if err != nil {
		return nil, err
	}
	if n.MultiKey {
		// A provisioned slot of a multi-key responder names its
		// certificate model (libspdm: "shall report a non-zero CertModel").
		for i, ci := range dr.CertInfo {
			if ci&0x07 == CertModelNone {
				return nil, protoErr(RequestGetDigests, "multi-key DIGESTS entry %d has CertModel 0", i)
			}
		}
	}
	r.tr.addDigests(req, dr.raw, n.MultiKey)
	d := &Digests{SlotMask: dr.SlotMask, SupportedMask: dr.SupportedMask}
	for i, slot := range d.Slots() {
		d.Digests[slot] = bytes.Clone(dr.Digests[i])
		if n.MultiKey {
			d.KeyPairID[slot], d.CertInfo[slot], d.KeyUsageMask[slot] = dr.KeyPairID[i], dr.CertInfo[i], dr.KeyUsageMask[i]
		}
	}
	// A chain whose slot now reports another digest (or none) is stale.
	for slot, cc := range r.chains {
		if !bytes.Equal(cc.Digest, d.Digests[slot]) {
			delete(r.chains, slot)
		}
	}
	r.digests = d
	return d, nil
}

// CertChain is one slot's SPDM certificate chain buffer.
// DSP0274 1.3 §10.7.1: Length(2) Reserved(2) RootHash(H) Certificates.
type CertChain struct {
	Slot      uint8
	Buffer    []byte   // the whole SPDM cert chain buffer
	RootHash  []byte   // as in the buffer
	Certs     [][]byte // DER, root side first, leaf last
	Digest    []byte   // negotiated hash of Buffer
	FromCache bool     // no GET_CERTIFICATE was sent
	CertInfo  uint8    // 1.3 CERTIFICATE Param2
}

// maxCertPortions bounds the GET_CERTIFICATE loop.
const maxCertPortions = 4096

// Certificate reads slot's chain (in portions), checks the arithmetic, the
// buffer layout, the digest from DIGESTS (when read) and the root hash of a
// self-signed first certificate. With a ChainCache and a known digest, a hit
// sends nothing.
func (r *Requester) Certificate(ctx context.Context, slot uint8) (*CertChain, error) {
	var out *CertChain
	err := r.step(ctx, func() (err error) {
		out, err = r.getCertificate(ctx, slot)
		return err
	})
	return out, err
}

// getCertificate reads the slot's chain (Certificate). Precondition: VCA done.
func (r *Requester) getCertificate(ctx context.Context, slot uint8) (*CertChain, error) {
	if err := r.ready(RequestGetCertificate); err != nil {
		return nil, err
	}
	n := r.neg
	if slot >= maxSlots {
		return nil, protoErr(RequestGetCertificate, "slot %d out of range", slot)
	}
	if n.Caps&CapCert == 0 {
		return nil, protoErr(RequestGetCertificate, "responder has no CERT_CAP")
	}
	var digest []byte
	if r.digests != nil {
		if r.digests.SlotMask&(1<<slot) == 0 {
			return nil, protoErr(RequestGetCertificate, "slot %d is not provisioned (mask %#02x)", slot, r.digests.SlotMask)
		}
		digest = r.digests.Digests[slot]
		if r.o.ChainCache != nil {
			if buf, ok := r.o.ChainCache.Get(n.BaseHash, digest); ok {
				cc, err := parseChainBuffer(buf, n.BaseHash)
				if err == nil {
					if h, _ := hashOf(n.BaseHash, buf); bytes.Equal(h, digest) {
						cc.Slot, cc.Digest, cc.FromCache = slot, bytes.Clone(digest), true
						r.chains[slot] = cc
						return cc, nil
					}
				}
			}
		}
	}
	var buf []byte
	var total int
	var certInfo uint8
	for i := 0; ; i++ {
		if i == maxCertPortions {
			return nil, protoErr(RequestGetCertificate, "too many portions")
		}
		req := (&getCertificateReq{Version: n.Version, Slot: slot, Offset: uint16(len(buf)), Length: 0xFFFF}).marshal()
		rsp, err := r.exchange(ctx, req, false)
		if err != nil {
			return nil, err
		}
		cr, err := decodePadded(rsp, decodeCertificateRsp)
		if err != nil {
			return nil, err
		}
		r.tr.addCertificate(req, cr.raw)
		if cr.Slot != slot {
			return nil, protoErr(RequestGetCertificate, "CERTIFICATE for slot %d, asked %d", cr.Slot, slot)
		}
		if i == 0 {
			total = len(cr.Portion) + int(cr.Remainder)
			if total > maxCertChainLen {
				return nil, protoErr(RequestGetCertificate, "chain of %d bytes exceeds 65535", total)
			}
			certInfo = cr.CertInfo
		} else if len(buf)+len(cr.Portion)+int(cr.Remainder) != total {
			return nil, protoErr(RequestGetCertificate, "offset %d + portion %d + remainder %d != %d",
				len(buf), len(cr.Portion), cr.Remainder, total)
		}
		if len(cr.Portion) == 0 && cr.Remainder != 0 {
			return nil, protoErr(RequestGetCertificate, "empty portion with %d bytes remaining", cr.Remainder)
		}
		buf = append(buf, cr.Portion...)
		if cr.Remainder == 0 {
			break
		}
	}
	cc, err := parseChainBuffer(buf, n.BaseHash)
	if err != nil {
		return nil, err
	}
	cc.Slot, cc.CertInfo = slot, certInfo
	cc.Digest, _ = hashOf(n.BaseHash, buf)
	if digest != nil && !bytes.Equal(cc.Digest, digest) {
		return nil, &VerificationError{Step: "digest", Err: fmt.Errorf("slot %d chain hashes to %x, DIGESTS said %x", slot, cc.Digest, digest)}
	}
	if len(cc.Certs) > 0 {
		// A self-issued first certificate is the root: RootHash must be its hash.
		if c0, err := x509.ParseCertificate(cc.Certs[0]); err == nil && bytes.Equal(c0.RawIssuer, c0.RawSubject) {
			if h, _ := hashOf(n.BaseHash, cc.Certs[0]); !bytes.Equal(h, cc.RootHash) {
				return nil, &VerificationError{Step: "root-hash", Err: fmt.Errorf("slot %d RootHash %x is not the hash of the root certificate %x", slot, cc.RootHash, h)}
			}
		}
	}
	if r.o.ChainCache != nil {
		r.o.ChainCache.Put(n.BaseHash, cc.Digest, bytes.Clone(buf))
	}
	r.chains[slot] = cc
	return cc, nil
}

func selfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil
}

// parseChainBuffer splits an SPDM cert chain buffer into its fields and
// DER certificates (each a complete ASN.1 SEQUENCE; contents parsed later).
func parseChainBuffer(buf []byte, h HashAlgo) (*CertChain, error) {
	d := newDecoder("CertChain", buf)
	var length uint16
	cc := &CertChain{Buffer: buf}
	if !(d.u16(&length, "Length") && d.check(int(length) == len(buf), "Length", "does not match the chain read") &&
		d.mbz(2, "Reserved") && d.bytes(&cc.RootHash, h.Size(), "RootHash")) {
		return nil, d.err()
	}
	for !d.s.Empty() {
		start := d.off()
		n, ok := derLen(d.s)
		if !ok || !d.s.Skip(n) {
			d.fail("Certificates", "not a DER SEQUENCE")
			return nil, d.err()
		}
		cc.Certs = append(cc.Certs, buf[start:d.off()])
	}
	if len(cc.Certs) == 0 {
		d.fail("Certificates", "no certificates")
		return nil, d.err()
	}
	return cc, nil
}

// derLen returns the total length of the DER SEQUENCE at the start of s.
func derLen(s wire.String) (int, bool) {
	if len(s) < 2 || s[0] != 0x30 {
		return 0, false
	}
	l := int(s[1])
	if l < 0x80 {
		return 2 + l, 2+l <= len(s)
	}
	nb := l & 0x7F
	if nb == 0 || nb > 3 || len(s) < 2+nb {
		return 0, false
	}
	l = 0
	for _, c := range s[2 : 2+nb] {
		l = l<<8 | int(c)
	}
	if l < 0x80 {
		return 0, false // not minimal DER
	}
	return 2 + nb + l, 2+nb+l <= len(s)
}

// MaxCachedChains bounds MapChainCache: a hostile device can present a new
// chain (up to 64 KiB) at every check, and a long-lived gate keeps its cache.
const MaxCachedChains = 256

// MapChainCache is a ChainCache in memory, safe for concurrent use. It holds
// at most MaxCachedChains chains; the oldest is evicted first.
type MapChainCache struct {
	mu    sync.Mutex
	m     map[string][]byte
	order []string // keys, oldest first
}

func cacheKey(h HashAlgo, digest []byte) string { return h.String() + ":" + hex.EncodeToString(digest) }

// Get implements ChainCache.
func (c *MapChainCache) Get(h HashAlgo, digest []byte) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.m[cacheKey(h, digest)]
	return bytes.Clone(b), ok
}

// Put implements ChainCache.
func (c *MapChainCache) Put(h HashAlgo, digest, chain []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string][]byte{}
	}
	k := cacheKey(h, digest)
	if _, ok := c.m[k]; !ok {
		for len(c.order) >= MaxCachedChains {
			delete(c.m, c.order[0])
			c.order = c.order[1:]
		}
		c.order = append(c.order, k)
	}
	c.m[k] = bytes.Clone(chain)
}

// Len is the number of chains cached.
func (c *MapChainCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
