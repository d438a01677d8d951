//go:build linux && amd64

package audit

import (
	"encoding/binary"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/vfio-gate/vfio-gate/pci"
)

// deviceID returns the kernfs node id of function dev's sysfs directory
// (its inode number: on 64-bit kernels kernfs_ino is the node's id), which
// the probes compare with dev->dev.kobj.sd->id. Tests replace it.
var deviceID = func(dev string) (uint64, error) {
	if dev == "" || strings.ContainsAny(dev, "/\x00") || dev == "." || dev == ".." {
		return 0, fmt.Errorf("audit: guard %q: not a PCI function name: %w", dev, pci.ErrNoDevice)
	}
	fi, err := os.Stat("/sys/bus/pci/devices/" + dev)
	if err != nil {
		return 0, fmt.Errorf("audit: guard %s: %w (%v)", dev, pci.ErrNoDevice, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || !fi.IsDir() || st.Ino == 0 {
		return 0, fmt.Errorf("audit: guard %s: %w (/sys/bus/pci/devices/%s is not a sysfs directory)", dev, pci.ErrNoDevice, dev)
	}
	return st.Ino, nil
}

// guardMem is guard_count's value (struct guard_state) mmapped read-write:
// the Go side writes it with atomic stores in the order the probes rely on
// (cfgaccess.c, guard_state), not with map updates, which copy the value
// in an unspecified order.
type guardMem struct {
	b  []byte
	st *cfgaccessGuardState
}

func mapGuard(m *ebpf.Map) (*guardMem, error) {
	size := (int(unsafe.Sizeof(cfgaccessGuardState{})) + os.Getpagesize() - 1) &^ (os.Getpagesize() - 1)
	if int(m.ValueSize()) != int(unsafe.Sizeof(cfgaccessGuardState{})) {
		return nil, fmt.Errorf("audit: guard_count value is %d bytes, want %d", m.ValueSize(), unsafe.Sizeof(cfgaccessGuardState{}))
	}
	b, err := unix.Mmap(m.FD(), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("audit: mmap guard_count: %w", err)
	}
	return &guardMem{b: b, st: (*cfgaccessGuardState)(unsafe.Pointer(&b[0]))}, nil
}

func (g *guardMem) close() error {
	if g == nil || g.b == nil {
		return nil
	}
	err := unix.Munmap(g.b)
	g.b, g.st = nil, nil
	return err
}

// set fills slot i: the name while its id is 0, then the id.
func (g *guardMem) set(i int, id uint64, name string) {
	s := &g.st.Slot[i]
	atomic.StoreUint64(&s.Id, 0)
	w := nameWords(name)
	atomic.StoreUint64(&s.Name[0], w[0])
	atomic.StoreUint64(&s.Name[1], w[1])
	atomic.StoreUint64(&s.Id, id)
}

// clear frees slot i: the id first.
func (g *guardMem) clear(i int) {
	s := &g.st.Slot[i]
	atomic.StoreUint64(&s.Id, 0)
	atomic.StoreUint64(&s.Name[0], 0)
	atomic.StoreUint64(&s.Name[1], 0)
}

// counts stores how many functions are guarded and how many of them are
// in no slot.
func (g *guardMem) counts(count, overflow int) {
	atomic.StoreUint32(&g.st.Overflow, uint32(overflow))
	atomic.StoreUint32(&g.st.Count, uint32(count))
}

// nameWords is a guarded name as the probes copy it into events: 16
// bytes, NUL-padded, at most 15 characters, as two little-endian words.
func nameWords(name string) [2]uint64 {
	k := nameKey(name)
	return [2]uint64{binary.LittleEndian.Uint64(k[:8]), binary.LittleEndian.Uint64(k[8:])}
}

func nameKey(dev string) [16]byte {
	var k [16]byte
	copy(k[:15], dev)
	return k
}

func trimKey(k [16]byte) []byte {
	for i, b := range k {
		if b == 0 {
			return k[:i]
		}
	}
	return k[:]
}
