package doctor

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/daemon"
	lvhook "github.com/vfio-gate/vfio-gate/hooks/libvirt"
	"github.com/vfio-gate/vfio-gate/policy"
	"github.com/vfio-gate/vfio-gate/tpm"
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// host is a ready host as doctor sees it: a sysfs tree, a policy, a state
// dir, an installed hook, a throwaway TPM and fakes for the rest.
func host(t *testing.T) *Host {
	t.Helper()
	d := t.TempDir()
	h := &Host{Sysfs: filepath.Join(d, "sys"), LibvirtDir: filepath.Join(d, "libvirt"), Policy: filepath.Join(d, "policy.yaml"),
		StateDir: filepath.Join(d, "state"), TPM: "sim", TPMName: "sim (THROWAWAY)",
		LibvirtVersion: func(context.Context) string { return "9.0.0" },
		OpenTPM:        tpm.Open,
		DaemonStatus: func(context.Context) (*daemon.Status, error) {
			return &daemon.Status{Ready: true, Policy: "/etc/vfio-gate/policy.yaml", TPM: "/dev/tpmrm0"}, nil
		},
		Geteuid: func() int { return 0 }, BPFProbe: func() error { return nil },
		PolicyLoad: &policy.LoadOptions{SkipPermissionCheck: true}, OwnerUID: uint32(os.Getuid())}
	for _, p := range []string{"class/iommu/dmar0", "kernel/iommu_groups/0", "bus/pci/drivers/vfio-pci", "kernel/security"} {
		must(t, os.MkdirAll(filepath.Join(h.Sysfs, p), 0o755))
	}
	must(t, os.WriteFile(filepath.Join(h.Sysfs, "kernel/security/lockdown"), []byte("[none] integrity confidentiality\n"), 0o644))
	must(t, os.WriteFile(h.Policy, []byte("version: 1\ndefaults: {confidential: deny-unattested, non_confidential: deny-unattested}\n"), 0o600))
	must(t, os.Mkdir(h.StateDir, 0o700))
	bin := filepath.Join(d, "vfio-gate")
	must(t, os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755))
	_, err := lvhook.InstallHook(lvhook.InstallOptions{LibvirtDir: h.LibvirtDir, Binary: bin, DaemonSocket: "/run/vfio-gate/daemon.sock", LibvirtVersion: "9.0.0"})
	must(t, err)
	return h
}

func byName(r *Report) map[string]Check {
	out := map[string]Check{}
	for _, c := range r.Checks {
		out[c.Name] = c
	}
	return out
}

// TestRunReadyHost: every check runs, in order, and a throwaway TPM is a
// warning that does not fail the report.
func TestRunReadyHost(t *testing.T) {
	r := Run(context.Background(), host(t))
	var names []string
	for _, c := range r.Checks {
		names = append(names, c.Name+"="+c.Status)
	}
	want := "iommu=ok vfio-pci=ok lockdown=ok policy=ok tpm=warn state-dir=ok libvirt=ok daemon=ok bpf=ok"
	if !r.OK || r.Schema != Schema || strings.Join(names, " ") != want {
		t.Fatalf("report ok %v: %s, want %s", r.OK, strings.Join(names, " "), want)
	}
	if tp := byName(r)["tpm"]; !strings.Contains(tp.Message, "PCR 13 allocated in") || tp.Fix == "" {
		t.Errorf("tpm: %+v", tp)
	}
}

// TestRunFailures: each broken piece fails or warns on its own line, with
// a fix, and any fail makes the report not OK.
func TestRunFailures(t *testing.T) {
	h := host(t)
	must(t, os.RemoveAll(filepath.Join(h.Sysfs, "kernel/iommu_groups")))
	must(t, os.WriteFile(filepath.Join(h.Sysfs, "kernel/security/lockdown"), []byte("none integrity [confidentiality]\n"), 0o644))
	must(t, os.Chmod(h.StateDir, 0o777))
	h.TPM, h.TPMErr = "", errors.New("--tpm sim refused")
	h.DaemonStatus = func(context.Context) (*daemon.Status, error) { return nil, daemon.ErrNotRunning }
	h.Geteuid = func() int { return 1000 }
	r := Run(context.Background(), h)
	by := byName(r)
	want := map[string]string{"iommu": Fail, "lockdown": Warn, "tpm": Fail, "state-dir": Fail, "daemon": Warn, "bpf": Warn}
	for n, s := range want {
		if by[n].Status != s || by[n].Fix == "" {
			t.Errorf("%s: %+v, want %s with a fix", n, by[n], s)
		}
	}
	if r.OK || !strings.Contains(by["lockdown"].Message, "confidentiality") || !strings.Contains(by["tpm"].Message, "refused") {
		t.Errorf("report: %+v", r)
	}
}

// TestDaemonTimeoutAndEUID: a daemon that does not answer is given up on
// after DaemonTimeout; without Geteuid the process's own euid decides
// whether BPF is probed.
func TestDaemonTimeoutAndEUID(t *testing.T) {
	h := host(t)
	h.DaemonTimeout = 50 * time.Millisecond
	h.DaemonStatus = func(ctx context.Context) (*daemon.Status, error) { <-ctx.Done(); return nil, ctx.Err() }
	probed := false
	h.Geteuid, h.BPFProbe = nil, func() error { probed = true; return nil }
	start := time.Now()
	by := byName(Run(context.Background(), h))
	if d := by["daemon"]; d.Status != Warn || !strings.Contains(d.Message, "deadline exceeded") || time.Since(start) > 4*time.Second {
		t.Errorf("daemon: %+v after %v", d, time.Since(start))
	}
	if root := os.Geteuid() == 0; probed != root || (by["bpf"].Status == OK) != root {
		t.Errorf("euid %d: probed %v, bpf %+v", os.Geteuid(), probed, by["bpf"])
	}
}
