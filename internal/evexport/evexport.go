package evexport

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/google/go-tpm/tpm2/transport"

	"github.com/vfio-gate/vfio-gate/gate/evstore"
	"github.com/vfio-gate/vfio-gate/tpm"
)

// Manifest is manifest.json of an evidence export.
type Manifest struct {
	Schema       string            `json:"schema"` // vfio-gate/evidence-export/v1
	PCR          int               `json:"pcr"`
	QuotedBank   string            `json:"quoted_bank"` // "sha256"
	Banks        []string          `json:"banks"`       // banks in eventlog.bin
	Nonce        string            `json:"nonce"`       // hex, the quote's qualifyingData
	Boot         int               `json:"boot"`
	ResetCount   uint32            `json:"reset_count"`
	RestartCount uint32            `json:"restart_count"`
	Events       int               `json:"events"`     // events in eventlog.bin after the Spec ID event
	PCRValues    map[string]string `json:"pcr_values"` // hex, per bank, at the quote
	AKHandle     string            `json:"ak_handle"`
	AKName       string            `json:"ak_name"`
	// EKCertIndex is the NV index the EK certificate (ek.cert.der) was read
	// from; empty when the TPM holds none.
	EKCertIndex string            `json:"ek_cert_index,omitempty"`
	Files       map[string]string `json:"files"` // name -> SHA-256 hex
	Bundles     []string          `json:"bundles"`
	// MissingBundles are evidence digests in the log whose bundle is no
	// longer (or was never) stored.
	MissingBundles []string `json:"missing_bundles"`
}

// Options say what to export and where.
type Options struct {
	LogDir      string // the event log directory
	EvidenceDir string // the evidence bundles (evstore)
	Out         string // the directory to create and write into
	PCR         int
	Nonce       string // the verifier's nonce in hex, as given: the quote's qualifyingData
	Boot        string // the boot asked for: only "current" can be quoted (Check)
}

// Check refuses, before anything is opened, what no export can be: a boot
// other than "current" (a quote speaks for today's PCR only), a nonce that
// is not 1 to 64 bytes in hex. Its errors name the flags of
// `vfio-gate evidence export`.
func (o Options) Check() error {
	if o.Boot != "current" {
		return fmt.Errorf("--boot %q: only the current boot can be quoted", o.Boot)
	}
	if _, err := ParseNonce(o.Nonce); err != nil {
		return fmt.Errorf("--nonce: %w", err)
	}
	return nil
}

// LogError says why the event log cannot be exported: it does not verify
// against the TPM, holds no record of the current boot, or cannot replay.
type LogError struct{ msg string }

func (e *LogError) Error() string { return e.msg }

// ErrNothingRecorded is returned (wrapped, naming the directory) when
// there is no event log to export: nothing was ever recorded there.
var ErrNothingRecorded = errors.New("nothing recorded yet (run check or the daemon first)")

// ParseNonce decodes a verifier's nonce: 1 to 64 bytes in hex.
func ParseNonce(s string) ([]byte, error) {
	nonce, err := hex.DecodeString(s)
	if err != nil || len(nonce) == 0 || len(nonce) > 64 {
		return nil, errors.New("want 1 to 64 bytes in hex")
	}
	return nonce, nil
}

// Write exports the TPM's current boot into o.Out, which must not exist
// yet. It holds the log lock throughout, so the log and the quote agree.
func Write(ctx context.Context, t transport.TPM, o Options) (*Manifest, error) {
	nonce, err := ParseNonce(o.Nonce)
	if err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	if _, err := os.Stat(o.LogDir); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no event log under %s: %w", o.LogDir, ErrNothingRecorded)
	}
	unlock, err := tpm.LockLog(ctx, o.LogDir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	res, recs, err := verifiedBoot(ctx, t, o.LogDir, o.PCR)
	if err != nil {
		return nil, err
	}
	bin, err := tpm.EncodeTCG2(recs)
	if err != nil {
		return nil, err
	}
	ak, err := tpm.EnsureAK(t)
	if err != nil {
		return nil, err
	}
	q, err := tpm.Quote(t, ak, o.PCR, nonce)
	if err != nil {
		return nil, err
	}
	akDER, err := x509.MarshalPKIXPublicKey(ak.Public)
	if err != nil {
		return nil, err
	}
	boot, err := tpm.FindBoot(o.LogDir, res.Boot)
	if err != nil {
		return nil, err
	}
	if err := os.Mkdir(o.Out, 0o750); err != nil {
		return nil, fmt.Errorf("--out: %w (give a directory that does not exist yet)", err)
	}
	m := &Manifest{Schema: "vfio-gate/evidence-export/v1", PCR: o.PCR, QuotedBank: "sha256", Nonce: o.Nonce,
		Boot: boot.Seq, ResetCount: boot.ResetCount, RestartCount: boot.RestartCount, Events: len(recs),
		PCRValues: map[string]string{}, AKHandle: fmt.Sprintf("0x%08x", uint32(tpm.AKHandle)), AKName: hex.EncodeToString(ak.Name),
		Files: map[string]string{}, Bundles: []string{}, MissingBundles: []string{}}
	for _, b := range res.Banks {
		m.Banks = append(m.Banks, b.Alg)
		m.PCRValues[b.Alg] = hex.EncodeToString(b.PCR)
	}
	x := &exporter{out: o.Out, m: m}
	files := []file{
		{"eventlog.bin", bin}, {"quote.msg", q.Attest}, {"quote.sig", q.Signature},
		{"quote.pcrs", tpm.TPM2ToolsPCRs(o.PCR, q.PCR)},
		{"ak.pub.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: akDER})},
	}
	ek, idx, found, err := tpm.EKCertificate(t)
	if err != nil {
		return nil, err
	}
	if found {
		files = append(files, file{"ek.cert.der", ek})
		m.EKCertIndex = fmt.Sprintf("0x%08x", idx)
	}
	for _, f := range files {
		if err := x.write(f.name, f.data); err != nil {
			return nil, err
		}
	}
	if err := x.writeBundles(evstore.Open(o.EvidenceDir, evstore.Options{}), recs); err != nil {
		return nil, err
	}
	mj, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(o.Out, "manifest.json"), append(mj, '\n'), 0o640); err != nil {
		return nil, err
	}
	return m, nil
}

// verifiedBoot verifies the log against the TPM and returns the current
// boot's extended records, refused (LogError) when they cannot replay to
// the PCR from zero.
func verifiedBoot(ctx context.Context, t transport.TPM, dir string, pcr int) (*tpm.VerifyResult, []*tpm.Record, error) {
	res, err := tpm.Verify(ctx, t, dir, pcr)
	if err != nil {
		return nil, nil, err
	}
	if !res.OK {
		return nil, nil, &LogError{fmt.Sprintf("the event log does not verify against the TPM: %s", res.Problems[0].Msg)}
	}
	if res.Boot == 0 {
		return nil, nil, &LogError{"no records for the TPM's current boot: nothing to export"}
	}
	recs, start, err := tpm.ExtendedRecords(dir, res.Boot)
	if err != nil {
		return nil, nil, err
	}
	for name, v := range start {
		if !bytes.Equal(v, make([]byte, len(v))) {
			return nil, nil, &LogError{fmt.Sprintf("PCR %d %s was already extended when this boot's log began: a TCG2 event log cannot replay from that value", pcr, name)}
		}
	}
	return res, recs, nil
}

type file struct {
	name string
	data []byte
}

// exporter writes the files of one export and lists them in its manifest.
type exporter struct {
	out string
	m   *Manifest
}

func (x *exporter) write(name string, data []byte) error {
	p := filepath.Join(x.out, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	x.m.Files[name] = hex.EncodeToString(sum[:])
	return os.WriteFile(p, data, 0o640)
}

// writeBundles writes the evidence bundle of every verdict in recs, once
// per digest; a bundle no longer stored is listed as missing.
func (x *exporter) writeBundles(store *evstore.Store, recs []*tpm.Record) error {
	seen := map[string]bool{}
	for _, r := range recs {
		if r.Event.Kind != tpm.KindVerdict {
			continue
		}
		var v tpm.VerdictData
		if json.Unmarshal(r.Event.Data, &v) != nil || len(v.EvidenceDigest) == 0 {
			continue
		}
		d := hex.EncodeToString(v.EvidenceDigest)
		if seen[d] {
			continue
		}
		seen[d] = true
		b, err := store.Get(d)
		if err != nil {
			x.m.MissingBundles = append(x.m.MissingBundles, d)
			continue
		}
		data, err := b.Marshal()
		if err != nil {
			return err
		}
		if err := x.write("bundles/"+d+".json", data); err != nil {
			return err
		}
		x.m.Bundles = append(x.m.Bundles, d)
	}
	sort.Strings(x.m.Bundles)
	sort.Strings(x.m.MissingBundles)
	return nil
}
