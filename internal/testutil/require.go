package testutil

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// EnvRequire names the environment variable that turns skips into failures:
// VFIOGATE_TEST_REQUIRE=root,bpf,swtpm,vm,libvirt (or "all").
const EnvRequire = "VFIOGATE_TEST_REQUIRE"

// Cap is a prerequisite a test may need.
type Cap struct {
	Name  string
	Hint  string
	Probe func() error
}

func (c Cap) String() string { return c.Name }

// Root: running as uid 0 (writes to sysfs, flock under /run, swtpm sockets).
var Root = Cap{Name: "root", Hint: "run the tests as root (CI does: bash .ci/run)", Probe: func() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("euid is %d", os.Geteuid())
	}
	return nil
}}

// Swtpm: the swtpm binary is installed.
var Swtpm = Cap{Name: "swtpm", Hint: "install it: bash scripts/install-deps (apt-get install swtpm swtpm-tools)", Probe: func() error {
	return lookPath("swtpm")
}}

// Libvirt: libvirtd and virsh are installed.
var Libvirt = Cap{Name: "libvirt", Hint: "install it: bash scripts/install-deps (apt-get install libvirt-daemon-system)", Probe: func() error {
	return errors.Join(lookPath("libvirtd"), lookPath("virsh"))
}}

// HostVFIO: this host passes PCI devices through as libvirt requires before
// it runs a domain's hooks with a <hostdev> (virHostdevHostSupportsPassthroughVFIO:
// IOMMU groups, or VFIO's no-IOMMU mode, and /dev/vfio/vfio). Not in CI's
// default list: a host kernel without VFIO cannot provide it, and the same
// flows run against a real libvirtd inside test/vm's guest (libvirt-*
// scenarios), which has an IOMMU.
var HostVFIO = Cap{Name: "hostvfio", Hint: "a host kernel with an IOMMU (or vfio enable_unsafe_noiommu_mode) and vfio loaded; test/vm's libvirt-* scenarios cover this in the guest", Probe: hostVFIO}

func hostVFIO() error {
	groups, err := os.ReadDir("/sys/kernel/iommu_groups")
	noiommu, _ := os.ReadFile("/sys/module/vfio/parameters/enable_unsafe_noiommu_mode")
	if (err != nil || len(groups) == 0) && strings.TrimSpace(string(noiommu)) != "Y" {
		return errors.New("no IOMMU groups in /sys/kernel/iommu_groups and VFIO no-IOMMU mode is off: libvirt refuses <hostdev> before any hook runs")
	}
	if _, err := os.Stat("/dev/vfio/vfio"); err != nil {
		return fmt.Errorf("libvirt needs /dev/vfio/vfio: %w", err)
	}
	return nil
}

// VM: QEMU is installed for the test/vm guest.
var VM = Cap{Name: "vm", Hint: "install it: bash scripts/install-deps (apt-get install qemu-system-x86)", Probe: func() error {
	return lookPath("qemu-system-x86_64")
}}

// BPF: root on a kernel with BTF (loading, not attaching; attach points are
// proven in test/vm).
var BPF = Cap{Name: "bpf", Hint: "run as root on a kernel with /sys/kernel/btf/vmlinux", Probe: func() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("euid is %d, loading BPF needs CAP_BPF", os.Geteuid())
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		return fmt.Errorf("no kernel BTF: %w", err)
	}
	return nil
}}

func lookPath(name string) error {
	if _, err := exec.LookPath(name); err != nil {
		return fmt.Errorf("%s not found in PATH", name)
	}
	return nil
}

// Required reports whether VFIOGATE_TEST_REQUIRE lists c (or "all").
func Required(c Cap, env string) bool {
	for _, f := range strings.Split(env, ",") {
		f = strings.TrimSpace(f)
		if f == c.Name || f == "all" {
			return true
		}
	}
	return false
}

// Require skips the test when a capability is missing, naming what is missing
// and how to get it, or fails it when VFIOGATE_TEST_REQUIRE lists the capability.
func Require(t testing.TB, caps ...Cap) {
	t.Helper()
	env := os.Getenv(EnvRequire)
	for _, c := range caps {
		err := c.Probe()
		if err == nil {
			continue
		}
		if Required(c, env) {
			t.Fatalf("%s required by %s=%s: %v (hint: %s)", c, EnvRequire, env, err, c.Hint)
			return
		}
		t.Skipf("needs %s: %v (hint: %s)", c, err, c.Hint)
		return
	}
}

// Kprobes: the kernel supports kprobes (needed to attach the audit probes;
// the CI host has none, the test/vm guest has them).
var Kprobes = Cap{Name: "kprobes", Hint: "run on a kernel with CONFIG_KPROBES (the test/vm guest: test/vm/run)", Probe: func() error {
	for _, p := range []string{"/sys/bus/event_source/devices/kprobe/type", "/sys/kernel/tracing/kprobe_events", "/sys/kernel/debug/tracing/kprobe_events", "/proc/sys/debug/kprobes-optimization"} {
		if _, err := os.Stat(p); err == nil {
			return nil
		}
	}
	return fmt.Errorf("no kprobe PMU, no kprobe_events in tracefs, no /proc/sys/debug/kprobes-optimization")
}}
