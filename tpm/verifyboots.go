package tpm

import (
	"context"
	"fmt"

	"github.com/google/go-tpm/tpm2/transport"
)

// VerifyBoots verifies, for pcr, boot seq of dir (0: the TPM's current
// boot), or with all every logged boot, oldest first (the current boot when
// none is logged), as VerifyBoot does. each, if not nil, sees every result
// as it is made, so a reader is told about the boots before a later one
// fails to read. An error means the TPM or the log could not be read; boots
// that do not verify are results with OK false (Mismatch).
func VerifyBoots(ctx context.Context, t transport.TPM, dir string, seq int, all bool, pcr int, each func(*VerifyResult)) ([]*VerifyResult, error) {
	seqs := []int{seq}
	if all {
		boots, err := ListBoots(dir)
		if err != nil {
			return nil, err
		}
		seqs = nil
		for _, b := range boots {
			seqs = append(seqs, b.Seq)
		}
		if len(seqs) == 0 {
			seqs = []int{0}
		}
	}
	var results []*VerifyResult
	for _, s := range seqs {
		res, err := VerifyBoot(ctx, t, dir, s, pcr)
		if err != nil {
			return nil, err
		}
		results = append(results, res)
		if each != nil {
			each(res)
		}
	}
	return results, nil
}

// MismatchError says that the log of a boot does not verify: its first
// problem.
type MismatchError struct {
	Dir       string // the event log directory
	Boot, PCR int
	Problem   string
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("event log %s (boot %d) does not match PCR %d: %s", e.Dir, e.Boot, e.PCR, e.Problem)
}

// Mismatch is a *MismatchError for the first of results that did not
// verify, nil when every one did.
func Mismatch(dir string, results []*VerifyResult) error {
	for _, res := range results {
		if !res.OK {
			return &MismatchError{Dir: dir, Boot: res.Boot, PCR: res.PCR, Problem: res.Problems[0].Msg}
		}
	}
	return nil
}
