//go:build linux && amd64

package audit

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// fakeRing is a ring over ordinary memory laid out as the kernel maps it:
// the data twice in a row, so a record that wraps reads contiguously.
type fakeRing struct {
	r          ring
	cons, prod uint64
	size       uint64
}

func newFakeRing(size uint64) *fakeRing {
	f := &fakeRing{size: size}
	f.r = ring{consPos: &f.cons, prodPos: &f.prod, data: make([]byte, 2*size), mask: size - 1}
	return f
}

// put writes b at ring position pos (both copies).
func (f *fakeRing) put(pos uint64, b []byte) {
	for i, c := range b {
		p := (pos + uint64(i)) & f.r.mask
		f.r.data[p], f.r.data[p+f.size] = c, c
	}
}

// add appends a record with the given header flags and returns its start.
func (f *fakeRing) add(sample []byte, flags uint32) uint64 {
	at := f.prod
	var hdr [ringHdrSize]byte
	binary.LittleEndian.PutUint32(hdr[:], uint32(len(sample))|flags)
	f.put(at, hdr[:])
	f.put(at+ringHdrSize, sample)
	f.prod += (ringHdrSize + uint64(len(sample)) + 7) &^ 7
	return at
}

func (f *fakeRing) collect(t *testing.T) (got [][]byte, busy bool) {
	t.Helper()
	n, busy, err := f.r.read(func(b []byte) { got = append(got, bytes.Clone(b)) })
	if err != nil {
		t.Fatal(err)
	}
	if n != len(got) {
		t.Fatalf("read returned n=%d, fn called %d times", n, len(got))
	}
	return got, busy
}

// TestRingRead: records come out in order with their exact lengths,
// discarded ones are skipped, a busy one stops the batch without
// consuming it, a record wrapping the end of the ring reads whole, and
// the consumer position ends after the last record handed out.
func TestRingRead(t *testing.T) {
	f := newFakeRing(256)
	a, b, c := bytes.Repeat([]byte{0xa}, 72), bytes.Repeat([]byte{0xb}, 13), bytes.Repeat([]byte{0xc}, 72)
	f.add(a, 0)
	f.add(b, ringDiscarBit)
	busyAt := f.add(c, ringBusyBit)
	got, busy := f.collect(t)
	if !busy || len(got) != 1 || !bytes.Equal(got[0], a) {
		t.Fatalf("first batch: busy=%v got %x", busy, got)
	}
	if f.cons != busyAt {
		t.Fatalf("consumer at %d, want %d (before the busy record)", f.cons, busyAt)
	}
	// Committed: the busy bit clears.
	var hdr [4]byte
	binary.LittleEndian.PutUint32(hdr[:], uint32(len(c)))
	f.put(busyAt, hdr[:])
	d := bytes.Repeat([]byte{0xd}, 72) // at 184: wraps around the end of the ring
	e := []byte("after the wrap")
	f.add(d, 0)
	f.add(e, 0)
	got, busy = f.collect(t)
	if busy || len(got) != 3 || !bytes.Equal(got[0], c) || !bytes.Equal(got[1], d) || !bytes.Equal(got[2], e) {
		t.Fatalf("second batch: busy=%v got %q", busy, got)
	}
	if f.cons != f.prod || f.r.available() != 0 {
		t.Fatalf("consumer %d, producer %d: want equal", f.cons, f.prod)
	}
	if got, busy := f.collect(t); busy || len(got) != 0 {
		t.Fatalf("empty ring: busy=%v got %q", busy, got)
	}
}

// TestRingReadStoresInBatches: a long batch releases space to the BPF side
// as it goes, not only at its end.
func TestRingReadStoresInBatches(t *testing.T) {
	f := newFakeRing(1 << 16)
	for range (ringBatchBytes / 80) * 2 {
		f.add(make([]byte, 72), 0)
	}
	var seen []uint64
	if _, _, err := f.r.read(func([]byte) { seen = append(seen, f.cons) }); err != nil {
		t.Fatal(err)
	}
	if seen[0] != 0 || seen[len(seen)-1] < ringBatchBytes || f.cons != f.prod {
		t.Fatalf("consumer positions seen by fn: first %d, last %d; final %d of %d", seen[0], seen[len(seen)-1], f.cons, f.prod)
	}
}

// TestRingReadRejectsTruncated: a header claiming more than was produced
// is an error, not a read past the producer.
func TestRingReadRejectsTruncated(t *testing.T) {
	f := newFakeRing(256)
	f.add(make([]byte, 72), 0)
	f.prod -= 8
	if _, _, err := f.r.read(func([]byte) { t.Fatal("fn called") }); err == nil {
		t.Fatal("no error for a record past the producer position")
	}
}

// BenchmarkRingRead is the reader's per-record work as Run does it: the
// ring walk, the decode into one reused Access, the wall time and a
// callback (ns/op is per record).
func BenchmarkRingRead(b *testing.B) {
	const n = 1024
	f := newFakeRing(1 << 20)
	rec := EncodeAccess(&Access{Op: "read", Size: 4, Path: "sysfs", Comm: "vmguest", Device: "0000:00:03.0", PID: 7, TID: 7})
	for range n {
		f.add(rec, 0)
	}
	m := &Monitor{mode: ModeFentry}
	var events int
	fn := func(a *Access) {
		if a.Device == "0000:00:03.0" {
			events++
		}
	}
	each := m.reader(fn)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += n {
		f.cons = 0
		if _, _, err := f.r.read(each); err != nil {
			b.Fatal(err)
		}
	}
}
