package testutil

import (
	"errors"
	"testing"
)

func TestRequired(t *testing.T) {
	c := Cap{Name: "bpf"}
	for env, want := range map[string]bool{"": false, "root": false, "root,bpf": true, " bpf ": true, "all": true, "bpfx": false} {
		if got := Required(c, env); got != want {
			t.Errorf("Required(bpf, %q) = %v, want %v", env, got, want)
		}
	}
}

// fakeTB records Skip/Fatal instead of stopping the goroutine of a real test.
type fakeTB struct {
	testing.TB
	skipped, failed bool
}

func (f *fakeTB) Helper()               {}
func (f *fakeTB) Skipf(string, ...any)  { f.skipped = true }
func (f *fakeTB) Fatalf(string, ...any) { f.failed = true }

func TestRequireSkipsOrFails(t *testing.T) {
	missing := Cap{Name: "nope-cap", Probe: func() error { return errors.New("absent") }}
	present := Cap{Name: "yes-cap", Probe: func() error { return nil }}

	t.Setenv(EnvRequire, "")
	f := &fakeTB{}
	Require(f, present, missing)
	if !f.skipped || f.failed {
		t.Fatalf("missing cap, not required: skipped=%v failed=%v", f.skipped, f.failed)
	}

	t.Setenv(EnvRequire, "nope-cap")
	f = &fakeTB{}
	Require(f, missing)
	if !f.failed || f.skipped {
		t.Fatalf("missing cap, required: skipped=%v failed=%v", f.skipped, f.failed)
	}

	f = &fakeTB{}
	Require(f, present)
	if f.failed || f.skipped {
		t.Fatal("present cap skipped or failed")
	}
}
