package gatetest

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2/transport"

	"github.com/vfio-gate/vfio-gate/emu"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/pci/sysfstest"
	"github.com/vfio-gate/vfio-gate/tpm"
	"github.com/vfio-gate/vfio-gate/vfio"
)

// NVMe is the attested model of the fixtures (QEMU NVMe IDs).
var NVMe = emu.Identity{Vendor: 0x1b36, Device: 0x0010, Class: 0x010802, Revision: 0x02, SubVendor: 0x1af4, SubDevice: 0x1100}

// Must fails the test on a non-nil error.
func Must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// BDF parses s or fails the test.
func BDF(t testing.TB, s string) pci.BDF {
	t.Helper()
	b, err := pci.ParseBDF(s)
	Must(t, err)
	return b
}

// WithDSN gives id the fixture serial number n.
func WithDSN(id emu.Identity, n uint64) emu.Identity {
	id.DSN = 0x00c0ffee00000000 | n
	return id
}

// MemConfig is a read-only config space in memory (writes are dropped).
type MemConfig []byte

// ReadAt implements io.ReaderAt.
func (m MemConfig) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= int64(len(m)) {
		return 0, io.EOF
	}
	n := copy(p, m[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// WriteAt implements io.WriterAt and drops the write.
func (m MemConfig) WriteAt(p []byte, off int64) (int, error) { return len(p), nil }

// NopCloser is the io.Closer of an in-memory config space.
type NopCloser struct{}

// Close does nothing.
func (NopCloser) Close() error { return nil }

// NewTree makes dir/sys as a sysfstest tree with the vfio-pci driver
// registered, and returns it with its path.
func NewTree(t testing.TB, dir string) (*sysfstest.Tree, string) {
	t.Helper()
	sysDir := filepath.Join(dir, "sys")
	Must(t, os.Mkdir(sysDir, 0o755))
	tree, err := sysfstest.New(sysDir)
	Must(t, err)
	Must(t, tree.Driver("vfio-pci"))
	return tree, sysDir
}

// OpenTPM opens the TPM simulator (closed at cleanup) and a recorder
// logging to logPath.
func OpenTPM(t testing.TB, logPath string) (transport.TPMCloser, *tpm.Recorder) {
	t.Helper()
	tp, err := tpm.Open("sim")
	Must(t, err)
	t.Cleanup(func() { tp.Close() })
	rec, err := tpm.NewRecorder(tp, tpm.RecorderOptions{Dir: logPath})
	Must(t, err)
	return tp, rec
}

// ReferenceYAML is the policy `reference:` map of emu's good measurements
// (indices 1..6), one line each, indented for a rule's measurements block.
func ReferenceYAML() string {
	var ref strings.Builder
	for _, m := range emu.GoodMeasurements() {
		if m.Index > 6 {
			continue
		}
		fmt.Fprintf(&ref, "        %d: [sha256:%x, sha384:%x, sha512:%x]\n", m.Index, sha256.Sum256(m.Value), sha512.Sum384(m.Value), sha512.Sum512(m.Value))
	}
	return ref.String()
}

// NVMeRule is the policy rule "nvme" that accepts emu's good device (QEMU
// NVMe IDs, SPDM 1.2+, chain to root.pem, CMA SAN, signed measurements
// equal to ReferenceYAML), ending inside its measurements block so that a
// caller may append more keys (min_svn, ...) at six spaces.
func NVMeRule() string {
	return `  - name: nvme
    match: {vendor: 0x1b36, device: [0x0010]}
    spdm:
      min_version: "1.2"
      trust_anchors: [root.pem]
      require_cma_san: true
    measurements:
      require_signed: true
      reference:
` + ReferenceYAML()
}

// Events decodes the data of the log's events of one kind, in order.
func Events[T any](t testing.TB, logPath, kind string) []T {
	t.Helper()
	l, err := tpm.ReadBoot(logPath, 0)
	Must(t, err)
	var out []T
	for _, r := range l.Records {
		if r.Event.Kind == kind {
			var v T
			Must(t, json.Unmarshal(r.Event.Data, &v))
			out = append(out, v)
		}
	}
	return out
}

// Kernel plays the kernel's side of the sysfs writes vfio makes, on a
// sysfstest tree: driver_override, drivers_probe (a vfio-pci bind makes the
// group's /dev/vfio node in DevDir), unbind and bind.
type Kernel struct {
	Tree   *sysfstest.Tree
	DevDir string
	// Fail maps "path=value" to the error that write returns.
	Fail map[string]error
	// OnWrite, if set, sees every write as "write PATH=VALUE".
	OnWrite func(string)
}

// NewKernel makes dir/dev-vfio and a kernel over tree.
func NewKernel(t testing.TB, tree *sysfstest.Tree, dir string) *Kernel {
	t.Helper()
	d := filepath.Join(dir, "dev-vfio")
	Must(t, os.Mkdir(d, 0o755))
	return &Kernel{Tree: tree, DevDir: d, Fail: map[string]error{}}
}

// ApplyOptions are vfio's options writing through the kernel.
func (k *Kernel) ApplyOptions() vfio.ApplyOptions {
	return vfio.ApplyOptions{DevVFIO: k.DevDir, Wait: time.Second, Poll: time.Millisecond, Write: k.Write}
}

// Write is vfio.ApplyOptions.Write.
func (k *Kernel) Write(name, value string) error {
	if k.OnWrite != nil {
		k.OnWrite("write " + name + "=" + strings.TrimSpace(value))
	}
	if err := k.Fail[name+"="+value]; err != nil {
		return err
	}
	t := k.Tree
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
			return os.WriteFile(filepath.Join(k.DevDir, filepath.Base(g)), nil, 0o600)
		}
		return nil
	case len(parts) == 5 && parts[2] == "drivers" && parts[4] == "unbind":
		return t.Unbind(value)
	case len(parts) == 5 && parts[2] == "drivers" && parts[4] == "bind":
		return t.Bind(value, parts[3])
	}
	return fmt.Errorf("kernel: unexpected write %s=%q", name, value)
}

// DriverOf is the driver bound to b ("" = none).
func (k *Kernel) DriverOf(b string) string {
	l, err := os.Readlink(filepath.Join(k.Tree.Dir, sysfstest.DevicePath(b), "driver"))
	if err != nil {
		return ""
	}
	return filepath.Base(l)
}

// Override is b's driver_override.
func (k *Kernel) Override(b string) string {
	v, _ := os.ReadFile(filepath.Join(k.Tree.Dir, sysfstest.DevicePath(b), "driver_override"))
	return strings.TrimSpace(string(v))
}
