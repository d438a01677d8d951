package tpm

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// AKHandle is the persistent handle of vfio-gate's attestation key (owner
// range of TCG "Registry of Reserved TPM 2.0 Handles": 0x81000000-0x8100FFFF).
const AKHandle = 0x81000A65

// akTemplate is the attestation key: an ECC P-256 restricted signing key
// (ECDSA-SHA256) in the endorsement hierarchy, created as a primary, so the
// TPM can only sign with it what it produced itself (quotes, certifications).
// TPM 2.0 Part 2 §12.2.3.
var akTemplate = tpm2.TPMTPublic{
	Type:    tpm2.TPMAlgECC,
	NameAlg: tpm2.TPMAlgSHA256,
	ObjectAttributes: tpm2.TPMAObject{
		FixedTPM: true, FixedParent: true, SensitiveDataOrigin: true, UserWithAuth: true,
		Restricted: true, SignEncrypt: true, NoDA: true,
	},
	Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
		Scheme: tpm2.TPMTECCScheme{Scheme: tpm2.TPMAlgECDSA, Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA,
			&tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256})},
		CurveID: tpm2.TPMECCNistP256,
	}),
}

// AK is the attestation key's public part.
type AK struct {
	Public *ecdsa.PublicKey
	Name   []byte // TPM name (nameAlg || digest of TPMT_PUBLIC)
	// Created is true when this call created and persisted the key.
	Created bool
}

// EnsureAK returns the attestation key at AKHandle, creating it under the
// endorsement hierarchy and persisting it (TPM2_EvictControl, owner auth
// empty) the first time. A key already at AKHandle that is not a
// restricted ECDSA signing key is refused, not replaced.
func EnsureAK(t transport.TPM) (*AK, error) {
	if rp, err := (tpm2.ReadPublic{ObjectHandle: tpm2.TPMHandle(AKHandle)}).Execute(t); err == nil {
		pub, err := rp.OutPublic.Contents()
		if err != nil {
			return nil, tpmErr("read-public", err)
		}
		if pub.Type != tpm2.TPMAlgECC || !pub.ObjectAttributes.Restricted || !pub.ObjectAttributes.SignEncrypt || !pub.ObjectAttributes.FixedTPM {
			return nil, tpmErr("read-public", fmt.Errorf("handle 0x%08x holds a key that is not a restricted ECC signing key: not vfio-gate's AK", uint32(AKHandle)))
		}
		k, err := eccPublic(pub)
		if err != nil {
			return nil, err
		}
		return &AK{Public: k, Name: rp.Name.Buffer}, nil
	} else if !errors.Is(err, tpm2.TPMRCHandle) {
		return nil, tpmErr("read-public", err)
	}
	cp, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHEndorsement, Auth: tpm2.PasswordAuth(nil)},
		InPublic:      tpm2.New2B(akTemplate),
	}.Execute(t)
	if err != nil {
		return nil, tpmErr("create-primary", err)
	}
	defer tpm2.FlushContext{FlushHandle: cp.ObjectHandle}.Execute(t)
	if _, err := (tpm2.EvictControl{
		Auth:             tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
		ObjectHandle:     tpm2.NamedHandle{Handle: cp.ObjectHandle, Name: cp.Name},
		PersistentHandle: tpm2.TPMHandle(AKHandle),
	}).Execute(t); err != nil {
		return nil, tpmErr("evict-control", err)
	}
	pub, err := cp.OutPublic.Contents()
	if err != nil {
		return nil, tpmErr("create-primary", err)
	}
	k, err := eccPublic(pub)
	if err != nil {
		return nil, err
	}
	return &AK{Public: k, Name: cp.Name.Buffer, Created: true}, nil
}

func eccPublic(pub *tpm2.TPMTPublic) (*ecdsa.PublicKey, error) {
	pt, err := pub.Unique.ECC()
	if err != nil {
		return nil, tpmErr("read-public", err)
	}
	if len(pt.X.Buffer) > 32 || len(pt.Y.Buffer) > 32 {
		return nil, tpmErr("read-public", errors.New("AK point is not a P-256 point"))
	}
	// SEC 1 uncompressed point: 0x04 || X || Y, each left-padded to 32 bytes.
	raw := make([]byte, 65)
	raw[0] = 4
	copy(raw[1+32-len(pt.X.Buffer):33], pt.X.Buffer)
	copy(raw[33+32-len(pt.Y.Buffer):], pt.Y.Buffer)
	k, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw) // checks the point is on the curve
	if err != nil {
		return nil, tpmErr("read-public", fmt.Errorf("AK point: %w", err))
	}
	return k, nil
}

// QuoteResult is a TPM2_Quote over one PCR's SHA-256 bank.
type QuoteResult struct {
	// Attest is the TPMS_ATTEST the TPM signed (tpm2_quote -m).
	Attest []byte
	// Signature is the TPMT_SIGNATURE, marshalled (tpm2_quote -s).
	Signature []byte
	// PCR is the SHA-256 value of the quoted PCR, read right after the quote;
	// the quote's pcrDigest must be SHA-256 of it.
	PCR []byte
}

// Quote signs the SHA-256 bank of pcr and nonce (qualifyingData) with the
// AK (TPM 2.0 Part 3 §18.4). The PCR value is read after the quote, and
// the quote is refused if its pcrDigest does not match that value (an
// extend in between): the caller retries.
func Quote(t transport.TPM, ak *AK, pcr int, nonce []byte) (*QuoteResult, error) {
	if len(nonce) == 0 || len(nonce) > 64 {
		return nil, fmt.Errorf("tpm: quote nonce of %d bytes; want 1..64", len(nonce))
	}
	sel := tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{{Hash: tpm2.TPMAlgSHA256, PCRSelect: pcrSelect(pcr)}}}
	q, err := tpm2.Quote{
		SignHandle:     tpm2.AuthHandle{Handle: tpm2.TPMHandle(AKHandle), Name: tpm2.TPM2BName{Buffer: ak.Name}, Auth: tpm2.PasswordAuth(nil)},
		QualifyingData: tpm2.TPM2BData{Buffer: nonce},
		InScheme:       tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgNull},
		PCRSelect:      sel,
	}.Execute(t)
	if err != nil {
		return nil, tpmErr("quote", err)
	}
	vals, err := readPCR(t, pcr, []bank{{tpm2.TPMAlgSHA256, "sha256", crypto.SHA256}})
	if err != nil {
		return nil, err
	}
	att, err := q.Quoted.Contents()
	if err != nil {
		return nil, tpmErr("quote", err)
	}
	qi, err := att.Attested.Quote()
	if err != nil {
		return nil, tpmErr("quote", err)
	}
	d := crypto.SHA256.New()
	d.Write(vals["sha256"])
	if string(qi.PCRDigest.Buffer) != string(d.Sum(nil)) {
		return nil, tpmErr("quote", errors.New("PCR changed between the quote and the read (a decision was recorded meanwhile); retry"))
	}
	return &QuoteResult{Attest: q.Quoted.Bytes(), Signature: tpm2.Marshal(q.Signature), PCR: vals["sha256"]}, nil
}

// TPM2ToolsPCRs encodes one SHA-256 PCR value as tpm2_quote -o writes it
// (tpm2-tools 5.x "serialized" PCR file, read by tpm2_checkquote -f): a
// TPML_PCR_SELECTION as its C struct (count u32, 16 × {hash u16,
// sizeofSelect u8, pcrSelect[4], pad}), the number of TPML_DIGESTs u32,
// then each TPML_DIGEST (count u32, 8 × {size u16, buffer[64]}), all
// little-endian.
func TPM2ToolsPCRs(pcr int, sha256Value []byte) []byte {
	out := make([]byte, 4+16*8+4+4+8*66)
	le32 := func(off int, v uint32) {
		out[off], out[off+1], out[off+2], out[off+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	}
	le32(0, 1)
	out[4], out[5] = byte(tpm2.TPMAlgSHA256), byte(uint16(tpm2.TPMAlgSHA256)>>8)
	out[6] = 3
	out[7+pcr/8] = 1 << (pcr % 8)
	off := 4 + 16*8
	le32(off, 1)
	le32(off+4, 1)
	out[off+8], out[off+9] = byte(len(sha256Value)), byte(len(sha256Value)>>8)
	copy(out[off+10:], sha256Value)
	return out
}

// EK certificate NV indices (TCG EK Credential Profile for TPM 2.0, §2.2.1.5:
// RSA 2048 and ECC NIST P-256 EK certificates).
const (
	NVIndexEKCertRSA uint32 = 0x01C00002
	NVIndexEKCertECC uint32 = 0x01C0000A
)

// maxEKCertBytes bounds an EK certificate read from NV.
const maxEKCertBytes = 8192

// EKCertificate returns the DER of the first EK certificate the TPM holds
// (ECC, then RSA), read with the index's own (empty) authorization, as the
// profile's TPMA_NV_AUTHREAD allows; found is false when there is none.
func EKCertificate(t transport.TPM) (der []byte, index uint32, found bool, err error) {
	for _, idx := range []uint32{NVIndexEKCertECC, NVIndexEKCertRSA} {
		rp, err := (tpm2.NVReadPublic{NVIndex: tpm2.TPMHandle(idx)}).Execute(t)
		if errors.Is(err, tpm2.TPMRCHandle) {
			continue
		}
		if err != nil {
			return nil, 0, false, tpmErr("nv-read-public", err)
		}
		pub, err := rp.NVPublic.Contents()
		if err != nil {
			return nil, 0, false, tpmErr("nv-read-public", err)
		}
		if pub.DataSize == 0 || pub.DataSize > maxEKCertBytes {
			return nil, 0, false, tpmErr("nv-read-public", fmt.Errorf("EK certificate index 0x%08x holds %d bytes", idx, pub.DataSize))
		}
		const chunk = 512 // below every TPM's TPM_PT_NV_BUFFER_MAX
		out := make([]byte, 0, pub.DataSize)
		for off := 0; off < int(pub.DataSize); off += chunk {
			n := min(chunk, int(pub.DataSize)-off)
			rsp, err := tpm2.NVRead{
				AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(idx), Name: rp.NVName, Auth: tpm2.PasswordAuth(nil)},
				NVIndex:    tpm2.NamedHandle{Handle: tpm2.TPMHandle(idx), Name: rp.NVName},
				Size:       uint16(n), Offset: uint16(off),
			}.Execute(t)
			if err != nil {
				return nil, 0, false, tpmErr("nv-read", err)
			}
			if len(rsp.Data.Buffer) != n {
				return nil, 0, false, tpmErr("nv-read", fmt.Errorf("read %d of %d bytes", len(rsp.Data.Buffer), n))
			}
			out = append(out, rsp.Data.Buffer...)
		}
		return out, idx, true, nil
	}
	return nil, 0, false, nil
}
