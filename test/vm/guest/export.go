//go:build linux

package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/google/go-eventlog/register"
	"github.com/google/go-eventlog/tcg"
)

// exportChunk is the number of base64 characters per EXPORT line.
const exportChunk = 3000

// evEventTag is EV_EVENT_TAG (TCG PC Client PFP).
const evEventTag = 0x6

// exportMaxBytes bounds the tar.gz shipped over the serial console.
const exportMaxBytes = 1 << 20

// evidenceExport (issue 15, "Done when"): `evidence export` of the decisions
// the gate scenarios recorded on /dev/tpmrm0 (tpm_crb -> QEMU -> swtpm), with
// the nonce the host put on the kernel command line (vmtest.nonce), shipped
// to the host as a tar.gz over the serial console:
//
//	EXPORT BEGIN <bytes> <sha256 of the tar.gz>
//	EXPORT <base64, at most exportChunk characters>   (repeated)
//	EXPORT END
//
// The host (test/vm/run) reassembles it and verifies it with tpm2-tools and
// go-eventlog only (export-* results). Runs after log-verify and before the
// libvirt daemon extends the same PCR from another state directory: the
// export's log must be the only one that PCR holds.
func evidenceExport(ctx context.Context, h *Harness) Result {
	if r := h.need(ctx, "evidence export"); r != nil {
		return *r
	}
	if h.nonce == "" {
		return failf("no nonce: the host passes vmtest.nonce=HEX on the kernel command line")
	}
	dir := filepath.Join(os.TempDir(), "evidence-export")
	os.RemoveAll(dir)
	out, errOut, code, err := h.gate(ctx, "--json", "evidence", "export", "--nonce", h.nonce, "--out", dir)
	if err != nil || code != 0 {
		return failf("evidence export: exit %d, %v: %s %s", code, err, firstLine(out), errOut)
	}
	var m struct {
		Schema  string   `json:"schema"`
		PCR     int      `json:"pcr"`
		Events  int      `json:"events"`
		Nonce   string   `json:"nonce"`
		Bundles []string `json:"bundles"`
	}
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		return failf("evidence export --json: %v: %q", err, out)
	}
	if m.Schema != "vfio-gate/evidence-export/v1" || m.Events == 0 || m.Nonce != h.nonce {
		return failf("evidence export: schema %q, %d events, nonce %q (want %q): the gate scenarios recorded nothing?", m.Schema, m.Events, m.Nonce, h.nonce)
	}
	tgz, files, err := tarGz(dir)
	if err != nil {
		return failf("pack %s: %v", dir, err)
	}
	if len(tgz) > exportMaxBytes {
		return failf("export is %d bytes packed, over the %d the serial log carries", len(tgz), exportMaxBytes)
	}
	lines := shipExport(os.Stdout, tgz)
	return passf("exported %d events of PCR %d, %d bundles, %d files; shipped %d bytes tar.gz in %d EXPORT lines",
		m.Events, m.PCR, len(m.Bundles), files, len(tgz), lines)
}

// tarGz packs the regular files and directories under dir, with names
// relative to it.
func tarGz(dir string) ([]byte, int, error) {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	tw := tar.NewWriter(zw)
	files := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if !info.Mode().IsRegular() && !info.IsDir() {
			return fmt.Errorf("%s: not a regular file", rel)
		}
		hdr, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if info.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if info.IsDir() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		files++
		_, err = io.Copy(tw, f)
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	if err == nil {
		err = zw.Close()
	}
	return buf.Bytes(), files, err
}

// shipExport prints data as EXPORT lines and returns how many carry data.
func shipExport(w io.Writer, data []byte) int {
	sum := sha256.Sum256(data)
	fmt.Fprintf(w, "EXPORT BEGIN %d %x\n", len(data), sum)
	b64 := base64.StdEncoding.EncodeToString(data)
	n := 0
	for len(b64) > 0 {
		c := min(exportChunk, len(b64))
		fmt.Fprintf(w, "EXPORT %s\n", b64[:c])
		b64 = b64[c:]
		n++
	}
	fmt.Fprintln(w, "EXPORT END")
	return n
}

// checkGoEventlog is the host side's go-eventlog check of an exported
// eventlog.bin (vmguest -go-eventlog FILE -pcr N -pcr-sha256 HEX, run by
// test/vm/run with the value tpm2_checkquote verified): go-eventlog's parser
// replays the log to that SHA-256 value of the PCR, every event's data hashes
// to its digest, and the PCR value with one bit changed is refused. No
// vfio-gate code is involved.
func checkGoEventlog(path string, pcr int, sha256Hex string) (string, error) {
	bin, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	want, err := hex.DecodeString(sha256Hex)
	if err != nil || len(want) != sha256.Size {
		return "", fmt.Errorf("-pcr-sha256 %q: not 32 bytes of hex", sha256Hex)
	}
	mr := []register.MR{register.PCR{Index: pcr, Digest: want, DigestAlg: crypto.SHA256}}
	evs, err := tcg.ParseAndReplay(bin, mr, tcg.ParseOpts{})
	if err != nil {
		return "", fmt.Errorf("go-eventlog ParseAndReplay to PCR %d = %s: %w", pcr, sha256Hex, err)
	}
	if len(evs) == 0 {
		return "", fmt.Errorf("go-eventlog replayed no events of PCR %d", pcr)
	}
	// The replay authenticates digests only; a verifier must check that each
	// event's data is what was hashed: an EV_EVENT_TAG's TaggedEventData
	// (TCG PC Client PFP, TCG_PCClientTaggedEvent: ID, size, data), any other
	// event's data as a whole.
	for i, e := range evs {
		measured := e.Data
		if e.Type == evEventTag {
			if len(e.Data) < 8 || binary.LittleEndian.Uint32(e.Data[4:8]) != uint32(len(e.Data)-8) {
				return "", fmt.Errorf("event %d: EV_EVENT_TAG data of %d bytes is not one TCG_PCClientTaggedEvent", i, len(e.Data))
			}
			measured = e.Data[8:]
		}
		if d := sha256.Sum256(measured); !bytes.Equal(d[:], e.Digest) {
			return "", fmt.Errorf("event %d (type %#x): its data does not hash to its sha256 digest %x", i, uint32(e.Type), e.Digest)
		}
	}
	other := bytes.Clone(want)
	other[0] ^= 1
	if _, err := tcg.ParseAndReplay(bin, []register.MR{register.PCR{Index: pcr, Digest: other, DigestAlg: crypto.SHA256}}, tcg.ParseOpts{}); err == nil {
		return "", fmt.Errorf("go-eventlog also replayed the log to another PCR %d value", pcr)
	}
	return fmt.Sprintf("go-eventlog ParseAndReplay: %d events replay to PCR %d sha256 %s, each event's data hashes to its digest (a changed PCR value is refused)", len(evs), pcr, sha256Hex), nil
}
