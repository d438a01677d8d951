package main

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/spf13/cobra"
	"github.com/vfio-gate/vfio-gate/gate/evstore"
	"github.com/vfio-gate/vfio-gate/tpm"
)

// exportManifest is manifest.json of an evidence export.
type exportManifest struct {
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

func newEvidenceExportCmd(e *env, g *globals) *cobra.Command {
	var nonceHex, outDir, bootSel string
	var pcr int
	cmd := &cobra.Command{
		Use:   "export --nonce HEX --out DIR",
		Short: "Export the current boot's log, a TPM quote and the bundles, for verifiers with tpm2-tools",
		Long: `Writes, into the new directory --out, everything a remote verifier needs to check this
boot's decisions without vfio-gate (docs/evidence.md):

  eventlog.bin   the boot's extended records as a TCG2 crypto-agile binary event log
  quote.msg      TPMS_ATTEST of a TPM2_Quote over --pcr (SHA-256 bank) with --nonce
  quote.sig      its TPMT_SIGNATURE, by vfio-gate's attestation key
  quote.pcrs     the PCR value, as tpm2_quote -o writes it
  ak.pub.pem     the attestation key (created once, persisted at handle 0x81000A65)
  ek.cert.der    the TPM's EK certificate, when it holds one (NV 0x01C0000A or 0x01C00002)
  bundles/       the evidence bundle of every verdict in the log, by digest
  manifest.json  the files and their SHA-256, PCR, banks, nonce, boot

Decisions wait while the export runs (it holds the log lock), so the log and the quote agree.
The log must verify against the TPM first (log verify). Check it with tpm2-tools:

  tpm2_checkquote -u ak.pub.pem -m quote.msg -s quote.sig -f quote.pcrs -g sha256 -q NONCE
  tpm2_eventlog eventlog.bin      # its final sha256 PCR value must be the one in quote.pcrs

Exit codes: 0 written; 5 the TPM cannot be used or the log does not verify; 1 otherwise.`,
		Example: "  sudo vfio-gate evidence export --nonce $(openssl rand -hex 16) --out /tmp/export",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if bootSel != "current" {
				return withCode(exitInternal, fmt.Errorf("--boot %q: only the current boot can be quoted", bootSel))
			}
			nonce, err := hex.DecodeString(nonceHex)
			if err != nil || len(nonce) == 0 || len(nonce) > 64 {
				return withCode(exitInternal, fmt.Errorf("--nonce: want 1 to 64 bytes in hex"))
			}
			t, err := tpm.Open(g.tpm)
			if err != nil {
				return err
			}
			defer t.Close()
			dir := eventLogDir(g)
			unlock, err := tpm.LockLog(cmd.Context(), dir)
			if err != nil {
				return err
			}
			defer unlock()
			res, err := tpm.Verify(cmd.Context(), t, dir, pcr)
			if err != nil {
				return err
			}
			if !res.OK {
				return withCode(exitTPM, fmt.Errorf("the event log does not verify against the TPM: %s", res.Problems[0].Msg))
			}
			if res.Boot == 0 {
				return withCode(exitTPM, errors.New("no records for the TPM's current boot: nothing to export"))
			}
			recs, start, err := tpm.ExtendedRecords(dir, res.Boot)
			if err != nil {
				return err
			}
			for name, v := range start {
				if !bytes.Equal(v, make([]byte, len(v))) {
					return withCode(exitTPM, fmt.Errorf("PCR %d %s was already extended when this boot's log began: a TCG2 event log cannot replay from that value", pcr, name))
				}
			}
			bin, err := tpm.EncodeTCG2(recs)
			if err != nil {
				return err
			}
			ak, err := tpm.EnsureAK(t)
			if err != nil {
				return err
			}
			q, err := tpm.Quote(t, ak, pcr, nonce)
			if err != nil {
				return err
			}
			akDER, err := x509.MarshalPKIXPublicKey(ak.Public)
			if err != nil {
				return err
			}
			boot, err := tpm.FindBoot(dir, res.Boot)
			if err != nil {
				return err
			}
			if err := os.Mkdir(outDir, 0o750); err != nil {
				return fmt.Errorf("--out: %w (give a directory that does not exist yet)", err)
			}
			m := exportManifest{Schema: "vfio-gate/evidence-export/v1", PCR: pcr, QuotedBank: "sha256", Nonce: nonceHex,
				Boot: boot.Seq, ResetCount: boot.ResetCount, RestartCount: boot.RestartCount, Events: len(recs),
				PCRValues: map[string]string{}, AKHandle: fmt.Sprintf("0x%08x", uint32(tpm.AKHandle)), AKName: hex.EncodeToString(ak.Name),
				Files: map[string]string{}, Bundles: []string{}, MissingBundles: []string{}}
			for _, b := range res.Banks {
				m.Banks = append(m.Banks, b.Alg)
				m.PCRValues[b.Alg] = hex.EncodeToString(b.PCR)
			}
			write := func(name string, data []byte) error {
				p := filepath.Join(outDir, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
					return err
				}
				sum := sha256.Sum256(data)
				m.Files[name] = hex.EncodeToString(sum[:])
				return os.WriteFile(p, data, 0o640)
			}
			files := []struct {
				name string
				data []byte
			}{
				{"eventlog.bin", bin}, {"quote.msg", q.Attest}, {"quote.sig", q.Signature},
				{"quote.pcrs", tpm.TPM2ToolsPCRs(pcr, q.PCR)},
				{"ak.pub.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: akDER})},
			}
			ek, idx, found, err := tpm.EKCertificate(t)
			if err != nil {
				return err
			}
			if found {
				files = append(files, struct {
					name string
					data []byte
				}{"ek.cert.der", ek})
				m.EKCertIndex = fmt.Sprintf("0x%08x", idx)
			}
			for _, f := range files {
				if err := write(f.name, f.data); err != nil {
					return err
				}
			}
			store := evstore.Open(evidenceDir(g), evstore.Options{})
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
					m.MissingBundles = append(m.MissingBundles, d)
					continue
				}
				data, err := b.Marshal()
				if err != nil {
					return err
				}
				if err := write("bundles/"+d+".json", data); err != nil {
					return err
				}
				m.Bundles = append(m.Bundles, d)
			}
			sort.Strings(m.Bundles)
			sort.Strings(m.MissingBundles)
			mj, err := json.MarshalIndent(m, "", "  ")
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(outDir, "manifest.json"), append(mj, '\n'), 0o640); err != nil {
				return err
			}
			if g.json {
				return writeJSON(e.out, "evidence-export", m)
			}
			fmt.Fprintf(e.out, "%s: boot %d, %d events, PCR %d quoted with nonce %s; %d bundles (%d missing)\n",
				outDir, m.Boot, m.Events, pcr, nonceHex, len(m.Bundles), len(m.MissingBundles))
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&nonceHex, "nonce", "", "the verifier's nonce, hex (1 to 64 bytes); the quote's qualifyingData")
	fl.StringVar(&outDir, "out", "", "directory to create and write the export into")
	fl.StringVar(&bootSel, "boot", "current", "boot to export (only \"current\": the quote is of today's PCR)")
	fl.IntVar(&pcr, "pcr", tpm.DefaultPCR, "PCR the events are extended into")
	cmd.MarkFlagRequired("nonce")
	cmd.MarkFlagRequired("out")
	return cmd
}
