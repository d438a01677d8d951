package audit

import (
	"errors"
	"reflect"
	"testing"
)

func TestDecodeRoundTrip(t *testing.T) {
	v := uint32(0x80000000)
	in := &Access{Time: 12345, PID: 42, TID: 43, Comm: "setpci", CgroupID: 7, Device: "0000:3b:00.0", Op: "write",
		Offset: 0x108, Size: 4, Value: &v, Path: "sysfs"}
	b := EncodeAccess(in)
	if len(b) != EventSize {
		t.Fatalf("len %d", len(b))
	}
	out, err := DecodeAccess(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip:\n%+v\n%+v", in, out)
	}
}

func TestDecodeRejects(t *testing.T) {
	good := EncodeAccess(&Access{Op: "read", Size: 4, Path: "vfio", Device: "0000:00:01.0"})
	mut := func(i int, v byte) []byte { b := append([]byte(nil), good...); b[i] = v; return b }
	cases := map[string][]byte{
		"short":         good[:EventSize-1],
		"long":          append(append([]byte(nil), good...), 0),
		"bad op":        mut(33, 9),
		"bad size":      mut(32, 3),
		"bad path":      mut(34, 7),
		"value on read": mut(35, 1),
		"offset>4095":   mut(25, 0x10),
	}
	for name, b := range cases {
		a, err := DecodeAccess(b)
		var de *DecodeError
		if a != nil || !errors.As(err, &de) {
			t.Errorf("%s: %v %v", name, a, err)
		}
	}
}

// TestDecoderStream: the reader's decoder, which keeps the previous
// record's strings, decodes every record of a stream as DecodeAccess does
// (names change, repeat, shrink, empty).
func TestDecoderStream(t *testing.T) {
	var d decoder
	for i, in := range []*Access{
		{Op: "read", Size: 4, Path: "sysfs", Comm: "setpci", Device: "0000:3b:00.0"},
		{Op: "read", Size: 4, Path: "sysfs", Comm: "setpci", Device: "0000:3b:00.0"},
		{Op: "read", Size: 2, Path: "vfio", Comm: "qemu-system-x86", Device: "0000:3b:00.1"},
		{Op: "read", Size: 1, Path: "procfs", Comm: "qemu", Device: "0000:3b:00.1"},
		{Op: "read", Size: 1, Path: "unknown", Comm: "", Device: ""},
		{Op: "read", Size: 4, Path: "sysfs", Comm: "setpci", Device: "0000:3b:00.0"},
	} {
		b := EncodeAccess(in)
		got, err := d.decode(b)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		want, _ := DecodeAccess(b)
		if !reflect.DeepEqual(got, want) || got.Comm != in.Comm || got.Device != in.Device {
			t.Fatalf("record %d: stream decoder %+v, DecodeAccess %+v, encoded %+v", i, got, want, in)
		}
	}
}

// TestDecodeIntoReuse: the reader decodes every record into one Access; a
// copy taken from it (as Watcher.dispatch keeps) must survive the next
// decodes, Value included, and no field of an earlier record may leak into
// a later one (Region set by a callback, a write's value on a read).
func TestDecodeIntoReuse(t *testing.T) {
	var d decoder
	var a Access
	v := uint32(0xdead)
	w := EncodeAccess(&Access{Op: "write", Size: 4, Value: &v, Path: "sysfs", Comm: "setpci", Device: "0000:3b:00.0"})
	r := EncodeAccess(&Access{Op: "read", Size: 2, Path: "vfio", Comm: "qemu", Device: "0000:3b:00.1"})
	if err := d.decodeInto(w, &a); err != nil {
		t.Fatal(err)
	}
	a.Region = "doe-mailbox"
	kept := a
	v2 := uint32(0xbeef)
	for _, b := range [][]byte{r, EncodeAccess(&Access{Op: "write", Size: 4, Value: &v2, Path: "procfs"})} {
		if err := d.decodeInto(b, &a); err != nil {
			t.Fatal(err)
		}
		want, _ := DecodeAccess(b)
		if !reflect.DeepEqual(&a, want) {
			t.Fatalf("reused Access %+v, fresh decode %+v", a, *want)
		}
	}
	if kept.Value == nil || *kept.Value != 0xdead || kept.Comm != "setpci" || kept.Region != "doe-mailbox" {
		t.Fatalf("copy changed by later decodes: %+v (value %v)", kept, kept.Value)
	}
}

func TestClassify(t *testing.T) {
	l := Layout{DOE: []uint16{0x150}, MSIX: 0x70, Locked: [][2]uint16{{0x200, 0x210}}}
	cases := []struct {
		off  uint32
		size uint8
		want string
	}{
		{0x04, 2, "command"}, {0x04, 4, "command"}, {0x06, 2, "status"}, {0x10, 4, "bar"}, {0x24, 4, "bar"},
		{0x28, 4, "header"}, {0x00, 4, "header"}, {0x70, 4, "msix"}, {0x7c, 4, "capability"},
		{0x150, 4, "doe-mailbox"}, {0x164, 4, "doe-mailbox"}, {0x168, 4, "extended"}, {0x14c, 4, "extended"},
		{0x208, 1, "tdisp-locked"}, {0x40, 1, "capability"}, {0x100, 4, "extended"},
	}
	for _, c := range cases {
		if got := Classify(c.off, c.size, l); got != c.want {
			t.Errorf("Classify(%#x, %d) = %s, want %s", c.off, c.size, got, c.want)
		}
	}
}

func FuzzDecodeAccess(f *testing.F) {
	v := uint32(1)
	f.Add(EncodeAccess(&Access{Op: "write", Size: 1, Value: &v, Path: "procfs", Device: "0000:00:02.0", Comm: "x"}))
	f.Add(EncodeAccess(&Access{Op: "read", Size: 2, Path: "unknown"}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := DecodeAccess(b)
		if (a == nil) == (err == nil) {
			t.Fatalf("a=%v err=%v", a, err)
		}
		// The reader's decoder, primed with another record, agrees.
		var d decoder
		if _, err := d.decode(EncodeAccess(&Access{Op: "read", Size: 4, Path: "sysfs", Device: "0000:00:02.0", Comm: "x"})); err != nil {
			t.Fatal(err)
		}
		if a2, err2 := d.decode(b); !reflect.DeepEqual(a, a2) || (err == nil) != (err2 == nil) {
			t.Fatalf("stream decoder: %+v %v, DecodeAccess: %+v %v", a2, err2, a, err)
		}
		if a == nil {
			return
		}
		a2, err := DecodeAccess(EncodeAccess(a))
		if err != nil || a2.Op != a.Op || a2.Offset != a.Offset || a2.Size != a.Size || a2.Path != a.Path || a2.PID != a.PID {
			t.Fatalf("re-decode: %+v vs %+v (%v)", a, a2, err)
		}
	})
}

// BenchmarkDecodeStream is the reader's per-record decode (one reused
// Access, repeating strings).
func BenchmarkDecodeStream(b *testing.B) {
	rec := EncodeAccess(&Access{Op: "read", Size: 4, Path: "sysfs", Comm: "vmguest", Device: "0000:00:03.0", PID: 7, TID: 7})
	var d decoder
	var a Access
	b.ReportAllocs()
	for b.Loop() {
		if err := d.decodeInto(rec, &a); err != nil {
			b.Fatal(err)
		}
	}
}
