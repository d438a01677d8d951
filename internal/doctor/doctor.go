package doctor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/vfio-gate/vfio-gate/daemon"
	lvhook "github.com/vfio-gate/vfio-gate/hooks/libvirt"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/policy"
	"github.com/vfio-gate/vfio-gate/tpm"
)

// Schema names the shape of `doctor --json`.
const Schema = "vfio-gate/doctor/v1"

// Check results.
const (
	OK   = "ok"
	Warn = "warn"
	Fail = "fail"
)

// Check is one line of the report.
type Check struct {
	Name    string `json:"name"`
	Status  string `json:"status"` // ok | warn | fail
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"` // what to do (warn and fail)
}

// Report is every check's line; OK when no check failed.
type Report struct {
	Schema string  `json:"schema"`
	OK     bool    `json:"ok"` // no check failed
	Checks []Check `json:"checks"`
}

// Host is what doctor looks at; tests replace the pieces.
type Host struct {
	Sysfs      string // sysfs root
	LibvirtDir string // libvirt's configuration directory (/etc/libvirt)
	Policy     string // the policy file
	StateDir   string
	// TPM is the TPM decisions are recorded into (a tpm.Open spec), or
	// TPMErr why none may be; TPMName says which, for messages.
	TPM     string
	TPMErr  error
	TPMName string

	LibvirtVersion func(context.Context) string
	OpenTPM        func(string) (transport.TPMCloser, error)
	// DaemonStatus asks the daemon, within DaemonTimeout (0: 5s).
	DaemonStatus  func(context.Context) (*daemon.Status, error)
	DaemonTimeout time.Duration
	Geteuid       func() int // nil: os.Geteuid
	BPFProbe      func() error
	PolicyLoad    *policy.LoadOptions
	// OwnerUID is who must own the state dir: root (tests: themselves).
	OwnerUID uint32
}

// Run runs every check; none stops the others.
func Run(ctx context.Context, h *Host) *Report {
	rep := &Report{Schema: Schema, OK: true}
	add := func(name, status, msg, fix string) {
		rep.Checks = append(rep.Checks, Check{Name: name, Status: status, Message: msg, Fix: fix})
		if status == Fail {
			rep.OK = false
		}
	}
	h.checkIOMMU(add)
	h.checkVFIO(add)
	h.checkLockdown(add)
	pol := h.checkPolicy(add)
	h.checkTPM(pol, add)
	h.checkStateDir(add)
	h.checkLibvirt(ctx, add)
	h.checkDaemon(ctx, add)
	h.checkBPF(add)
	return rep
}

type addFunc func(name, status, msg, fix string)

func (h *Host) path(rel string) string { return filepath.Join(h.Sysfs, rel) }

func (h *Host) checkIOMMU(add addFunc) {
	units, _ := os.ReadDir(h.path("class/iommu"))
	groups, err := os.ReadDir(h.path("kernel/iommu_groups"))
	switch {
	case err != nil || len(groups) == 0:
		add("iommu", Fail, "no IOMMU groups under "+h.path("kernel/iommu_groups"),
			"enable VT-d/AMD-Vi in the firmware and boot with intel_iommu=on (Intel) or amd_iommu=on; vfio-pci needs an IOMMU")
	case len(units) == 0:
		add("iommu", Warn, fmt.Sprintf("%d IOMMU groups but no IOMMU unit in %s", len(groups), h.path("class/iommu")),
			"check dmesg for DMAR/AMD-Vi: groups without an IOMMU unit suggest a software-only setup")
	default:
		add("iommu", OK, fmt.Sprintf("IOMMU enabled: %d unit(s), %d group(s)", len(units), len(groups)), "")
	}
}

func (h *Host) checkVFIO(add addFunc) {
	if _, err := os.Stat(h.path("bus/pci/drivers/vfio-pci")); err == nil {
		add("vfio-pci", OK, "vfio-pci driver registered", "")
		return
	}
	if _, err := os.Stat(h.path("module/vfio_pci")); err == nil {
		add("vfio-pci", Warn, "vfio_pci module present but its driver is not registered", "modprobe vfio-pci")
		return
	}
	add("vfio-pci", Warn, "vfio-pci is not loaded", "modprobe vfio-pci (and add it to /etc/modules-load.d/ to load at boot)")
}

func (h *Host) checkLockdown(add addFunc) {
	b, err := os.ReadFile(h.path("kernel/security/lockdown"))
	if errors.Is(err, fs.ErrNotExist) {
		add("lockdown", OK, "no lockdown LSM: user-space DOE allowed (root, function on vfio-pci or no driver)", "")
		return
	}
	if err != nil {
		add("lockdown", Warn, "cannot read lockdown state: "+err.Error(), "run doctor as root")
		return
	}
	mode, err := pci.ParseLockdown(string(b))
	switch {
	case err != nil:
		add("lockdown", Warn, err.Error(), "")
	case mode == "none":
		add("lockdown", OK, "lockdown none: user-space DOE allowed (root, function on vfio-pci or no driver)", "")
	default:
		add("lockdown", Warn, "lockdown "+mode+": config-space writes from user space fail, so raw DOE/SPDM cannot run; attested rules deny mailbox-unavailable unless the kernel PCI TSM owns SPDM",
			"boot with lockdown=none if you rely on user-space attestation, or use a kernel with the PCI TSM")
	}
}

// checkPolicy loads --policy as the daemon would (permissions included)
// and returns it for the TPM check (nil when it does not load).
func (h *Host) checkPolicy(add addFunc) *policy.Policy {
	p, err := policy.Load(h.Policy, h.PolicyLoad)
	if err != nil {
		add("policy", Fail, err.Error(), "fix the file (vfio-gate policy check), chown root and chmod go-w it and its directory")
		return nil
	}
	msg := fmt.Sprintf("%s: valid, mode %s, %d rule(s), confidential default %s", h.Policy, p.Mode, len(p.Rules), p.DefaultConfidential)
	if len(p.Warnings) > 0 {
		var ws []string
		for _, w := range p.Warnings {
			ws = append(ws, fmt.Sprintf("line %d: %s", w.Line, w.Message))
		}
		add("policy", Warn, msg+"; "+strings.Join(ws, "; "), "see vfio-gate policy check")
		return p
	}
	add("policy", OK, msg, "")
	return p
}

func (h *Host) checkTPM(p *policy.Policy, add addFunc) {
	spec, err := h.TPM, h.TPMErr
	if err != nil {
		add("tpm", Fail, err.Error(), "set tpm: /dev/tpmrm0 in /etc/vfio-gate/vfio-gate.yaml")
		return
	}
	t, err := h.OpenTPM(spec)
	if err != nil {
		add("tpm", Fail, err.Error(), "load the TPM driver (tpm_crb or tpm_tis), or point --tpm at swtpm (tcp:HOST:PORT)")
		return
	}
	defer t.Close()
	pcr := tpm.DefaultPCR
	if p != nil && p.PCR > 0 {
		pcr = p.PCR
	}
	banks, err := pcrBanks(t, pcr)
	if err != nil {
		add("tpm", Fail, fmt.Sprintf("%s: reading the PCR allocation: %v", h.TPMName, err), "check the TPM (tpm2_getcap pcrs)")
		return
	}
	msg := fmt.Sprintf("%s: PCR %d allocated in %s", h.TPMName, pcr, strings.Join(banks, ", "))
	switch {
	case !slices.Contains(banks, "sha256"):
		add("tpm", Fail, msg+"; no SHA-256 bank", "allocate the SHA-256 PCR bank (tpm2_pcrallocate sha256:all+sha384:all) and reboot")
	case !slices.Contains(banks, "sha384"):
		add("tpm", Warn, msg+"; no SHA-384 bank (decisions are extended into SHA-256 only)", "tpm2_pcrallocate sha256:all+sha384:all, then reboot")
	case spec == "sim":
		add("tpm", Warn, msg, "a throwaway simulator forgets every record at exit: use /dev/tpmrm0")
	default:
		add("tpm", OK, msg, "")
	}
}

// pcrBanks lists the hash banks in which pcr is allocated.
func pcrBanks(t transport.TPM, pcr int) ([]string, error) {
	rsp, err := tpm2.GetCapability{Capability: tpm2.TPMCapPCRs, PropertyCount: 1}.Execute(t)
	if err != nil {
		return nil, err
	}
	sel, err := rsp.CapabilityData.Data.AssignedPCR()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range sel.PCRSelections {
		if pcr/8 >= len(s.PCRSelect) || s.PCRSelect[pcr/8]&(1<<(pcr%8)) == 0 {
			continue
		}
		switch s.Hash {
		case tpm2.TPMAlgSHA1:
			out = append(out, "sha1")
		case tpm2.TPMAlgSHA256:
			out = append(out, "sha256")
		case tpm2.TPMAlgSHA384:
			out = append(out, "sha384")
		case tpm2.TPMAlgSHA512:
			out = append(out, "sha512")
		default:
			out = append(out, fmt.Sprintf("alg-%#04x", uint16(s.Hash)))
		}
	}
	return out, nil
}

// safeDir reports why a directory is not safe for uid's secrets ("" when it is).
func safeDir(path string, uid uint32) string {
	fi, err := os.Stat(path)
	if err != nil {
		return err.Error()
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return path + " is not a directory"
	case ok && st.Uid != uid:
		return fmt.Sprintf("%s is owned by uid %d, not %d", path, st.Uid, uid)
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Sprintf("%s is group/other writable (%v)", path, fi.Mode().Perm())
	}
	return ""
}

func (h *Host) checkStateDir(add addFunc) {
	if _, err := os.Stat(h.StateDir); errors.Is(err, fs.ErrNotExist) {
		add("state-dir", Warn, h.StateDir+" does not exist yet", "the unit creates it (StateDirectory=vfio-gate); or mkdir -m 0700 "+h.StateDir)
		return
	}
	if why := safeDir(h.StateDir, h.OwnerUID); why != "" {
		add("state-dir", Fail, why, "chown root:root "+h.StateDir+" && chmod 0700 "+h.StateDir)
		return
	}
	add("state-dir", OK, h.StateDir+": owner and mode safe (not group/other writable)", "")
}

func (h *Host) checkLibvirt(ctx context.Context, add addFunc) {
	v := h.LibvirtVersion(ctx)
	vmsg := "libvirt " + v
	if v == "" {
		vmsg = "libvirt version unknown (libvirtd --version did not answer)"
	}
	drop := filepath.Join(h.LibvirtDir, "hooks", "qemu.d", lvhook.DropInName)
	b, err := os.ReadFile(drop)
	if err != nil {
		add("libvirt", Warn, vmsg+"; hook not installed ("+drop+")", "vfio-gate install-hook --reload")
		return
	}
	fi, _ := os.Stat(drop)
	if fi == nil || fi.Mode().Perm()&0o111 == 0 {
		add("libvirt", Fail, vmsg+"; "+drop+" is not executable: libvirt skips it", "vfio-gate install-hook")
		return
	}
	if !strings.Contains(string(b), "installed by vfio-gate install-hook") {
		add("libvirt", Warn, vmsg+"; "+drop+" was not written by vfio-gate install-hook", "check what it runs")
	}
	for _, f := range strings.Fields(string(b)) {
		if bin, ok := strings.CutPrefix(f, "'"); ok && strings.HasSuffix(bin, "'") && strings.HasPrefix(bin, "/") && !strings.Contains(bin, ".sock") {
			bin = strings.TrimSuffix(bin, "'")
			if _, err := os.Stat(bin); err != nil {
				add("libvirt", Fail, vmsg+"; the hook runs "+bin+", which does not exist", "vfio-gate install-hook --binary /usr/bin/vfio-gate")
				return
			}
			break
		}
	}
	main := filepath.Join(h.LibvirtDir, "hooks", "qemu")
	mb, merr := os.ReadFile(main)
	old, known := lvhook.NeedsDispatcher(v)
	if merr == nil && !strings.Contains(string(mb), "installed by vfio-gate install-hook") && (old || !known) {
		add("libvirt", Fail, vmsg+"; "+main+" exists and libvirt < 6.5 (or unknown) runs only it: the qemu.d/ hook is shadowed",
			"make "+main+" run hooks/qemu.d/* (or upgrade libvirt)")
		return
	}
	if merr != nil && old {
		add("libvirt", Fail, vmsg+" does not run qemu.d/ drop-ins and no hooks/qemu dispatcher exists", "vfio-gate install-hook --dispatcher")
		return
	}
	add("libvirt", OK, vmsg+"; hook installed: "+drop, "")
}

func (h *Host) checkDaemon(ctx context.Context, add addFunc) {
	d := h.DaemonTimeout
	if d <= 0 {
		d = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	st, err := h.DaemonStatus(ctx)
	switch {
	case err != nil:
		add("daemon", Warn, "not reachable: "+err.Error(), "systemctl enable --now vfio-gate (without it the libvirt hook denies every gated start)")
	case !st.Ready:
		add("daemon", Warn, "running but not ready yet: "+st.Phase, "wait, or see journalctl -u vfio-gate")
	case strings.Contains(st.TPM, "THROWAWAY"):
		add("daemon", Fail, "ready, but recording into "+st.TPM, "remove --tpm sim from its configuration and restart it")
	default:
		add("daemon", OK, fmt.Sprintf("ready; policy %s; TPM %s", st.Policy, st.TPM), "")
	}
}

func (h *Host) checkBPF(add addFunc) {
	euid := os.Geteuid
	if h.Geteuid != nil {
		euid = h.Geteuid
	}
	if euid() != 0 {
		add("bpf", Warn, "not checked: needs root", "sudo vfio-gate doctor")
		return
	}
	if err := h.BPFProbe(); err != nil {
		add("bpf", Warn, "audit BPF programs do not load: "+err.Error(), "needed only for vfio-gate audit and check/bind --audit; see the audit documentation")
		return
	}
	add("bpf", OK, "audit BPF programs load", "")
}
