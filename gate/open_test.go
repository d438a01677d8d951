package gate_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/vfio-gate/vfio-gate/emu"
	"github.com/vfio-gate/vfio-gate/gate"
	"github.com/vfio-gate/vfio-gate/internal/testutil"
	"github.com/vfio-gate/vfio-gate/internal/testutil/gatetest"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/policy"
	"github.com/vfio-gate/vfio-gate/spdm"
)

func TestRecordingTPM(t *testing.T) {
	for _, c := range []struct {
		spec      string
		throwaway bool
		want      string
		err       error
		name      string
	}{
		{"/dev/tpmrm0", false, "/dev/tpmrm0", nil, "/dev/tpmrm0"},
		{"sim:throwaway", false, "sim", nil, "sim (THROWAWAY in-process simulator: records are lost at exit)"},
		{"sim", true, "sim", nil, "sim (THROWAWAY in-process simulator: records are lost at exit)"},
		{"sim", false, "", gate.ErrThrowawayTPM, "sim (refused)"},
	} {
		got, err := gate.RecordingTPM(c.spec, c.throwaway)
		if got != c.want || !errors.Is(err, c.err) || (c.err == nil) != (err == nil) {
			t.Errorf("RecordingTPM(%q, %v) = %q, %v; want %q, %v", c.spec, c.throwaway, got, err, c.want, c.err)
		}
		if n := gate.TPMName(c.spec, c.throwaway); n != c.name {
			t.Errorf("TPMName(%q, %v) = %q, want %q", c.spec, c.throwaway, n, c.name)
		}
	}
}

// TestReadingTPM: a TPM only read may be the simulator, asked for either way.
func TestReadingTPM(t *testing.T) {
	for spec, want := range map[string]string{"sim:throwaway": "sim", "sim": "sim", "/dev/tpmrm0": "/dev/tpmrm0", "tcp:127.0.0.1:2321": "tcp:127.0.0.1:2321"} {
		if got := gate.ReadingTPM(spec); got != want {
			t.Errorf("ReadingTPM(%q) = %q, want %q", spec, got, want)
		}
	}
}

// openSetup is a Setup over a fixture tree (no devices), the fixture policy
// and the simulator (which Open opens: no world here holds it).
func openSetup(t *testing.T) gate.Setup {
	dir := t.TempDir()
	gatetest.NewTree(t, dir)
	good, err := emu.New(emu.Config{Identity: gatetest.WithDSN(nvme, 1), Algorithms: spdm.AsymECDSAP384})
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, "root.pem"), good.AnchorsPEM(), 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "policy.yaml"), []byte(fixturePolicy(policyOpts{})), 0o600))
	w := struct{ dir string }{dir}
	return gate.Setup{Policy: filepath.Join(w.dir, "policy.yaml"), PolicyLoad: &policy.LoadOptions{SkipPermissionCheck: true},
		TPM: gate.SimThrowaway, EventLog: filepath.Join(w.dir, "st", "events"), Evidence: filepath.Join(w.dir, "st", "evidence"),
		SysfsRoot: filepath.Join(w.dir, "sys"), PCI: pci.Options{Geteuid: func() int { return 0 }},
		LockDir: filepath.Join(w.dir, "locks"), StateDir: filepath.Join(w.dir, "st")}
}

func TestOpen(t *testing.T) {
	s := openSetup(t)
	h, err := gate.Open(s)
	if err != nil {
		t.Fatal(err)
	}
	if h.Gate == nil || h.TPM == nil || h.System == nil || h.Policy.Path != s.Policy || h.Recorder.Dir() == "" {
		t.Fatalf("Open: %+v", h)
	}
	if h.Gate.Policy() != h.Policy {
		t.Fatal("the gate runs another policy than the one Open loaded")
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
}

// Each failure of Open is typed, so cmd maps it to its exit code without
// reading its text.
func TestOpenErrors(t *testing.T) {
	for _, c := range []struct {
		name  string
		mod   func(*gate.Setup)
		check func(error) bool
	}{
		{"no policy", func(s *gate.Setup) { s.Policy += ".missing" }, func(err error) bool {
			var pe *policy.Error
			return errors.As(err, &pe) && !errors.Is(err, gate.ErrTPM)
		}},
		{"plain sim", func(s *gate.Setup) { s.TPM = "sim" }, func(err error) bool {
			return errors.Is(err, gate.ErrThrowawayTPM) && !errors.Is(err, gate.ErrTPM)
		}},
		{"no TPM", func(s *gate.Setup) { s.TPM = filepath.Join(t.TempDir(), "tpmrm0") }, func(err error) bool {
			var te *gate.TPMError
			return errors.As(err, &te) && errors.Is(err, gate.ErrTPM)
		}},
		{"no event log", func(s *gate.Setup) { s.EventLog = "" }, func(err error) bool {
			var te *gate.TPMError
			return errors.As(err, &te) && errors.Is(err, gate.ErrTPM)
		}},
		{"no sysfs", func(s *gate.Setup) { s.SysfsRoot += ".missing" }, func(err error) bool {
			return err != nil && !errors.Is(err, gate.ErrTPM) && !errors.Is(err, gate.ErrAuditUnavailable)
		}},
	} {
		s := openSetup(t)
		c.mod(&s)
		h, err := gate.Open(s)
		if h != nil {
			h.Close() // the simulator is one per process
		}
		if h != nil || !c.check(err) {
			t.Errorf("%s: Open = %v, %v (%T)", c.name, h, err, err)
		}
	}
}

// Where the eBPF audit cannot run (no root, BTF or kprobes), Audit fails
// Open with an *AuditError.
func TestOpenAuditUnavailable(t *testing.T) {
	if testutil.Kprobes.Probe() == nil && os.Geteuid() == 0 {
		t.Skip("kprobes and root are here: the audit can attach (proven in test/vm)")
	}
	s := openSetup(t)
	s.Audit = true
	h, err := gate.Open(s)
	if h != nil {
		h.Close()
	}
	var ae *gate.AuditError
	if h != nil || !errors.As(err, &ae) || !errors.Is(err, gate.ErrAuditUnavailable) || errors.Is(err, gate.ErrTPM) {
		t.Fatalf("Open with Audit: %v, %v", h, err)
	}
}
