//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// configFile is a function's sysfs config file accessed with plain blocking
// pread/pwrite of aligned 4-byte units, each checked for its full length
// (a dword access is one config cycle; SPEC-FACTS §0.4).
type configFile struct {
	fd   int
	path string
}

func openConfig(path string, write bool) (*configFile, error) {
	flags := unix.O_RDONLY
	if write {
		flags = unix.O_RDWR
	}
	fd, err := unix.Open(path, flags|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return &configFile{fd: fd, path: path}, nil
}

func (c *configFile) Close() error { return unix.Close(c.fd) }

func (c *configFile) read32(off int) (uint32, error) {
	var b [4]byte
	n, err := unix.Pread(c.fd, b[:], int64(off))
	if err != nil {
		return 0, fmt.Errorf("pread %s @0x%x: %w", c.path, off, err)
	}
	if n != 4 {
		return 0, fmt.Errorf("pread %s @0x%x: %d bytes, want 4", c.path, off, n)
	}
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24, nil
}

func (c *configFile) write32(off int, v uint32) error {
	b := [4]byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)}
	n, err := unix.Pwrite(c.fd, b[:], int64(off))
	if err != nil {
		return fmt.Errorf("pwrite %s @0x%x: %w", c.path, off, err)
	}
	if n != 4 {
		return fmt.Errorf("pwrite %s @0x%x: %d bytes, want 4", c.path, off, n)
	}
	return nil
}

// readAll reads the whole 4 KiB config space, dword by dword.
func (c *configFile) readAll() ([]byte, error) {
	b := make([]byte, 4096)
	for off := 0; off < len(b); off += 4 {
		v, err := c.read32(off)
		if err != nil {
			return nil, err
		}
		b[off], b[off+1], b[off+2], b[off+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	}
	return b, nil
}

// DOE register offsets and bits (PCIe r6.0 §7.9.24; Linux PCI_DOE_*).
const (
	doeCtrl       = 0x08
	doeStatus     = 0x0c
	doeWrite      = 0x10
	doeRead       = 0x14
	doeCtrlAbort  = 1 << 0
	doeCtrlGo     = 1 << 31
	doeStatBusy   = 1 << 0
	doeStatError  = 1 << 2
	doeStatReady  = 1 << 31
	doeTimeout    = time.Second
	maxResponseDW = 1 << 12 // nothing this test reads is larger than 16 KiB
)

// rawMailbox is a minimal DOE requester over the sysfs config file: the proof
// of the kernel path that the doe package uses. Not for production use.
type rawMailbox struct {
	cfg *configFile
	off int
}

func (m *rawMailbox) wait(ctx context.Context, done func(uint32) bool) (uint32, error) {
	ctx, cancel := context.WithTimeout(ctx, doeTimeout)
	defer cancel()
	for delay := 2 * time.Microsecond; ; delay = min(2*delay, time.Millisecond) {
		st, err := m.cfg.read32(m.off + doeStatus)
		if err != nil {
			return 0, err
		}
		if done(st) {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return st, fmt.Errorf("doe @0x%x: status 0x%08x: %w", m.off, st, ctx.Err())
		case <-time.After(delay):
		}
	}
}

func (m *rawMailbox) abort(ctx context.Context) error {
	if err := m.cfg.write32(m.off+doeCtrl, doeCtrlAbort); err != nil {
		return err
	}
	_, err := m.wait(ctx, func(st uint32) bool { return st&(doeStatBusy|doeStatError) == 0 })
	return err
}

// exchange sends one object and returns the response payload DWs.
func (m *rawMailbox) exchange(ctx context.Context, f Feature, req []uint32) ([]uint32, error) {
	st, err := m.cfg.read32(m.off + doeStatus)
	if err != nil {
		return nil, err
	}
	if st&doeStatBusy != 0 {
		return nil, fmt.Errorf("doe @0x%x: busy on entry (status 0x%08x): someone else owns the mailbox", m.off, st)
	}
	if st&(doeStatError|doeStatReady) != 0 {
		if err := m.abort(ctx); err != nil {
			return nil, fmt.Errorf("doe @0x%x: abort of stale state 0x%08x: %w", m.off, st, err)
		}
	}
	hdr := doeHeader(f.Vendor, f.Type, len(req))
	for _, dw := range append(hdr[:], req...) {
		if err := m.cfg.write32(m.off+doeWrite, dw); err != nil {
			return nil, err
		}
	}
	if err := m.cfg.write32(m.off+doeCtrl, doeCtrlGo); err != nil {
		return nil, err
	}
	st, err = m.wait(ctx, func(st uint32) bool { return st&(doeStatReady|doeStatError) != 0 })
	if err != nil {
		return nil, errors.Join(err, m.abort(context.WithoutCancel(ctx)))
	}
	if st&doeStatError != 0 {
		return nil, errors.Join(fmt.Errorf("doe @0x%x: error bit set (status 0x%08x)", m.off, st), m.abort(ctx))
	}
	pop := func() (uint32, error) {
		v, err := m.cfg.read32(m.off + doeRead)
		if err != nil {
			return 0, err
		}
		return v, m.cfg.write32(m.off+doeRead, 0)
	}
	dw0, err := pop()
	if err != nil {
		return nil, err
	}
	dw1, err := pop()
	if err != nil {
		return nil, err
	}
	if got := (Feature{Vendor: uint16(dw0), Type: uint8(dw0 >> 16)}); got != f {
		return nil, errors.Join(fmt.Errorf("doe @0x%x: response is %v, asked %v", m.off, got, f), m.abort(ctx))
	}
	n := doeLength(dw1)
	if n < 2 || n-2 > maxResponseDW {
		return nil, errors.Join(fmt.Errorf("doe @0x%x: response length %d DW", m.off, n), m.abort(ctx))
	}
	out := make([]uint32, n-2)
	for i := range out {
		if out[i], err = pop(); err != nil {
			return nil, err
		}
	}
	st, err = m.cfg.read32(m.off + doeStatus)
	if err != nil {
		return nil, err
	}
	if st&(doeStatReady|doeStatError) != 0 {
		return nil, errors.Join(fmt.Errorf("doe @0x%x: status 0x%08x after reading %d DW", m.off, st, n), m.abort(ctx))
	}
	return out, nil
}

// discover lists the mailbox's features (discovery v0/v1 request).
func (m *rawMailbox) discover(ctx context.Context) ([]Feature, error) {
	var out []Feature
	for idx := 0; len(out) < maxDiscoveryItems; {
		rsp, err := m.exchange(ctx, Feature{doeVendorPCISIG, doeTypeDiscovery}, []uint32{uint32(idx)})
		if err != nil {
			return out, fmt.Errorf("discovery index %d: %w", idx, err)
		}
		f, next, err := decodeDiscovery(rsp)
		if err != nil {
			return out, err
		}
		out = append(out, f)
		if next == 0 {
			return out, nil
		}
		if int(next) <= idx {
			return out, fmt.Errorf("discovery index %d: next index %d does not advance", idx, next)
		}
		idx = int(next)
	}
	return out, fmt.Errorf("discovery: more than %d features", maxDiscoveryItems)
}

// readCDAT reads the whole CDAT table through CXL Table Access.
func (m *rawMailbox) readCDAT(ctx context.Context) ([]byte, error) {
	var table []byte
	handle := uint16(0)
	for i := 0; i < maxCDATEntries+1; i++ {
		rsp, err := m.exchange(ctx, Feature{doeVendorCXL, doeTypeCXLCDAT}, []uint32{cdatRequest(handle)})
		if err != nil {
			return nil, fmt.Errorf("CDAT entry handle %d: %w", handle, err)
		}
		next, entry, err := decodeCDATResponse(rsp, i == 0)
		if err != nil {
			return nil, fmt.Errorf("CDAT entry handle %d: %w", handle, err)
		}
		table = append(table, entry...)
		if next == 0xffff {
			return table, nil
		}
		handle = next
	}
	return nil, fmt.Errorf("CDAT: more than %d entries", maxCDATEntries)
}
