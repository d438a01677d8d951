package main

// The sandbox the documented command lines run in (docexamples_test.go
// finds and checks them; docs/testing.md describes both).

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/doe"
	"github.com/vfio-gate/vfio-gate/doe/cdat"
	"github.com/vfio-gate/vfio-gate/emu"
	"github.com/vfio-gate/vfio-gate/internal/testutil"
	"github.com/vfio-gate/vfio-gate/internal/testutil/gatetest"
	"github.com/vfio-gate/vfio-gate/pci/sysfstest"
)

// A docSession is the sandbox the examples of one file (or the cobra
// Examples) run in, in order, as a reader would type them. Its root stands
// for "/": paths the examples name under /tmp, /etc, /var and /run are
// re-rooted there, and the working directory (root/work) holds the
// relative files they name.
// It holds:
//   - a sysfs tree (devFixture) with software devices at the BDFs the
//     examples use: 0000:3b:00.0 and .1 and 0000:00:06.0 (CMA/SPDM, ECDSA
//     P-384), 0000:0d:00.0 (a CXL function with a CDAT), 0000:00:03.0 (a
//     virtio NIC without DOE); the demo's 0000:01:00.0, 02:00.0 and 03:00.0
//     run in the demo's own world (demoEnv);
//   - a policy (etc/vfio-gate/policy.yaml, root-owned) with a rule for the
//     software devices, their anchors under etc/vfio-gate/anchors/ and in
//     the working directory (emu-ca.pem, vendor-root.pem);
//   - a swtpm for --tpm (/dev/tpmrm0 and tcp:127.0.0.1:2321 name it);
//   - an emulator for 127.0.0.1:2323, started by the file's own "emulate"
//     example or, when the file has none before, as the README's session
//     starts it (emulate --listen ... --write-ca /tmp/emu-ca.pem);
//   - a daemon on run/vfio-gate/daemon.sock for status, libvirt-hook and
//     tdisp through the daemon (with a swtpm and state dir of its own).
//
// Every command gets the host defaults it has and does not set re-rooted
// (--config, --policy, --state-dir, --daemon-socket, --tpm, --sysfs-root,
// --lock-dir, --libvirt-dir, ...): see defaults.
type docSession struct {
	t      *testing.T
	root   string
	work   string
	fx     *devFixture
	cli    *cliTree
	tpm    string     // the host's TPM (/dev/tpmrm0)
	swtpm  string     // the swtpm the documents start on tcp:127.0.0.1:2321
	emu    *docServer // serves 127.0.0.1:2323
	daemon *docServer // the sandbox's daemon
}

// docServer is a long-running example (emulate, daemon) run in-process.
type docServer struct {
	cancel context.CancelFunc
	done   chan int
	out    *syncBuffer
	addr   string
	once   sync.Once
	code   int
}

// stop cancels the server and returns its exit code.
func (s *docServer) stop() int {
	s.once.Do(func() {
		s.cancel()
		s.code = <-s.done
	})
	return s.code
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// docBrokenPolicy is what docs/policy.md's "policy check broken.yaml" reads.
const docBrokenPolicy = `version: 1
rules:
  - name: x
    match:
      vendor: -7
`

// docVM1 is the domain XML the libvirt-hook Examples read (vm1.xml): a
// non-confidential domain with the virtio NIC.
const docVM1 = `<domain type='kvm'><name>vm1</name><devices>
<hostdev mode='subsystem' type='pci' managed='no'><source><address domain='0x0000' bus='0x00' slot='0x03' function='0x0'/></source></hostdev>
</devices></domain>
`

func newDocSession(t *testing.T, ct *cliTree) *docSession {
	t.Helper()
	s := &docSession{t: t, root: t.TempDir(), cli: ct}
	s.work = filepath.Join(s.root, "work")
	for _, d := range []string{"tmp", "etc/vfio-gate/anchors", "etc/libvirt/hooks", "var/lib/vfio-gate", "run/vfio-gate", "work"} {
		gatetest.Must(t, os.MkdirAll(filepath.Join(s.root, d), 0o755))
	}
	s.fx = newDevFixture(t)
	good := s.fx.addEmu(t, "0000:3b:00.0", emu.Config{})
	s.fx.addEmu(t, "0000:3b:00.1", emu.Config{})
	s.fx.addEmu(t, "0000:00:06.0", emu.Config{})
	cxl := emu.Identity{Vendor: 0x8086, Device: 0x0d93, Class: 0x050210, Revision: 1}
	s.fx.Add(t, "0000:0d:00.0", cxl, "", emu.NewConfigSpace(cxl, doe.NewModel([]doe.Feature{doe.FeatureCXLCDAT}, cdat.Handler(cdatTable()))))
	nic := sysfstest.Function{BDF: "0000:00:03.0", Vendor: 0x1af4, Device: 0x1041, SubVendor: 0x1af4, SubDev: 0x1041,
		Class: 0x020000, Revision: 1, Driver: "virtio-pci", IOMMUGroup: 3}
	gatetest.Must(t, s.fx.Tree.Add(nic))
	s.fx.Configs[gatetest.BDF(t, nic.BDF)] = gatetest.MemConfig(sysfstest.Header(nic))
	gatetest.Must(t, os.Symlink(s.fx.dir, filepath.Join(s.root, "tmp", "sys")))
	gatetest.Must(t, os.Symlink(filepath.Join(s.root, "tmp", "export"), filepath.Join(s.work, "export")))
	gatetest.Must(t, os.Symlink(filepath.Join(s.root, "tmp", "export", "bundles"), filepath.Join(s.work, "bundles"))) // after "cd DIR"

	anchors := good.AnchorsPEM()
	for _, p := range []string{"etc/vfio-gate/anchors/acme-root.pem", "etc/vfio-gate/anchors/vendor.pem", "work/emu-ca.pem", "work/vendor-root.pem"} {
		gatetest.Must(t, os.WriteFile(filepath.Join(s.root, p), anchors, 0o600))
	}
	pol := fmt.Sprintf(`version: 1
mode: enforce
defaults: {confidential: deny-unattested, non_confidential: allow-unattested}
rules:
  - name: software-device
    match: {vendor: 0x%04x, device: 0x%04x}
    spdm: {trust_anchors: [%s]}
`, good.Identity().Vendor, good.Identity().Device, filepath.Join(s.root, "etc/vfio-gate/anchors/acme-root.pem"))
	for _, p := range []string{"etc/vfio-gate/policy.yaml", "work/policy.yaml", "work/draft.yaml"} {
		gatetest.Must(t, os.WriteFile(filepath.Join(s.root, p), []byte(pol), 0o600))
	}
	gatetest.Must(t, os.WriteFile(filepath.Join(s.work, "broken.yaml"), []byte(docBrokenPolicy), 0o600))
	gatetest.Must(t, os.WriteFile(filepath.Join(s.work, "vm1.xml"), []byte(docVM1), 0o600))
	gatetest.Must(t, os.WriteFile(filepath.Join(s.root, "etc/vfio-gate/vfio-gate.yaml"), []byte("version: 1\ndaemon:\n  no-libvirt: true\n"), 0o600))
	writeDMTFSampleKeys(t, filepath.Join(s.work, "libspdm", "unit_test", "sample_key"))
	gatetest.Must(t, os.WriteFile(filepath.Join(s.work, "leaf.key"), mustRead(t, filepath.Join(s.work, "libspdm/unit_test/sample_key/ecp256/end_responder.key")), 0o600))
	gatetest.Must(t, os.WriteFile(filepath.Join(s.work, "chain.pem"), mustRead(t, filepath.Join(s.work, "libspdm/unit_test/sample_key/ecp256/bundle_responder.certchain.der")), 0o600))
	s.tpm = testutil.StartSwtpm(t, false).Spec
	return s
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	gatetest.Must(t, err)
	return b
}

// docRerooted are the host directories a session re-roots.
var docRerooted = []string{"/tmp/", "/etc/", "/var/", "/run/"}

// hostPath maps a host path to the session's: /sys is the fixture tree,
// /dev/tpmrm0 the session's TPM, the rest re-rooted.
func (s *docSession) hostPath(p string) string {
	switch {
	case p == "/sys":
		return s.fx.dir
	case p == "/dev/tpmrm0":
		return s.tpm
	case slices.ContainsFunc(docRerooted, func(d string) bool { return strings.HasPrefix(p, d) || p == strings.TrimSuffix(d, "/") }):
		return filepath.Join(s.root, p)
	}
	return p
}

// subst rewrites one argument for the sandbox (the table in docs/testing.md).
func (s *docSession) subst(a string) string {
	for _, n := range []int{16, 20} {
		a = strings.ReplaceAll(a, fmt.Sprintf("$(openssl rand -hex %d)", n), strings.Repeat("5e", n))
	}
	a = strings.ReplaceAll(a, "$BDF", "0000:00:06.0")
	if strings.Contains(a, "127.0.0.1:2323") {
		a = strings.ReplaceAll(a, "127.0.0.1:2323", s.emulator().addr)
	}
	if strings.Contains(a, "tcp:127.0.0.1:2321") {
		if s.swtpm == "" {
			s.swtpm = testutil.StartSwtpm(s.t, false).Spec
		}
		a = strings.ReplaceAll(a, "tcp:127.0.0.1:2321", s.swtpm)
	}
	if strings.Contains(a, "DIGEST") || strings.Contains(a, "3f1c…") {
		d := s.bundleDigest()
		a = strings.ReplaceAll(strings.ReplaceAll(a, "DIGEST", d), "3f1c…", d)
	}
	if name, val, ok := strings.Cut(a, "="); ok && strings.HasPrefix(name, "--") {
		return name + "=" + s.subst(val)
	}
	if strings.HasPrefix(a, "/") {
		return s.hostPath(a)
	}
	if strings.ContainsAny(a, "./") && !strings.HasPrefix(a, "-") {
		if _, err := os.Lstat(filepath.Join(s.work, a)); err == nil {
			return filepath.Join(s.work, a) // a file in the working directory
		}
	}
	return a
}

// bundleDigest is the digest of an evidence bundle the session stored,
// recording one (a check of 0000:3b:00.0) if there is none yet.
func (s *docSession) bundleDigest() string {
	s.t.Helper()
	glob := filepath.Join(s.root, "var/lib/vfio-gate/evidence/*.json")
	if m, _ := filepath.Glob(glob); len(m) == 0 {
		s.setup("check", "0000:3b:00.0")
	}
	m, _ := filepath.Glob(glob)
	if len(m) == 0 {
		s.t.Fatalf("no evidence bundle in %s after a check", glob)
	}
	return strings.TrimSuffix(filepath.Base(m[0]), ".json")
}

// setup runs a command the documents show as done before an example (a
// check that stores evidence, a captured policy) in the session; it must
// succeed.
func (s *docSession) setup(args ...string) string {
	s.t.Helper()
	path, err := s.cli.resolve(args)
	gatetest.Must(s.t, err)
	args = append(args, s.defaults(path, args)...)
	code, out, errs := s.fx.run(s.t, args...)
	if code != 0 {
		s.t.Fatalf("setup vfio-gate %s: exit %d: %s", strings.Join(args, " "), code, errs)
	}
	return out
}

// defaults are the host defaults re-rooted: a flag the command has, whose
// default is a host path, and that args do not set. The demo keeps its
// own TPM and state (a throwaway simulator, a temporary directory).
func (s *docSession) defaults(path string, args []string) []string {
	fl := s.cli.flags[path]
	var names []string
	for n, f := range fl {
		if strings.HasPrefix(n, "--") && strings.HasPrefix(f.def, "/") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var out []string
	for _, n := range names {
		if path == "demo" && (n == "--tpm" || n == "--state-dir") {
			continue
		}
		if slices.ContainsFunc(args, func(a string) bool { return a == n || strings.HasPrefix(a, n+"=") }) {
			continue
		}
		out = append(out, n, s.hostPath(fl[n].def))
	}
	return out
}

// emulator returns the emulator serving 127.0.0.1:2323, starting the
// README's one if the file has started none.
func (s *docSession) emulator() *docServer {
	if s.emu == nil {
		args := []string{"emulate", "--listen", freeAddr(s.t), "--write-ca", s.hostPath("/tmp/emu-ca.pem")}
		srv, code := s.serve(append(args, s.defaults("emulate", args)...), "listening on")
		if srv == nil {
			s.t.Fatalf("the session's emulator exited %d", code)
		}
		s.emu = srv
	}
	return s.emu
}

// freeAddr is a loopback TCP address nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	gatetest.Must(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

// serve runs a server example in-process until ready (ready appears in its
// output, or its --daemon-socket accepts a connection when ready is "").
// It returns nil and the exit code if the server exits first.
func (s *docSession) serve(args []string, ready string) (*docServer, int) {
	s.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	srv := &docServer{cancel: cancel, done: make(chan int, 1), out: &syncBuffer{}}
	full := append([]string{"vfio-gate"}, args...)
	sock := ""
	for i, a := range full {
		switch {
		case a == "--listen" && i+1 < len(full):
			srv.addr = full[i+1]
		case a == "--daemon-socket" && i+1 < len(full):
			sock = full[i+1]
		}
	}
	go func() {
		srv.done <- run(ctx, full, strings.NewReader(""), srv.out, srv.out, func(string) string { return "" })
	}()
	s.t.Cleanup(func() { srv.stop() }) // before the TPMs started earlier are killed
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case code := <-srv.done:
			srv.once.Do(func() { cancel(); srv.code = code })
			s.t.Logf("%v exited %d:\n%s", args, code, srv.out.String())
			return nil, code
		case <-time.After(20 * time.Millisecond):
		}
		if ready != "" && strings.Contains(srv.out.String(), ready) {
			return srv, 0
		}
		if ready == "" {
			if c, err := net.Dial("unix", sock); err == nil {
				c.Close()
				return srv, 0
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%v not ready after 20s:\n%s", args, srv.out.String())
		}
	}
}

// ensureDaemon starts the sandbox's daemon (for status, the hook, tdisp
// through the daemon) unless it runs.
func (s *docSession) ensureDaemon() {
	if s.daemon != nil {
		return
	}
	// its own TPM and state: it holds the TPM while it runs
	args := []string{"daemon", "--no-libvirt", "--tpm", testutil.StartSwtpm(s.t, false).Spec, "--state-dir", filepath.Join(s.root, "var/lib/vfio-gate-daemon")}
	srv, code := s.serve(append(args, s.defaults("daemon", args)...), "")
	if srv == nil {
		s.t.Fatalf("the session's daemon exited %d", code)
	}
	s.daemon = srv
}

// docDemoBDFs are the demo's functions: examples naming them run in the
// demo's world.
var docDemoBDFs = []string{"0000:01:00.0", "0000:02:00.0", "0000:03:00.0"}

// runExample runs one documented command line in the session and returns
// its exit code.
func (s *docSession) runExample(ct *cliTree, text string) int {
	t := s.t
	t.Helper()
	l, err := parseShellLine(text)
	if err != nil {
		t.Fatal(err)
	}
	path, err := ct.resolve(l.args)
	if err != nil {
		t.Fatal(err)
	}
	serves := path == "emulate" && slices.Contains(l.args, "127.0.0.1:2323") // the document's next examples talk to it
	if serves && s.emu != nil {
		s.emu.stop()
		s.emu = nil
	}
	var args []string
	for _, a := range l.args {
		if serves && a == "127.0.0.1:2323" {
			a = freeAddr(t)
		}
		args = append(args, s.subst(a))
	}
	demoWorld := slices.ContainsFunc(args, func(a string) bool { return slices.Contains(docDemoBDFs, a) })
	if path != "libvirt-hook" && !demoWorld { // the hook's arguments are libvirt's
		args = append(args, s.defaults(path, args)...)
	}
	switch path {
	case "emulate", "daemon":
		ready := "listening on"
		if path == "daemon" {
			ready = "" // its socket answers
			if s.daemon != nil {
				s.daemon.stop() // the example may listen where the sandbox's daemon does
				s.daemon = nil
			}
		}
		srv, code := s.serve(args, ready)
		if srv == nil {
			return code
		}
		if serves {
			s.emu = srv
			return 0
		}
		return srv.stop()
	case "status", "libvirt-hook", "tdisp lock", "tdisp start", "tdisp stop":
		s.ensureDaemon()
	case "tdisp state":
		if slices.Contains(args, "--daemon") {
			s.ensureDaemon()
		}
	}
	var code int
	var stdout, stderr string
	switch {
	case path == "libvirt-hook":
		in := ""
		if l.stdin != "" {
			in = string(mustRead(t, filepath.Join(s.work, l.stdin)))
		}
		code, stdout, stderr = runCLIWithStdin(t, in, args...)
	case demoWorld:
		_, e, flags := demoEnv(t)
		code, stdout, stderr = runEnv(t, e, append(args, flags...)...)
	default:
		code, stdout, stderr = s.fx.run(t, args...)
	}
	t.Logf("$ %s\n-> vfio-gate %s\nexit %d\n%s%s", text, strings.Join(args, " "), code, stdout, stderr)
	if l.stdout != "" {
		p := s.hostPath(l.stdout)
		if !filepath.IsAbs(p) {
			p = filepath.Join(s.work, p)
		}
		gatetest.Must(t, os.WriteFile(p, []byte(stdout), 0o600))
	}
	if len(l.pipe) > 0 {
		s.pipe(l.pipe, stdout)
	}
	return code
}

// pipe runs jq, which an example pipes vfio-gate's output into (the only
// command parseShellLine lets through); it must accept the output.
func (s *docSession) pipe(argv []string, stdout string) {
	t := s.t
	t.Helper()
	if _, err := exec.LookPath(argv[0]); err != nil {
		t.Logf("%s not installed: not checking the pipe into it", argv[0])
		return
	}
	c := exec.Command(argv[0], argv[1:]...)
	c.Stdin = strings.NewReader(stdout)
	if out, err := c.CombinedOutput(); err != nil {
		t.Errorf("| %s: %v\n%s", strings.Join(argv, " "), err, out)
	}
}

// TestDocExamplesRun runs every documented command line the table does not
// exclude, in a sandbox per document (docSession), and checks its exit code.
func TestDocExamplesRun(t *testing.T) {
	testutil.Require(t, testutil.Root, testutil.Swtpm) // a root-owned policy; the daemon answers root peers only
	ct := loadCLITree(t)
	var files []string
	byFile := map[string][]docExample{}
	for _, ex := range allDocExamples(t, ct) {
		if ex.file == "cobra" {
			ex.file = ex.where // one session per command's Examples
		}
		if _, ok := byFile[ex.file]; !ok {
			files = append(files, ex.file)
		}
		byFile[ex.file] = append(byFile[ex.file], ex)
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			s := newDocSession(t, ct)
			t.Setenv("TMPDIR", s.hostPath("/tmp")) // temporary anchors, the demo's kept world
			for _, ex := range byFile[f] {
				want, ok := docExampleTable[ex.text]
				if want.why != "" {
					continue
				}
				if want.before != nil {
					want.before(s)
				}
				got := s.runExample(ct, ex.text)
				if !ok {
					t.Errorf("%s: %s: exit %d here, and no entry in docExampleTable", ex.where, ex.text, got)
				} else if got != want.code {
					t.Errorf("%s: %s: exit %d, want %d", ex.where, ex.text, got, want.code)
				}
			}
		})
	}
}

// Why some examples cannot run in the sandbox; their command lines are
// still checked (TestDocExamplesParse).
const (
	docWhyBind = "moves the function to the kernel's vfio-pci driver, which a fixture tree has no kernel for " +
		"(TestBindReleaseCLI plays the kernel; test/vm's libvirt-* scenarios bind for real)"
	docWhyAudit    = "attaches BPF programs to the host kernel's kprobes: root, BTF and kprobes (test/vm's bpf-audit scenarios run it)"
	docWhyLibvirtd = "asks libvirtd for the domain's XML (test/vm's libvirt-* scenarios run it)"
	docWhyReload   = "sends SIGHUP to the host's libvirtd (/run/libvirtd.pid), which other tests may be using " +
		"(TestInstallHookCLI installs without --reload; test/vm's libvirt-deb-install runs it)"
	docWhyTDI = "needs a TDI the daemon locked for a domain in its own SPDM session over the function's DOE mailbox; " +
		"a daemon run here reads the fixture's config files, which have none (TestTDISPThroughDaemon runs these commands against a fake daemon)"
)

// docExampleTable is every documented command line, by its exact text, and
// its exit code in the sandbox (or why it cannot run there). A new
// example needs an entry; TestDocExamplesRun reports what it does.
var docExampleTable = map[string]docExpect{
	"sudo vfio-gate libvirt preflight vm1; echo $?": {why: docWhyLibvirtd}, // docs/daemon-libvirt.md shows a deny, exit 3
	"vfio-gate log verify --tpm /dev/tpmrm0":        {code: 0},
	"vfio-gate log verify --boot 3":                 {code: 1}, // the sandbox's TPM has had one boot: "no boot 3"
	"vfio-gate log verify --all":                    {code: 0},
	"vfio-gate evidence verify bundles/DIGEST.json --trust-anchor vendor-root.pem --policy policy.yaml": {code: 0, before: exported},
	"go run ./cmd/vfio-gate demo": {code: 0},
	"vfio-gate demo":              {code: 0},
	"vfio-gate scan --no-doe":     {code: 0},
	"sudo vfio-gate attest 0000:3b:00.0 --trust-anchor /etc/vfio-gate/anchors/acme-root.pem": {code: 0},
	"sudo vfio-gate check --confidential 0000:3b:00.0":                                       {code: 0},
	"sudo vfio-gate bind --domain vm1 0000:3b:00.0":                                          {why: docWhyBind},
	"vfio-gate log verify": {code: 0},
	"sudo vfio-gate evidence export --nonce $(openssl rand -hex 20) --out /tmp/export": {code: 0},
	"vfio-gate emulate --listen 127.0.0.1:2323 --write-ca /tmp/emu-ca.pem &":           {code: 0},
	"vfio-gate attest --socket 127.0.0.1:2323 --trust-anchor /tmp/emu-ca.pem":          {code: 0},
	"vfio-gate policy capture --socket 127.0.0.1:2323 --trust-anchor /tmp/emu-ca.pem":  {code: 0},
	"vfio-gate tdisp cycle --socket 127.0.0.1:2323 --trust-anchor /tmp/emu-ca.pem":     {code: 0},
	"sudo vfio-gate doctor": {code: 0},
	"sudo vfio-gate policy capture 0000:3b:00.0 --trust-anchor /etc/vfio-gate/anchors/acme-root.pem": {code: 0},
	"sudo vfio-gate install-hook --reload":                                                                                    {why: docWhyReload},
	"vfio-gate audit --device 0000:00:03.0 --duration 2s; echo $?":                                                            {why: docWhyAudit}, // docs/audit.md shows exit 4 where kprobes are missing
	"vfio-gate emulate --listen 127.0.0.1:2323 --write-ca /tmp/emu-ca.pem --algorithms ecdsa-p384":                            {code: 0},
	"vfio-gate emulate --listen 127.0.0.1:2323 --pki libspdm/unit_test/sample_key --write-ca /tmp/vendor-ca.pem":              {code: 0},
	"vfio-gate emulate --listen 127.0.0.1:2323 --key leaf.key --chain chain.pem --write-ca /tmp/vendor-ca.pem":                {code: 0},
	"vfio-gate emulate --listen 127.0.0.1:2323 --public-key-only --algorithms ecdsa-p384 --write-public-key /tmp/emu-key.pem": {code: 0},
	"vfio-gate attest --socket 127.0.0.1:2323 --responder-public-key /tmp/emu-key.pem":                                        {code: 0},
	"vfio-gate scan --json --no-doe 0000:00:03.0":                                                                             {code: 0},
	"vfio-gate scan --no-doe 0000:99:00.0; echo $?":                                                                           {code: 4}, // no such device
	"vfio-gate scan 3b:00.0; echo $?":                                                                                         {code: 1}, // malformed BDF
	"vfio-gate explain --confidential 0000:02:00.0":                                                                           {code: 3}, // the demo's tampered device
	"vfio-gate check --socket 127.0.0.1:2323 --policy /tmp/pol/policy.yaml --tpm tcp:127.0.0.1:2321 --state-dir /tmp/cst":     {code: 0, before: capturedPolicy},
	"vfio-gate demo --state-dir /tmp/dstate":                                                                                  {code: 0},
	"vfio-gate check --confidential 0000:01:00.0 0000:02:00.0 0000:03:00.0":                                                   {code: 3}, // the demo's three devices (printed by the demo)
	"vfio-gate tdisp state --json --socket 127.0.0.1:2323 --trust-anchor /tmp/emu-ca.pem":                                     {code: 0},
	"vfio-gate tdisp report --socket 127.0.0.1:2323 --trust-anchor /tmp/emu-ca.pem; echo $?":                                  {code: 2}, // an unlocked TDI has no report
	"vfio-gate version": {code: 0},
	"sudo vfio-gate policy capture 0000:3b:00.0 --trust-anchor /etc/vfio-gate/anchors/acme-root.pem --name acme-nic": {code: 0},
	"vfio-gate status":                            {code: 0},
	"sudo vfio-gate uninstall-hook":               {code: 0},
	"vfio-gate policy check /tmp/pol/policy.yaml": {code: 0, before: capturedPolicy},
	"vfio-gate policy check broken.yaml; echo $?": {code: 1},
	"vfio-gate emulate --listen 127.0.0.1:2323 --identity qemu-nvme --bdf 0000:00:06.0 --algorithms ecdsa-p384 --write-ca /tmp/emu-ca.pem": {code: 0},
	"vfio-gate scan": {code: 0},
	"vfio-gate attest $BDF --trust-anchor emu-ca.pem":                                                                                                {code: 0},
	"vfio-gate attest $BDF --trust-anchor emu-ca.pem --session":                                                                                      {code: 0},
	"vfio-gate attest $BDF --trust-anchor emu-ca.pem --tdisp":                                                                                        {code: 0},
	"vfio-gate tdisp cycle $BDF --trust-anchor emu-ca.pem":                                                                                           {code: 0},
	"vfio-gate policy capture $BDF --trust-anchor emu-ca.pem > /etc/vfio-gate/policy.yaml":                                                           {code: 0},
	"vfio-gate --policy /etc/vfio-gate/policy.yaml check --confidential $BDF":                                                                        {code: 0},
	"vfio-gate --policy /etc/vfio-gate/policy.yaml bind --confidential $BDF":                                                                         {why: docWhyBind},
	"vfio-gate --policy /etc/vfio-gate/policy.yaml release $BDF":                                                                                     {why: docWhyBind},
	"vfio-gate demo --tpm tcp:127.0.0.1:2321 --state-dir /tmp/demo-state":                                                                            {code: 0},
	"vfio-gate log show --state-dir /tmp/demo-state":                                                                                                 {code: 0},
	"vfio-gate log verify --tpm tcp:127.0.0.1:2321 --state-dir /tmp/demo-state":                                                                      {code: 0},
	"vfio-gate log verify --tpm tcp:127.0.0.1:2321 --state-dir /tmp/demo-state; echo $?":                                                             {code: 5, before: deleteRecord3}, // after "sed -i 3d" of the log
	"vfio-gate --json log show --state-dir /var/lib/vfio-gate":                                                                                       {code: 0},
	"sudo vfio-gate attest 0000:3b:00.0 --trust-anchor /etc/vfio-gate/anchors/acme-root.pem --json":                                                  {code: 0},
	"sudo vfio-gate audit --device 0000:3b:00.0":                                                                                                     {why: docWhyAudit},
	"sudo vfio-gate audit --json --device 0000:3b:00.0 --device 0000:3b:00.1 --duration 10m":                                                         {why: docWhyAudit},
	"sudo vfio-gate bind --confidential --domain vm1 0000:3b:00.0":                                                                                   {why: docWhyBind},
	"sudo vfio-gate check --confidential 0000:3b:00.0 0000:3b:00.1":                                                                                  {code: 0},
	"vfio-gate check --socket 127.0.0.1:2323 --policy /etc/vfio-gate/policy.yaml --tpm tcp:127.0.0.1:2321":                                           {code: 0},
	"vfio-gate daemon --config /etc/vfio-gate/vfio-gate.yaml":                                                                                        {code: 0},
	"vfio-gate daemon --sysfs-root /tmp/sys --tpm tcp:127.0.0.1:2321 --state-dir /tmp/st --daemon-socket /tmp/vg.sock --no-libvirt --log-level info": {code: 0},
	"vfio-gate demo --json": {code: 0},
	"vfio-gate demo --tpm tcp:127.0.0.1:2321 --state-dir /tmp/demo-state --keep":                          {code: 0},
	"sudo vfio-gate doctor --json | jq '.checks[] | select(.status != \"ok\")'":                           {code: 0},
	"sudo vfio-gate doe discover 0000:0d:00.0":                                                            {code: 0},
	"sudo vfio-gate --json doe cdat 0000:0d:00.0":                                                         {code: 0},
	"sudo vfio-gate doe cdat --json 0000:0d:00.0":                                                         {code: 0},
	"vfio-gate emulate --listen 127.0.0.1:2323 --write-ca /tmp/emu-ca.pem":                                {code: 0},
	"vfio-gate emulate --listen 127.0.0.1:0 --profile tampered --algorithms rsapss-3072 --versions 1.2":   {code: 0},
	"vfio-gate emulate --listen 127.0.0.1:2323 --identity qemu-nvme --bdf 0000:00:06.0":                   {code: 0},
	"vfio-gate log show --json | jq -r '.boots[-1].events[].event.evidence_digest // empty'":              {code: 0, before: recorded},
	"vfio-gate evidence show DIGEST":                                                                      {code: 0},
	"vfio-gate evidence verify DIGEST --trust-anchor vendor-root.pem --policy /etc/vfio-gate/policy.yaml": {code: 0},
	"sudo vfio-gate evidence export --nonce 5eed0f00c0ffee --out /tmp/export":                             {code: 0, before: recorded},
	"sudo vfio-gate evidence export --nonce $(openssl rand -hex 16) --out /tmp/export":                    {code: 0, before: recorded},
	"vfio-gate evidence show 3f1c…":                                                                       {code: 0},
	"vfio-gate evidence verify 3f1c… --trust-anchor /etc/vfio-gate/anchors/vendor.pem":                    {code: 0},
	"vfio-gate evidence verify export/bundles/3f1c….json --policy policy.yaml":                            {code: 0, before: exported},
	"sudo vfio-gate explain --confidential 0000:3b:00.0":                                                  {code: 0},
	"vfio-gate install-hook --reload":                                                                     {why: docWhyReload},
	"vfio-gate install-hook --libvirt-dir /etc/libvirt --binary /usr/local/bin/vfio-gate":                 {code: 0},
	"vfio-gate libvirt preflight vm1":                                                                     {why: docWhyLibvirtd},
	"vfio-gate libvirt preflight vm1 --uri qemu:///system --json":                                         {why: docWhyLibvirtd},
	"vfio-gate libvirt-hook --daemon-socket /run/vfio-gate/daemon.sock vm1 prepare begin - < vm1.xml":     {code: 0},
	"vfio-gate libvirt-hook --daemon-socket /run/vfio-gate/daemon.sock vm1 start begin - < vm1.xml":       {code: 0},
	"vfio-gate log show":                          {code: 0},
	"vfio-gate log show --all":                    {code: 0},
	"sudo vfio-gate log verify --tpm /dev/tpmrm0": {code: 0},
	"vfio-gate --json log verify --tpm tcp:127.0.0.1:2321 --state-dir /tmp/demo-state":              {code: 0},
	"vfio-gate log show --state-dir /var/lib/vfio-gate":                                             {code: 0},
	"vfio-gate policy check /etc/vfio-gate/policy.yaml":                                             {code: 0},
	"vfio-gate policy capture --socket 127.0.0.1:2323 --trust-anchor /tmp/emu-ca.pem > policy.yaml": {code: 0},
	"vfio-gate policy check":                                                                       {code: 0},
	"vfio-gate --json policy check /etc/vfio-gate/policy.yaml":                                     {code: 0},
	"vfio-gate policy check --insecure-skip-permission-check ./draft.yaml":                         {code: 0},
	"sudo vfio-gate release --domain vm1 0000:3b:00.0":                                             {why: docWhyBind},
	"sudo vfio-gate scan 0000:3b:00.0":                                                             {code: 0},
	"vfio-gate status --json | jq '.domains'":                                                      {code: 0},
	"sudo vfio-gate tdisp state 0000:3b:00.0 --trust-anchor /etc/vfio-gate/anchors/acme-root.pem":  {code: 0},
	"sudo vfio-gate tdisp lock 0000:3b:00.0 --domain vm1":                                          {why: docWhyTDI},
	"sudo vfio-gate tdisp report 0000:3b:00.0 --trust-anchor /etc/vfio-gate/anchors/acme-root.pem": {code: 2}, // an unlocked TDI has no report (docs/guide.md shows it)
	"sudo vfio-gate tdisp start 0000:3b:00.0":                                                      {why: docWhyTDI},
	"vfio-gate tdisp state --socket 127.0.0.1:2323 --trust-anchor /tmp/emu-ca.pem":                 {code: 0},
	"sudo vfio-gate tdisp state --daemon 0000:3b:00.0":                                             {why: docWhyTDI},
	"sudo vfio-gate tdisp stop 0000:3b:00.0":                                                       {why: docWhyTDI},
	"vfio-gate uninstall-hook":                                                                     {code: 0},
	"vfio-gate --json version":                                                                     {code: 0},
}

// capturedPolicy writes /tmp/pol/policy.yaml as docs/policy.md says it was
// made: policy capture of the session's emulator, its anchors copied next
// to it.
func capturedPolicy(s *docSession) {
	s.t.Helper()
	dir := s.hostPath("/tmp/pol")
	gatetest.Must(s.t, os.MkdirAll(dir, 0o755))
	addr := s.emulator().addr
	gatetest.Must(s.t, os.WriteFile(filepath.Join(dir, "emu-ca.pem"), mustRead(s.t, s.hostPath("/tmp/emu-ca.pem")), 0o600))
	out := s.setup("policy", "capture", "--socket", addr, "--trust-anchor", filepath.Join(dir, "emu-ca.pem"))
	gatetest.Must(s.t, os.WriteFile(filepath.Join(dir, "policy.yaml"), []byte(out), 0o600))
}

// deleteRecord3 is docs/tpm-log.md's "sed -i 3d" of the demo's log.
func deleteRecord3(s *docSession) {
	s.t.Helper()
	p := s.hostPath("/tmp/demo-state/events/boot-000001/seg-000001.cel.jsonl")
	lines := strings.SplitAfter(string(mustRead(s.t, p)), "\n")
	if len(lines) < 4 {
		s.t.Fatalf("%s has %d lines", p, len(lines))
	}
	gatetest.Must(s.t, os.WriteFile(p, []byte(strings.Join(append(lines[:2:2], lines[3:]...), "")), 0o600))
}

// recorded stores a decision and its evidence (a check of 0000:3b:00.0),
// as the Examples of evidence assume.
func recorded(s *docSession) { s.bundleDigest() }

// exported makes the export directory (/tmp/export, export/ in the working
// directory) the evidence verify Example reads.
func exported(s *docSession) {
	s.t.Helper()
	s.bundleDigest()
	s.setup("evidence", "export", "--nonce", "5eed0f00c0ffee", "--out", s.hostPath("/tmp/export"))
}
