package pci

import (
	"errors"
	"fmt"
)

// Capability IDs used by vfio-gate.
const (
	CapIDPCIExpress = 0x10 // standard: PCI Express capability
	CapIDMSIX       = 0x11

	ExtCapIDDSN = 0x0003 // Device Serial Number
	ExtCapIDDOE = 0x002E // Data Object Exchange
	ExtCapIDIDE = 0x0030
)

// Capability is one entry of a standard or extended capability list.
type Capability struct {
	ID      uint16
	Version uint8 // extended capabilities only
	Offset  uint16
}

// ErrCapLoop is returned when a capability list is malformed: a loop, a
// pointer out of range or into the header, or more entries than can fit.
var ErrCapLoop = errors.New("pci: malformed capability list")

const (
	statusReg     = 0x06
	statusCapList = 1 << 4
	capPtrReg     = 0x34
	extCapStart   = 0x100
	maxStdCaps    = (256 - 0x40) / 2   // each entry takes at least 2 bytes
	maxExtCaps    = (4096 - 0x100) / 4 // each entry takes at least 4 bytes
)

// Capabilities walks the standard capability list. A hostile list ends in an
// error wrapping ErrCapLoop, never a hang.
func Capabilities(cfg ConfigSpace) ([]Capability, error) {
	st, err := ReadU16(cfg, statusReg)
	if err != nil {
		return nil, err
	}
	if st&statusCapList == 0 {
		return nil, nil
	}
	p, err := ReadU8(cfg, capPtrReg)
	if err != nil {
		return nil, err
	}
	var caps []Capability
	seen := map[uint8]bool{}
	for ptr := p &^ 3; ptr != 0; {
		if ptr < 0x40 {
			return caps, fmt.Errorf("%w: standard capability pointer %#x points into the header", ErrCapLoop, ptr)
		}
		if seen[ptr] || len(caps) >= maxStdCaps {
			return caps, fmt.Errorf("%w: standard capability list loops at %#x", ErrCapLoop, ptr)
		}
		seen[ptr] = true
		hdr, err := ReadU16(cfg, int64(ptr))
		if err != nil {
			return caps, err
		}
		caps = append(caps, Capability{ID: hdr & 0xff, Offset: uint16(ptr)})
		ptr = uint8(hdr>>8) &^ 3
	}
	return caps, nil
}

// ExtCapabilities walks the PCIe extended capability list from 0x100. An
// all-zero or all-ones header at 0x100 means "no extended capabilities". A
// hostile list ends in an error wrapping ErrCapLoop, never a hang.
func ExtCapabilities(cfg ConfigSpace) ([]Capability, error) {
	if ConfigLen(cfg) <= extCapStart {
		return nil, nil // conventional PCI (256-byte config space): none
	}
	var caps []Capability
	seen := map[uint16]bool{}
	for off := uint16(extCapStart); off != 0; {
		if off < extCapStart || off > ConfigSize-4 {
			return caps, fmt.Errorf("%w: extended capability pointer %#x out of range", ErrCapLoop, off)
		}
		if seen[off] || len(caps) >= maxExtCaps {
			return caps, fmt.Errorf("%w: extended capability list loops at %#x", ErrCapLoop, off)
		}
		seen[off] = true
		hdr, err := ReadU32(cfg, int64(off))
		if err != nil {
			return caps, err
		}
		if hdr == 0 || hdr == 0xffffffff {
			if off == extCapStart {
				return nil, nil
			}
			return caps, fmt.Errorf("%w: empty extended capability header at %#x", ErrCapLoop, off)
		}
		caps = append(caps, Capability{ID: uint16(hdr), Version: uint8(hdr>>16) & 0xf, Offset: off})
		off = uint16(hdr>>20) &^ 3
	}
	return caps, nil
}

// FindExt returns the offsets of every extended capability with the given ID.
func FindExt(caps []Capability, id uint16) []uint16 {
	var offs []uint16
	for _, c := range caps {
		if c.ID == id {
			offs = append(offs, c.Offset)
		}
	}
	return offs
}
