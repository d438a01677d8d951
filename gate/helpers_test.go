package gate_test

import (
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2/transport"

	"github.com/vfio-gate/vfio-gate/emu"
	"github.com/vfio-gate/vfio-gate/gate"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/pci/sysfstest"
	"github.com/vfio-gate/vfio-gate/policy"
	"github.com/vfio-gate/vfio-gate/spdm"
	"github.com/vfio-gate/vfio-gate/tpm"
	"github.com/vfio-gate/vfio-gate/vfio"
)

// The attested model of the fixtures (QEMU NVMe IDs) and a plain NIC.
var (
	nvme = emu.Identity{Vendor: 0x1b36, Device: 0x0010, Class: 0x010802, Revision: 0x02, SubVendor: 0x1af4, SubDevice: 0x1100}
	nic  = emu.Identity{Vendor: 0x8086, Device: 0x10d3, Class: 0x020000, SubVendor: 0x8086}
)

// dev describes one fixture function.
type dev struct {
	bdf     string
	profile string // emu profile; "none" = no DOE mailbox
	faults  []emu.Fault
	meas    []emu.Measurement
	latency time.Duration
	group   int    // IOMMU group; 0 = one of its own
	driver  string // bound driver ("" = none)
	id      *emu.Identity
	class   uint32 // override (bridges)
}

// world is a fixture sysfs tree with software devices, a policy, the TPM
// simulator and a fake kernel for binding.
type world struct {
	t       testing.TB
	dir     string
	tree    *sysfstest.Tree
	sys     *pci.System
	emus    map[pci.BDF]*emu.Device
	configs map[pci.BDF]pci.ConfigSpace
	policy  *policy.Policy
	tp      transport.TPMCloser
	rec     *tpm.Recorder
	logPath string
	kernel  *kernel

	mu     sync.Mutex
	opened map[pci.BDF]func() error // hook run when a config space is opened
	events []string                 // ordered: "open BDF", "write PATH=VALUE"
}

type memConfig []byte

func (m memConfig) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= int64(len(m)) {
		return 0, io.EOF
	}
	n := copy(p, m[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
func (m memConfig) WriteAt(p []byte, off int64) (int, error) { return len(p), nil }

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

// policyOpts adjust the fixture policy.
type policyOpts struct {
	mode         string
	minSVN       int
	exemptBridge bool
	extra        string // appended to the rule
}

func newWorld(t testing.TB, po policyOpts, devs ...dev) *world {
	t.Helper()
	w := &world{t: t, dir: t.TempDir(), emus: map[pci.BDF]*emu.Device{}, configs: map[pci.BDF]pci.ConfigSpace{},
		opened: map[pci.BDF]func() error{}}
	sysDir := filepath.Join(w.dir, "sys")
	must(t, os.Mkdir(sysDir, 0o755))
	var err error
	w.tree, err = sysfstest.New(sysDir)
	must(t, err)
	must(t, w.tree.Driver("vfio-pci"))
	var anchors []byte
	good, err := emu.New(emu.Config{Identity: withDSN(nvme, 1), Algorithms: spdm.AsymECDSAP384})
	must(t, err)
	anchors = good.AnchorsPEM()
	for i, d := range devs {
		b := bdf(t, d.bdf)
		id := nvme
		if d.id != nil {
			id = *d.id
		}
		if d.profile != "none" && id.DSN == 0 {
			id = withDSN(id, uint64(i+1))
		}
		class := id.Class
		if d.class != 0 {
			class = d.class
		}
		grp := d.group
		if grp == 0 {
			grp = 100 + i
		}
		f := sysfstest.Function{BDF: d.bdf, Vendor: id.Vendor, Device: id.Device, SubVendor: id.SubVendor, SubDev: id.SubDevice,
			Class: class, Revision: id.Revision, IOMMUGroup: grp, Driver: d.driver}
		if d.profile == "none" {
			f.Config = sysfstest.Header(f)
			w.configs[b] = memConfig(f.Config)
		} else {
			e, err := emu.New(emu.Config{BDF: b, Identity: id, Profile: d.profile, Faults: d.faults, Measurements: d.meas,
				Latency: d.latency, Algorithms: spdm.AsymECDSAP384})
			must(t, err)
			w.emus[b] = e
			w.configs[b] = e
			f.Config = e.ConfigSpace().Snapshot()
		}
		must(t, w.tree.Add(f))
	}
	must(t, os.WriteFile(filepath.Join(w.dir, "root.pem"), anchors, 0o600))
	pp := filepath.Join(w.dir, "policy.yaml")
	must(t, os.WriteFile(pp, []byte(fixturePolicy(po)), 0o600))
	w.policy, err = policy.Load(pp, &policy.LoadOptions{SkipPermissionCheck: true})
	must(t, err)
	w.sys, err = pci.Open(sysDir, &pci.Options{ConfigOpener: w.opener, Geteuid: func() int { return 0 }})
	must(t, err)
	t.Cleanup(func() { w.sys.Close() })
	w.tp, err = tpm.Open("sim")
	must(t, err)
	t.Cleanup(func() { w.tp.Close() })
	w.logPath = filepath.Join(w.dir, "state", "events.cel.jsonl")
	w.rec, err = tpm.NewRecorder(w.tp, tpm.RecorderOptions{LogPath: w.logPath})
	must(t, err)
	w.kernel = newKernel(w)
	return w
}

func withDSN(id emu.Identity, n uint64) emu.Identity {
	id.DSN = 0x00c0ffee00000000 | n
	return id
}

func fixturePolicy(po policyOpts) string {
	var ref strings.Builder
	for _, m := range emu.GoodMeasurements() {
		if m.Index > 6 {
			continue
		}
		fmt.Fprintf(&ref, "        %d: [sha256:%x, sha384:%x, sha512:%x]\n", m.Index, sha256.Sum256(m.Value), sha512.Sum384(m.Value), sha512.Sum512(m.Value))
	}
	mode := po.mode
	if mode == "" {
		mode = "enforce"
	}
	svn := po.minSVN
	if svn == 0 {
		svn = 3
	}
	exempt := ""
	if po.exemptBridge {
		exempt = "iommu_group:\n  exempt_classes: [0x0604]\n"
	}
	return fmt.Sprintf(`version: 1
mode: %s
defaults:
  confidential: deny-unattested
  non_confidential: allow-unattested
%srules:
  - name: nvme
    match: {vendor: 0x1b36, device: [0x0010]}
    spdm:
      min_version: "1.2"
      trust_anchors: [root.pem]
      require_cma_san: true
    measurements:
      require_signed: true
      reference:
%s      min_svn: %d
      forbid_debug_mode: true
%s`, mode, exempt, ref.String(), svn, po.extra)
}

func (w *world) opener(b pci.BDF) (pci.ConfigSpace, io.Closer, error) {
	w.mu.Lock()
	w.events = append(w.events, "open "+b.String())
	hook := w.opened[b]
	w.mu.Unlock()
	if hook != nil {
		if err := hook(); err != nil {
			return nil, nil, err
		}
	}
	c, ok := w.configs[b]
	if !ok {
		return nil, nil, fmt.Errorf("%w: %s", pci.ErrNoDevice, b)
	}
	return c, nopCloser{}, nil
}

func (w *world) event(s string) {
	w.mu.Lock()
	w.events = append(w.events, s)
	w.mu.Unlock()
}

func (w *world) gate(mod ...func(*gate.Options)) *gate.Gate {
	w.t.Helper()
	o := gate.Options{System: w.sys, Policy: w.policy, Recorder: w.rec, LockDir: filepath.Join(w.dir, "locks"),
		StateDir: filepath.Join(w.dir, "state"), Bind: w.kernel.applyOptions()}
	o.Attest.Timeout = 5 * time.Second
	for _, m := range mod {
		m(&o)
	}
	g, err := gate.New(o)
	must(w.t, err)
	return g
}

// verifyLog replays the event log against the simulator and returns the
// verdict records' data.
func (w *world) verifyLog() []tpm.VerdictData {
	w.t.Helper()
	res, err := tpm.Verify(w.t.Context(), w.tp, w.logPath, w.rec.PCR())
	if err != nil || !res.OK {
		w.t.Fatalf("log verify: %v %+v", err, res)
	}
	l, err := tpm.ReadLog(w.logPath)
	must(w.t, err)
	var out []tpm.VerdictData
	for _, r := range l.Records {
		if r.Event.Kind == tpm.KindVerdict {
			var v tpm.VerdictData
			must(w.t, jsonUnmarshal(r.Event.Data, &v))
			out = append(out, v)
		}
	}
	return out
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func bdf(t testing.TB, s string) pci.BDF {
	t.Helper()
	b, err := pci.ParseBDF(s)
	must(t, err)
	return b
}

// kernel plays the kernel's side of the sysfs writes vfio makes.
type kernel struct {
	w      *world
	devDir string
	fail   map[string]error // "path=value" -> error
}

func newKernel(w *world) *kernel {
	d := filepath.Join(w.dir, "dev-vfio")
	must(w.t, os.Mkdir(d, 0o755))
	return &kernel{w: w, devDir: d, fail: map[string]error{}}
}

func (k *kernel) applyOptions() vfio.ApplyOptions {
	return vfio.ApplyOptions{DevVFIO: k.devDir, Wait: time.Second, Poll: time.Millisecond, Write: k.write}
}

func (k *kernel) write(name, value string) error {
	k.w.event("write " + name + "=" + strings.TrimSpace(value))
	if err := k.fail[name+"="+value]; err != nil {
		return err
	}
	t := k.w.tree
	parts := strings.Split(name, "/")
	switch {
	case len(parts) == 5 && parts[0] == "bus" && parts[2] == "devices" && parts[4] == "driver_override":
		v := strings.TrimSpace(value)
		if v == "" {
			v = "(null)"
		}
		return t.Attr(parts[3], "driver_override", v+"\n")
	case name == "bus/pci/drivers_probe":
		ov, _ := os.ReadFile(filepath.Join(t.Dir, sysfstest.DevicePath(value), "driver_override"))
		drv := strings.TrimSpace(string(ov))
		if drv == "(null)" || drv == "" {
			return nil
		}
		if err := t.Bind(value, drv); err != nil {
			return err
		}
		if drv == "vfio-pci" {
			g, err := os.Readlink(filepath.Join(t.Dir, sysfstest.DevicePath(value), "iommu_group"))
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(k.devDir, filepath.Base(g)), nil, 0o600)
		}
		return nil
	case len(parts) == 5 && parts[2] == "drivers" && parts[4] == "unbind":
		return t.Unbind(value)
	case len(parts) == 5 && parts[2] == "drivers" && parts[4] == "bind":
		return t.Bind(value, parts[3])
	}
	return fmt.Errorf("kernel: unexpected write %s=%q", name, value)
}

func (k *kernel) driverOf(b string) string {
	l, err := os.Readlink(filepath.Join(k.w.tree.Dir, sysfstest.DevicePath(b), "driver"))
	if err != nil {
		return ""
	}
	return filepath.Base(l)
}

func (k *kernel) override(b string) string {
	v, _ := os.ReadFile(filepath.Join(k.w.tree.Dir, sysfstest.DevicePath(b), "driver_override"))
	return strings.TrimSpace(string(v))
}
