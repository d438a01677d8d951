package tpm

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// TestVerifyBoots: one boot or every boot, each result shown as it is
// made; Mismatch names the first boot that does not verify.
func TestVerifyBoots(t *testing.T) {
	sim, tp := openSimT(t)
	r, path := newRec(t, tp, DefaultPCR)
	recordSample(t, r, true)
	if err := sim.Reset(); err != nil {
		t.Fatal(err)
	}
	recordSample(t, r, false)
	var seen []int
	res, err := VerifyBoots(t.Context(), tp, path, 0, true, DefaultPCR, func(v *VerifyResult) { seen = append(seen, v.Boot) })
	if err != nil || len(res) != 2 || len(seen) != 2 || seen[0] != 1 || seen[1] != 2 || !res[0].OK || !res[1].OK {
		t.Fatalf("all: %+v %v, seen %v", res, err, seen)
	}
	if err := Mismatch(path, res); err != nil {
		t.Fatalf("Mismatch of verified boots: %v", err)
	}
	if res, err := VerifyBoots(t.Context(), tp, path, 1, false, DefaultPCR, nil); err != nil || len(res) != 1 || res[0].Boot != 1 {
		t.Fatalf("boot 1: %+v %v", res, err)
	}
	extendBehindBack(t, tp, DefaultPCR)
	res, err = VerifyBoots(t.Context(), tp, path, 0, true, DefaultPCR, nil)
	var me *MismatchError
	if err != nil || !errors.As(Mismatch(path, res), &me) || me.Boot != 2 || me.PCR != DefaultPCR ||
		!strings.HasPrefix(me.Error(), "event log "+path+" (boot 2) does not match PCR 13: ") {
		t.Fatalf("extended behind the log's back: %+v %v, %v", res, err, Mismatch(path, res))
	}
	if _, err := VerifyBoots(t.Context(), tp, path, 9, false, DefaultPCR, nil); err == nil {
		t.Fatal("boot 9 of 2 verified")
	}
	// Nothing logged: all is the current boot, which has no records.
	res, err = VerifyBoots(t.Context(), tp, filepath.Join(t.TempDir(), "events"), 0, true, DefaultPCR, nil)
	if err != nil || len(res) != 1 || res[0].Boot != 0 {
		t.Fatalf("nothing logged: %+v %v", res, err)
	}
}
