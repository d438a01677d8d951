package tpm

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestSelectBoots(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "events")
	seqs := func(bs []Boot) []int {
		var out []int
		for _, b := range bs {
			out = append(out, b.Seq)
		}
		return out
	}
	if bs, err := SelectBoots(dir, 0, false); err != nil || len(bs) != 0 {
		t.Fatalf("nothing logged: %v, %v", seqs(bs), err)
	}
	if _, err := SelectBoots(dir, 2, false); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("boot 2 of nothing: %v", err)
	}
	for _, s := range []int{1, 2, 3} {
		if err := os.MkdirAll(filepath.Join(dir, bootDirName(s)), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		seq  int
		all  bool
		want []int
	}{
		{0, false, []int{3}},
		{2, false, []int{2}},
		{0, true, []int{1, 2, 3}},
	} {
		bs, err := SelectBoots(dir, c.seq, c.all)
		if got := seqs(bs); err != nil || len(got) != len(c.want) || got[0] != c.want[0] || got[len(got)-1] != c.want[len(c.want)-1] {
			t.Errorf("SelectBoots(%d, %v) = %v, %v; want %v", c.seq, c.all, got, err, c.want)
		}
	}
	var le *LogError
	if _, err := SelectBoots(dir, 9, false); !errors.As(err, &le) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("boot 9: %v", err)
	}
}
