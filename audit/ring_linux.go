//go:build linux && amd64

package audit

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// ring consumes the events ring buffer (BPF_MAP_TYPE_RINGBUF,
// kernel/bpf/ringbuf.c) from its mmapped pages, a batch at a time: every
// record committed when a batch starts is decoded in place (no copy, no
// lock per record) and the consumer position is stored once per
// ringBatchBytes. cilium/ebpf's ringbuf.Reader takes a mutex and copies
// each record, and waits in a blocking epoll_wait whose level-triggered
// readiness returns whenever a single record is pending; here the wait
// parks the goroutine in Go's network poller (edge-triggered), so the
// reader wakes only when the BPF side forces a wakeup (every 1,024 records), at
// its deadline or when woken, and it holds no thread in a system call
// meanwhile (on a one-CPU machine a blocked epoll_wait kept the
// scheduler's P from the goroutine doing the work being audited).
//
// Only the goroutine running Monitor.Run calls read, wait and close; wake
// may be called from any goroutine while the ring is open.
type ring struct {
	f       *os.File        // a dup of the map's fd, registered with the network poller
	raw     syscall.RawConn // f's
	cons    []byte          // consumer page: consumer position (read-write)
	prod    []byte          // producer page, then the data pages mapped twice (read-only)
	consPos *uint64
	prodPos *uint64
	data    []byte // 2*size bytes: a record that wraps is contiguous
	mask    uint64
}

// Ring buffer record header (kernel/bpf/ringbuf.c, struct
// bpf_ringbuf_hdr): the length with two flag bits, then the page offset.
const (
	ringHdrSize   = 8
	ringBusyBit   = 1 << 31
	ringDiscarBit = 1 << 30
	// ringBatchBytes is how much the reader consumes before it stores the
	// consumer position (and at the end of each batch): the BPF side sees
	// the space free again no later than that.
	ringBatchBytes = 16 << 10
)

func openRing(m *ebpf.Map) (r *ring, err error) {
	size := int(m.MaxEntries())
	if m.Type() != ebpf.RingBuf || size <= 0 || size&(size-1) != 0 {
		return nil, fmt.Errorf("audit: ring buffer: map type %v, size %d", m.Type(), size)
	}
	fd, err := unix.Dup(m.FD())
	if err != nil {
		return nil, fmt.Errorf("audit: ring buffer: dup: %w", err)
	}
	// Non-blocking, so os.NewFile registers it with the network poller
	// (the map's poll reports EPOLLIN when the BPF side wakes the reader).
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("audit: ring buffer: %w", err)
	}
	r = &ring{f: os.NewFile(uintptr(fd), "ringbuf"), mask: uint64(size - 1)}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	if r.raw, err = r.f.SyscallConn(); err != nil {
		return nil, fmt.Errorf("audit: ring buffer: %w", err)
	}
	if err := r.f.SetReadDeadline(time.Time{}); err != nil {
		return nil, fmt.Errorf("audit: ring buffer is not pollable: %w", err)
	}
	page := os.Getpagesize()
	if r.cons, err = unix.Mmap(fd, 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != nil {
		return nil, fmt.Errorf("audit: ring buffer: mmap consumer page: %w", err)
	}
	if r.prod, err = unix.Mmap(fd, int64(page), page+2*size, unix.PROT_READ, unix.MAP_SHARED); err != nil {
		return nil, fmt.Errorf("audit: ring buffer: mmap data pages: %w", err)
	}
	r.consPos = (*uint64)(unsafe.Pointer(&r.cons[0]))
	r.prodPos = (*uint64)(unsafe.Pointer(&r.prod[0]))
	r.data = r.prod[page:]
	return r, nil
}

func (r *ring) close() error {
	var errs []error
	if r.prod != nil {
		errs = append(errs, unix.Munmap(r.prod))
	}
	if r.cons != nil {
		errs = append(errs, unix.Munmap(r.cons))
	}
	r.prod, r.cons, r.data, r.consPos, r.prodPos = nil, nil, nil, nil, nil
	return errors.Join(append(errs, r.f.Close())...)
}

// available returns the bytes reserved and not yet consumed.
func (r *ring) available() uint64 {
	return atomic.LoadUint64(r.prodPos) - atomic.LoadUint64(r.consPos)
}

// read passes every record committed when it starts to fn, in order
// (sample is the record in the mapped ring: fn must copy what it keeps),
// skipping discarded ones, and releases them to the BPF side. It returns
// the number of records passed and busy: a record was still being written
// (reserved, not yet submitted) and read stopped before it.
func (r *ring) read(fn func(sample []byte)) (n int, busy bool, err error) {
	cons := atomic.LoadUint64(r.consPos)
	prod := atomic.LoadUint64(r.prodPos)
	stored := cons
	defer func() {
		if cons != stored {
			atomic.StoreUint64(r.consPos, cons)
		}
	}()
	for cons < prod {
		if prod-cons < ringHdrSize {
			return n, false, errors.New("audit: ring buffer: truncated record header")
		}
		start := cons & r.mask
		// Loaded atomically: the BPF side clears the busy bit with an
		// atomic exchange after writing the record.
		hdr := atomic.LoadUint32((*uint32)(unsafe.Pointer(&r.data[start])))
		if hdr&ringBusyBit != 0 {
			return n, true, nil
		}
		l := uint64(hdr &^ (ringBusyBit | ringDiscarBit))
		next := cons + (ringHdrSize+l+7)&^7
		if next > prod {
			return n, false, errors.New("audit: ring buffer: truncated record")
		}
		if hdr&ringDiscarBit == 0 {
			s := start + ringHdrSize
			fn(r.data[s : s+l : s+l])
			n++
		}
		cons = next
		if cons-stored >= ringBatchBytes {
			atomic.StoreUint64(r.consPos, cons)
			stored = cons
		}
	}
	return n, false, nil
}

// wait blocks until the BPF side wakes the reader, the deadline set with
// setDeadline passes (os.ErrDeadlineExceeded) or the ring is closed. A
// wakeup that came while the reader was not waiting ends the next wait at
// once.
func (r *ring) wait() error {
	first := true
	return r.raw.Read(func(uintptr) bool {
		if first { // wait for the poller's next edge, even with data pending
			first = false
			return false
		}
		return true
	})
}

// setDeadline bounds the current and next waits; wake ends them now.
func (r *ring) setDeadline(t time.Time) error { return r.f.SetReadDeadline(t) }
func (r *ring) wake() error                   { return r.f.SetReadDeadline(time.Now()) }
