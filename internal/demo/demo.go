// Package demo is `vfio-gate demo`'s world: a temporary sysfs tree with
// three software PCIe functions (package emu), a policy that pins the good
// one's firmware, the expected outcome of each, and the libvirt part that
// starts two confidential domains through the qemu hook against the
// daemon's backend.
package demo

import (
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vfio-gate/vfio-gate/emu"
	"github.com/vfio-gate/vfio-gate/gate"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/pci/sysfstest"
	"github.com/vfio-gate/vfio-gate/policy"
	"github.com/vfio-gate/vfio-gate/spdm"
)

// Device is one function of the demo and the outcome the demo expects.
type Device struct {
	BDF     string
	What    string
	Profile string // emu profile; "" = no DOE mailbox at all
	ID      emu.Identity
	// expected decision and reason code ("" for allow)
	WantDecision string
	WantCode     policy.Code
}

// The demo's model: QEMU's NVMe IDs (as emu.DefaultIdentity), each unit
// with its own serial number; and a NIC without DOE.
var (
	nvme = emu.Identity{Vendor: 0x1b36, Device: 0x0010, Class: 0x010802, Revision: 0x02, SubVendor: 0x1af4, SubDevice: 0x1100}
	nic  = emu.Identity{Vendor: 0x8086, Device: 0x10d3, Class: 0x020000, Revision: 0x00, SubVendor: 0x8086, SubDevice: 0x0000}
)

// Devices are the demo's three functions and their expected outcomes.
func Devices() []Device {
	good, tampered := nvme, nvme
	good.DSN, tampered.DSN = 0x00c0ffee00000001, 0x00c0ffee00000002
	return []Device{
		{BDF: "0000:01:00.0", What: "CMA/SPDM device with the firmware the policy pins (emu profile good)", Profile: "good", ID: good,
			WantDecision: policy.DecisionAllow},
		{BDF: "0000:02:00.0", What: "same model, firmware measurement tampered with (emu profile tampered)", Profile: "tampered", ID: tampered,
			WantDecision: policy.DecisionDeny, WantCode: policy.CodeMeasurementMismatch},
		{BDF: "0000:03:00.0", What: "NIC without a DOE mailbox (cannot be attested)", ID: nic,
			WantDecision: policy.DecisionDeny, WantCode: policy.CodeNoCMA},
	}
}

// memConfig is a read-only config space in memory (the device without DOE).
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

func (m memConfig) WriteAt(p []byte, off int64) (int, error) { return len(p), nil } // writes are ignored

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

// World is the demo's temporary sysfs tree, devices and policy.
type World struct {
	Dir     string
	Sysfs   string // the sysfs root
	Policy  string // the policy file
	Devices []Device
	configs map[pci.BDF]pci.ConfigSpace
}

// Build creates the tree, the software devices and the policy in dir.
func Build(dir string) (*World, error) {
	w := &World{Dir: dir, Sysfs: filepath.Join(dir, "sys"), Devices: Devices(), configs: map[pci.BDF]pci.ConfigSpace{}}
	if err := os.MkdirAll(w.Sysfs, 0o755); err != nil {
		return nil, err
	}
	tree, err := sysfstest.New(w.Sysfs)
	if err != nil {
		return nil, err
	}
	var anchors []byte
	for i, d := range w.Devices {
		b, err := pci.ParseBDF(d.BDF)
		if err != nil {
			return nil, err
		}
		f := sysfstest.Function{BDF: d.BDF, Vendor: d.ID.Vendor, Device: d.ID.Device, SubVendor: d.ID.SubVendor,
			SubDev: d.ID.SubDevice, Class: d.ID.Class, Revision: d.ID.Revision, IOMMUGroup: i + 1}
		if d.Profile == "" {
			cfg := sysfstest.Header(f)
			f.Config = cfg
			w.configs[b] = memConfig(cfg)
		} else {
			dev, err := emu.New(emu.Config{BDF: b, Identity: d.ID, Profile: d.Profile, Algorithms: spdm.AsymECDSAP384})
			if err != nil {
				return nil, err
			}
			f.Config = dev.ConfigSpace().Snapshot()
			w.configs[b] = dev
			if d.Profile == "good" {
				anchors = dev.AnchorsPEM()
			}
		}
		if err := tree.Add(f); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "emu-root.pem"), anchors, 0o600); err != nil {
		return nil, err
	}
	w.Policy = filepath.Join(dir, "policy.yaml")
	return w, os.WriteFile(w.Policy, []byte(Policy()), 0o600)
}

// Opener serves the software config spaces (pci.Options.ConfigOpener).
func (w *World) Opener(b pci.BDF) (pci.ConfigSpace, io.Closer, error) {
	c, ok := w.configs[b]
	if !ok {
		return nil, nil, fmt.Errorf("%w: %s", pci.ErrNoDevice, b)
	}
	return c, nopCloser{}, nil
}

// Policy pins every measurement (indices 1–6) of the good firmware, in
// each hash the device may negotiate, as `policy capture` would.
func Policy() string {
	var ref strings.Builder
	for _, m := range emu.GoodMeasurements() {
		if m.Index > 6 {
			continue
		}
		s256 := sha256.Sum256(m.Value)
		s384 := sha512.Sum384(m.Value)
		s512 := sha512.Sum512(m.Value)
		fmt.Fprintf(&ref, "        %d: [sha256:%x, sha384:%x, sha512:%x]\n", m.Index, s256, s384, s512)
	}
	return fmt.Sprintf(`# vfio-gate demo policy (generated by vfio-gate demo)
version: 1
mode: enforce
defaults:
  confidential: deny-unattested
  non_confidential: allow-unattested
rules:
  - name: demo-nvme
    match: {vendor: 0x%04x, device: [0x%04x]}
    spdm:
      min_version: "1.2"
      trust_anchors: [emu-root.pem]
      require_cma_san: true
    measurements:
      require_signed: true
      reference:
%s      min_svn: 3
      forbid_debug_mode: true
`, nvme.Vendor, nvme.Device, ref.String())
}

// Expectation is one function's expected and actual outcome.
type Expectation struct {
	BDF      string `json:"bdf"`
	What     string `json:"what"`
	Decision string `json:"decision"`
	Code     string `json:"code,omitempty"`
	Got      string `json:"got"`
	OK       bool   `json:"ok"`
}

// Compare checks each decision against the expected outcome: the
// decision, and for a deny the expected code among the reasons.
func Compare(devs []Device, ds []gate.Decision) ([]Expectation, bool) {
	all := len(ds) == len(devs)
	var out []Expectation
	for _, d := range devs {
		x := Expectation{BDF: d.BDF, What: d.What, Decision: d.WantDecision, Code: string(d.WantCode), Got: "no decision"}
		for _, got := range ds {
			if got.BDF.String() != d.BDF {
				continue
			}
			var codes []string
			for _, r := range got.Verdict.Reasons {
				codes = append(codes, string(r.Code))
			}
			x.Got = got.Verdict.Decision
			if len(codes) > 0 {
				x.Got += " (" + strings.Join(codes, ", ") + ")"
			}
			x.OK = got.Verdict.Decision == d.WantDecision && got.Recorded && got.Err == nil
			if d.WantCode != "" {
				x.OK = x.OK && slices.Contains(codes, string(d.WantCode))
			} else {
				x.OK = x.OK && len(codes) == 0
			}
		}
		all = all && x.OK
		out = append(out, x)
	}
	return out, all
}

// BDFs are the addresses of the world's functions, in Devices order.
func (w *World) BDFs() ([]pci.BDF, error) {
	var out []pci.BDF
	for _, d := range w.Devices {
		b, err := pci.ParseBDF(d.BDF)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// StateDir and LockDir are the state directory and the per-function lock
// directory the demo uses unless told otherwise.
func (w *World) StateDir() string { return filepath.Join(w.Dir, "state") }

// LockDir: see StateDir.
func (w *World) LockDir() string { return filepath.Join(w.Dir, "locks") }

// StepsOK reports whether every hook call of the libvirt part met its
// expectation.
func StepsOK(steps []HookStep) bool {
	for _, x := range steps {
		if !x.OK {
			return false
		}
	}
	return true
}
