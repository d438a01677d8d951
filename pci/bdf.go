package pci

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
)

// BDF is a PCI function address: segment (domain), bus, device, function.
type BDF struct {
	Domain   uint16
	Bus      uint8
	Device   uint8 // 0..31
	Function uint8 // 0..7
}

// ErrBadBDF is returned for any address not of the exact form 0000:3b:00.0.
var ErrBadBDF = errors.New("pci: malformed PCI address")

// ParseBDF parses the canonical sysfs form "dddd:bb:dd.f" (lower- or upper-case
// hex, exactly 12 characters). Nothing else is accepted: the result is used to
// build sysfs paths, so "../", short forms and whitespace are all rejected here.
func ParseBDF(s string) (BDF, error) {
	if len(s) != 12 || s[4] != ':' || s[7] != ':' || s[10] != '.' {
		return BDF{}, fmt.Errorf("%w %q (want dddd:bb:dd.f, e.g. 0000:3b:00.0)", ErrBadBDF, s)
	}
	dom, ok1 := hexN(s[0:4])
	bus, ok2 := hexN(s[5:7])
	dev, ok3 := hexN(s[8:10])
	fn, ok4 := hexN(s[11:12])
	if !ok1 || !ok2 || !ok3 || !ok4 || dev > 31 || fn > 7 {
		return BDF{}, fmt.Errorf("%w %q (want dddd:bb:dd.f with device <= 1f and function <= 7)", ErrBadBDF, s)
	}
	return BDF{Domain: uint16(dom), Bus: uint8(bus), Device: uint8(dev), Function: uint8(fn)}, nil
}

func hexN(s string) (uint32, bool) {
	var v uint32
	for i := 0; i < len(s); i++ {
		c := s[i]
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		v = v<<4 | uint32(d)
	}
	return v, true
}

// CompareBDF orders functions by domain, bus, device and function (the
// order of sysfs listings and of every vfio-gate report).
func CompareBDF(a, b BDF) int {
	return cmp.Or(cmp.Compare(a.Domain, b.Domain), cmp.Compare(a.Bus, b.Bus), cmp.Compare(a.Device, b.Device), cmp.Compare(a.Function, b.Function))
}

// Normalize is bdfs sorted by domain, bus, device and function, without
// duplicates; bdfs itself is not changed.
func Normalize(bdfs []BDF) []BDF {
	out := slices.Clone(bdfs)
	slices.SortFunc(out, CompareBDF)
	return slices.Compact(out)
}

// String returns the canonical lower-case sysfs name.
func (b BDF) String() string {
	return fmt.Sprintf("%04x:%02x:%02x.%x", b.Domain, b.Bus, b.Device, b.Function)
}

// DevFn returns the 8-bit device/function number (device<<3 | function).
func (b BDF) DevFn() uint8 { return b.Device<<3 | b.Function }

// RequesterID returns the 16-bit PCIe Requester ID (bus<<8 | devfn).
func (b BDF) RequesterID() uint16 { return uint16(b.Bus)<<8 | uint16(b.DevFn()) }

// MarshalText implements encoding.TextMarshaler.
func (b BDF) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with ParseBDF's strictness.
func (b *BDF) UnmarshalText(t []byte) error {
	v, err := ParseBDF(string(t))
	if err != nil {
		return err
	}
	*b = v
	return nil
}
