package libvirt_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/daemon"
	"github.com/vfio-gate/vfio-gate/emu"
	"github.com/vfio-gate/vfio-gate/gate"
	lvhook "github.com/vfio-gate/vfio-gate/hooks/libvirt"
	"github.com/vfio-gate/vfio-gate/internal/testutil"
	"github.com/vfio-gate/vfio-gate/internal/testutil/gatetest"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/pci/sysfstest"
	"github.com/vfio-gate/vfio-gate/policy"
	"github.com/vfio-gate/vfio-gate/spdm"
	"github.com/vfio-gate/vfio-gate/tdisp"
)

// domainXML is a domain with one managed='yes' hostdev at 0000:3b:00.0;
// launch is its <launchSecurity> element ("" = not confidential).
func domainXML(name, launch string) string {
	return `<domain type='kvm'><name>` + name + `</name><devices>
  <hostdev mode='subsystem' type='pci' managed='yes'>
    <source><address domain='0x0000' bus='0x3b' slot='0x00' function='0x0'/></source>
  </hostdev></devices>` + launch + `</domain>`
}

// TestHookLocksConfidentialTDI: the hook against the real daemon API and
// backend, whose session owner is a real tdisp.Broker, over a software
// device's DOE mailbox, with a policy rule that requires a locked TDI. For
// a TDX domain: prepare begin locks the TDI in the attested session and
// passes, started begin moves it to RUN, release end unlocks it. A
// non-confidential domain is refused at prepare (tdisp-not-locked), and
// nothing is left locked.
func TestHookLocksConfidentialTDI(t *testing.T) {
	testutil.Require(t, testutil.Root) // the daemon serves root peers only
	dir := t.TempDir()
	tree, sysDir := gatetest.NewTree(t, dir)
	good := gatetest.BDF(t, "0000:3b:00.0")
	dev, err := emu.New(emu.Config{BDF: good, Identity: gatetest.WithDSN(gatetest.NVMe, 1), Algorithms: spdm.AsymECDSAP384})
	gatetest.Must(t, err)
	id := dev.Identity()
	gatetest.Must(t, tree.Add(sysfstest.Function{BDF: good.String(), Vendor: id.Vendor, Device: id.Device, SubVendor: id.SubVendor,
		SubDev: id.SubDevice, Class: id.Class, Revision: id.Revision, IOMMUGroup: 59, Driver: "vfio-pci",
		Config: dev.ConfigSpace().Snapshot()}))
	gatetest.Must(t, os.WriteFile(filepath.Join(dir, "root.pem"), dev.AnchorsPEM(), 0o600))
	pp := filepath.Join(dir, "policy.yaml")
	gatetest.Must(t, os.WriteFile(pp, []byte("version: 1\nmode: enforce\ndefaults:\n  confidential: deny-unattested\n  non_confidential: deny-unattested\nrules:\n"+
		gatetest.NVMeRule()+"    tdisp:\n      require_lock: true\n"), 0o600))
	pol, err := policy.Load(pp, &policy.LoadOptions{SkipPermissionCheck: true})
	gatetest.Must(t, err)
	sys, err := pci.Open(sysDir, &pci.Options{Geteuid: func() int { return 0 },
		ConfigOpener: func(b pci.BDF) (pci.ConfigSpace, io.Closer, error) {
			if b != good {
				return nil, nil, pci.ErrNoDevice
			}
			return dev, gatetest.NopCloser{}, nil
		}})
	gatetest.Must(t, err)
	defer sys.Close()
	stateDir := filepath.Join(dir, "state")
	_, rec := gatetest.OpenTPM(t, filepath.Join(stateDir, "events"))
	lockDir := filepath.Join(dir, "locks")
	j, err := tdisp.OpenJournal(stateDir, nil)
	gatetest.Must(t, err)
	defer j.Close()
	br, err := tdisp.NewBroker(tdisp.BrokerConfig{Journal: j,
		Open: attest.SessionOpener(sys, lockDir, &attest.Options{Roots: pol.Rules[0].Anchors(), Timeout: 5 * time.Second})})
	gatetest.Must(t, err)
	defer br.Close(context.Background())
	g, err := gate.New(gate.Options{System: sys, Policy: pol, Recorder: rec, LockDir: lockDir, StateDir: stateDir,
		Attest: attest.Options{Timeout: 5 * time.Second}})
	gatetest.Must(t, err)
	b, err := daemon.NewBackend(daemon.BackendOptions{Gate: g, Recorder: rec, System: sys, StateDir: stateDir, TDIs: br})
	gatetest.Must(t, err)
	sock := gatetest.ServeDaemon(t, b)
	h := &lvhook.Hook{Client: lvhook.DaemonClient{C: daemon.NewClient(sock)}}
	run := func(xml string, args ...string) (int, string) {
		var errw strings.Builder
		code := h.Run(t.Context(), args, strings.NewReader(xml), &errw)
		return code, errw.String()
	}

	plain := domainXML("plain", "")
	if code, msg := run(plain, "plain", "prepare", "begin", "-"); code != 1 || !strings.Contains(msg, "DENY 0000:3b:00.0 tdisp-not-locked") {
		t.Fatalf("non-confidential prepare: exit %d %q", code, msg)
	}
	if code, _ := run(plain, "plain", "release", "end", "-"); code != 0 || len(br.Held()) != 0 || dev.TDI().State() != tdisp.StateConfigUnlocked {
		t.Fatalf("after the non-confidential domain: exit %d held %+v TDI %v", code, br.Held(), dev.TDI().State())
	}

	cvm := domainXML("cvm", "<launchSecurity type='tdx'/>")
	if code, msg := run(cvm, "cvm", "prepare", "begin", "-"); code != 0 {
		t.Fatalf("confidential prepare: exit %d %q", code, msg)
	}
	if st := dev.TDI().State(); st != tdisp.StateConfigLocked {
		t.Fatalf("TDI after prepare: %v", st)
	}
	if h := br.Held(); len(h) != 1 || h[0].Owner != "cvm" {
		t.Fatalf("held after prepare: %+v", h)
	}
	if code, msg := run(cvm, "cvm", "start", "begin", "-"); code != 0 {
		t.Fatalf("start begin: exit %d %q", code, msg)
	}
	if code, msg := run(cvm, "cvm", "started", "begin", "-"); code != 0 || dev.TDI().State() != tdisp.StateRun {
		t.Fatalf("started: exit %d %q TDI %v", code, msg, dev.TDI().State())
	}
	// Another domain asking for the same function is refused without touching it.
	if code, msg := run(domainXML("cvm2", "<launchSecurity type='sev-snp'/>"), "cvm2", "prepare", "begin", "-"); code != 1 ||
		!strings.Contains(msg, "in-use") || dev.TDI().State() != tdisp.StateRun {
		t.Fatalf("second domain: exit %d %q TDI %v", code, msg, dev.TDI().State())
	}
	if code, msg := run(cvm, "cvm", "release", "end", "-"); code != 0 {
		t.Fatalf("release: exit %d %q", code, msg)
	}
	if st := dev.TDI().State(); st != tdisp.StateConfigUnlocked || len(br.Held()) != 0 {
		t.Fatalf("after release: TDI %v held %+v", st, br.Held())
	}

	// A domain marked confidential in its metadata, without launchSecurity,
	// is locked, run and unlocked the same way; "no" is still refused.
	meta := func(v string) string {
		return `<metadata><vfio-gate:gate xmlns:vfio-gate="` + lvhook.MetadataNamespace + `" confidential="` + v + `"/></metadata>`
	}
	no := strings.Replace(domainXML("marked-no", ""), "<devices>", meta("no")+"<devices>", 1)
	if code, msg := run(no, "marked-no", "prepare", "begin", "-"); code != 1 || !strings.Contains(msg, "DENY 0000:3b:00.0 tdisp-not-locked") {
		t.Fatalf("metadata no: exit %d %q", code, msg)
	}
	marked := strings.Replace(domainXML("marked", ""), "<devices>", meta("yes")+"<devices>", 1)
	for _, p := range []string{"prepare", "start", "started"} {
		if code, msg := run(marked, "marked", p, "begin", "-"); code != 0 {
			t.Fatalf("marked %s: exit %d %q", p, code, msg)
		}
	}
	if h := br.Held(); dev.TDI().State() != tdisp.StateRun || len(h) != 1 || h[0].Owner != "marked" {
		t.Fatalf("marked started: TDI %v held %+v", dev.TDI().State(), h)
	}
	if code, msg := run(marked, "marked", "release", "end", "-"); code != 0 || dev.TDI().State() != tdisp.StateConfigUnlocked || len(br.Held()) != 0 {
		t.Fatalf("marked release: exit %d %q TDI %v held %+v", code, msg, dev.TDI().State(), br.Held())
	}
}
