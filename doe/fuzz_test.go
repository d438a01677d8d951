package doe_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vfio-gate/vfio-gate/doe"
	"github.com/vfio-gate/vfio-gate/internal/testutil/doetest"
)

// FuzzDecodeObject: the DOE header/object decoder over arbitrary bytes.
func FuzzDecodeObject(f *testing.F) {
	good, _ := doe.EncodeObject(doe.FeatureCMA, []byte("\x12\x84\x00\x00"))
	f.Add(good, 0)
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0}, 0) // Length 0 = 2^18 DW
	f.Add([]byte{1, 0, 0, 0, 1, 0, 0, 0}, 0) // Length 1
	f.Add([]byte{1, 0, 0, 0xff, 2, 0, 0, 0xff}, 0)
	f.Add(good[:7], 4)
	f.Fuzz(func(t *testing.T, b []byte, max int) {
		feat, p, err := doe.DecodeObject(b, max)
		if (err == nil) != (p != nil) {
			t.Fatalf("payload %x with err %v", p, err)
		}
		if err != nil {
			var pe *doe.ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("error is not a *ProtocolError: %v", err)
			}
			return
		}
		if len(p)%4 != 0 || len(p)+doe.HeaderSize != len(b) {
			t.Fatalf("payload %d bytes from a %d-byte object", len(p), len(b))
		}
		if max > 0 && len(p) > max {
			t.Fatalf("payload %d bytes over the %d limit", len(p), max)
		}
		enc, err := doe.EncodeObject(feat, p)
		if err != nil {
			t.Fatal(err)
		}
		f2, p2, err := doe.DecodeObject(enc, max)
		if err != nil || f2 != feat || !bytes.Equal(p2, p) {
			t.Fatalf("round trip: %v %x %v", f2, p2, err)
		}
		for _, k := range []int{len(b) - 1, len(b) - 4, doe.HeaderSize - 1} {
			if k >= 0 && k < len(b) {
				if _, _, err := doe.DecodeObject(b[:k], max); err == nil {
					t.Fatalf("proper prefix of %d bytes decoded", k)
				}
			}
		}
	})
}

// scripted is a doe.Conn that answers each discovery request with the
// next chunk of a fuzzer-chosen script.
type scripted struct {
	script []byte
	reqs   int
}

func (s *scripted) Exchange(_ context.Context, f doe.Feature, req []byte) ([]byte, error) {
	s.reqs++
	if f != doe.FeatureDiscovery || len(req) != 4 {
		return nil, errors.New("not a discovery request")
	}
	if len(s.script) == 0 {
		return nil, errors.New("script exhausted")
	}
	n := int(s.script[0] % 10) // response length 0..9 bytes
	s.script = s.script[1:]
	n = min(n, len(s.script))
	rsp := s.script[:n]
	s.script = s.script[n:]
	return rsp, nil
}

// FuzzDiscover: the discovery loop over arbitrary responses.
func FuzzDiscover(f *testing.F) {
	le := binary.LittleEndian
	var list []byte
	for _, e := range []uint32{0x00010001 | 1<<24, 0x00010001 | 2<<24, 0x00020001} {
		list = append(append(list, 4), le.AppendUint32(nil, e)...)
	}
	f.Add(list)
	f.Add(append([]byte{4}, le.AppendUint32(nil, 0x00010001|0<<24)...))
	f.Add(append([]byte{4}, le.AppendUint32(nil, 0x01010001)...)) // loops on index 1
	f.Add(append([]byte{8}, make([]byte, 8)...))
	f.Fuzz(func(t *testing.T, script []byte) {
		c := &scripted{script: script}
		fs, err := doe.Discover(context.Background(), c)
		if (err == nil) != (fs != nil) {
			t.Fatalf("features %v with err %v", fs, err)
		}
		if c.reqs > 256 {
			t.Fatalf("%d discovery requests", c.reqs)
		}
		for i, x := range fs {
			if x.Vendor == 0xffff || slices.Contains(fs[i+1:], x) {
				t.Fatalf("bad list %v", fs)
			}
		}
	})
}

// FuzzMailboxFaults: a mailbox against a model with fuzzer-chosen faults
// never panics, never returns a response it did not fully check, and is
// usable again once the device behaves.
func FuzzMailboxFaults(f *testing.F) {
	f.Add(uint16(0), int8(0), uint32(0), uint8(0), uint8(0), []byte("hello"))
	f.Add(uint16(1<<3), int8(2), uint32(5), uint8(1), uint8(3), []byte("0123456789"))
	f.Add(uint16(1<<4), int8(-1), uint32(0), uint8(0), uint8(0), []byte{})
	f.Fuzz(func(t *testing.T, flags uint16, delta int8, length uint32, trunc, drop uint8, payload []byte) {
		if len(payload) > 256 {
			payload = payload[:256]
		}
		synctest.Test(t, func(t *testing.T) {
			fault := doe.Fault{
				StuckBusy:      flags&1 != 0,
				BusyUntilAbort: flags&2 != 0,
				Error:          flags&4 != 0,
				StickyError:    flags&8 != 0 && flags&4 != 0,
				NeverReady:     flags&16 != 0,
				WrongVendor:    flags&32 != 0,
				WrongType:      flags&64 != 0,
				SetLength:      flags&128 != 0,
				Length:         length,
				LengthDelta:    int(delta),
				Truncate:       int(trunc % 8),
				DropDORAfter:   int(drop % 80),
			}
			if flags&256 != 0 {
				fault.Latency = time.Duration(length%3000) * time.Millisecond
			}
			m := doe.NewModel([]doe.Feature{doe.FeatureCMA}, echo)
			mb := doe.New(doetest.NewConfig(m), 0x100, &doe.Options{MaxResponse: 512})
			m.SetFault(fault)
			rsp, err := mb.Exchange(context.Background(), doe.FeatureCMA, payload)
			if (err == nil) != (rsp != nil) {
				t.Fatalf("rsp %x err %v", rsp, err)
			}
			if err == nil && !bytes.HasPrefix(reversed(pad(payload)), rsp) {
				t.Fatalf("accepted %x for %x (fault %+v)", rsp, payload, fault)
			}
			m.SetFault(doe.Fault{})
			mustEcho(t, mb, payload)
		})
	})
}
