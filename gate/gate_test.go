package gate_test

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/doe"
	"github.com/vfio-gate/vfio-gate/doe/socket"
	"github.com/vfio-gate/vfio-gate/emu"
	"github.com/vfio-gate/vfio-gate/gate"
	"github.com/vfio-gate/vfio-gate/internal/testutil/gatetest"
	"github.com/vfio-gate/vfio-gate/internal/testutil/schematest"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/policy"
	"github.com/vfio-gate/vfio-gate/spdm"
	"github.com/vfio-gate/vfio-gate/tpm"
	"github.com/vfio-gate/vfio-gate/vfio"
)

func codes(d gate.Decision) []string {
	var out []string
	for _, r := range d.Verdict.Reasons {
		out = append(out, string(r.Code))
	}
	return out
}

func check(t *testing.T, g *gate.Gate, confidential bool, bdfs ...pci.BDF) []gate.Decision {
	t.Helper()
	ds, err := g.Check(t.Context(), gate.Request{BDFs: bdfs, Confidential: confidential})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != len(bdfs) {
		t.Fatalf("%d decisions for %d functions", len(ds), len(bdfs))
	}
	return ds
}

// Every decision is in the log, allow and deny alike, with its reasons and
// evidence digest, and the log replays to the PCR.
func assertRecorded(t *testing.T, w *world, ds []gate.Decision) {
	t.Helper()
	vs := w.verifyLog()
	for _, d := range ds {
		found := false
		for i := len(vs) - 1; i >= 0 && !found; i-- {
			v := vs[i]
			if v.BDF != d.BDF.String() {
				continue
			}
			found = true
			if (v.Verdict == "allow") != d.Verdict.Allow || !slices.Equal(v.Reasons, codesOrEmpty(d)) ||
				hex.EncodeToString(v.EvidenceDigest) != hex.EncodeToString(d.EvidenceDigest) {
				t.Errorf("%s: logged %+v, decided %s %v", d.BDF, v, d.Verdict.Decision, codes(d))
			}
		}
		if !found || !d.Recorded {
			t.Errorf("%s: decision not in the TPM log (recorded=%v)", d.BDF, d.Recorded)
		}
	}
}

func codesOrEmpty(d gate.Decision) []string {
	c := codes(d)
	if c == nil {
		return []string{}
	}
	return c
}

func TestCheckAllowGoodDevice(t *testing.T) {
	w := newWorld(t, policyOpts{}, dev{bdf: "0000:01:00.0", profile: "good"})
	ds := check(t, w.gate(), true, bdf(t, "0000:01:00.0"))
	d := ds[0]
	if !d.Allowed() || d.Verdict.Decision != policy.DecisionAllow || len(d.Verdict.Reasons) != 0 || d.Err != nil {
		t.Fatalf("good device: %s %v err %v\nfailure %+v", d.Verdict.Decision, d.Verdict.Reasons, d.Err, d.Evidence.Failure)
	}
	if d.Verdict.Rule != "nvme" || d.Evidence == nil || !d.Evidence.HasCMA || d.Identity.DSN == nil || len(d.EvidenceDigest) != 32 {
		t.Fatalf("decision %+v", d)
	}
	assertRecorded(t, w, ds)
}

// Each deny reason is reachable through the whole pipeline, and recorded.
func TestCheckDenyReasons(t *testing.T) {
	lowSVN := emu.GoodMeasurements()
	debug := emu.GoodMeasurements()
	for i := range lowSVN {
		if lowSVN[i].Index == 6 {
			lowSVN[i].Value = emu.SVN(2)
		}
		if debug[i].Type == emu.MeasDeviceMode {
			debug[i].Value = emu.DeviceMode(0x3f, 1<<2, 0x1f, 1<<1) // invasive debug active
		}
	}
	cases := []struct {
		name  string
		d     dev
		setup func(w *world)
		want  policy.Code
		conf  bool
	}{
		{name: "no-cma", d: dev{profile: "none", id: &nic}, want: policy.CodeNoCMA, conf: true},
		{name: "chain-untrusted", d: dev{profile: "wrong-root"}, want: policy.CodeChainUntrusted},
		{name: "measurement-mismatch", d: dev{profile: "tampered"}, want: policy.CodeMeasurementMismatch},
		{name: "svn-too-low", d: dev{profile: "good", meas: lowSVN}, want: policy.CodeSVNTooLow},
		{name: "debug-mode", d: dev{profile: "good", meas: debug}, want: policy.CodeDebugMode},
		{name: "signature-invalid", d: dev{profile: "bad-signature"}, want: policy.CodeSignatureInvalid},
		{name: "timeout", d: dev{profile: "good"}, want: policy.CodeTimeout, setup: func(w *world) {
			w.emus[bdf(t, "0000:01:00.0")].Model().SetFault(doe.Fault{NeverReady: true})
		}},
		{name: "mailbox-busy", d: dev{profile: "good"}, want: policy.CodeMailboxBusy, setup: func(w *world) {
			w.emus[bdf(t, "0000:01:00.0")].Model().SetFault(doe.Fault{StuckBusy: true})
		}},
		{name: "lockdown", d: dev{profile: "good"}, want: policy.CodeLockdown, setup: func(w *world) {
			must(t, w.tree.Lockdown("integrity"))
		}},
		{name: "device-removed", d: dev{profile: "good"}, want: policy.CodeDeviceRemoved, setup: func(w *world) {
			b := bdf(t, "0000:01:00.0")
			w.opened[b] = func() error {
				must(t, w.tree.Remove(b.String()))
				return pci.ErrDeviceRemoved
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.d.bdf = "0000:01:00.0"
			w := newWorld(t, policyOpts{}, c.d)
			if c.setup != nil {
				c.setup(w)
			}
			g := w.gate(func(o *gate.Options) {
				o.Attest.Timeout = 2 * time.Second
				o.Attest.DOE = &doe.Options{Timeout: 200 * time.Millisecond}
			})
			ds := check(t, g, c.conf, bdf(t, "0000:01:00.0"))
			d := ds[0]
			if d.Allowed() || d.Verdict.Decision != policy.DecisionDeny || !slices.Contains(codes(d), string(c.want)) {
				f := any(nil)
				if d.Evidence != nil {
					f = d.Evidence.Failure
				}
				t.Fatalf("got %s %v, want deny %s (failure %+v)", d.Verdict.Decision, codes(d), c.want, f)
			}
			for _, r := range d.Verdict.Reasons {
				if r.Message == "" || !strings.HasSuffix(r.Message, ".") {
					t.Errorf("reason %q has no sentence", r.Code)
				}
			}
			assertRecorded(t, w, ds)
		})
	}
}

func TestCheckNoSuchDevice(t *testing.T) {
	w := newWorld(t, policyOpts{}, dev{bdf: "0000:01:00.0", profile: "good"})
	ds := check(t, w.gate(), false, bdf(t, "0000:09:00.0"), bdf(t, "0000:01:00.0"))
	if ds[0].BDF != bdf(t, "0000:01:00.0") || !ds[0].Allowed() {
		t.Fatalf("first %s %v", ds[0].BDF, codes(ds[0]))
	}
	if ds[1].Allowed() || !slices.Equal(codes(ds[1]), []string{string(gate.CodeNoDevice)}) || ds[1].Evidence != nil {
		t.Fatalf("missing device: %s %v", ds[1].Verdict.Decision, codes(ds[1]))
	}
	assertRecorded(t, w, ds)
	// No lock file is left for the function that does not exist.
	if _, err := os.Stat(filepath.Join(w.dir, "locks", "0000:09:00.0.lock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock file of a missing function: %v", err)
	}
}

// Audit mode records and reports, never blocks.
func TestAuditModeNeverBlocks(t *testing.T) {
	w := newWorld(t, policyOpts{mode: "audit"}, dev{bdf: "0000:01:00.0", profile: "tampered"})
	ds, err := w.gate().Bind(t.Context(), gate.Request{BDFs: []pci.BDF{bdf(t, "0000:01:00.0")}})
	if err != nil {
		t.Fatal(err)
	}
	d := ds[0]
	if !d.Allowed() || !d.Verdict.WouldDeny || !slices.Contains(codes(d), string(policy.CodeMeasurementMismatch)) || !d.Bound {
		t.Fatalf("audit: %s would_deny=%v %v bound=%v err=%v", d.Verdict.Decision, d.Verdict.WouldDeny, codes(d), d.Bound, d.Err)
	}
	assertRecorded(t, w, ds)
}

// A TPM that fails denies, with reason tpm, even in audit mode.
func TestTPMFailureFailsClosed(t *testing.T) {
	w := newWorld(t, policyOpts{mode: "audit"}, dev{bdf: "0000:01:00.0", profile: "good"})
	g := w.gate()
	w.tp.Close()
	ds, err := g.Bind(t.Context(), gate.Request{BDFs: []pci.BDF{bdf(t, "0000:01:00.0")}})
	if err != nil {
		t.Fatal(err)
	}
	d := ds[0]
	if d.Allowed() || d.Recorded || d.Bound || !slices.Contains(codes(d), string(gate.CodeTPM)) || !errors.Is(d.Err, tpm.ErrTPM) {
		t.Fatalf("TPM down: %s %v recorded=%v bound=%v err=%v", d.Verdict.Decision, codes(d), d.Recorded, d.Bound, d.Err)
	}
	if got := w.kernel.DriverOf("0000:01:00.0"); got != "" {
		t.Fatalf("bound to %s without a record", got)
	}
}

// A kernel driver owns the mailbox of a bound function. Check changes
// nothing: attestation is refused (mailbox-owned), a deny for a confidential
// VM. Bind moves the function to vfio-pci (which never touches DOE), attests
// it there, keeps it on allow and gives it back to its driver on deny.
func TestDriverOwnsMailbox(t *testing.T) {
	w := newWorld(t, policyOpts{}, dev{bdf: "0000:01:00.0", profile: "good", driver: "nvme"},
		dev{bdf: "0000:02:00.0", profile: "tampered", driver: "nvme"})
	g := w.gate()
	good, bad := bdf(t, "0000:01:00.0"), bdf(t, "0000:02:00.0")
	ds, err := g.Check(t.Context(), gate.Request{BDFs: []pci.BDF{good}, Confidential: true})
	if err != nil {
		t.Fatal(err)
	}
	if ds[0].Allowed() || !slices.Contains(codes(ds[0]), string(policy.CodeMailboxOwned)) || w.kernel.DriverOf("0000:01:00.0") != "nvme" {
		t.Fatalf("check of a driver-owned function: %v driver=%s", codes(ds[0]), w.kernel.DriverOf("0000:01:00.0"))
	}
	assertRecorded(t, w, ds)

	ds, err = g.Bind(t.Context(), gate.Request{BDFs: []pci.BDF{good}, Confidential: true, Domain: "vm1"})
	if err != nil {
		t.Fatal(err)
	}
	if !ds[0].Allowed() || !ds[0].Bound || ds[0].Err != nil || w.kernel.DriverOf("0000:01:00.0") != "vfio-pci" {
		t.Fatalf("bind of a driver-owned good function: %v bound=%v err=%v driver=%s", codes(ds[0]), ds[0].Bound, ds[0].Err, w.kernel.DriverOf("0000:01:00.0"))
	}
	assertRecorded(t, w, ds)
	if _, err := g.Release(t.Context(), []pci.BDF{good}, "vm1"); err != nil {
		t.Fatal(err)
	}
	if got := w.kernel.DriverOf("0000:01:00.0"); got != "nvme" {
		t.Fatalf("release gave it to %q, want its original nvme", got)
	}

	ds, err = g.Bind(t.Context(), gate.Request{BDFs: []pci.BDF{bad}, Confidential: true})
	if err != nil {
		t.Fatal(err)
	}
	if ds[0].Allowed() || ds[0].Bound || ds[0].Err != nil || !slices.Contains(codes(ds[0]), string(policy.CodeMeasurementMismatch)) {
		t.Fatalf("bind of a driver-owned tampered function: %v bound=%v err=%v", codes(ds[0]), ds[0].Bound, ds[0].Err)
	}
	if got := w.kernel.DriverOf("0000:02:00.0"); got != "nvme" {
		t.Fatalf("denied function left on %q, want it back on nvme", got)
	}
	assertRecorded(t, w, ds)
}

func TestBindAndRelease(t *testing.T) {
	w := newWorld(t, policyOpts{}, dev{bdf: "0000:01:00.0", profile: "good"},
		dev{bdf: "0000:02:00.0", profile: "none", id: &nic, driver: "e1000e"})
	g := w.gate()
	ds, err := g.Bind(t.Context(), gate.Request{BDFs: []pci.BDF{bdf(t, "0000:01:00.0")}, Confidential: true, Domain: "vm1"})
	if err != nil {
		t.Fatal(err)
	}
	if !ds[0].Bound || ds[0].Err != nil || w.kernel.DriverOf("0000:01:00.0") != "vfio-pci" {
		t.Fatalf("bind: bound=%v err=%v driver=%s %v", ds[0].Bound, ds[0].Err, w.kernel.DriverOf("0000:01:00.0"), codes(ds[0]))
	}
	assertRecorded(t, w, ds)
	// The unattested NIC, for a non-confidential VM: allowed, bound, and
	// its driver comes back on release.
	ds, err = g.Bind(t.Context(), gate.Request{BDFs: []pci.BDF{bdf(t, "0000:02:00.0")}, Domain: "vm1"})
	if err != nil {
		t.Fatal(err)
	}
	if !ds[0].Bound || ds[0].Err != nil || w.kernel.DriverOf("0000:02:00.0") != "vfio-pci" {
		t.Fatalf("bind NIC: bound=%v err=%v %v", ds[0].Bound, ds[0].Err, codes(ds[0]))
	}
	assertRecorded(t, w, ds)
	// A second gate (another process) releases from the state records.
	rs, err := w.gate().Release(t.Context(), []pci.BDF{bdf(t, "0000:02:00.0"), bdf(t, "0000:01:00.0")}, "")
	if err != nil || len(rs) != 2 || !rs[0].Recorded || !rs[1].Recorded || rs[0].Driver != "" || rs[1].Driver != "e1000e" {
		t.Fatalf("release %+v %v", rs, err)
	}
	if d, ov := w.kernel.DriverOf("0000:02:00.0"), w.kernel.Override("0000:02:00.0"); d != "e1000e" || ov != "(null)" {
		t.Fatalf("after release: driver %s override %s", d, ov)
	}
	if d := w.kernel.DriverOf("0000:01:00.0"); d != "" {
		t.Fatalf("after release: attested function on %s, want no driver as before", d)
	}
	l, err := tpm.ReadBoot(w.logPath, 0)
	must(t, err)
	last := l.Records[len(l.Records)-1]
	var rel tpm.Release
	must(t, json.Unmarshal(last.Event.Data, &rel))
	if last.Event.Kind != tpm.KindRelease || rel.BDF != "0000:02:00.0" || rel.Domain != "vm1" {
		t.Fatalf("last event %s %+v", last.Event.Kind, rel)
	}
	w.verifyLog()
	// Releasing again: not bound by vfio-gate any more.
	if _, err := w.gate().Release(t.Context(), []pci.BDF{bdf(t, "0000:01:00.0")}, ""); !errors.Is(err, gate.ErrNotBound) {
		t.Fatalf("second release: %v", err)
	}
}

// A group with one bad member binds nothing; the good member is denied
// iommu-group-unsafe, and both denies are recorded.
func TestBindGroupWithBadMember(t *testing.T) {
	w := newWorld(t, policyOpts{}, dev{bdf: "0000:01:00.0", profile: "good", group: 7},
		dev{bdf: "0000:01:00.1", profile: "tampered", group: 7})
	ds, err := w.gate().Bind(t.Context(), gate.Request{BDFs: []pci.BDF{bdf(t, "0000:01:00.0"), bdf(t, "0000:01:00.1")}})
	if err != nil {
		t.Fatal(err)
	}
	if ds[0].Allowed() || !slices.Equal(codes(ds[0]), []string{string(policy.CodeIOMMUGroupUnsafe)}) ||
		!strings.Contains(ds[0].Verdict.Reasons[0].Message, "0000:01:00.1 is denied (measurement-mismatch)") {
		t.Fatalf("good member: %s %v", ds[0].Verdict.Decision, ds[0].Verdict.Reasons)
	}
	if ds[1].Allowed() || !slices.Contains(codes(ds[1]), string(policy.CodeMeasurementMismatch)) {
		t.Fatalf("bad member: %v", codes(ds[1]))
	}
	for _, b := range []string{"0000:01:00.0", "0000:01:00.1"} {
		if d := w.kernel.DriverOf(b); d != "" {
			t.Errorf("%s driver %s", b, d)
		}
	}
	for _, ev := range w.events {
		if strings.HasPrefix(ev, "write ") {
			t.Errorf("sysfs written: %s", ev)
		}
	}
	assertRecorded(t, w, ds)
}

// A member outside the request that is not exempt: same rule. A bridge the
// policy exempts does not block.
func TestBindGroupOutsiders(t *testing.T) {
	w2 := newWorld(t, policyOpts{exemptBridge: true},
		dev{bdf: "0000:02:00.0", profile: "good", group: 8},
		dev{bdf: "0000:02:00.1", profile: "none", id: &nic, group: 8, driver: "e1000e"},
		dev{bdf: "0000:03:00.0", profile: "good", group: 9},
		dev{bdf: "0000:00:1c.0", profile: "none", id: &nic, class: 0x060400, group: 9, driver: "pcieport"})
	ds, err := w2.gate().Bind(t.Context(), gate.Request{BDFs: []pci.BDF{bdf(t, "0000:02:00.0"), bdf(t, "0000:03:00.0")}})
	if err != nil {
		t.Fatal(err)
	}
	if ds[0].Allowed() || ds[0].Bound || !strings.Contains(ds[0].Verdict.Reasons[0].Message, "0000:02:00.1 (class 0x020000, driver e1000e) is not being bound and not exempt") {
		t.Fatalf("non-exempt outsider: %v", ds[0].Verdict.Reasons)
	}
	if !ds[1].Allowed() || !ds[1].Bound || ds[1].Err != nil {
		t.Fatalf("exempt bridge: %v bound=%v err=%v", codes(ds[1]), ds[1].Bound, ds[1].Err)
	}
	assertRecorded(t, w2, ds)
}

// A failed step undoes the group: both functions are back on their driver.
func TestBindUndoAfterFailedStep(t *testing.T) {
	w := newWorld(t, policyOpts{}, dev{bdf: "0000:01:00.0", profile: "good", group: 7},
		dev{bdf: "0000:01:00.1", profile: "good", group: 7})
	w.kernel.Fail["bus/pci/drivers_probe=0000:01:00.1"] = errors.New("injected: probe failed")
	ds, err := w.gate().Bind(t.Context(), gate.Request{BDFs: []pci.BDF{bdf(t, "0000:01:00.0"), bdf(t, "0000:01:00.1")}})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		var be *vfio.BindError
		if !d.Allowed() || d.Bound || !errors.As(d.Err, &be) || !strings.Contains(d.Err.Error(), "injected") {
			t.Fatalf("%s: allowed=%v bound=%v err=%v", d.BDF, d.Allowed(), d.Bound, d.Err)
		}
	}
	for _, b := range []string{"0000:01:00.0", "0000:01:00.1"} {
		if d, ov := w.kernel.DriverOf(b), w.kernel.Override(b); d != "" || ov != "(null)" {
			t.Errorf("%s after undo: driver %s override %s", b, d, ov)
		}
	}
	assertRecorded(t, w, ds)
}

// Two concurrent binds of one function: one waits for the other's lock, so
// the second attestation starts only after the first bind's last write.
func TestConcurrentBindSameFunction(t *testing.T) {
	w := newWorld(t, policyOpts{}, dev{bdf: "0000:01:00.0", profile: "good", latency: 2 * time.Millisecond})
	req := gate.Request{BDFs: []pci.BDF{bdf(t, "0000:01:00.0")}}
	var wg sync.WaitGroup
	res := make([][]gate.Decision, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ds, err := w.gate().Bind(context.Background(), req)
			if err != nil {
				t.Error(err)
			}
			res[i] = ds
		}()
	}
	wg.Wait()
	bound, already := 0, 0
	for _, ds := range res {
		if ds[0].Bound {
			bound++
		} else if errors.Is(ds[0].Err, vfio.ErrAlreadyBound) {
			already++
		}
	}
	if bound != 1 || already != 1 {
		t.Fatalf("bound %d, already-bound %d: %+v", bound, already, res)
	}
	// Event order: every config open of the second attestation comes after
	// the first bind's last sysfs write.
	lastWrite, firstOpenAfter := -1, -1
	for i, ev := range w.events {
		if strings.HasPrefix(ev, "write ") {
			lastWrite = i
		}
	}
	opens := 0
	for i, ev := range w.events {
		if strings.HasPrefix(ev, "open ") {
			opens++
			if i > lastWrite && firstOpenAfter < 0 {
				firstOpenAfter = i
			}
		}
	}
	if lastWrite < 0 || firstOpenAfter < 0 {
		t.Fatalf("no interleaving check possible: %v", w.events)
	}
	for i := firstOpenAfter; i < len(w.events); i++ {
		if strings.HasPrefix(w.events[i], "write ") {
			t.Fatalf("write after the second attestation started: %v", w.events)
		}
	}
	// Opens before the last write all belong to the first bind: none of the
	// second's may come before.
	before := 0
	for i := 0; i < lastWrite; i++ {
		if strings.HasPrefix(w.events[i], "open ") {
			before++
		}
	}
	if before == 0 || before == opens {
		t.Fatalf("events interleaved: %v", w.events)
	}
	n := 0
	for _, v := range w.verifyLog() {
		if v.BDF == "0000:01:00.0" && v.Verdict == "allow" {
			n++
		}
	}
	if n != 2 || !res[0][0].Recorded || !res[1][0].Recorded {
		t.Fatalf("%d verdicts recorded for two binds", n)
	}
}

// Eight functions in parallel: all decided, each recorded, in about the
// time of one. It runs in a synctest bubble: the devices' response latency
// and the mailbox polling are on the bubble's fake clock, so the elapsed time
// counts only waits, not how loaded the machine is (a wall-clock ratio was
// flaky on a busy 2-core host). Serial checks would take 8x one check's
// waits; parallel ones about 1x.
func TestCheckEightInParallel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var devs []dev
		var bdfs []pci.BDF
		for i := range 8 {
			b := pci.BDF{Bus: uint8(0x10 + i)}
			devs = append(devs, dev{bdf: b.String(), profile: "good", latency: 3 * time.Millisecond})
			bdfs = append(bdfs, b)
		}
		w := newWorld(t, policyOpts{}, devs...)
		g := w.gate()
		start := time.Now()
		check(t, g, true, bdfs[0])
		one := time.Since(start)
		start = time.Now()
		ds := check(t, g, true, bdfs...)
		eight := time.Since(start)
		for _, d := range ds {
			if !d.Allowed() {
				t.Fatalf("%s: %v", d.BDF, codes(d))
			}
		}
		assertRecorded(t, w, ds)
		t.Logf("fake clock: 1 device %s, 8 devices %s (ratio %.2f)", one, eight, float64(eight)/float64(one))
		if one <= 0 {
			t.Fatalf("one check waited %s on the fake clock: the device latency is not on it", one)
		}
		if eight > 2*one {
			t.Errorf("8 devices waited %s, one %s: not parallel", eight, one)
		}
	})
}

// Sanity of the fixture: the device-mode helper encodes what policy reads.
func TestFixtureDebugModeEncoding(t *testing.T) {
	b := emu.DeviceMode(0, 0, 0, 1<<1)
	if binary.LittleEndian.Uint32(b[12:]) != 2 {
		t.Fatal("DeviceModeState not at offset 12")
	}
}

// A responder behind spdm-socket is gated with the same policy.
func TestCheckSocket(t *testing.T) {
	w := newWorld(t, policyOpts{})
	for _, c := range []struct {
		profile string
		allow   bool
		code    policy.Code
	}{{"good", true, ""}, {"tampered", false, policy.CodeMeasurementMismatch}} {
		d, err := emu.New(emu.Config{Identity: gatetest.WithDSN(nvme, 9), Profile: c.profile, Algorithms: spdm.AsymECDSAP384})
		must(t, err)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		must(t, err)
		ctx, cancel := context.WithCancel(t.Context())
		go socket.Serve(ctx, ln, d.Features(), d.Handler())
		dec, err := w.gate().CheckSocket(t.Context(), ln.Addr().String(), attest.Identity{VendorID: 0x1b36, DeviceID: 0x0010}, true)
		cancel()
		ln.Close()
		if err != nil {
			t.Fatal(err)
		}
		if dec.Allowed() != c.allow || (c.code != "" && !slices.Contains(codes(dec), string(c.code))) || !dec.Recorded {
			t.Fatalf("%s: %s %v recorded=%v failure %+v id %+v slot %d chains %+v", c.profile, dec.Verdict.Decision, dec.Verdict.Reasons, dec.Recorded, dec.Evidence.Failure, dec.Identity, dec.Evidence.Bundle.Slot, dec.Evidence.Chains[0].CMASAN)
		}
	}
	// Nobody listening: a transport deny, recorded.
	dec, err := w.gate().CheckSocket(t.Context(), "127.0.0.1:1", attest.Identity{VendorID: 0x1b36, DeviceID: 0x0010}, true)
	if err != nil || dec.Allowed() || !slices.Contains(codes(dec), string(policy.CodeTransport)) || !dec.Recorded {
		t.Fatalf("no listener: %v %v", codes(dec), err)
	}
	vs := w.verifyLog()
	if len(vs) != 3 || !strings.HasPrefix(vs[0].BDF, "socket:127.0.0.1:") {
		t.Fatalf("verdicts %+v", vs)
	}
}

// A deadline that ends during attestation: the function is denied timeout,
// and the deny is still recorded.
func TestDeadlineDenyIsRecorded(t *testing.T) {
	w := newWorld(t, policyOpts{}, dev{bdf: "0000:01:00.0", profile: "good", latency: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(t.Context(), 120*time.Millisecond)
	defer cancel()
	ds, err := w.gate().Check(ctx, gate.Request{BDFs: []pci.BDF{bdf(t, "0000:01:00.0")}, Confidential: true})
	if err != nil {
		t.Fatal(err)
	}
	if ds[0].Allowed() || !slices.Contains(codes(ds[0]), string(policy.CodeTimeout)) || !ds[0].Recorded {
		t.Fatalf("%s %v recorded=%v err=%v", ds[0].Verdict.Decision, codes(ds[0]), ds[0].Recorded, ds[0].Err)
	}
	assertRecorded(t, w, ds)
}

// A bound record names its schema and holds hex-string IDs; one written
// before that (no "schema", numeric IDs) still releases the function, and
// the release event carries its IDs.
func TestBoundRecordSchemaAndOldFile(t *testing.T) {
	w := newWorld(t, policyOpts{}, dev{bdf: "0000:02:00.0", profile: "none", id: &nic, driver: "e1000e"})
	ds, err := w.gate().Bind(t.Context(), gate.Request{BDFs: []pci.BDF{bdf(t, "0000:02:00.0")}, Domain: "vm1"})
	if err != nil || !ds[0].Bound {
		t.Fatalf("bind: %v %+v", err, ds)
	}
	path := filepath.Join(w.dir, "state", "bound", "0000:02:00.0.json")
	data, err := os.ReadFile(path)
	must(t, err)
	schematest.Validate(t, "bound", data)
	want := fmt.Sprintf(`"vendor_id": "0x%04x"`, nic.Vendor)
	if !strings.Contains(string(data), `"schema": "`+gate.BoundSchema+`"`) || !strings.Contains(string(data), want) {
		t.Fatalf("bound record:\n%s", data)
	}
	old := strings.Replace(string(data), `"schema": "`+gate.BoundSchema+`",`, "", 1)
	old = strings.Replace(old, want, fmt.Sprintf(`"vendor_id": %d`, nic.Vendor), 1)
	old = strings.Replace(old, fmt.Sprintf(`"device_id": "0x%04x"`, nic.Device), fmt.Sprintf(`"device_id": %d`, nic.Device), 1)
	if strings.Contains(old, `"0x`) || strings.Contains(old, `"schema"`) {
		t.Fatalf("old-form record not made:\n%s", old)
	}
	must(t, os.WriteFile(path, []byte(old), 0o600))
	rs, err := w.gate().Release(t.Context(), []pci.BDF{bdf(t, "0000:02:00.0")}, "")
	if err != nil || len(rs) != 1 || rs[0].Driver != "e1000e" || w.kernel.DriverOf("0000:02:00.0") != "e1000e" {
		t.Fatalf("release from an old record: %+v %v", rs, err)
	}
	rels := gatetest.Events[tpm.Release](t, w.logPath, tpm.KindRelease)
	if len(rels) != 1 || uint16(rels[0].VendorID) != nic.Vendor || uint16(rels[0].DeviceID) != nic.Device {
		t.Fatalf("release events %+v", rels)
	}
	// A record of a schema this vfio-gate does not know is refused.
	must(t, os.WriteFile(path, []byte(strings.Replace(string(data), gate.BoundSchema, "vfio-gate/bound/v2", 1)), 0o600))
	if _, err := w.gate().Release(t.Context(), []pci.BDF{bdf(t, "0000:02:00.0")}, ""); err == nil || !strings.Contains(err.Error(), "vfio-gate/bound/v2") {
		t.Fatalf("release from a v2 record: %v", err)
	}
}
