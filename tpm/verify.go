package tpm

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2/transport"
)

// Problem kinds (stable strings, in JSON output).
const (
	ProblemMalformed  = "malformed"   // a complete line does not decode
	ProblemMissing    = "missing"     // recnum gap: lines deleted
	ProblemOrder      = "order"       // recnum not increasing, misplaced baseline
	ProblemPCR        = "wrong-pcr"   // record for another PCR
	ProblemAltered    = "altered"     // digest does not match event data
	ProblemBaseline   = "baseline"    // baseline unusable
	ProblemUnlogged   = "unlogged"    // PCR holds extends the log does not have
	ProblemUnextended = "unextended"  // records logged but never extended (torn)
	ProblemNoRecords  = "no-records"  // PCR extended but no records for this boot
	WarnTornLine      = "torn-line"   // incomplete last line (never extended)
	WarnSharedPCR     = "shared-pcr"  // PCR was not at its reset value at the boot baseline
	WarnAcknowledged  = "resynced"    // records acknowledged as never extended by a resync baseline
	WarnEarlierBoots  = "older-boots" // records from earlier boots, not checkable against today's PCR
)

// Problem is one finding of Verify.
type Problem struct {
	RecNum uint64 `json:"recnum,omitempty"`
	Line   int    `json:"line,omitempty"`
	Kind   string `json:"kind"`
	Msg    string `json:"message"`
}

// BankResult compares one bank.
type BankResult struct {
	Alg    string   `json:"alg"`
	PCR    HexBytes `json:"pcr"`
	Replay HexBytes `json:"replay"`
	Match  bool     `json:"match"`
}

// VerifyResult is the outcome of Verify. OK is true only when the log of
// this boot replays exactly to the TPM's PCR in every bank and no record is
// altered or missing.
type VerifyResult struct {
	OK       bool         `json:"ok"`
	PCR      int          `json:"pcr"`
	Records  int          `json:"records"` // records in the file
	Checked  int          `json:"checked"` // records replayed against this boot's PCR
	Banks    []BankResult `json:"banks"`
	Problems []Problem    `json:"problems"`
	Warnings []Problem    `json:"warnings"`
	// FirstDivergence is the recnum of the first record found wrong, 0 when
	// no single record can be blamed (for example extends behind the log's back).
	FirstDivergence uint64 `json:"first_divergence,omitempty"`
}

func (v *VerifyResult) problem(p Problem) {
	v.Problems = append(v.Problems, p)
	if v.FirstDivergence == 0 && p.RecNum != 0 {
		v.FirstDivergence = p.RecNum
	}
}

// Verify replays the log at logPath for pcr, per bank, and compares it with
// the TPM. Only this boot's records (from the "boot" baseline whose
// resetCount is the TPM's) are replayed. An error means the TPM or the file
// could not be read; a log that does not match is a result with OK false.
func Verify(ctx context.Context, t transport.TPM, logPath string, pcr int) (*VerifyResult, error) {
	if err := checkPCR(pcr, true); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res := &VerifyResult{PCR: pcr, Problems: []Problem{}, Warnings: []Problem{}}
	banks, err := activeBanks(t, pcr)
	if err != nil {
		return nil, err
	}
	pcrs, err := readPCR(t, pcr, banks)
	if err != nil {
		return nil, err
	}
	rc, err := resetCount(t)
	if err != nil {
		return nil, err
	}
	for _, b := range banks {
		res.Banks = append(res.Banks, BankResult{Alg: b.name, PCR: pcrs[b.name]})
	}
	lg, err := ReadLog(logPath)
	var le *LogError
	if errors.As(err, &le) && le.Line > 0 {
		res.problem(Problem{Line: le.Line, Kind: ProblemMalformed, Msg: le.Error()})
		return res, nil
	}
	if err != nil {
		return nil, err
	}
	res.Records = len(lg.Records)
	if lg.Torn {
		res.Warnings = append(res.Warnings, Problem{Line: lg.TornLine, Kind: WarnTornLine,
			Msg: fmt.Sprintf("line %d is incomplete (an append torn by a crash); it was never extended and is ignored", lg.TornLine)})
	}

	// Record numbers: 1, 2, 3, ... with no gaps.
	var want uint64 = 1
	for _, rec := range lg.Records {
		switch {
		case rec.RecNum > want:
			res.problem(Problem{RecNum: want, Line: rec.Line, Kind: ProblemMissing,
				Msg: fmt.Sprintf("records %d..%d are missing (line %d has recnum %d, expected %d): lines were deleted", want, rec.RecNum-1, rec.Line, rec.RecNum, want)})
		case rec.RecNum < want:
			res.problem(Problem{RecNum: rec.RecNum, Line: rec.Line, Kind: ProblemOrder,
				Msg: fmt.Sprintf("line %d has recnum %d, expected %d: records duplicated or reordered", rec.Line, rec.RecNum, want)})
		}
		want = rec.RecNum + 1
	}

	// This boot starts at the last "boot" baseline with our resetCount.
	start := -1
	for i := len(lg.Records) - 1; i >= 0; i-- {
		rec := lg.Records[i]
		if rec.Event.Kind != KindBaseline {
			continue
		}
		bd, err := parseBaseline(rec.Event.Data)
		if err != nil {
			res.problem(Problem{RecNum: rec.RecNum, Line: rec.Line, Kind: ProblemBaseline, Msg: fmt.Sprintf("record %d: %v", rec.RecNum, err)})
			return finish(res, nil, pcrs, banks), nil
		}
		if bd.Reason == "boot" {
			if bd.ResetCount == rc {
				start = i
			}
			break
		}
	}
	// Records of earlier boots cannot be replayed, but each must still match
	// its own digests.
	upTo := start
	if upTo < 0 {
		upTo = len(lg.Records)
	}
	for _, rec := range lg.Records[:upTo] {
		if p := selfConsistent(rec); p != nil {
			res.problem(*p)
			break
		}
	}
	if start > 0 {
		res.Warnings = append(res.Warnings, Problem{Kind: WarnEarlierBoots,
			Msg: fmt.Sprintf("%d records are from earlier boots; they cannot be checked against this boot's PCR", start)})
	}
	if start < 0 {
		if len(lg.Records) > 0 {
			res.Warnings = append(res.Warnings, Problem{Kind: WarnEarlierBoots,
				Msg: fmt.Sprintf("all %d records are from earlier boots", len(lg.Records))})
		}
		zero := map[string][]byte{}
		for _, b := range banks {
			zero[b.name] = make([]byte, b.hash.Size())
		}
		if !equalPCRs(pcrs, zero, banks) {
			res.problem(Problem{Kind: ProblemNoRecords,
				Msg: fmt.Sprintf("PCR %d is not at its reset value but the log has no records for this boot: the log was deleted or replaced, or another component extends PCR %d", pcr, pcr)})
		}
		return finish(res, zero, pcrs, banks), nil
	}

	// Split this boot into segments at baselines and replay each.
	recs := lg.Records[start:]
	var last map[string][]byte
	for i := 0; i < len(recs); {
		bd, err := parseBaseline(recs[i].Event.Data)
		if err != nil {
			res.problem(Problem{RecNum: recs[i].RecNum, Line: recs[i].Line, Kind: ProblemBaseline, Msg: err.Error()})
			return finish(res, nil, pcrs, banks), nil
		}
		if i == 0 {
			zero := true
			for _, v := range bd.PCRs {
				zero = zero && bytes.Count(v, []byte{0}) == len(v)
			}
			if !zero {
				res.Warnings = append(res.Warnings, Problem{RecNum: recs[0].RecNum, Line: recs[0].Line, Kind: WarnSharedPCR,
					Msg: fmt.Sprintf("PCR %d was already extended when vfio-gate first recorded this boot (record %d): another component shares it, or an earlier log was lost", pcr, recs[0].RecNum)})
			}
		}
		j := i + 1
		for j < len(recs) && recs[j].Event.Kind != KindBaseline {
			j++
		}
		seg := recs[i+1 : j]
		st := replaySegment(seg, bd, banks, pcr)
		res.Checked += len(st.values) - 1
		if st.err != nil {
			res.problem(*st.err)
			return finish(res, nil, pcrs, banks), nil
		}
		end := st.values[len(seg)]
		if j == len(recs) { // last segment: compare with the TPM
			last = end
			if !equalPCRs(end, pcrs, banks) {
				if k := matchingPrefix(st.values, pcrs, banks); k >= 0 {
					res.problem(Problem{RecNum: seg[k].RecNum, Line: seg[k].Line, Kind: ProblemUnextended,
						Msg: fmt.Sprintf("records %d..%d are in the log but were never extended into PCR %d (torn: crash or TPM failure between append and extend, or lines appended behind the recorder's back)", seg[k].RecNum, seg[len(seg)-1].RecNum, pcr)})
				} else {
					res.problem(Problem{Kind: ProblemUnlogged,
						Msg: fmt.Sprintf("PCR %d does not match the log replay: the TPM holds extends the log does not have (events missing from the log, or extended behind its back)", pcr)})
				}
			}
			break
		}
		nb, err := parseBaseline(recs[j].Event.Data)
		if err != nil {
			res.problem(Problem{RecNum: recs[j].RecNum, Line: recs[j].Line, Kind: ProblemBaseline, Msg: err.Error()})
			return finish(res, nil, pcrs, banks), nil
		}
		nbv := map[string][]byte{}
		for k, v := range nb.PCRs {
			nbv[k] = v
		}
		switch {
		case nb.Reason == "boot":
			res.problem(Problem{RecNum: recs[j].RecNum, Line: recs[j].Line, Kind: ProblemOrder, Msg: "second boot baseline within one boot"})
			return finish(res, nil, pcrs, banks), nil
		case equalPCRs(end, nbv, banks):
		case matchingPrefix(st.values, nbv, banks) >= 0:
			k := matchingPrefix(st.values, nbv, banks)
			res.Warnings = append(res.Warnings, Problem{RecNum: seg[k].RecNum, Line: seg[k].Line, Kind: WarnAcknowledged,
				Msg: fmt.Sprintf("records %d..%d were never extended (acknowledged by the resync baseline, record %d)", seg[k].RecNum, seg[len(seg)-1].RecNum, recs[j].RecNum)})
		default:
			res.problem(Problem{RecNum: recs[j].RecNum, Line: recs[j].Line, Kind: ProblemUnlogged,
				Msg: fmt.Sprintf("before record %d, PCR %d held extends the log does not have (events missing from the log, or extended behind its back)", recs[j].RecNum, pcr)})
		}
		i = j
	}
	return finish(res, last, pcrs, banks), nil
}

func finish(res *VerifyResult, replay, pcrs map[string][]byte, banks []bank) *VerifyResult {
	for i, b := range banks {
		if replay != nil {
			res.Banks[i].Replay = replay[b.name]
			res.Banks[i].Match = bytes.Equal(replay[b.name], pcrs[b.name])
		}
	}
	res.OK = len(res.Problems) == 0
	return res
}

// selfConsistent checks that every digest of rec is the hash of its data.
func selfConsistent(rec *Record) *Problem {
	for _, d := range rec.Digests {
		b, _ := bankByName(d.HashAlg) // ParseRecord admitted only known banks
		if d.Digest != hex.EncodeToString(b.sum(rec.Event.Data)) {
			return &Problem{RecNum: rec.RecNum, Line: rec.Line, Kind: ProblemAltered,
				Msg: fmt.Sprintf("record %d (line %d, earlier boot): %s digest does not match its event data: the record was altered", rec.RecNum, rec.Line, d.HashAlg)}
		}
	}
	return nil
}
