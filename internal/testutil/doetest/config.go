package doetest

import (
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/vfio-gate/vfio-gate/doe"
	"github.com/vfio-gate/vfio-gate/pci"
)

// Identity of the function NewConfig builds (QEMU's NVMe controller).
const (
	VendorID uint16 = 0x1b36
	DeviceID uint16 = 0x0010
	Class    uint32 = 0x010802
)

// Config is a 4 KiB config space (a pci.ConfigSpace) of a type-0
// endpoint with a PCI Express capability at 0x40 and one DOE capability per
// Model, chained from 0x100 in steps of 0x18. Accesses to the DOE registers
// go to the models and honour only aligned 4-byte accesses (others read as
// zero and are ignored, like QEMU); the rest is plain memory. Safe for
// concurrent use.
type Config struct {
	mu     sync.Mutex
	mem    [pci.ConfigSize]byte
	doe    []doeAt
	last   uint16 // offset of the last extended capability
	end    uint16 // first free offset
	reads  atomic.Uint64
	writes atomic.Uint64
}

type doeAt struct {
	off uint16
	m   *doe.Model
}

// NewConfig returns a config space with one DOE mailbox per model.
func NewConfig(models ...*doe.Model) *Config {
	c := &Config{end: 0x100}
	le := binary.LittleEndian
	le.PutUint16(c.mem[0x00:], VendorID)
	le.PutUint16(c.mem[0x02:], DeviceID)
	le.PutUint16(c.mem[0x06:], 1<<4) // Status: Capabilities List
	le.PutUint32(c.mem[0x08:], Class<<8|0x02)
	c.mem[0x0e] = 0x00 // header type 0
	c.mem[0x34] = 0x40
	le.PutUint16(c.mem[0x40:], pci.CapIDPCIExpress) // next 0
	le.PutUint16(c.mem[0x42:], 0x0002)              // PCIe cap version 2, endpoint
	for _, m := range models {
		off := c.AddExtCap(pci.ExtCapIDDOE, 1, make([]byte, doe.CapSize-4))
		c.doe = append(c.doe, doeAt{off, m})
	}
	return c
}

// AddExtCap appends an extended capability (header plus body) to the list
// and returns its offset. It panics if config space is full (test setup).
func (c *Config) AddExtCap(id uint16, version uint8, body []byte) uint16 {
	c.mu.Lock()
	defer c.mu.Unlock()
	off := c.end
	size := (4 + len(body) + 3) &^ 3
	if int(off)+size > pci.ConfigSize {
		panic(fmt.Sprintf("doe: Config: no room for a %d-byte capability", size))
	}
	binary.LittleEndian.PutUint32(c.mem[off:], uint32(id)|uint32(version&0xf)<<16)
	copy(c.mem[off+4:], body)
	if off != 0x100 {
		h := binary.LittleEndian.Uint32(c.mem[c.last:])
		binary.LittleEndian.PutUint32(c.mem[c.last:], h&0xfffff|uint32(off)<<20)
	}
	c.last, c.end = off, off+uint16(size)
	return off
}

// Poke writes raw bytes into config space, bypassing the models (to build
// hostile layouts).
func (c *Config) Poke(off int, b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	copy(c.mem[off:], b)
}

// Offsets returns the DOE capability offsets in list order.
func (c *Config) Offsets() []uint16 {
	caps, _ := pci.ExtCapabilities(c)
	return pci.FindExt(caps, pci.ExtCapIDDOE)
}

// Accesses returns the number of ReadAt and WriteAt calls so far.
func (c *Config) Accesses() (reads, writes uint64) { return c.reads.Load(), c.writes.Load() }

// doeReg finds the DOE model whose registers [+4, +0x18) overlap
// [off, off+n), and the register offset.
func (c *Config) doeReg(off int64, n int) (*doe.Model, uint16, bool) {
	for _, d := range c.doe {
		b := int64(d.off)
		if off < b+int64(doe.CapSize) && off+int64(n) > b+4 {
			return d.m, uint16(off - b), true
		}
	}
	return nil, 0, false
}

// ReadAt implements io.ReaderAt.
func (c *Config) ReadAt(p []byte, off int64) (int, error) {
	c.reads.Add(1)
	if off < 0 || off >= pci.ConfigSize {
		return 0, io.EOF
	}
	c.mu.Lock()
	m, reg, isDOE := c.doeReg(off, len(p))
	if !isDOE {
		n := copy(p, c.mem[off:])
		c.mu.Unlock()
		if n < len(p) {
			return n, io.EOF
		}
		return n, nil
	}
	c.mu.Unlock()
	clear(p)
	if len(p) == 4 && off%4 == 0 {
		binary.LittleEndian.PutUint32(p, m.ReadReg(reg))
	}
	return len(p), nil
}

// WriteAt implements io.WriterAt.
func (c *Config) WriteAt(p []byte, off int64) (int, error) {
	c.writes.Add(1)
	if off < 0 || off+int64(len(p)) > pci.ConfigSize {
		return 0, fmt.Errorf("doe: Config: write at %#x beyond config space", off)
	}
	c.mu.Lock()
	m, reg, isDOE := c.doeReg(off, len(p))
	if !isDOE {
		copy(c.mem[off:], p)
		c.mu.Unlock()
		return len(p), nil
	}
	c.mu.Unlock()
	if len(p) == 4 && off%4 == 0 {
		m.WriteReg(reg, binary.LittleEndian.Uint32(p))
	}
	return len(p), nil
}
