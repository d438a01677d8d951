package tpm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

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
	WarnNotCurrent    = "not-current" // the boot verified is not the TPM's current boot
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
	Boot     int          `json:"boot"`     // the boot verified (0: none logged for the TPM's boot)
	Segments int          `json:"segments"` // its segment files
	Records  int          `json:"records"`  // records in the boot's segments
	Checked  int          `json:"checked"`  // records replayed against this boot's PCR
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

// Verify replays the log of the boot the TPM is in (the newest boot in dir
// whose resetCount/restartCount are the TPM's) for pcr, per bank, and
// compares it with the TPM. An error means the TPM or the log directory
// could not be read; a log that does not match is a result with OK false.
func Verify(ctx context.Context, t transport.TPM, dir string, pcr int) (*VerifyResult, error) {
	return VerifyBoot(ctx, t, dir, 0, pcr)
}

// VerifyBoot is Verify for boot seq of dir (0: the TPM's current boot). An
// earlier boot cannot be compared with today's PCR: its segments are
// replayed and chained (each segment's baseline must continue the previous
// segment's replay), every digest checked, and the result says so in a
// warning; Banks then hold the replay only.
func VerifyBoot(ctx context.Context, t transport.TPM, dir string, seq, pcr int) (*VerifyResult, error) {
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
	rc, restart, err := clockCounts(t)
	if err != nil {
		return nil, err
	}
	for _, b := range banks {
		res.Banks = append(res.Banks, BankResult{Alg: b.name, PCR: pcrs[b.name]})
	}
	boots, err := ListBoots(dir)
	if err != nil {
		return nil, err
	}
	// The newest boot is the current one when its key is the TPM's, or when
	// its key cannot be read (then the replay names what is wrong with it).
	isCurrent := func(b Boot) bool {
		return b.Seq == boots[len(boots)-1].Seq && (b.KeyError != "" || b.ResetCount == rc && b.RestartCount == restart)
	}
	var boot *Boot
	for i := range boots {
		if (seq == 0 && i == len(boots)-1 && isCurrent(boots[i])) || (seq != 0 && boots[i].Seq == seq) {
			boot = &boots[i]
		}
	}
	if seq != 0 && boot == nil {
		return nil, &LogError{Path: dir, Msg: fmt.Sprintf("no boot %d", seq), Err: fs.ErrNotExist}
	}
	if seq == 0 {
		earlier := len(boots)
		if boot != nil {
			earlier--
		}
		if earlier > 0 {
			res.Warnings = append(res.Warnings, Problem{Kind: WarnEarlierBoots,
				Msg: fmt.Sprintf("%d earlier boots are logged; they cannot be checked against this boot's PCR (log verify --boot N checks one on its own)", earlier)})
		}
	}
	if boot == nil {
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
	res.Boot = boot.Seq
	current := isCurrent(*boot)
	end, ok, err := replayBoot(res, boot, banks, pcr)
	if err != nil {
		return nil, err
	}
	if !ok {
		return finish(res, nil, pcrs, banks), nil
	}
	if !current {
		res.Warnings = append(res.Warnings, Problem{Kind: WarnNotCurrent,
			Msg: fmt.Sprintf("boot %d is not the TPM's current boot: its records were checked against each other and their baselines, not against a PCR", boot.Seq)})
		for i, b := range banks {
			res.Banks[i].PCR, res.Banks[i].Replay = nil, end.values[len(end.values)-1][b.name]
		}
		res.OK = len(res.Problems) == 0
		return res, nil
	}
	last := end.values[len(end.values)-1]
	if !equalPCRs(last, pcrs, banks) {
		if k := matchingPrefix(end.values, pcrs, banks); k >= 0 {
			seg := end.recs
			res.problem(Problem{RecNum: seg[k].RecNum, Line: seg[k].Line, Kind: ProblemUnextended,
				Msg: fmt.Sprintf("records %d..%d are in the log but were never extended into PCR %d (torn: crash or TPM failure between append and extend, or lines appended behind the recorder's back)", seg[k].RecNum, seg[len(seg)-1].RecNum, pcr)})
		} else {
			res.problem(Problem{Kind: ProblemUnlogged,
				Msg: fmt.Sprintf("PCR %d does not match the log replay: the TPM holds extends the log does not have (events missing from the log, or extended behind its back)", pcr)})
		}
	}
	return finish(res, last, pcrs, banks), nil
}

// segReplay is the replay of one segment's records after its baseline.
type segReplay struct {
	recs   []*Record
	values []map[string][]byte
}

// replayBoot replays a boot segment by segment, holding one segment in
// memory at a time. ok is false when a problem stops the replay.
func replayBoot(res *VerifyResult, boot *Boot, banks []bank, pcr int) (prev segReplay, ok bool, err error) {
	var want uint64 = 1
	for si, p := range boot.Segments {
		lg, err := ReadLog(p)
		var le *LogError
		if errors.As(err, &le) && le.Line > 0 {
			res.problem(Problem{Line: le.Line, Kind: ProblemMalformed, Msg: le.Error()})
			return prev, false, nil
		}
		if err != nil {
			return prev, false, err
		}
		res.Records += len(lg.Records)
		res.Segments++
		if lg.Torn && si == len(boot.Segments)-1 {
			res.Warnings = append(res.Warnings, Problem{Line: lg.TornLine, Kind: WarnTornLine,
				Msg: fmt.Sprintf("%s line %d is incomplete (an append torn by a crash); it was never extended and is ignored", p, lg.TornLine)})
		} else if lg.Torn {
			res.problem(Problem{Line: lg.TornLine, Kind: ProblemMalformed, Msg: fmt.Sprintf("%s line %d is incomplete but a later segment follows", p, lg.TornLine)})
			return prev, false, nil
		}
		// Record numbers: 1, 2, 3, ... across the boot's segments, no gaps.
		for _, rec := range lg.Records {
			switch {
			case rec.RecNum > want:
				res.problem(Problem{RecNum: want, Line: rec.Line, Kind: ProblemMissing,
					Msg: fmt.Sprintf("records %d..%d are missing (%s line %d has recnum %d, expected %d): lines or segments were deleted", want, rec.RecNum-1, filepath.Base(p), rec.Line, rec.RecNum, want)})
			case rec.RecNum < want:
				res.problem(Problem{RecNum: rec.RecNum, Line: rec.Line, Kind: ProblemOrder,
					Msg: fmt.Sprintf("%s line %d has recnum %d, expected %d: records duplicated or reordered", filepath.Base(p), rec.Line, rec.RecNum, want)})
			}
			want = rec.RecNum + 1
		}
		if len(lg.Records) == 0 || lg.Records[0].Event.Kind != KindBaseline {
			res.problem(Problem{Kind: ProblemBaseline, Msg: fmt.Sprintf("segment %s does not start with a baseline record", p)})
			return prev, false, nil
		}
		b0 := lg.Records[0]
		bd, err := parseBaseline(b0.Event.Data)
		if err != nil {
			res.problem(Problem{RecNum: b0.RecNum, Line: b0.Line, Kind: ProblemBaseline, Msg: fmt.Sprintf("record %d: %v", b0.RecNum, err)})
			return prev, false, nil
		}
		bv := map[string][]byte{}
		for k, v := range bd.PCRs {
			bv[k] = v
		}
		switch {
		case si == 0 && bd.Reason != "boot":
			res.problem(Problem{RecNum: b0.RecNum, Line: b0.Line, Kind: ProblemOrder, Msg: fmt.Sprintf("the boot's first segment starts with a %q baseline, not \"boot\": earlier segments were deleted", bd.Reason)})
			return prev, false, nil
		case si == 0:
			zero := true
			for _, v := range bd.PCRs {
				zero = zero && bytes.Count(v, []byte{0}) == len(v)
			}
			if !zero {
				res.Warnings = append(res.Warnings, Problem{RecNum: b0.RecNum, Line: b0.Line, Kind: WarnSharedPCR,
					Msg: fmt.Sprintf("PCR %d was already extended when vfio-gate first recorded this boot (record %d): another component shares it, or an earlier log was lost", pcr, b0.RecNum)})
			}
		case bd.Reason == "boot":
			res.problem(Problem{RecNum: b0.RecNum, Line: b0.Line, Kind: ProblemOrder, Msg: "second boot baseline within one boot"})
			return prev, false, nil
		case bd.ResetCount != boot.ResetCount || bd.RestartCount != boot.RestartCount:
			res.problem(Problem{RecNum: b0.RecNum, Line: b0.Line, Kind: ProblemBaseline, Msg: fmt.Sprintf("record %d: baseline of another boot (resetCount %d/%d)", b0.RecNum, bd.ResetCount, bd.RestartCount)})
			return prev, false, nil
		case equalPCRs(prev.values[len(prev.values)-1], bv, banks):
		case matchingPrefix(prev.values, bv, banks) >= 0:
			k := matchingPrefix(prev.values, bv, banks)
			res.Warnings = append(res.Warnings, Problem{RecNum: prev.recs[k].RecNum, Line: prev.recs[k].Line, Kind: WarnAcknowledged,
				Msg: fmt.Sprintf("records %d..%d were never extended (acknowledged by the resync baseline, record %d)", prev.recs[k].RecNum, prev.recs[len(prev.recs)-1].RecNum, b0.RecNum)})
		default:
			res.problem(Problem{RecNum: b0.RecNum, Line: b0.Line, Kind: ProblemUnlogged,
				Msg: fmt.Sprintf("before record %d, PCR %d held extends the log does not have (events missing from the log, or extended behind its back)", b0.RecNum, pcr)})
		}
		st := replaySegment(lg.Records[1:], bd, banks, pcr)
		res.Checked += len(st.values) - 1
		if st.err != nil {
			res.problem(*st.err)
			return prev, false, nil
		}
		prev = segReplay{recs: lg.Records[1:], values: st.values}
	}
	return prev, true, nil
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
