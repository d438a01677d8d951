package gate_test

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2/transport"

	"github.com/vfio-gate/vfio-gate/emu"
	"github.com/vfio-gate/vfio-gate/gate"
	"github.com/vfio-gate/vfio-gate/internal/testutil/gatetest"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/pci/sysfstest"
	"github.com/vfio-gate/vfio-gate/policy"
	"github.com/vfio-gate/vfio-gate/spdm"
	"github.com/vfio-gate/vfio-gate/tpm"
)

// The attested model of the fixtures (QEMU NVMe IDs) and a plain NIC.
var (
	nvme = gatetest.NVMe
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
	kernel  *gatetest.Kernel

	mu     sync.Mutex
	opened map[pci.BDF]func() error // hook run when a config space is opened
	events []string                 // ordered: "open BDF", "write PATH=VALUE"
}

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
	var sysDir string
	w.tree, sysDir = gatetest.NewTree(t, w.dir)
	var anchors []byte
	good, err := emu.New(emu.Config{Identity: gatetest.WithDSN(nvme, 1), Algorithms: spdm.AsymECDSAP384})
	must(t, err)
	anchors = good.AnchorsPEM()
	for i, d := range devs {
		b := bdf(t, d.bdf)
		id := nvme
		if d.id != nil {
			id = *d.id
		}
		if d.profile != "none" && id.DSN == 0 {
			id = gatetest.WithDSN(id, uint64(i+1))
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
			w.configs[b] = gatetest.MemConfig(f.Config)
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
	w.logPath = filepath.Join(w.dir, "state", "events")
	w.tp, w.rec = gatetest.OpenTPM(t, w.logPath)
	w.kernel = gatetest.NewKernel(t, w.tree, w.dir)
	w.kernel.OnWrite = w.event
	return w
}

func fixturePolicy(po policyOpts) string {
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
%s      min_svn: %d
      forbid_debug_mode: true
%s`, mode, exempt, gatetest.NVMeRule(), svn, po.extra)
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
	return c, gatetest.NopCloser{}, nil
}

func (w *world) event(s string) {
	w.mu.Lock()
	w.events = append(w.events, s)
	w.mu.Unlock()
}

func (w *world) gate(mod ...func(*gate.Options)) *gate.Gate {
	w.t.Helper()
	o := gate.Options{System: w.sys, Policy: w.policy, Recorder: w.rec, LockDir: filepath.Join(w.dir, "locks"),
		StateDir: filepath.Join(w.dir, "state"), Bind: w.kernel.ApplyOptions()}
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
	return gatetest.Events[tpm.VerdictData](w.t, w.logPath, tpm.KindVerdict)
}

var (
	must = gatetest.Must
	bdf  = gatetest.BDF
)
