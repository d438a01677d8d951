package logfill

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2/transport"
	"github.com/vfio-gate/vfio-gate/tpm"
)

// Fill writes n records (a boot baseline plus n-1 verdicts) as boot 1 of the
// log directory dir, for the TPM's current boot and pcr, in segments of at
// most tpm.SegmentMaxRecords records / tpm.SegmentMaxBytes bytes.
func Fill(tb testing.TB, tp transport.TPM, dir string, pcr, n int) {
	tb.Helper()
	vals, err := tpm.PCRValues(tp, pcr)
	if err != nil {
		tb.Fatal(err)
	}
	rc, restart, err := tpm.BootKey(tp)
	if err != nil {
		tb.Fatal(err)
	}
	dsn := uint64(1)
	ev := tpm.VerdictEvent(tpm.Decision{BDF: "0000:3b:00.0", VendorID: 0x8086, DeviceID: 0x0d58, DSN: &dsn, Rule: "filler",
		Allow: true, Mode: "enforce", EvidenceDigest: make([]byte, 32), Time: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)})
	var digests []tpm.Digest
	sums := map[string][]byte{}
	cur := map[string][]byte{}
	for _, v := range vals {
		h, _ := tpm.BankHash(v.Alg)
		s := h.New()
		s.Write(ev.Data)
		sums[v.Alg] = s.Sum(nil)
		digests = append(digests, tpm.Digest{HashAlg: v.Alg, Digest: hex.EncodeToString(sums[v.Alg])})
		cur[v.Alg] = v.Digest
	}
	bootDir := filepath.Join(dir, "boot-000001")
	if err := os.MkdirAll(bootDir, 0o750); err != nil {
		tb.Fatal(err)
	}
	var (
		f    *os.File
		w    *bufio.Writer
		seg  int
		recs int
		size int
	)
	closeSeg := func() {
		if f == nil {
			return
		}
		if err := w.Flush(); err != nil {
			tb.Fatal(err)
		}
		// Durable now, so that the writeback of the filler is not charged
		// to the first fsyncs of the Records measured after it.
		if err := f.Sync(); err != nil {
			tb.Fatal(err)
		}
		if err := f.Close(); err != nil {
			tb.Fatal(err)
		}
	}
	write := func(rec tpm.Record) {
		b, err := json.Marshal(rec)
		if err != nil {
			tb.Fatal(err)
		}
		w.Write(b)
		w.WriteByte('\n')
		recs++
		size += len(b) + 1
	}
	for rn := uint64(1); rn <= uint64(n); rn++ {
		if f == nil || recs >= tpm.SegmentMaxRecords || size >= tpm.SegmentMaxBytes {
			closeSeg()
			seg++
			if f, err = os.Create(filepath.Join(bootDir, fmt.Sprintf("seg-%06d.cel.jsonl", seg))); err != nil {
				tb.Fatal(err)
			}
			w, recs, size = bufio.NewWriterSize(f, 1<<20), 0, 0
			bd := tpm.BaselineData{ResetCount: rc, RestartCount: restart, PCRs: map[string]tpm.HexBytes{}, Reason: "segment"}
			if seg == 1 {
				bd.Reason = "boot"
			}
			for k, v := range cur {
				bd.PCRs[k] = v
			}
			data, _ := json.Marshal(bd)
			write(tpm.Record{RecNum: rn, PCR: pcr, Event: tpm.Event{ContentType: tpm.ContentVFIOGate, Kind: tpm.KindBaseline, Data: data}})
			continue
		}
		write(tpm.Record{RecNum: rn, PCR: pcr, Digests: digests, Event: ev})
		for _, v := range vals {
			h, _ := tpm.BankHash(v.Alg)
			s := h.New()
			s.Write(cur[v.Alg])
			s.Write(sums[v.Alg])
			cur[v.Alg] = s.Sum(nil)
		}
	}
	closeSeg()
}
