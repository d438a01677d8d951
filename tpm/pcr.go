package tpm

import (
	"crypto"
	_ "crypto/sha1" // SHA-1 banks are still allocated on many TPMs
	_ "crypto/sha256"
	_ "crypto/sha512"
	"fmt"
	"sort"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// DefaultPCR is the PCR vfio-gate extends unless configured otherwise. See
// the docs/tpm-log.md for why 13.
const DefaultPCR = 13

// maxPCR is the highest PCR index of a PC Client TPM (24 PCRs, TCG PC Client
// Platform TPM Profile 1.05 §4.6).
const maxPCR = 23

// checkPCR refuses PCRs that are resettable at locality 0 (16 debug, 23
// application) unless test mode allows them, and PCRs 17-22 (D-RTM) which
// cannot be extended at locality 0.
func checkPCR(pcr int, allowResettable bool) error {
	switch {
	case pcr < 0 || pcr > maxPCR:
		return fmt.Errorf("tpm: PCR %d out of range 0..%d", pcr, maxPCR)
	case pcr == 16 || pcr == 23:
		if !allowResettable {
			return fmt.Errorf("%w: PCR %d can be reset by any process, so it proves nothing (allowed only in test mode)", ErrResettablePCR, pcr)
		}
	case pcr >= 17 && pcr <= 22:
		return fmt.Errorf("tpm: PCR %d is a D-RTM PCR, not extendable at locality 0", pcr)
	}
	return nil
}

// bank is one active PCR bank.
type bank struct {
	alg  tpm2.TPMAlgID
	name string // CEL hashAlg name
	hash crypto.Hash
}

var knownBanks = []bank{
	{tpm2.TPMAlgSHA1, "sha1", crypto.SHA1},
	{tpm2.TPMAlgSHA256, "sha256", crypto.SHA256},
	{tpm2.TPMAlgSHA384, "sha384", crypto.SHA384},
	{tpm2.TPMAlgSHA512, "sha512", crypto.SHA512},
}

func bankByName(name string) (bank, bool) {
	for _, b := range knownBanks {
		if b.name == name {
			return b, true
		}
	}
	return bank{}, false
}

func (b bank) sum(data []byte) []byte {
	h := b.hash.New()
	h.Write(data)
	return h.Sum(nil)
}

// extendValue returns H(old || digest), the TPM's extend operation.
func (b bank) extendValue(old, digest []byte) []byte {
	h := b.hash.New()
	h.Write(old)
	h.Write(digest)
	return h.Sum(nil)
}

// activeBanks lists the banks in which pcr is allocated (TPM2_GetCapability
// TPM_CAP_PCRS, Part 3 §30.2), sorted by algorithm ID. An allocated bank we
// cannot compute is an error: leaving it unextended would make it meaningless.
func activeBanks(t transport.TPM, pcr int) ([]bank, error) {
	rsp, err := tpm2.GetCapability{Capability: tpm2.TPMCapPCRs, PropertyCount: 1}.Execute(t)
	if err != nil {
		return nil, tpmErr("get-capability", err)
	}
	sel, err := rsp.CapabilityData.Data.AssignedPCR()
	if err != nil {
		return nil, tpmErr("get-capability", err)
	}
	var out []bank
	for _, s := range sel.PCRSelections {
		if pcr/8 >= len(s.PCRSelect) || s.PCRSelect[pcr/8]&(1<<(pcr%8)) == 0 {
			continue
		}
		found := false
		for _, b := range knownBanks {
			if b.alg == s.Hash {
				out = append(out, b)
				found = true
			}
		}
		if !found {
			return nil, tpmErr("get-capability", fmt.Errorf("PCR %d is allocated in bank 0x%04x, which vfio-gate cannot compute", pcr, uint16(s.Hash)))
		}
	}
	if len(out) == 0 {
		return nil, tpmErr("get-capability", fmt.Errorf("PCR %d is allocated in no bank", pcr))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].alg < out[j].alg })
	return out, nil
}

func pcrSelect(pcr int) []byte {
	s := make([]byte, 3)
	s[pcr/8] = 1 << (pcr % 8)
	return s
}

// readPCR reads pcr in every bank (TPM2_PCR_Read, Part 3 §22.4), one bank per
// command so a TPM that returns a partial selection cannot confuse us.
func readPCR(t transport.TPM, pcr int, banks []bank) (map[string][]byte, error) {
	out := make(map[string][]byte, len(banks))
	for _, b := range banks {
		rsp, err := tpm2.PCRRead{PCRSelectionIn: tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{
			{Hash: b.alg, PCRSelect: pcrSelect(pcr)},
		}}}.Execute(t)
		if err != nil {
			return nil, tpmErr("pcr-read", err)
		}
		if len(rsp.PCRValues.Digests) != 1 || len(rsp.PCRValues.Digests[0].Buffer) != b.hash.Size() {
			return nil, tpmErr("pcr-read", fmt.Errorf("TPM returned %d values for PCR %d bank %s", len(rsp.PCRValues.Digests), pcr, b.name))
		}
		out[b.name] = rsp.PCRValues.Digests[0].Buffer
	}
	return out, nil
}

// extend extends pcr in every bank with the given per-bank digests
// (TPM2_PCR_Extend, Part 3 §22.2) in one command, so the banks move together.
func extend(t transport.TPM, pcr int, banks []bank, digests map[string][]byte) error {
	var vals tpm2.TPMLDigestValues
	for _, b := range banks {
		vals.Digests = append(vals.Digests, tpm2.TPMTHA{HashAlg: b.alg, Digest: digests[b.name]})
	}
	_, err := tpm2.PCRExtend{
		PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(pcr), Auth: tpm2.PasswordAuth(nil)},
		Digests:   vals,
	}.Execute(t)
	return tpmErr("extend", err)
}

// clockCounts are TPMS_CLOCK_INFO.resetCount and restartCount (Part 2
// §10.11.1), the boot key of the event log: resetCount changes on every TPM
// Reset (reboot), restartCount on every TPM Restart (resume from
// hibernation); after either the PCRs hold their reset values again.
func clockCounts(t transport.TPM) (reset, restart uint32, err error) {
	rsp, err := tpm2.ReadClock{}.Execute(t)
	if err != nil {
		return 0, 0, tpmErr("read-clock", err)
	}
	return rsp.CurrentTime.ClockInfo.ResetCount, rsp.CurrentTime.ClockInfo.RestartCount, nil
}

// BankValue is one bank's value of a PCR.
type BankValue struct {
	Alg    string   `json:"alg"` // "sha256", ...
	AlgID  uint16   `json:"alg_id"`
	Digest HexBytes `json:"digest"`
}

// PCRValues reads pcr in every active bank, sorted by algorithm ID.
func PCRValues(t transport.TPM, pcr int) ([]BankValue, error) {
	banks, err := activeBanks(t, pcr)
	if err != nil {
		return nil, err
	}
	vals, err := readPCR(t, pcr, banks)
	if err != nil {
		return nil, err
	}
	out := make([]BankValue, 0, len(banks))
	for _, b := range banks {
		out = append(out, BankValue{Alg: b.name, AlgID: uint16(b.alg), Digest: vals[b.name]})
	}
	return out, nil
}

// BootKey is the TPM's (resetCount, restartCount), the key of the event
// log's boots (TPM2_ReadClock).
func BootKey(t transport.TPM) (reset, restart uint32, err error) { return clockCounts(t) }

// BankHash is the hash of a bank name ("sha256"), false when unknown.
func BankHash(name string) (crypto.Hash, bool) {
	b, ok := bankByName(name)
	return b.hash, ok
}
