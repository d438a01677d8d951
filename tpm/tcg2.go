package tpm

import (
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/vfio-gate/vfio-gate/internal/wire"
)

// EvEventTag is EV_EVENT_TAG (TCG PC Client PFP, event types): its data is
// a TCG_PCClientTaggedEvent {TaggedEventID u32, TaggedEventDataSize u32,
// TaggedEventData}. vfio_gate records (verdicts, releases, TDISP state
// changes) are exported as tagged events whose data is the record's JSON,
// and whose digests are those of that JSON, as extended.
const EvEventTag EventType = 0x00000006

// Tagged event IDs of the vfio_gate kinds in a TCG2 export ("VG" 0x5647).
const (
	TagVerdict uint32 = 0x56470001
	TagRelease uint32 = 0x56470002
	TagTDISP   uint32 = 0x56470003
)

var kindTags = map[string]uint32{KindVerdict: TagVerdict, KindRelease: TagRelease, KindTDISP: TagTDISP}

// ExtendedRecords returns the records of boot seq of dir that were extended
// into the PCR, in order: baselines are dropped, and so are records a
// resync baseline acknowledged as never extended. start is the PCR value
// the boot began from (the boot baseline). A chain that does not hold
// (VerifyBoot would report it) is an error.
func ExtendedRecords(dir string, seq int) (recs []*Record, start map[string][]byte, err error) {
	b, err := FindBoot(dir, seq)
	if err != nil {
		return nil, nil, err
	}
	var prev []*Record
	var prevVals []map[string][]byte
	var banks []bank
	for si, p := range b.Segments {
		lg, err := ReadLog(p)
		if err != nil {
			return nil, nil, err
		}
		if len(lg.Records) == 0 || lg.Records[0].Event.Kind != KindBaseline {
			return nil, nil, fmt.Errorf("tpm: %s does not start with a baseline", p)
		}
		bd, err := parseBaseline(lg.Records[0].Event.Data)
		if err != nil {
			return nil, nil, err
		}
		bv := map[string][]byte{}
		for k, v := range bd.PCRs {
			bv[k] = v
		}
		if si == 0 {
			for name := range bd.PCRs {
				bk, _ := bankByName(name)
				banks = append(banks, bk)
			}
			sortBanks(banks)
			start = bv
		} else {
			k := len(prevVals) - 1
			if !equalPCRs(prevVals[k], bv, banks) {
				if k = matchingPrefix(prevVals, bv, banks); k < 0 {
					return nil, nil, fmt.Errorf("tpm: %s: its baseline does not continue the previous segment", p)
				}
			}
			recs = append(recs, prev[:k]...)
		}
		pcr := lg.Records[0].PCR
		st := replaySegment(lg.Records[1:], bd, banks, pcr)
		if st.err != nil {
			return nil, nil, errors.New("tpm: " + st.err.Msg)
		}
		prev, prevVals = lg.Records[1:], st.values
	}
	return append(recs, prev...), start, nil
}

func sortBanks(b []bank) {
	for i := range b {
		for j := i; j > 0 && b[j].alg < b[j-1].alg; j-- {
			b[j], b[j-1] = b[j-1], b[j]
		}
	}
}

// EncodeTCG2 writes records as a TCG PC Client crypto-agile binary event
// log (TCG PC Client Platform Firmware Profile, "Crypto Agile Log Entry
// Format"): a TCG_PCR_EVENT (SHA-1 format) holding the TCG_EfiSpecIDEvent
// ("Spec ID Event03", one entry per bank the records carry), then one
// TCG_PCR_EVENT2 per record with every bank's digest. PC Client records
// keep their type and data; vfio_gate records become EV_EVENT_TAG.
// Every record must carry a digest for every bank of the first one.
func EncodeTCG2(recs []*Record) ([]byte, error) {
	var algs []bank
	if len(recs) > 0 {
		for _, d := range recs[0].Digests {
			b, ok := bankByName(d.HashAlg)
			if !ok {
				return nil, fmt.Errorf("tpm: unknown bank %q", d.HashAlg)
			}
			algs = append(algs, b)
		}
		sortBanks(algs)
	}
	spec := wire.NewBuilder(nil)
	spec.AddBytes([]byte("Spec ID Event03\x00")).AddU32(0) // platformClass: client
	spec.AddU8(0).AddU8(2).AddU8(0).AddU8(2)               // specVersionMinor, Major, Errata, uintnSize (UINT64)
	spec.AddU32(uint32(len(algs)))
	for _, b := range algs {
		spec.AddU16(uint16(b.alg)).AddU16(uint16(b.hash.Size()))
	}
	spec.AddU8(0) // vendorInfoSize
	out := wire.NewBuilder(nil)
	out.AddU32(0).AddU32(uint32(EvNoAction)).AddBytes(make([]byte, 20))
	out.AddU32(uint32(len(spec.Bytes()))).AddBytes(spec.Bytes())
	for _, r := range recs {
		var typ EventType
		data := r.Event.Data
		switch r.Event.ContentType {
		case ContentPCClient:
			typ = r.Event.Type
		case ContentVFIOGate:
			tag, ok := kindTags[r.Event.Kind]
			if !ok {
				return nil, fmt.Errorf("tpm: record %d: %q records are not extended", r.RecNum, r.Event.Kind)
			}
			typ = EvEventTag
			t := wire.NewBuilder(nil)
			t.AddU32(tag).AddU32(uint32(len(data))).AddBytes(data)
			data = t.Bytes()
		}
		if len(r.Digests) != len(algs) {
			return nil, fmt.Errorf("tpm: record %d has %d digests, the log %d banks", r.RecNum, len(r.Digests), len(algs))
		}
		out.AddU32(uint32(r.PCR)).AddU32(uint32(typ)).AddU32(uint32(len(algs)))
		for _, b := range algs {
			d, err := hex.DecodeString(digestOf(r, b.name))
			if err != nil || len(d) != b.hash.Size() {
				return nil, fmt.Errorf("tpm: record %d has no %s digest", r.RecNum, b.name)
			}
			out.AddU16(uint16(b.alg)).AddBytes(d)
		}
		out.AddU32(uint32(len(data))).AddBytes(data)
	}
	return out.Bytes(), nil
}
