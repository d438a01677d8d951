package pci

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// Sentinel errors of the sysfs model. Each is wrapped with the BDF or the
// detail that names the problem; test them with errors.Is.
var (
	// ErrNoDevice: the function does not exist (the BDF is in the error).
	ErrNoDevice = errors.New("pci: no such device")
	// ErrDeviceRemoved: the function existed and vanished mid-operation
	// (ENOENT or ENODEV after it was found: hot-unplug, remove, reset).
	ErrDeviceRemoved = errors.New("pci: device removed during the operation")
	// ErrNeedCapSysAdmin: the kernel truncated config space at 64 bytes.
	ErrNeedCapSysAdmin = errors.New("pci: config space beyond 64 bytes needs CAP_SYS_ADMIN")
	// ErrLockdown: kernel lockdown forbids user-space config-space writes.
	ErrLockdown = errors.New("pci: kernel lockdown forbids config space writes")
	// ErrReadOnlyConfig: the config file could only be opened read-only.
	ErrReadOnlyConfig = errors.New("pci: config space is open read-only (writes are impossible)")
	// ErrBadAttr: a sysfs attribute did not have the kernel's format.
	ErrBadAttr = errors.New("pci: malformed sysfs attribute")
)

// Options configure a System. The zero value (or nil) is production.
type Options struct {
	// ConfigOpener, if set, replaces the sysfs config file: the demo and
	// tests serve a software device's live config space through it.
	ConfigOpener func(BDF) (ConfigSpace, io.Closer, error)
	// Geteuid, if set, replaces os.Geteuid (tests of MayDriveDOE).
	Geteuid func() int
	// Logger receives debug records; nil discards.
	Logger *slog.Logger
}

// System is the PCI view of one sysfs tree. It is safe for concurrent use.
type System struct {
	root *Root
	opts Options
	log  *slog.Logger
	// afterFound, if set, runs once Function has found the device: tests
	// remove the device there to prove ErrDeviceRemoved.
	afterFound func()
}

// Open opens the sysfs tree at sysfsRoot ("/sys" in production).
func Open(sysfsRoot string, opts *Options) (*System, error) {
	r, err := OpenRoot(sysfsRoot)
	if err != nil {
		return nil, err
	}
	s := &System{root: r}
	if opts != nil {
		s.opts = *opts
	}
	s.log = s.opts.Logger
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// Close releases the sysfs root.
func (s *System) Close() error { return s.root.Close() }

// Root returns the confined sysfs root (for packages such as vfio).
func (s *System) Root() *Root { return s.root }

const devicesDir = "bus/pci/devices"

func devPath(bdf BDF, attr string) string {
	return devicesDir + "/" + bdf.String() + "/" + attr
}

// Functions lists every PCI function, sorted. Entries whose names are not
// canonical BDFs are skipped (and logged): they cannot be addressed safely.
func (s *System) Functions() ([]BDF, error) {
	ents, err := s.root.ReadDir(devicesDir)
	if err != nil {
		return nil, fmt.Errorf("pci: list functions: %w", err)
	}
	var out []BDF
	for _, e := range ents {
		b, err := ParseBDF(e.Name())
		if err != nil {
			s.log.Debug("skipping non-BDF entry", "name", e.Name())
			continue
		}
		out = append(out, b)
	}
	slices.SortFunc(out, CompareBDF)
	return out, nil
}

// Function is a snapshot of one PCI function's sysfs attributes.
type Function struct {
	BDF               BDF
	VendorID          uint16
	DeviceID          uint16
	SubsystemVendorID uint16 // 0 when the attribute is absent
	SubsystemDeviceID uint16
	Class             uint32 // 24-bit class code
	Revision          uint8
	Driver            string // "" when no driver is bound
	IOMMUGroup        *int   // nil when the function has no IOMMU group
	GroupMembers      []BDF  // sorted, includes the function itself
	DriverOverride    string // "" when unset ("(null)")
	// TSMConnect is the content of tsm/connect ("" when absent or empty):
	// non-empty means a platform TSM owns SPDM for this function.
	TSMConnect string
	// Missing lists optional attributes that were absent.
	Missing []string

	sys *System
}

// Function reads the attributes of bdf. It fails with ErrNoDevice when the
// function does not exist and ErrDeviceRemoved when it vanishes while read.
func (s *System) Function(bdf BDF) (*Function, error) {
	if _, err := s.root.OS().Stat(devicesDir + "/" + bdf.String()); err != nil {
		if isGone(err) {
			return nil, fmt.Errorf("%w: %s", ErrNoDevice, bdf)
		}
		return nil, fmt.Errorf("pci: %s: %w", bdf, err)
	}
	if s.afterFound != nil {
		s.afterFound()
	}
	f := &Function{BDF: bdf, sys: s}
	var err error
	hex := func(attr string, bits int, required bool) uint64 {
		if err != nil {
			return 0
		}
		v, e := s.readHex(bdf, attr, bits)
		if e != nil && !required && errors.Is(e, fs.ErrNotExist) && s.exists(bdf) {
			f.Missing = append(f.Missing, attr)
			return 0
		}
		err = e
		return v
	}
	f.VendorID = uint16(hex("vendor", 16, true))
	f.DeviceID = uint16(hex("device", 16, true))
	f.Class = uint32(hex("class", 24, true))
	f.SubsystemVendorID = uint16(hex("subsystem_vendor", 16, false))
	f.SubsystemDeviceID = uint16(hex("subsystem_device", 16, false))
	f.Revision = uint8(hex("revision", 8, false))
	if err != nil {
		return nil, err
	}
	if f.Driver, err = s.optionalLink(bdf, "driver"); err != nil {
		return nil, err
	}
	g, err := s.optionalLink(bdf, "iommu_group")
	if err != nil {
		return nil, err
	}
	if g != "" {
		n, err := ParseIOMMUGroup(g)
		if err != nil {
			return nil, fmt.Errorf("pci: %s: iommu_group: %w", bdf, err)
		}
		f.IOMMUGroup = &n
		if f.GroupMembers, err = s.GroupMembers(n); err != nil {
			return nil, fmt.Errorf("pci: %s: %w", bdf, err)
		}
	}
	for _, o := range []struct {
		attr string
		dst  *string
	}{{"driver_override", &f.DriverOverride}, {"tsm/connect", &f.TSMConnect}} {
		v, err := s.root.ReadString(devPath(bdf, o.attr))
		switch {
		case err == nil:
			*o.dst = ParseOptionalString(v)
		case isGone(err) && s.exists(bdf):
			if o.attr == "driver_override" {
				f.Missing = append(f.Missing, o.attr)
			}
		default:
			return nil, s.attrErr(bdf, o.attr, err)
		}
	}
	return f, nil
}

// GroupMembers lists the functions of IOMMU group n, sorted.
func (s *System) GroupMembers(n int) ([]BDF, error) {
	ents, err := s.root.ReadDir(fmt.Sprintf("kernel/iommu_groups/%d/devices", n))
	if err != nil {
		return nil, fmt.Errorf("pci: IOMMU group %d: %w", n, err)
	}
	var out []BDF
	for _, e := range ents {
		if b, err := ParseBDF(e.Name()); err == nil {
			out = append(out, b)
		}
	}
	slices.SortFunc(out, CompareBDF)
	return out, nil
}

func (s *System) exists(bdf BDF) bool {
	_, err := s.root.OS().Stat(devicesDir + "/" + bdf.String())
	return err == nil
}

// attrErr classifies a failed attribute access: the device vanished
// (ErrDeviceRemoved) or something else went wrong.
func (s *System) attrErr(bdf BDF, attr string, err error) error {
	if isGone(err) && !s.exists(bdf) {
		return fmt.Errorf("%w: %s (reading %s: %v)", ErrDeviceRemoved, bdf, attr, err)
	}
	if errors.Is(err, syscall.ENODEV) {
		return fmt.Errorf("%w: %s (reading %s: %v)", ErrDeviceRemoved, bdf, attr, err)
	}
	return fmt.Errorf("pci: %s: %s: %w", bdf, attr, err)
}

func (s *System) readHex(bdf BDF, attr string, bits int) (uint64, error) {
	v, err := s.root.ReadString(devPath(bdf, attr))
	if err != nil {
		return 0, s.attrErr(bdf, attr, err)
	}
	n, err := ParseHexAttr(v, bits)
	if err != nil {
		return 0, fmt.Errorf("pci: %s: %s: %w", bdf, attr, err)
	}
	return n, nil
}

// optionalLink returns the base name of a symlink, "" when it is absent.
func (s *System) optionalLink(bdf BDF, name string) (string, error) {
	v, err := s.root.LinkBase(devPath(bdf, name))
	if err == nil {
		return v, nil
	}
	if isGone(err) && s.exists(bdf) {
		return "", nil
	}
	return "", s.attrErr(bdf, name, err)
}

func isGone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENODEV)
}

// ParseHexAttr parses a sysfs hex attribute such as "0x1af4" (vendor),
// "0x020000" (class) or "0x01" (revision): a "0x" prefix, 1 to bits/4 hex
// digits, nothing else.
func ParseHexAttr(s string, bits int) (uint64, error) {
	digits, ok := strings.CutPrefix(s, "0x")
	if !ok || digits == "" || len(digits) > (bits+3)/4 {
		return 0, fmt.Errorf("%w: %q is not a %d-bit 0x-prefixed hex value", ErrBadAttr, s, bits)
	}
	v, err := strconv.ParseUint(digits, 16, bits)
	if err != nil || strings.ContainsAny(digits, "+-_") {
		return 0, fmt.Errorf("%w: %q is not a %d-bit 0x-prefixed hex value", ErrBadAttr, s, bits)
	}
	return v, nil
}

// ParseIOMMUGroup parses the base name of an iommu_group link: a decimal
// number without sign or leading zeros.
func ParseIOMMUGroup(s string) (int, error) {
	if s == "" || len(s) > 9 || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("%w: IOMMU group %q", ErrBadAttr, s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%w: IOMMU group %q", ErrBadAttr, s)
		}
	}
	n, _ := strconv.Atoi(s)
	return n, nil
}

// ParseOptionalString maps the kernel's "(null)" (driver_override unset) and
// blank content to "", and trims surrounding whitespace otherwise.
func ParseOptionalString(s string) string {
	s = strings.TrimSpace(s)
	if s == "(null)" {
		return ""
	}
	return s
}

// Lockdown returns the active kernel lockdown mode ("none", "integrity" or
// "confidentiality") from kernel/security/lockdown. A missing file means the
// LSM is not built in: "none".
func (s *System) Lockdown() (string, error) {
	v, err := s.root.ReadString("kernel/security/lockdown")
	if errors.Is(err, fs.ErrNotExist) {
		return "none", nil
	}
	if err != nil {
		return "", fmt.Errorf("pci: read lockdown: %w", err)
	}
	return ParseLockdown(v)
}

// ParseLockdown returns the bracketed word of "[none] integrity
// confidentiality". Exactly one word must be bracketed.
func ParseLockdown(s string) (string, error) {
	active := ""
	for _, w := range strings.Fields(s) {
		inner, ok := strings.CutPrefix(w, "[")
		if !ok {
			continue
		}
		inner, ok = strings.CutSuffix(inner, "]")
		if !ok || inner == "" || active != "" || strings.ContainsAny(inner, "[]") {
			return "", fmt.Errorf("%w: lockdown %q", ErrBadAttr, s)
		}
		active = inner
	}
	if active == "" {
		return "", fmt.Errorf("%w: lockdown %q has no active mode", ErrBadAttr, s)
	}
	return active, nil
}

// ConfigFile is the sysfs config file of a function.
type ConfigFile struct {
	f        *os.File
	size     int64
	writable bool
	bdf      BDF
	sys      *System
}

// Writable reports whether the file was opened for writing.
func (c *ConfigFile) Writable() bool { return c.writable }

// Size is the config space size the kernel exposes (256 or 4096).
func (c *ConfigFile) Size() int64 { return c.size }

// Close closes the file.
func (c *ConfigFile) Close() error { return c.f.Close() }

// ReadAt reads config space. A read beyond the first 64 bytes that the kernel
// truncates (no CAP_SYS_ADMIN at open) fails with ErrNeedCapSysAdmin; reads
// past the exposed size return io.EOF.
func (c *ConfigFile) ReadAt(b []byte, off int64) (int, error) {
	n, err := c.f.ReadAt(b, off)
	if n < len(b) && off+int64(len(b)) <= c.size {
		if err == nil || errors.Is(err, io.EOF) {
			// The kernel clips reads at 64 bytes (128 for CardBus) for
			// openers without CAP_SYS_ADMIN: nothing at all past that.
			if n == 0 || off+int64(n) <= 128 {
				return n, fmt.Errorf("%w (%s: read %d of %d bytes at %#x)", ErrNeedCapSysAdmin, c.bdf, n, len(b), off)
			}
			err = io.ErrUnexpectedEOF
		}
	}
	if err != nil && !errors.Is(err, io.EOF) {
		err = c.sys.attrErr(c.bdf, "config", err)
	}
	return n, err
}

// WriteAt writes config space; it fails with ErrReadOnlyConfig when the file
// is open read-only.
func (c *ConfigFile) WriteAt(b []byte, off int64) (int, error) {
	if !c.writable {
		return 0, fmt.Errorf("%w: %s", ErrReadOnlyConfig, c.bdf)
	}
	n, err := c.f.WriteAt(b, off)
	if err != nil {
		err = c.sys.writeErr(c.bdf, err)
	}
	return n, err
}

// writeErr classifies a failed config write: EPERM under an active kernel
// lockdown is ErrLockdown naming the mode.
func (s *System) writeErr(bdf BDF, err error) error {
	if errors.Is(err, syscall.EPERM) {
		if mode, lerr := s.Lockdown(); lerr == nil && mode != "none" {
			return fmt.Errorf("%w (lockdown mode %q; %s: %v)", ErrLockdown, mode, bdf, err)
		}
	}
	return s.attrErr(bdf, "config", err)
}

// ConfigLen returns the config space size cfg exposes: Size() when it has
// one (the sysfs file: 256 for conventional PCI, 4096 for PCIe), else 4096.
func ConfigLen(cfg ConfigSpace) int64 {
	if s, ok := cfg.(interface{ Size() int64 }); ok {
		return s.Size()
	}
	return ConfigSize
}

// ReadOnlyError is OpenConfig's error when the config file can be opened
// for reading only (no CAP_DAC_OVERRIDE, a read-only sysfs): DOE needs
// writes. errors.Is(err, ErrReadOnlyConfig) holds; Err is the open error.
type ReadOnlyError struct {
	BDF BDF
	Err error
}

func (e *ReadOnlyError) Error() string {
	return fmt.Sprintf("pci: %s: config space cannot be opened for writing: %v", e.BDF, e.Err)
}

// Is makes errors.Is(err, ErrReadOnlyConfig) true.
func (e *ReadOnlyError) Is(target error) bool { return target == ErrReadOnlyConfig }

func (e *ReadOnlyError) Unwrap() error { return e.Err }

// OpenConfig opens the function's config space for reading and writing. If
// the sysfs file cannot be opened for writing it fails with a
// *ReadOnlyError; OpenConfigReadOnly reads. With Options.ConfigOpener the
// opener's config space is returned instead.
func (f *Function) OpenConfig() (ConfigSpace, io.Closer, error) {
	return f.openConfig(true)
}

// OpenConfigReadOnly opens the config space for reading only: whatever the
// caller does, nothing is written to the device.
func (f *Function) OpenConfigReadOnly() (ConfigSpace, io.Closer, error) {
	return f.openConfig(false)
}

func (f *Function) openConfig(rw bool) (ConfigSpace, io.Closer, error) {
	s := f.sys
	if s.opts.ConfigOpener != nil {
		return s.opts.ConfigOpener(f.BDF)
	}
	name := devPath(f.BDF, "config")
	var file *os.File
	var err error
	writable := false
	if rw {
		file, err = s.root.OpenFile(name, os.O_RDWR)
		writable = err == nil
		if errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS) {
			return nil, nil, &ReadOnlyError{BDF: f.BDF, Err: err}
		}
	}
	if file == nil && err == nil {
		file, err = s.root.OpenFile(name, os.O_RDONLY)
	}
	if err != nil {
		if isGone(err) {
			return nil, nil, fmt.Errorf("%w: %s (opening config: %v)", ErrDeviceRemoved, f.BDF, err)
		}
		return nil, nil, fmt.Errorf("pci: %s: open config: %w", f.BDF, err)
	}
	st, err := file.Stat()
	if err != nil {
		file.Close()
		return nil, nil, s.attrErr(f.BDF, "config", err)
	}
	c := &ConfigFile{f: file, size: st.Size(), writable: writable, bdf: f.BDF, sys: s}
	return c, c, nil
}

// DSN returns the Device Serial Number (extended capability 0x0003), or
// ok == false when the function has none.
func (f *Function) DSN(cfg ConfigSpace) (dsn uint64, ok bool, err error) {
	caps, err := ExtCapabilities(cfg)
	if err != nil {
		return 0, false, err
	}
	offs := FindExt(caps, ExtCapIDDSN)
	if len(offs) == 0 {
		return 0, false, nil
	}
	lo, err := ReadU32(cfg, int64(offs[0])+4)
	if err != nil {
		return 0, false, err
	}
	hi, err := ReadU32(cfg, int64(offs[0])+8)
	if err != nil {
		return 0, false, err
	}
	return uint64(hi)<<32 | uint64(lo), true, nil
}

// String names the function for messages: "0000:3b:00.0 [1af4:1041]".
func (f *Function) String() string {
	return fmt.Sprintf("%s [%04x:%04x]", f.BDF, f.VendorID, f.DeviceID)
}
