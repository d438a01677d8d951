package libvirt

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/pci"
)

func parseFile(t *testing.T, name string) (*Domain, error) {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return ParseDomain(f)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func bdf(s string) pci.BDF {
	b, err := pci.ParseBDF(s)
	if err != nil {
		panic(err)
	}
	return b
}

func TestParseHostdevForms(t *testing.T) {
	d, err := parseFile(t, "managed.xml")
	if err != nil {
		t.Fatal(err)
	}
	want := []HostPCI{
		{BDF: bdf("0000:3b:00.0"), Managed: true, Source: "hostdev"},
		{BDF: bdf("0000:3b:00.1"), Managed: false, Source: "hostdev"},
		{BDF: bdf("0001:81:10.2"), Managed: true, Source: "interface"},
	}
	if len(d.PCI) != len(want) {
		t.Fatalf("PCI = %+v", d.PCI)
	}
	for i := range want {
		if d.PCI[i] != want[i] {
			t.Errorf("PCI[%d] = %+v, want %+v", i, d.PCI[i], want[i])
		}
	}
	if len(d.Networks) != 1 || d.Networks[0] != "default" {
		t.Errorf("Networks = %v, want [default]", d.Networks)
	}
	if d.Name != "vm1" || d.UUID == "" || d.Confidential(nil) {
		t.Fatalf("name %q uuid %q confidential %v", d.Name, d.UUID, d.Confidential(nil))
	}
}

func TestLaunchSecurityTypes(t *testing.T) {
	for _, ty := range []string{"sev", "sev-snp", "tdx", "s390-pv"} {
		d, err := parseFile(t, "ls-"+ty+".xml")
		if err != nil {
			t.Fatalf("%s: %v", ty, err)
		}
		if d.LaunchSecurity != ty || !d.Confidential(nil) {
			t.Errorf("%s: LaunchSecurity %q confidential %v", ty, d.LaunchSecurity, d.Confidential(nil))
		}
		if d.Confidential([]string{"tdx"}) != (ty == "tdx") {
			t.Errorf("%s: custom confidential list ignored", ty)
		}
	}
}

// TestUnknownLaunchSecurity: a launchSecurity type libvirtxml does not
// know is kept as written (not taken for a plain domain) and sent to the
// daemon, which classifies it; a malformed launchSecurity is bad XML.
func TestUnknownLaunchSecurity(t *testing.T) {
	doc := func(ls string) string {
		return `<domain type='kvm'><name>vm1</name><devices><hostdev mode='subsystem' type='pci' managed='no'>
<source><address domain='0x0000' bus='0x3b' slot='0x00' function='0x0'/></source></hostdev></devices>` + ls + `</domain>`
	}
	d, err := parseFile(t, "ls-unknown.xml")
	if err != nil || d.LaunchSecurity != "cca" || d.Confidential(nil) || len(d.PCI) != 1 {
		t.Fatalf("cca: %+v %v", d, err)
	}
	if d, err := ParseDomain(strings.NewReader(doc(""))); err != nil || d.LaunchSecurity != "" {
		t.Fatalf("none: %+v %v", d, err)
	}
	for _, bad := range []string{`<launchSecurity/>`, `<launchSecurity type='sev'/><launchSecurity type='cca'/>`} {
		if _, err := ParseDomain(strings.NewReader(doc(bad))); !errors.Is(err, ErrBadXML) {
			t.Errorf("%s: %v", bad, err)
		}
	}
	fc := &fakeClient{}
	fc.check = answer(nil)
	h := &Hook{Client: fc}
	var errw bytes.Buffer
	if code := h.Run(context.Background(), []string{"vm1", "prepare", "begin", "-"},
		strings.NewReader(doc(`<launchSecurity type='cca'/>`)), &errw); code != 0 {
		t.Fatalf("prepare: exit %d %q", code, errw.String())
	}
	if fc.lastReq.LaunchSecurity != "cca" || fc.lastReq.Confidential {
		t.Fatalf("request %+v", fc.lastReq)
	}
}

func TestHostileXML(t *testing.T) {
	for _, name := range []string{"entities.xml", "noaddr.xml", "outofrange.xml"} {
		if _, err := parseFile(t, name); !errors.Is(err, ErrBadXML) {
			t.Errorf("%s: err = %v, want ErrBadXML", name, err)
		}
	}
	huge := strings.NewReader("<domain>" + strings.Repeat("<x/>", MaxDomainXML/4) + "</domain>")
	if _, err := ParseDomain(huge); !errors.Is(err, ErrBadXML) || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("huge: %v", err)
	}
	if _, err := ParseDomain(strings.NewReader("  \n")); !errors.Is(err, ErrBadXML) {
		t.Errorf("empty: %v", err)
	}
	if _, err := ParseDomain(strings.NewReader("<domain><devices><hostdev mode='subsystem' type='pci'><source><address bus='zz' slot='0' function='0'/></source></hostdev></devices></domain>")); !errors.Is(err, ErrBadXML) {
		t.Errorf("wrong types: %v", err)
	}
}

func TestActionTable(t *testing.T) {
	cases := map[[2]string]Action{
		{"prepare", "begin"}: ActionCheck, {"start", "begin"}: ActionCheckStart, {"started", "begin"}: ActionStart,
		{"release", "end"}: ActionRelease, {"start", "end"}: ActionNone, {"stopped", "end"}: ActionNone, {"migrate", "begin"}: ActionNone,
		{"prepare", "end"}: ActionNone, {"restore", "begin"}: ActionNone, {"reconnect", "begin"}: ActionNone,
	}
	for k, want := range cases {
		if got := ActionFor(k[0], k[1]); got != want {
			t.Errorf("ActionFor(%q, %q) = %v, want %v", k[0], k[1], got, want)
		}
	}
}

type fakeClient struct {
	check             func(CheckRequest) (*CheckResult, error)
	started, released []string
	delay             time.Duration
	lastReq           CheckRequest
}

func (f *fakeClient) Check(ctx context.Context, req CheckRequest) (*CheckResult, error) {
	f.lastReq = req
	if f.delay > 0 {
		select {
		case <-time.After(f.delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return f.check(req)
}
func (f *fakeClient) Start(_ context.Context, d string, _ []pci.BDF) error {
	f.started = append(f.started, d)
	return nil
}
func (f *fakeClient) Release(_ context.Context, d string, _ []pci.BDF) error {
	f.released = append(f.released, d)
	return nil
}

func runHook(t *testing.T, h *Hook, xmlFile string, args ...string) (int, string) {
	t.Helper()
	var in []byte
	if xmlFile != "" {
		var err error
		if in, err = os.ReadFile(filepath.Join("testdata", xmlFile)); err != nil {
			t.Fatal(err)
		}
	}
	var errw bytes.Buffer
	code := h.Run(context.Background(), args, bytes.NewReader(in), &errw)
	return code, errw.String()
}

func TestHookPrepare(t *testing.T) {
	allow := func(req CheckRequest) (*CheckResult, error) {
		r := &CheckResult{Allow: true}
		for _, d := range req.Devices {
			r.Devices = append(r.Devices, DeviceResult{BDF: d.BDF, Decision: "allow"})
		}
		return r, nil
	}
	fc := &fakeClient{check: allow}
	h := &Hook{Client: fc}
	if code, msg := runHook(t, h, "ls-tdx.xml", "cvm-tdx", "prepare", "begin", "-"); code != 0 {
		t.Fatalf("allow: exit %d %s", code, msg)
	}
	if !fc.lastReq.Confidential || len(fc.lastReq.Devices) != 1 {
		t.Fatalf("request %+v", fc.lastReq)
	}

	fc.check = func(req CheckRequest) (*CheckResult, error) {
		return &CheckResult{Allow: false, Devices: []DeviceResult{{BDF: bdf("0000:3b:00.0"), Decision: "deny",
			Reasons: []Reason{{Code: "chain-untrusted", Message: "add the vendor's root CA to the policy's trust_anchors"}}}}}, nil
	}
	code, msg := runHook(t, h, "ls-tdx.xml", "cvm-tdx", "prepare", "begin", "-")
	if code != 1 || !strings.Contains(msg, "DENY 0000:3b:00.0 chain-untrusted: add the vendor") {
		t.Fatalf("deny: exit %d %q", code, msg)
	}

	// An answer that leaves a device out is a deny.
	fc.check = func(req CheckRequest) (*CheckResult, error) {
		return &CheckResult{Allow: true, Devices: []DeviceResult{{BDF: bdf("0000:3b:00.0"), Decision: "allow"}}}, nil
	}
	if code, _ := runHook(t, h, "managed.xml", "vm1", "prepare", "begin", "-"); code != 1 {
		t.Fatalf("partial answer allowed: exit %d", code)
	}

	fc.check = func(CheckRequest) (*CheckResult, error) { return nil, ErrDaemonDown }
	code, msg = runHook(t, h, "managed.xml", "vm1", "prepare", "begin", "-")
	if code != 1 || !strings.Contains(msg, "daemon is not running (systemctl start vfio-gate)") {
		t.Fatalf("daemon down: exit %d %q", code, msg)
	}
}

func TestHookBudget(t *testing.T) {
	fc := &fakeClient{delay: time.Second, check: func(CheckRequest) (*CheckResult, error) { return &CheckResult{Allow: true}, nil }}
	h := &Hook{Client: fc, Budget: 20 * time.Millisecond}
	code, msg := runHook(t, h, "managed.xml", "vm1", "prepare", "begin", "-")
	if code != 1 || !strings.Contains(msg, "time budget") {
		t.Fatalf("exit %d %q", code, msg)
	}
}

func TestHookBadInput(t *testing.T) {
	fc := &fakeClient{check: func(CheckRequest) (*CheckResult, error) { t.Fatal("daemon called"); return nil, nil }}
	h := &Hook{Client: fc}
	if code, msg := runHook(t, h, "", "vm1", "prepare", "begin", "-"); code != 1 || !strings.Contains(msg, "empty") {
		t.Errorf("empty stdin at prepare: exit %d %q", code, msg)
	}
	if code, _ := runHook(t, h, "entities.xml", "vm1", "prepare", "begin", "-"); code != 1 {
		t.Errorf("hostile XML at prepare: exit %d", code)
	}
	if code, _ := runHook(t, h, "", "vm1", "prepare", "begin"); code != 1 {
		t.Errorf("3 args at prepare: exit %d", code)
	}
	if code, _ := runHook(t, h, "", "vm1", "stopped", "end"); code != 1 {
		t.Errorf("3 args at stopped: exit %d", code)
	}
	if code, _ := runHook(t, h, "entities.xml", "vm1", "migrate", "begin", "-"); code != 0 {
		t.Errorf("other op: exit %d", code)
	}
	// release with unreadable XML still asks the daemon to release by domain name.
	if code, _ := runHook(t, h, "", "vm1", "release", "end", "-"); code != 0 || len(fc.released) != 1 {
		t.Errorf("release: exit %d released %v", code, fc.released)
	}
	if code, _ := runHook(t, h, "managed.xml", "vm1", "started", "begin", "-"); code != 0 || len(fc.started) != 1 {
		t.Errorf("started: exit %d started %v", code, fc.started)
	}
}

func TestInstallUninstall(t *testing.T) {
	dir := t.TempDir()
	res, err := InstallHook(InstallOptions{LibvirtDir: dir, Binary: "/usr/local/bin/vfio-gate", DaemonSocket: "/run/vfio-gate/daemon.sock"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(res.DropIn)
	if err != nil || st.Mode().Perm() != 0o755 || res.Dispatcher != "" {
		t.Fatalf("drop-in %v %v dispatcher %q", st, err, res.Dispatcher)
	}
	b, _ := os.ReadFile(res.DropIn)
	if !strings.Contains(string(b), "exec '/usr/local/bin/vfio-gate' libvirt-hook --daemon-socket '/run/vfio-gate/daemon.sock' -- \"$@\"") {
		t.Fatalf("drop-in content:\n%s", b)
	}
	// An existing hooks/qemu of someone else's is never touched, nor removed.
	other := filepath.Join(dir, "hooks/qemu")
	if err := os.WriteFile(other, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := InstallHook(InstallOptions{LibvirtDir: dir, Binary: "/x/vfio-gate", Dispatcher: true}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(other); string(b) != "#!/bin/sh\nexit 0\n" {
		t.Fatal("existing hooks/qemu was modified")
	}
	removed, err := UninstallHook(dir)
	if err != nil || len(removed) != 1 {
		t.Fatalf("removed %v err %v", removed, err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Fatal("uninstall removed someone else's hooks/qemu")
	}
	// A drop-in that is not ours is not overwritten.
	if err := os.WriteFile(res.DropIn, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := InstallHook(InstallOptions{LibvirtDir: dir, Binary: "/x/vfio-gate"}); err == nil {
		t.Fatal("overwrote a foreign drop-in")
	}
	if _, err := InstallHook(InstallOptions{LibvirtDir: dir, Binary: "relative/vfio-gate"}); err == nil {
		t.Fatal("accepted a relative binary path")
	}
}

func TestInstallDispatcher(t *testing.T) {
	dir := t.TempDir()
	res, err := InstallHook(InstallOptions{LibvirtDir: dir, Binary: "/usr/bin/vfio-gate", Dispatcher: true})
	if err != nil || res.Dispatcher == "" {
		t.Fatalf("%+v %v", res, err)
	}
	removed, err := UninstallHook(dir)
	if err != nil || len(removed) != 2 {
		t.Fatalf("removed %v %v", removed, err)
	}
	// By libvirt's version: created (and said so) only below 6.5, where
	// libvirt does not run qemu.d/ drop-ins itself.
	for _, c := range []struct {
		version, note string
		created       bool
	}{
		{"6.0.0", "created ", true}, {"5.10", "created ", true}, {"6.5.0", "libvirt 6.5.0 runs qemu.d/ drop-ins itself", false},
		{"9.0.0", "libvirt 9.0.0 runs qemu.d/ drop-ins itself", false}, {"", "version is unknown", false},
		{"libvirtd: not found", "version is unknown", false},
	} {
		dir := t.TempDir()
		res, err := InstallHook(InstallOptions{LibvirtDir: dir, Binary: "/usr/bin/vfio-gate", LibvirtVersion: c.version})
		if err != nil || (res.Dispatcher != "") != c.created || !strings.Contains(strings.Join(res.Notes, "\n"), c.note) {
			t.Errorf("libvirt %q: %+v %v", c.version, res, err)
		}
		_, statErr := os.Stat(filepath.Join(dir, "hooks/qemu"))
		if (statErr == nil) != c.created {
			t.Errorf("libvirt %q: hooks/qemu exists %v", c.version, statErr == nil)
		}
	}
	// Never over an existing hooks/qemu, whatever the version.
	dir = t.TempDir()
	must(t, os.MkdirAll(filepath.Join(dir, "hooks"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "hooks/qemu"), []byte("#!/bin/sh\nexit 0\n"), 0o755))
	if res, err := InstallHook(InstallOptions{LibvirtDir: dir, Binary: "/usr/bin/vfio-gate", LibvirtVersion: "6.0.0"}); err != nil || res.Dispatcher != "" {
		t.Fatalf("existing hooks/qemu: %+v %v", res, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "hooks/qemu")); string(b) != "#!/bin/sh\nexit 0\n" {
		t.Fatalf("existing hooks/qemu changed: %q", b)
	}
}

func FuzzParseDomain(f *testing.F) {
	for _, n := range []string{"managed.xml", "marked.xml", "ls-sev.xml", "ls-unknown.xml", "entities.xml", "noaddr.xml", "pool-direct-start.xml", "pool-hostdev-start.xml"} {
		b, err := os.ReadFile(filepath.Join("testdata", n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		d, err := ParseDomain(bytes.NewReader(in))
		if (d == nil) == (err == nil) {
			t.Fatalf("domain %v err %v", d, err)
		}
	})
}

// answer builds a daemon answer: decisions by BDF, "allow" for the rest.
func answer(dec map[string]string) func(CheckRequest) (*CheckResult, error) {
	return func(req CheckRequest) (*CheckResult, error) {
		r := &CheckResult{Allow: true}
		for _, d := range req.Devices {
			v := dec[d.BDF.String()]
			if v == "" {
				v = "allow"
			}
			dr := DeviceResult{BDF: d.BDF, Decision: v}
			switch v {
			case "deny":
				r.Allow = false
				dr.Reasons = []Reason{{Code: "mailbox-owned", Message: "still on its host driver nvme at libvirt start begin"}}
			case DecisionDeferred:
				if req.Phase == PhaseStart {
					r.Allow = false
				}
				dr.Reasons = []Reason{{Code: "deferred", Message: "on host driver nvme; libvirt moves it to vfio-pci before start: checked at start begin"}}
			}
			r.Devices = append(r.Devices, dr)
		}
		return r, nil
	}
}

// TestHookTwoPhases: prepare passes allow and deferred; start begin passes
// only allow; both send their phase and the managed flags.
func TestHookTwoPhases(t *testing.T) {
	fc := &fakeClient{}
	h := &Hook{Client: fc}
	fc.check = answer(map[string]string{"0000:3b:00.0": DecisionDeferred})
	if code, msg := runHook(t, h, "managed.xml", "vm1", "prepare", "begin", "-"); code != 0 {
		t.Fatalf("prepare with a deferred function: exit %d %q", code, msg)
	}
	if fc.lastReq.Phase != PhasePrepare || len(fc.lastReq.Devices) != 3 || !fc.lastReq.Devices[0].Managed || fc.lastReq.Devices[1].Managed {
		t.Fatalf("prepare request %+v", fc.lastReq)
	}
	// The daemon still answering deferred at start is a deny.
	code, msg := runHook(t, h, "managed.xml", "vm1", "start", "begin", "-")
	if code != 1 || fc.lastReq.Phase != PhaseStart || !strings.Contains(msg, "DENY 0000:3b:00.0 deferred") {
		t.Fatalf("deferred at start: exit %d %q (phase %q)", code, msg, fc.lastReq.Phase)
	}
	// Even when it claims allow overall.
	fc.check = func(req CheckRequest) (*CheckResult, error) {
		r, _ := answer(map[string]string{"0000:3b:00.0": DecisionDeferred})(req)
		r.Allow = true
		return r, nil
	}
	if code, _ := runHook(t, h, "managed.xml", "vm1", "start", "begin", "-"); code != 1 {
		t.Fatalf("deferred at start with allow=true: exit %d", code)
	}
	fc.check = answer(nil)
	if code, msg := runHook(t, h, "managed.xml", "vm1", "start", "begin", "-"); code != 0 {
		t.Fatalf("all allowed at start: exit %d %q", code, msg)
	}
	fc.check = answer(map[string]string{"0000:3b:00.0": "deny"})
	for _, op := range []string{"prepare", "start"} {
		code, msg := runHook(t, h, "managed.xml", "vm1", op, "begin", "-")
		if code != 1 || !strings.Contains(msg, "DENY 0000:3b:00.0 mailbox-owned: still on its host driver") {
			t.Fatalf("deny at %s: exit %d %q", op, code, msg)
		}
	}
	fc.check = func(CheckRequest) (*CheckResult, error) { return nil, ErrDaemonDown }
	if code, msg := runHook(t, h, "managed.xml", "vm1", "start", "begin", "-"); code != 1 || !strings.Contains(msg, "not running") {
		t.Fatalf("daemon down at start: exit %d %q", code, msg)
	}
	// Bad input at start begin is a deny, without asking the daemon.
	fc.check = func(CheckRequest) (*CheckResult, error) { t.Fatal("daemon called"); return nil, nil }
	for _, in := range []string{"", "entities.xml", "noaddr.xml"} {
		if code, msg := runHook(t, h, in, "vm1", "start", "begin", "-"); code != 1 || !strings.Contains(msg, "denying") {
			t.Errorf("start with %q: exit %d %q", in, code, msg)
		}
	}
	if code, _ := runHook(t, h, "", "vm1", "start", "begin"); code != 1 {
		t.Errorf("3 args at start: exit %d", code)
	}
}

// TestTrailingBytesAfterDomain: libvirt writes one document; a second
// <domain> (whose hostdevs the decision would never see) or any other data
// after </domain> is bad XML, not ignored.
func TestTrailingBytesAfterDomain(t *testing.T) {
	good, err := os.ReadFile(filepath.Join("testdata", "managed.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseDomain(bytes.NewReader(append(slices.Clone(good), "\n\n  \t\n"...))); err != nil {
		t.Fatalf("trailing whitespace refused: %v", err)
	}
	for _, tail := range []string{
		"<domain><devices><hostdev mode='subsystem' type='pci'><source><address bus='0x5e' slot='0' function='0'/></source></hostdev></devices></domain>",
		"garbage",
		"<!-- c -->",
		"<?pi x?>",
	} {
		if _, err := ParseDomain(bytes.NewReader(append(slices.Clone(good), tail...))); !errors.Is(err, ErrBadXML) || !strings.Contains(err.Error(), "after the end of the root element") {
			t.Errorf("tail %q: err = %v, want ErrBadXML (data after the root element)", tail, err)
		}
	}
}

// TestMetadataMarksConfidential: vfio-gate's <gate confidential="yes"/> in
// <metadata> makes a domain without launchSecurity confidential (and the
// hook asks the daemon to lock); "no" never makes a launchSecurity domain
// less confidential; anything else of the namespace is bad XML.
func TestMetadataMarksConfidential(t *testing.T) {
	d, err := parseFile(t, "marked.xml")
	if err != nil || !d.Marked || !d.Confidential(nil) || !d.Confidential([]string{}) || d.LaunchSecurity != "" {
		t.Fatalf("marked: %+v %v", d, err)
	}
	doc := func(meta, ls string) string {
		return `<domain type='kvm'><name>vm1</name><metadata>` + meta + `</metadata><devices><hostdev mode='subsystem' type='pci' managed='yes'>
<source><address domain='0x0000' bus='0x3b' slot='0x00' function='0x0'/></source></hostdev></devices>` + ls + `</domain>`
	}
	gate := func(attrs string) string { return `<g:gate xmlns:g="` + MetadataNamespace + `" ` + attrs + `/>` }
	for _, c := range []struct {
		meta, ls string
		want     bool
	}{
		{gate(`confidential="no"`), "", false},
		{gate(`confidential="no"`), `<launchSecurity type='sev-snp'/>`, true},
		{gate(`confidential="yes"`), `<launchSecurity type='sev-snp'/>`, true},
		{`<gate confidential="yes"/>`, "", false}, // no namespace: not ours (libvirt refuses it anyway)
		{`<x:gate xmlns:x="https://example.org/other" confidential="yes"/>`, "", false},
	} {
		d, err := ParseDomain(strings.NewReader(doc(c.meta, c.ls)))
		if err != nil || d.Confidential(nil) != c.want {
			t.Errorf("%s %s: %+v %v, want confidential %v", c.meta, c.ls, d, err, c.want)
		}
	}
	for _, bad := range []string{
		gate(`confidential="true"`), gate(``), gate(`confidential="YES"`), gate(`confidential="yes" lock="no"`),
		gate(`confidential="yes"`) + gate(`confidential="no"`),
		`<g:gates xmlns:g="` + MetadataNamespace + `" confidential="yes"/>`,
		`<vfio-gate:gate confidential="yes"/>`,
		`<g:gate xmlns:g="` + MetadataNamespace + `" confidential="yes"><g:gate confidential="yes"/></g:gate>`,
	} {
		if _, err := ParseDomain(strings.NewReader(doc(bad, ""))); !errors.Is(err, ErrBadXML) {
			t.Errorf("%s: err = %v, want ErrBadXML", bad, err)
		}
	}
	misplaced := strings.Replace(doc("", ""), "<devices>", "<devices>"+gate(`confidential="yes"`), 1)
	if _, err := ParseDomain(strings.NewReader(misplaced)); !errors.Is(err, ErrBadXML) {
		t.Errorf("outside metadata: %v", err)
	}

	fc := &fakeClient{}
	fc.check = answer(nil)
	h := &Hook{Client: fc}
	var errw bytes.Buffer
	if code := h.Run(context.Background(), []string{"vm1", "prepare", "begin", "-"},
		strings.NewReader(doc(gate(`confidential="yes"`), "")), &errw); code != 0 {
		t.Fatalf("prepare: exit %d %q", code, errw.String())
	}
	if !fc.lastReq.Confidential || fc.lastReq.LaunchSecurity != "" {
		t.Fatalf("request %+v", fc.lastReq)
	}
}
