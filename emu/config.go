package emu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/vfio-gate/vfio-gate/pci"
)

// Config-space layout of the software function.
const (
	// DSNOffset is the Device Serial Number extended capability (when the
	// identity has a DSN).
	DSNOffset = 0x100
	// DOEOffset is the DOE extended capability: right after the DSN
	// capability, or at 0x100 without one.
	doeOffsetWithDSN = 0x110
	doeRegsSize      = 0x18 // PCI_DOE_CAP_SIZEOF
	bar0Size         = 64 << 10
	pcieCapOffset    = 0x40
)

// DOERegisters is the register file of a DOE instance: the dwords at +0x04
// (Capabilities) to +0x14 (Read Data Mailbox) of the capability, addressed
// by their offset within the capability. The doe package's device model
// implements it.
type DOERegisters interface {
	ReadReg(reg uint16) uint32
	WriteReg(reg uint16, v uint32)
}

// ErrConfigAccess is returned for config accesses real hardware would not
// perform: unaligned or wider than a dword for writes, out of range.
var ErrConfigAccess = errors.New("emu: bad config space access")

// ConfigSpace is the 4 KiB configuration space of the software function. It
// implements pci.ConfigSpace: reads and writes are naturally aligned 1, 2 or
// 4 byte accesses (reads may also cover whole aligned ranges, as a snapshot
// does). Writes change only the bits real hardware lets software write
// (Command, BAR0 sizing); the DOE registers are passed to the DOE model,
// which sees only dword accesses (as QEMU's pcie_doe.c does).
type ConfigSpace struct {
	mu     sync.Mutex
	b      [pci.ConfigSize]byte
	wmask  [pci.ConfigSize]byte
	doeOff int64
	doe    DOERegisters
	// onLockedWrite is called (without the lock held) after a write to a
	// register TDISP LOCK freezes: command, BARs, expansion ROM.
	onLockedWrite func(off int64)
}

// lockedRegister reports whether off is a register LOCK_INTERFACE freezes.
func lockedRegister(off int64) bool {
	return (off >= 0x04 && off < 0x06) || (off >= 0x10 && off < 0x28) || (off >= 0x30 && off < 0x34)
}

// NewConfigSpace builds the config space of a function with identity id: a
// type-0 header with its IDs, a 64-bit 64 KiB memory BAR0, a PCI Express
// endpoint capability, a DSN extended capability (if id.DSN != 0) and a DOE
// extended capability whose registers are served by regs (nil = a DOE
// capability whose registers read as zero).
func NewConfigSpace(id Identity, regs DOERegisters) *ConfigSpace {
	c := &ConfigSpace{doe: regs}
	le := binary.LittleEndian
	// Type-0 header: IDs, class, revision, a capability list.
	le.PutUint16(c.b[0x00:], id.Vendor)
	le.PutUint16(c.b[0x02:], id.Device)
	le.PutUint16(c.b[0x06:], 1<<4) // Status: capability list present
	c.b[0x08] = id.Revision
	c.b[0x09], c.b[0x0a], c.b[0x0b] = byte(id.Class), byte(id.Class>>8), byte(id.Class>>16)
	le.PutUint16(c.b[0x2c:], id.SubVendor)
	le.PutUint16(c.b[0x2e:], id.SubDevice)
	c.b[0x34] = pcieCapOffset
	c.b[pcieCapOffset] = pci.CapIDPCIExpress // next = 0
	c.b[pcieCapOffset+2] = 0x02              // version 2, endpoint
	// Command: I/O, memory, bus master, interrupt disable are writable.
	le.PutUint16(c.wmask[0x04:], 0x0407)
	// BAR0: 64-bit non-prefetchable memory (type 10b), 64 KiB.
	le.PutUint32(c.b[0x10:], 0x4)
	le.PutUint32(c.wmask[0x10:], ^uint32(bar0Size-1))
	le.PutUint32(c.wmask[0x14:], 0xffffffff)
	// PCI Express capability (version 2, endpoint) from the header builder;
	// Device Capabilities: 512-byte max payload.
	le.PutUint32(c.b[pcieCapOffset+4:], 0x2)
	off := uint32(DSNOffset)
	if id.DSN != 0 {
		le.PutUint32(c.b[off:], extCapHeader(pci.ExtCapIDDSN, 1, doeOffsetWithDSN))
		le.PutUint64(c.b[off+4:], id.DSN)
		off = doeOffsetWithDSN
	}
	le.PutUint32(c.b[off:], extCapHeader(pci.ExtCapIDDOE, 1, 0))
	c.doeOff = int64(off)
	return c
}

func extCapHeader(id uint16, ver uint8, next uint32) uint32 {
	return uint32(id) | uint32(ver&0xf)<<16 | next<<20
}

// DOEOffset is the offset of the DOE extended capability.
func (c *ConfigSpace) DOEOffset() int64 { return c.doeOff }

// inDOE reports whether the dword at off is a DOE register (not the header).
func (c *ConfigSpace) inDOE(off int64) bool {
	return c.doe != nil && off >= c.doeOff+4 && off < c.doeOff+doeRegsSize
}

// ReadAt implements io.ReaderAt.
func (c *ConfigSpace) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= pci.ConfigSize {
		return 0, io.EOF
	}
	n := len(p)
	if off+int64(n) > pci.ConfigSize {
		n = int(pci.ConfigSize - off)
	}
	if len(p) <= 4 && off%int64(max(len(p), 1)) != 0 {
		return 0, fmt.Errorf("%w: read of %d bytes at %#x", ErrConfigAccess, len(p), off)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := 0; i < n; {
		dw := (off + int64(i)) &^ 3
		var v [4]byte
		if c.inDOE(dw) {
			binary.LittleEndian.PutUint32(v[:], c.doe.ReadReg(uint16(dw-c.doeOff)))
		} else {
			copy(v[:], c.b[dw:dw+4])
		}
		for j := int((off + int64(i)) - dw); j < 4 && i < n; j++ {
			p[i] = v[j]
			i++
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// WriteAt implements io.WriterAt for aligned 1, 2 and 4 byte writes.
func (c *ConfigSpace) WriteAt(p []byte, off int64) (int, error) {
	size := int64(len(p))
	if (size != 1 && size != 2 && size != 4) || off < 0 || off+size > pci.ConfigSize || off%size != 0 {
		return 0, fmt.Errorf("%w: write of %d bytes at %#x", ErrConfigAccess, len(p), off)
	}
	c.mu.Lock()
	unlock := c.mu.Unlock
	defer func() { unlock() }()
	if c.onLockedWrite != nil && lockedRegister(off) {
		hook := c.onLockedWrite
		unlock = func() { c.mu.Unlock(); hook(off) }
	}
	if c.inDOE(off &^ 3) {
		// The DOE model sees dword writes only; narrower ones are dropped,
		// as QEMU's model does.
		if size == 4 {
			c.doe.WriteReg(uint16(off-c.doeOff), binary.LittleEndian.Uint32(p))
		}
		return len(p), nil
	}
	for i, v := range p {
		o := off + int64(i)
		c.b[o] = c.b[o]&^c.wmask[o] | v&c.wmask[o]
	}
	return len(p), nil
}

// Snapshot returns a copy of the whole config space as a reader would see it.
func (c *ConfigSpace) Snapshot() []byte {
	b := make([]byte, pci.ConfigSize)
	_, _ = c.ReadAt(b, 0)
	return b
}
