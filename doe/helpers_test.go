package doe_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/vfio-gate/vfio-gate/doe"
	"github.com/vfio-gate/vfio-gate/internal/testutil/doetest"
)

// echo answers CMA requests with the request reversed and rejects others.
func echo(f doe.Feature, req []byte) ([]byte, error) {
	if f != doe.FeatureCMA {
		return nil, errors.New("unsupported feature")
	}
	out := bytes.Clone(req)
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

func reversed(b []byte) []byte {
	out, _ := echo(doe.FeatureCMA, b)
	return out
}

// pad returns b zero-padded to a whole number of DW.
func pad(b []byte) []byte {
	return append(bytes.Clone(b), make([]byte, (4-len(b)%4)%4)...)
}

// newMailbox returns a model serving CMA with echo and a mailbox on it.
func newMailbox(t testing.TB, opts *doe.Options) (*doe.Model, *doe.Mailbox, *doetest.Config) {
	t.Helper()
	m := doe.NewModel([]doe.Feature{doe.FeatureCMA, doe.FeatureSecuredCMA}, echo)
	cfg := doetest.NewConfig(m)
	mbs, err := doe.Find(cfg, opts)
	if err != nil || len(mbs) != 1 {
		t.Fatalf("Find = %v, %v", mbs, err)
	}
	return m, mbs[0], cfg
}

// mustEcho checks that the mailbox answers a CMA exchange correctly.
func mustEcho(t *testing.T, mb *doe.Mailbox, req []byte) {
	t.Helper()
	rsp, err := mb.Exchange(context.Background(), doe.FeatureCMA, req)
	if err != nil {
		t.Fatalf("Exchange(%d bytes): %v", len(req), err)
	}
	if want := reversed(pad(req)); !bytes.Equal(rsp, want) {
		t.Fatalf("Exchange(%x) = %x, want %x", req, rsp, want)
	}
}
