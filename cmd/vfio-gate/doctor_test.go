package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vfio-gate/vfio-gate/daemon"
	lvhook "github.com/vfio-gate/vfio-gate/hooks/libvirt"
	"github.com/vfio-gate/vfio-gate/internal/doctor"
	"github.com/vfio-gate/vfio-gate/policy"
)

// doctorFixture is a host as doctor sees it: a sysfs tree, a policy, a
// state dir, a libvirt dir, and fakes for libvirt's version, the daemon
// and the BPF probe.
type doctorFixture struct {
	dir, sys, libvirt, policy, state, bin string
	version                               string
	status                                *daemon.Status
	bpfErr                                error
}

func newDoctorFixture(t *testing.T) *doctorFixture {
	t.Helper()
	d := t.TempDir()
	f := &doctorFixture{dir: d, sys: filepath.Join(d, "sys"), libvirt: filepath.Join(d, "libvirt"), policy: filepath.Join(d, "policy.yaml"),
		state: filepath.Join(d, "state"), bin: filepath.Join(d, "vfio-gate"), version: "9.0.0",
		status: &daemon.Status{Ready: true, Policy: "/etc/vfio-gate/policy.yaml", TPM: "/dev/tpmrm0"}}
	for _, p := range []string{"class/iommu/dmar0", "kernel/iommu_groups/0", "kernel/iommu_groups/1", "bus/pci/drivers/vfio-pci", "kernel/security"} {
		must(t, os.MkdirAll(filepath.Join(f.sys, p), 0o755))
	}
	must(t, os.WriteFile(filepath.Join(f.sys, "kernel/security/lockdown"), []byte("[none] integrity confidentiality\n"), 0o644))
	must(t, os.WriteFile(f.policy, []byte("version: 1\ndefaults: {confidential: deny-unattested, non_confidential: deny-unattested}\n"), 0o600))
	must(t, os.Mkdir(f.state, 0o700))
	must(t, os.WriteFile(filepath.Join(d, "vfio-gate.yaml"), []byte("version: 1\n"), 0o644)) // not the host's /etc one
	must(t, os.WriteFile(f.bin, []byte("#!/bin/sh\n"), 0o755))
	_, err := lvhook.InstallHook(lvhook.InstallOptions{LibvirtDir: f.libvirt, Binary: f.bin, DaemonSocket: "/run/vfio-gate/daemon.sock", LibvirtVersion: f.version})
	must(t, err)
	return f
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// run runs `vfio-gate --json doctor` on the fixture; it returns the exit
// code and the checks by name.
func (f *doctorFixture) run(t *testing.T) (int, *doctor.Report, map[string]doctor.Check) {
	t.Helper()
	e := &env{in: strings.NewReader(""), getenv: func(string) string { return "" }, policyLoad: &policy.LoadOptions{SkipPermissionCheck: true},
		geteuid: func() int { return 0 },
		doctor: func(h *doctor.Host) {
			h.LibvirtDir = f.libvirt
			h.LibvirtVersion = func(context.Context) string { return f.version }
			h.DaemonStatus = func(context.Context) (*daemon.Status, error) {
				if f.status == nil {
					return nil, daemon.ErrNotRunning
				}
				return f.status, nil
			}
			h.BPFProbe = func() error { return f.bpfErr }
			h.OwnerUID = uint32(os.Getuid())
		}}
	code, out, errs := runEnv(t, e, "--json", "doctor", "--sysfs-root", f.sys, "--policy", f.policy, "--state-dir", f.state,
		"--tpm", "sim:throwaway", "--config", filepath.Join(f.dir, "vfio-gate.yaml"))
	if errs != "" && !strings.Contains(errs, "config") {
		t.Logf("stderr: %s", errs)
	}
	var rep doctor.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("doctor --json: %v\n%s\n%s", err, out, errs)
	}
	by := map[string]doctor.Check{}
	for _, c := range rep.Checks {
		by[c.Name] = c
	}
	return code, &rep, by
}

func statuses(by map[string]doctor.Check) map[string]string {
	out := map[string]string{}
	for n, c := range by {
		out[n] = c.Status
	}
	return out
}

// TestDoctorHealthyHost: a ready host passes (exit 0) with ok lines, and
// warnings (a throwaway TPM, BPF not loading) do not fail it.
func TestDoctorHealthyHost(t *testing.T) {
	f := newDoctorFixture(t)
	f.bpfErr = errors.New("no BTF")
	code, rep, by := f.run(t)
	want := map[string]string{"iommu": "ok", "vfio-pci": "ok", "lockdown": "ok", "policy": "ok", "tpm": "warn",
		"state-dir": "ok", "libvirt": "ok", "daemon": "ok", "bpf": "warn"}
	got := statuses(by)
	for n, s := range want {
		if got[n] != s {
			t.Errorf("%s: %s (%s), want %s", n, got[n], by[n].Message, s)
		}
	}
	if code != 0 || !rep.OK || rep.Schema != "vfio-gate/doctor/v1" || len(rep.Checks) != len(want) {
		t.Fatalf("exit %d, report %+v", code, rep)
	}
	if !strings.Contains(by["tpm"].Message, "PCR 13 allocated in sha1, sha256, sha384") || by["tpm"].Fix == "" {
		t.Errorf("tpm line: %+v", by["tpm"])
	}
	if !strings.Contains(by["iommu"].Message, "1 unit(s), 2 group(s)") {
		t.Errorf("iommu line: %+v", by["iommu"])
	}
}

// TestDoctorFindsProblems: each broken piece is its own fail/warn line
// saying what to do, and any fail makes the exit non-zero.
func TestDoctorFindsProblems(t *testing.T) {
	f := newDoctorFixture(t)
	must(t, os.RemoveAll(filepath.Join(f.sys, "kernel/iommu_groups")))
	must(t, os.RemoveAll(filepath.Join(f.sys, "bus/pci/drivers/vfio-pci")))
	must(t, os.WriteFile(filepath.Join(f.sys, "kernel/security/lockdown"), []byte("none [integrity] confidentiality\n"), 0o644))
	must(t, os.WriteFile(f.policy, []byte("version: 1\nbogus: 1\n"), 0o600))
	must(t, os.Chmod(f.state, 0o777))
	// a foreign hooks/qemu on libvirt 6.0: it alone runs, the drop-in never does
	must(t, os.WriteFile(filepath.Join(f.libvirt, "hooks/qemu"), []byte("#!/bin/sh\nexit 0\n"), 0o755))
	f.version = "6.0.0"
	f.status = &daemon.Status{Ready: true, TPM: "sim (THROWAWAY in-process simulator: records are lost at exit)"}
	code, rep, by := f.run(t)
	want := map[string]string{"iommu": "fail", "vfio-pci": "warn", "lockdown": "warn", "policy": "fail", "tpm": "warn",
		"state-dir": "fail", "libvirt": "fail", "daemon": "fail", "bpf": "ok"}
	got := statuses(by)
	for n, s := range want {
		if got[n] != s {
			t.Errorf("%s: %s (%s), want %s", n, got[n], by[n].Message, s)
		}
		if s != "ok" && by[n].Fix == "" {
			t.Errorf("%s: %s without a fix", n, s)
		}
	}
	if code != exitInternal || rep.OK {
		t.Fatalf("exit %d ok %v", code, rep.OK)
	}
	if !strings.Contains(by["libvirt"].Message, "shadowed") || !strings.Contains(by["lockdown"].Message, "integrity") ||
		!strings.Contains(by["policy"].Message, "bogus") {
		t.Errorf("messages: %+v", rep.Checks)
	}

	// daemon absent or starting; hook not installed; its binary gone
	f = newDoctorFixture(t)
	f.status = nil
	_, _, by = f.run(t)
	if by["daemon"].Status != "warn" || !strings.Contains(by["daemon"].Message, "not running") {
		t.Errorf("daemon down: %+v", by["daemon"])
	}
	f.status = &daemon.Status{Ready: false, Phase: "recovering the TDISP journal"}
	must(t, os.Remove(f.bin))
	_, _, by = f.run(t)
	if by["daemon"].Status != "warn" || !strings.Contains(by["daemon"].Message, "recovering") {
		t.Errorf("daemon starting: %+v", by["daemon"])
	}
	if by["libvirt"].Status != "fail" || !strings.Contains(by["libvirt"].Message, "does not exist") {
		t.Errorf("hook binary gone: %+v", by["libvirt"])
	}
	_, err := lvhook.UninstallHook(f.libvirt)
	must(t, err)
	_, _, by = f.run(t)
	if by["libvirt"].Status != "warn" || !strings.Contains(by["libvirt"].Fix, "install-hook") {
		t.Errorf("hook missing: %+v", by["libvirt"])
	}
}

// TestDoctorHumanOutput: one line per check, the fix under it.
func TestDoctorHumanOutput(t *testing.T) {
	f := newDoctorFixture(t)
	f.status = nil
	e := &env{in: strings.NewReader(""), getenv: func(string) string { return "" }, policyLoad: &policy.LoadOptions{SkipPermissionCheck: true},
		geteuid: func() int { return 1000 },
		doctor: func(h *doctor.Host) {
			h.LibvirtDir, h.OwnerUID = f.libvirt, uint32(os.Getuid())
			h.LibvirtVersion = func(context.Context) string { return f.version }
			h.DaemonStatus = func(context.Context) (*daemon.Status, error) { return nil, daemon.ErrNotRunning }
		}}
	code, out, _ := runEnv(t, e, "doctor", "--sysfs-root", f.sys, "--policy", f.policy, "--state-dir", f.state, "--tpm", "sim:throwaway",
		"--config", filepath.Join(f.dir, "vfio-gate.yaml"))
	if code != 0 || !strings.Contains(out, "ok    iommu") || !strings.Contains(out, "warn  daemon") ||
		!strings.Contains(out, "-> systemctl enable --now vfio-gate") || !strings.Contains(out, "warn  bpf        not checked: needs root") {
		t.Fatalf("exit %d\n%s", code, out)
	}
}
