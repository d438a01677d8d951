//go:build linux

package main

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The libvirt-pool-* scenarios (issue 7, README "libvirt integration" →
// "Limits"): an <interface type='network'> names no device in the domain
// XML; libvirt picks one from the network's pool after the prepare hook.
// They settle with the real libvirtd what the hooks see for such an
// interface.
//
// A hostdev pool (<forward mode='hostdev'>) can only list SR-IOV VFs:
// libvirt refuses to define one that lists the e1000e (a physical
// function), and QEMU 7.2 emulates no SR-IOV NIC, so no VF exists in the
// guest (libvirt-pool-vf-only). The same allocation path is then observed
// with a pool that hands out the e1000e's netdev as a macvtap (<forward
// mode='private'><interface dev='eth0'/>): the XML of prepare begin and of
// start begin is saved by the trace drop-in and compared.

const (
	lvPool       = "vfio-gate-pool"     // the hostdev pool (refused)
	lvPoolDirect = "vfio-gate-direct"   // the macvtap pool
	lvDomainPool = "vfio-gate-pool-nic" // a domain whose only device is an interface on lvPoolDirect
)

// lvPoolXML: a hostdev pool of one function; %s are domain, bus, slot,
// function of the e1000e.
const lvPoolXML = `<network>
  <name>` + lvPool + `</name>
  <forward mode='hostdev' managed='yes'>
    <address type='pci' domain='0x%s' bus='0x%s' slot='0x%s' function='0x%s'/>
  </forward>
</network>
`

// lvPoolVFOnly is libvirt 9.0's refusal (networkValidate) of a hostdev pool
// that lists a function that is not an SR-IOV VF.
const lvPoolVFOnly = "is not an SR-IOV Virtual Function"

// lvPoolDirectXML: a pool of one netdev (%s: the e1000e's), handed out as a
// macvtap in private mode.
const lvPoolDirectXML = `<network>
  <name>` + lvPoolDirect + `</name>
  <forward mode='private'>
    <interface dev='%s'/>
  </forward>
</network>
`

// lvPoolDomainXML: the NIC model's option ROM is off (no iPXE ROMs in the
// guest).
const lvPoolDomainXML = `<domain type='qemu'>
  <name>` + lvDomainPool + `</name>
  <memory unit='MiB'>32</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <interface type='network'>
      <source network='` + lvPoolDirect + `'/>
      <rom enabled='no'/>
    </interface>
  </devices>
</domain>
`

// lvPoolRun is the macvtap pool, its domain's one `virsh start` and what
// was observed around it.
type lvPoolRun struct {
	upErr    error
	fn       *pciFunc
	netdev   string // the e1000e's netdev, the pool's one interface
	started  bool
	startOut string
	startErr error
	startDur time.Duration
	// decisions: how many daemon decisions on the e1000e status listed
	// before the start.
	decisions int
	destroyed bool
}

// lvPoolUp defines and starts the macvtap pool network and defines the
// domain, once.
func (h *Harness) lvPoolUp(ctx context.Context) (*libvirtStack, *lvPoolRun, error) {
	s, err := h.lvUp(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("libvirt stack not up: %w", err)
	}
	if s.pool != nil {
		return s, s.pool, s.pool.upErr
	}
	p := &lvPoolRun{fn: s.doms[lvDomain].fn}
	s.pool = p
	p.upErr = func() error {
		if _, err := h.waitDriver(ctx, p.fn.BDF, "e1000e", 15*time.Second); err != nil {
			return err
		}
		var nets []os.DirEntry
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			nets, _ = os.ReadDir(filepath.Join(h.Sys, "bus/pci/devices", p.fn.BDF, "net"))
			if len(nets) == 1 || time.Now().After(deadline) {
				break
			}
		}
		if len(nets) != 1 {
			return fmt.Errorf("%s on e1000e has %d netdevs, want 1", p.fn.BDF, len(nets))
		}
		p.netdev = nets[0].Name()
		nx := filepath.Join("/tmp", lvPoolDirect+".xml")
		if err := os.WriteFile(nx, []byte(fmt.Sprintf(lvPoolDirectXML, p.netdev)), 0o644); err != nil {
			return err
		}
		if out, err := virsh(ctx, "net-define", nx); err != nil {
			return fmt.Errorf("virsh net-define %s: %v: %s", nx, err, out)
		}
		if out, err := virsh(ctx, "net-start", lvPoolDirect); err != nil {
			return fmt.Errorf("virsh net-start %s: %v: %s", lvPoolDirect, err, out)
		}
		dx := filepath.Join("/tmp", lvDomainPool+".xml")
		if err := os.WriteFile(dx, []byte(lvPoolDomainXML), 0o644); err != nil {
			return err
		}
		if out, err := virsh(ctx, "define", dx); err != nil {
			return fmt.Errorf("virsh define %s: %v: %s", dx, err, out)
		}
		// A domain still running after the last scenario is destroyed
		// before libvirtd stops (cleanups run last first).
		h.cleanups = append(h.cleanups, func() {
			if p.started && !p.destroyed {
				out, err := virsh(context.Background(), "destroy", lvDomainPool)
				fmt.Fprintf(h.Log, "vmguest: cleanup: virsh destroy %s: %v %s\n", lvDomainPool, err, out)
			}
		})
		return nil
	}()
	return s, p, p.upErr
}

// lvPoolStarted runs `virsh start` of lvDomainPool once.
func (h *Harness) lvPoolStarted(ctx context.Context) (*lvPoolRun, error) {
	_, p, err := h.lvPoolUp(ctx)
	if err != nil {
		return nil, err
	}
	if p.started {
		return p, nil
	}
	p.started = true
	st, err := h.lvStatus(ctx)
	if err != nil {
		return nil, err
	}
	p.decisions = countDecisions(st, p.fn.BDF)
	t := time.Now()
	p.startOut, p.startErr = virsh(ctx, "start", lvDomainPool)
	p.startDur = time.Since(t)
	fmt.Fprintf(h.Log, "vmguest: virsh start %s (%v): %v\n%s\n", lvDomainPool, p.startDur.Round(time.Millisecond), p.startErr, p.startOut)
	for _, f := range lvHookXMLFiles(lvDomainPool) {
		el, err := lvInterfaceElement(f)
		fmt.Fprintf(h.Log, "vmguest: %s: interface element: %s (%v)\n", filepath.Base(f), el, err)
	}
	return p, nil
}

func countDecisions(st *lvStatusJSON, bdf string) int {
	n := 0
	for _, d := range st.Decisions {
		if d.BDF == bdf {
			n++
		}
	}
	return n
}

// lvHookXMLFiles lists the saved hook XML of a domain, sorted.
func lvHookXMLFiles(domain string) []string {
	fs, _ := filepath.Glob(filepath.Join(lvXMLDir, domain+".*.xml"))
	slices.Sort(fs)
	return fs
}

// lvInterfaceElement returns the <interface> element of the domain XML
// saved in file, as libvirt wrote it, with its whitespace folded.
func lvInterfaceElement(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	s := string(b)
	i := strings.Index(s, "<interface")
	if i < 0 {
		return "", errors.New("no <interface> element")
	}
	j := strings.Index(s[i:], "</interface>")
	if j < 0 {
		return "", errors.New("unterminated <interface> element")
	}
	return strings.Join(strings.Fields(s[i:i+j+len("</interface>")]), " "), nil
}

// lvIface is what these scenarios read from an <interface> element.
type lvIface struct {
	Type   string `xml:"type,attr"`
	Source struct {
		Network string `xml:"network,attr"`
		Dev     string `xml:"dev,attr"`
		Mode    string `xml:"mode,attr"`
		Address *struct {
			Type string `xml:"type,attr"`
		} `xml:"address"`
	} `xml:"source"`
	Actual *struct {
		Type string `xml:"type,attr"`
	} `xml:"actual"`
	Target *struct {
		Dev string `xml:"dev,attr"`
	} `xml:"target"`
}

func lvHookIface(domain, op, subop string) (*lvIface, string, error) {
	el, err := lvInterfaceElement(filepath.Join(lvXMLDir, domain+"."+op+"."+subop+".xml"))
	if err != nil {
		return nil, "", fmt.Errorf("%s %s XML: %w", op, subop, err)
	}
	var x lvIface
	if err := xml.Unmarshal([]byte(el), &x); err != nil {
		return nil, el, fmt.Errorf("%s %s <interface>: %w: %s", op, subop, err, el)
	}
	return &x, el, nil
}

func netActive(netInfo string) bool {
	for _, l := range strings.Split(netInfo, "\n") {
		f := strings.Fields(l)
		if len(f) == 2 && f[0] == "Active:" && f[1] == "yes" {
			return true
		}
	}
	return false
}

// libvirtPoolVFOnly (issue 7): libvirt refuses to define a hostdev pool
// (<forward mode='hostdev' managed='yes'>) that lists the e1000e: a pool
// may only list SR-IOV VFs, so a pool member is always a VF.
func libvirtPoolVFOnly(ctx context.Context, h *Harness) Result {
	s, err := h.lvUp(ctx)
	if err != nil {
		return failf("libvirt stack not up: %v%s", err, lvDiag())
	}
	fn := s.doms[lvDomain].fn
	b, err := parseBDF(fn.BDF)
	if err != nil {
		return failf("%v", err)
	}
	nx := filepath.Join("/tmp", lvPool+".xml")
	if err := os.WriteFile(nx, []byte(fmt.Sprintf(lvPoolXML, b[0], b[1], b[2], b[3])), 0o644); err != nil {
		return failf("%v", err)
	}
	out, err := virsh(ctx, "net-define", nx)
	if err == nil {
		_, _ = virsh(ctx, "net-undefine", lvPool)
		return failf("virsh net-define of a hostdev pool listing %s (a physical function) succeeded: %s", fn.BDF, clip(out, 200))
	}
	if !strings.Contains(out, lvPoolVFOnly) {
		return failf("virsh net-define %s failed (%v) without %q: %s", nx, err, lvPoolVFOnly, clip(out, 300))
	}
	i := strings.Index(out, "error: unsupported")
	if i < 0 {
		i = strings.Index(out, "device '")
	}
	return passf("virsh net-define of <forward mode='hostdev' managed='yes'> listing %s: %s", fn.BDF, firstLine(out[max(i, 0):]))
}

// libvirtPoolUp (issue 7): libvirt's network driver runs in the guest: the
// macvtap pool of the e1000e's netdev is defined and active, and the domain
// whose only device is an interface on that network is defined.
func libvirtPoolUp(ctx context.Context, h *Harness) Result {
	_, p, err := h.lvPoolUp(ctx)
	if err != nil {
		return failf("%v%s", err, lvDiag())
	}
	out, err := virsh(ctx, "net-info", lvPoolDirect)
	if err != nil || !netActive(out) {
		return failf("virsh net-info %s: %v: %s", lvPoolDirect, err, clip(out, 300))
	}
	nx, err := virsh(ctx, "net-dumpxml", lvPoolDirect)
	if err != nil {
		return failf("virsh net-dumpxml %s: %v", lvPoolDirect, err)
	}
	fwd := strings.Join(strings.Fields(nx), " ")
	if i := strings.Index(fwd, "<forward"); i >= 0 {
		fwd = fwd[i:]
	}
	return passf("network %s (%s = %s) active: %s; domain %s defined with <interface type='network'><source network='%s'/>",
		lvPoolDirect, p.netdev, p.fn.BDF, clip(fwd, 200), lvDomainPool, lvPoolDirect)
}

// libvirtPoolPrepareXML (issue 7): the XML libvirt passes to `prepare begin`
// shows the interface as type='network' with only the network's name: no
// device (libvirt has not picked one yet), so there is nothing a hook could
// gate there; vfio-gate's hook asks the daemon nothing (no new decision on
// the e1000e).
func libvirtPoolPrepareXML(ctx context.Context, h *Harness) Result {
	p, err := h.lvPoolStarted(ctx)
	if err != nil {
		return failf("%v%s", err, lvDiag())
	}
	x, el, err := lvHookIface(lvDomainPool, "prepare", "begin")
	if err != nil {
		return failf("%v", err)
	}
	if x.Type != "network" || x.Source.Network != lvPoolDirect || x.Source.Dev != "" || x.Source.Address != nil || x.Actual != nil {
		return failf("prepare begin <interface> is not a bare network interface: %s", el)
	}
	st, err := h.lvStatus(ctx)
	if err != nil {
		return failf("%v", err)
	}
	if n := countDecisions(st, p.fn.BDF); n != p.decisions {
		return failf("the daemon made %d new decisions on %s during the start of %s", n-p.decisions, p.fn.BDF, lvDomainPool)
	}
	return passf("prepare begin: %s; no daemon decision", el)
}

// libvirtPoolStartXML (issue 7): the XML libvirt passes to `start begin`
// shows the device it picked from the pool after prepare: the interface's
// type is the allocation's (direct, a macvtap on the pool's netdev), not
// network. For a hostdev pool that is <interface type='hostdev'> with its
// PCI source address, which vfio-gate's hook gates at start begin (see
// hooks/libvirt TestParsePoolHostdev).
func libvirtPoolStartXML(ctx context.Context, h *Harness) Result {
	p, err := h.lvPoolStarted(ctx)
	if err != nil {
		return failf("%v%s", err, lvDiag())
	}
	if p.startErr != nil {
		return failf("virsh start %s: %v: %s%s", lvDomainPool, p.startErr, clip(p.startOut, 300), lvDiag())
	}
	x, el, err := lvHookIface(lvDomainPool, "start", "begin")
	if err != nil {
		return failf("%v", err)
	}
	if x.Type != "direct" || x.Source.Dev != p.netdev {
		return failf("start begin <interface> does not show the allocated device (type direct, dev %s): %s", p.netdev, el)
	}
	return passf("start begin: %s", el)
}

// libvirtPoolDestroy (issue 7): the domain ran (vfio-gate's hook found no
// host PCI function in it); `virsh destroy` ends it; libvirt's release end
// reached the daemon, which held nothing for the domain (its log says so;
// status lists no release: there was nothing to give back); the release end
// XML shows the interface as type='network' again (libvirt released the
// allocation before the hook).
func libvirtPoolDestroy(ctx context.Context, h *Harness) Result {
	p, err := h.lvPoolStarted(ctx)
	if err != nil {
		return failf("%v%s", err, lvDiag())
	}
	if p.startErr != nil {
		return failf("the domain did not start: %v", p.startErr)
	}
	if out, err := virsh(ctx, "domstate", lvDomainPool); err != nil || strings.TrimSpace(out) != "running" {
		return failf("virsh domstate %s: %v: %q, want running", lvDomainPool, err, out)
	}
	out, err := virsh(ctx, "destroy", lvDomainPool)
	p.destroyed = err == nil
	if err != nil {
		return failf("virsh destroy %s: %v: %s", lvDomainPool, err, out)
	}
	const nothing = `msg="release of a domain the daemon holds nothing for" domain=` + lvDomainPool
	var line string
	for deadline := time.Now().Add(15 * time.Second); line == "" && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		b, _ := os.ReadFile(lvDaemonLog)
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, nothing) {
				line = l
			}
		}
	}
	trace := lvTraceLines(lvDomainPool)
	if !slices.ContainsFunc(trace, func(l string) bool { return strings.HasPrefix(l, "release end ") }) {
		return failf("the trace hook saw no \"release end\" for %s: %q", lvDomainPool, trace)
	}
	if line == "" {
		return failf("the daemon log has no %q%s", nothing, lvDiag())
	}
	st, err := h.lvStatus(ctx)
	if err != nil {
		return failf("%v", err)
	}
	if _, held := st.Domains[lvDomainPool]; held {
		return failf("the daemon holds %v for %s", st.Domains[lvDomainPool], lvDomainPool)
	}
	x, el, err := lvHookIface(lvDomainPool, "release", "end")
	if err != nil {
		return failf("%v", err)
	}
	if x.Type != "network" || x.Source.Dev != "" {
		return failf("release end <interface> still shows the allocation: %s", el)
	}
	if _, err := h.waitDriver(ctx, p.fn.BDF, "e1000e", 5*time.Second); err != nil {
		return failf("after the destroy: %v", err)
	}
	return passf("trace %q; daemon: %s; release end: %s", trace, line[strings.Index(line, "msg="):], el)
}
