package daemon_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vfio-gate/vfio-gate/daemon"
	"github.com/vfio-gate/vfio-gate/gate"
	"github.com/vfio-gate/vfio-gate/internal/statedir"
	"github.com/vfio-gate/vfio-gate/internal/testutil"
	"github.com/vfio-gate/vfio-gate/pci"
)

// newBackendErr is w.backend() returning the error instead of failing.
func (w *world) newBackendErr() (*daemon.GateBackend, error) {
	g, err := gate.New(gate.Options{System: w.sys, Policy: w.pol, Recorder: w.rec, LockDir: filepath.Join(w.dir, "locks")})
	must(w.t, err)
	return daemon.NewBackend(daemon.BackendOptions{Gate: g, Recorder: w.rec, System: w.sys, StateDir: w.stateDir})
}

// TestBackendRefusesUnsafeStateDir: a state directory others may write to
// (or own) is refused at start, with what to do.
func TestBackendRefusesUnsafeStateDir(t *testing.T) {
	w := newWorld(t)
	must(t, os.MkdirAll(w.stateDir, 0o700))
	must(t, os.Chmod(w.stateDir, 0o777))
	if _, err := w.newBackendErr(); !errors.Is(err, statedir.ErrUnsafe) || !strings.Contains(err.Error(), "writable by group or others") {
		t.Fatalf("world-writable state dir: %v", err)
	}
	if _, err := gate.New(gate.Options{System: w.sys, Policy: w.pol, Recorder: w.rec, StateDir: w.stateDir}); !errors.Is(err, statedir.ErrUnsafe) {
		t.Fatalf("gate over a world-writable state dir: %v", err)
	}
	must(t, os.Chmod(w.stateDir, 0o700))
	t.Run("owner", func(t *testing.T) {
		testutil.Require(t, testutil.Root) // chown to another uid
		must(t, os.Chown(w.stateDir, 65534, 65534))
		if _, err := w.newBackendErr(); !errors.Is(err, statedir.ErrUnsafe) || !strings.Contains(err.Error(), "owned by uid 65534") {
			t.Fatalf("state dir of another user: %v", err)
		}
	})
}

// TestStateWritesDoNotFollowSymlinks: a symlink planted where the daemon
// and the gate write their temporary files is not followed.
func TestStateWritesDoNotFollowSymlinks(t *testing.T) {
	w := newWorld(t)
	b := w.backend()
	victim := filepath.Join(w.dir, "victim")
	must(t, os.WriteFile(victim, []byte("precious"), 0o600))
	must(t, os.MkdirAll(filepath.Join(w.stateDir, "bound"), 0o700))
	for _, name := range []string{daemon.StateFileName + ".tmp", "bound/" + goodBDF + ".json.tmp"} {
		must(t, os.Symlink(victim, filepath.Join(w.stateDir, name)))
	}
	r, err := b.Bind(t.Context(), daemon.CheckRequest{Domain: "vm1", BDFs: []pci.BDF{bdf(t, goodBDF)}})
	must(t, err)
	if r.Decision != "allow" {
		t.Fatalf("bind: %+v", r)
	}
	if got, _ := os.ReadFile(victim); string(got) != "precious" {
		t.Fatalf("the symlink target was written: %q", got)
	}
	// The state is where it belongs and reads back.
	if got := w.backend().Held("vm1"); len(got) != 1 || got[0].String() != goodBDF {
		t.Fatalf("after restart: held %v", got)
	}
	if _, err := os.Stat(filepath.Join(w.stateDir, "bound", goodBDF+".json")); err != nil {
		t.Fatal(err)
	}
}

// TestBackendInconsistentStateRefused: a state file that parses but holds
// null or mis-filed records is refused at start (it used to panic
// /v1/status and /v1/release, or let another domain take a held function).
func TestBackendInconsistentStateRefused(t *testing.T) {
	dev := func(b string) string {
		return `{"bdf":"` + b + `","vendor_id":1,"device_id":2,"bound":false,"since":"2026-01-01T00:00:00Z"}`
	}
	for name, domains := range map[string]string{
		"null device":          `{"vm1":{"confidential":false,"devices":{"` + goodBDF + `":null},"checked":"2026-01-01T00:00:00Z"}}`,
		"null deferred":        `{"vm1":{"confidential":false,"devices":{},"deferred":{"` + goodBDF + `":null},"checked":"2026-01-01T00:00:00Z"}}`,
		"misfiled device":      `{"vm1":{"confidential":false,"devices":{"0000:ff:00.0":` + dev(goodBDF) + `},"checked":"2026-01-01T00:00:00Z"}}`,
		"key not a BDF":        `{"vm1":{"confidential":false,"devices":{"x":` + dev(goodBDF) + `},"checked":"2026-01-01T00:00:00Z"}}`,
		"held by two domains":  `{"vm1":{"confidential":false,"devices":{"` + goodBDF + `":` + dev(goodBDF) + `},"checked":"2026-01-01T00:00:00Z"},"vm2":{"confidential":false,"devices":{"` + goodBDF + `":` + dev(goodBDF) + `},"checked":"2026-01-01T00:00:00Z"}}`,
		"null domain":          `{"vm1":null}`,
		"domain name with a /": `{"a/b":{"confidential":false,"devices":{},"checked":"2026-01-01T00:00:00Z"}}`,
		"empty domain name":    `{"":{"confidential":false,"devices":{},"checked":"2026-01-01T00:00:00Z"}}`,
	} {
		t.Run(name, func(t *testing.T) {
			w := newWorld(t)
			must(t, os.MkdirAll(w.stateDir, 0o700))
			doc := `{"version":1,"domains":` + domains + `,"released":[]}`
			if !json.Valid([]byte(doc)) {
				t.Fatalf("test document is not JSON: %s", doc)
			}
			must(t, os.WriteFile(filepath.Join(w.stateDir, daemon.StateFileName), []byte(doc), 0o600))
			b, err := w.newBackendErr()
			if err == nil || !strings.Contains(err.Error(), "inconsistent") || !strings.Contains(err.Error(), "fix the file or move it away") {
				if b != nil {
					_, _ = b.Status(t.Context()) // the old panic
				}
				t.Fatalf("NewBackend: %v, want an inconsistent-state refusal", err)
			}
		})
	}
}

// TestBackendDomainNameBounds: a domain name libvirt would refuse is refused
// at the API, before any check or record; the longest accepted one can be
// released (its release event fits the log).
func TestBackendDomainNameBounds(t *testing.T) {
	w := newWorld(t)
	b := w.backend()
	ctx := t.Context()
	var ae *daemon.APIError
	for _, name := range []string{strings.Repeat("a", 1_000_000), strings.Repeat("a", daemon.MaxDomainName+1), "a/b", "a\nb", "a\x00b", "\xff\xfe"} {
		if _, err := b.Check(ctx, daemon.CheckRequest{Domain: name, BDFs: []pci.BDF{bdf(t, goodBDF)}}); !errors.As(err, &ae) || ae.Status != 400 {
			t.Errorf("check for a %d-byte name: %v, want 400", len(name), err)
		}
		if err := b.Release(ctx, daemon.DomainRequest{Domain: name}); !errors.As(err, &ae) || ae.Status != 400 {
			t.Errorf("release for a %d-byte name: %v, want 400", len(name), err)
		}
	}
	if _, err := b.Check(ctx, daemon.CheckRequest{Domain: "vm", LaunchSecurity: strings.Repeat("x", 100000), BDFs: []pci.BDF{bdf(t, goodBDF)}}); !errors.As(err, &ae) || ae.Status != 400 {
		t.Errorf("huge launch_security: %v", err)
	}
	if len(b.Domains()) != 0 {
		t.Fatalf("refused names are held: %v", b.Domains())
	}
	long := strings.Repeat("é", daemon.MaxDomainName/2) // 254 bytes of UTF-8
	r, err := b.Check(ctx, daemon.CheckRequest{Domain: long, BDFs: []pci.BDF{bdf(t, goodBDF)}})
	must(t, err)
	if r.Decision != "allow" {
		t.Fatalf("check: %+v", r)
	}
	must(t, b.Release(ctx, daemon.DomainRequest{Domain: long}))
	if rel := w.releaseEvents(); len(rel) != 1 || rel[0].Domain != long {
		t.Fatalf("release events %+v", rel)
	}
}
