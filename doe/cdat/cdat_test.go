package cdat

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/vfio-gate/vfio-gate/doe"
	"github.com/vfio-gate/vfio-gate/internal/testutil/doetest"
)

// qemuLike is a table shaped like QEMU's cxl-type3 CDAT: a DSMAS, four
// DSLBIS and a DSEMTS per memory region, plus an odd-length vendor structure
// that exercises DW padding.
func qemuLike() []byte {
	dsmas := make([]byte, 20) // handle, flags, reserved, DPA base, DPA length
	binary.LittleEndian.PutUint64(dsmas[4:], 0)
	binary.LittleEndian.PutUint64(dsmas[12:], 256<<20)
	structs := []Structure{{Type: TypeDSMAS, Body: dsmas}}
	for i := 0; i < 4; i++ {
		structs = append(structs, Structure{Type: TypeDSLBIS, Body: bytes.Repeat([]byte{byte(i)}, 20)})
	}
	structs = append(structs, Structure{Type: TypeDSEMTS, Body: make([]byte, 20)}, Structure{Type: 0x42, Body: []byte{1, 2, 3}})
	return Build(1, 7, structs)
}

func serve(t testing.TB, h doe.Handler) *doe.Mailbox {
	t.Helper()
	cfg := doetest.NewConfig(doe.NewModel([]doe.Feature{doe.FeatureCXLCDAT}, h))
	mbs, err := doe.Find(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return mbs[0]
}

func TestReadAndParse(t *testing.T) {
	want := qemuLike()
	mb := serve(t, Handler(want))
	got, err := Read(context.Background(), mb)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %x\nwant %x", got, want)
	}
	tab, err := Parse(got)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range tab.Structures {
		names = append(names, s.Name)
	}
	if tab.Revision != 1 || tab.Sequence != 7 || int(tab.Length) != len(want) || len(tab.Structures) != 7 ||
		names[0] != "DSMAS" || names[1] != "DSLBIS" || names[5] != "DSEMTS" || names[6] != "type-66" || tab.Structures[6].Length != 7 {
		t.Fatalf("table %+v names %v", tab, names)
	}
	if st := mb.Stats(); st.Exchanges != 8 {
		t.Errorf("%d exchanges for 8 entries", st.Exchanges)
	}
}

func TestParseRejects(t *testing.T) {
	good := qemuLike()
	badSum := bytes.Clone(good)
	badSum[len(badSum)-1] ^= 1
	if _, err := Parse(badSum); !errors.Is(err, ErrChecksum) {
		t.Errorf("bad checksum: %v", err)
	}
	long := append(bytes.Clone(good), 0)
	if _, err := Parse(long); !errors.Is(err, ErrMalformed) {
		t.Errorf("trailing byte: %v", err)
	}
	// A structure that claims more than the table holds (checksum fixed up).
	over := bytes.Clone(good)
	over[HeaderSize+2] = 0xff
	fixSum(over)
	if _, err := Parse(over); !errors.Is(err, ErrMalformed) {
		t.Errorf("overlong structure: %v", err)
	}
	short := bytes.Clone(good)
	short[HeaderSize+2], short[HeaderSize+3] = 2, 0
	fixSum(short)
	if _, err := Parse(short); !errors.Is(err, ErrMalformed) {
		t.Errorf("structure shorter than its header: %v", err)
	}
	for i := 0; i < len(good); i++ {
		if tab, err := Parse(good[:i]); err == nil || tab != nil {
			t.Fatalf("proper prefix of %d bytes parsed", i)
		}
	}
}

func fixSum(b []byte) {
	b[5] = 0
	var s uint8
	for _, c := range b {
		s += c
	}
	b[5] = -s
}

func TestReadHostileDevice(t *testing.T) {
	good := qemuLike()
	ents := Entries(good)
	rsp := func(next int, e []byte) []byte {
		return append([]byte{0, 0, byte(next), byte(next >> 8)}, e...)
	}
	cases := map[string]doe.Handler{
		"loop": func(_ doe.Feature, req []byte) ([]byte, error) {
			return rsp(0, ents[0]), nil // always "next is 0"
		},
		"self-loop": func(_ doe.Feature, req []byte) ([]byte, error) {
			h := int(req[2])
			if h == 0 {
				return rsp(1, ents[0]), nil
			}
			return rsp(1, ents[1]), nil
		},
		"wrong-code": func(_ doe.Feature, req []byte) ([]byte, error) {
			return append([]byte{1, 0, 0xff, 0xff}, ents[0]...), nil
		},
		"short-table": func(_ doe.Feature, req []byte) ([]byte, error) {
			return rsp(LastHandle, ents[0]), nil // header promises more
		},
		"entries-exceed": func(_ doe.Feature, req []byte) ([]byte, error) {
			h := int(req[2]) | int(req[3])<<8
			return rsp(h+1, ents[1%len(ents)+h%2]), nil // never ends, overflows the header length
		},
		"huge-length": func(_ doe.Feature, req []byte) ([]byte, error) {
			hdr := bytes.Clone(ents[0])
			binary.LittleEndian.PutUint32(hdr, 0xffffffff)
			return rsp(LastHandle, hdr), nil
		},
		"junk-after-entry": func(_ doe.Feature, req []byte) ([]byte, error) {
			return rsp(LastHandle, append(bytes.Clone(ents[0]), 1, 2, 3, 4, 5, 6, 7, 8)), nil
		},
		"empty": func(_ doe.Feature, req []byte) ([]byte, error) { return nil, nil },
	}
	for name, h := range cases {
		t.Run(name, func(t *testing.T) {
			tab, err := Read(context.Background(), serve(t, h))
			if err == nil || tab != nil {
				t.Fatalf("accepted: %x", tab)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add(qemuLike())
	f.Add(Build(1, 0, nil))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		tab, err := Parse(b)
		if (tab == nil) == (err == nil) {
			t.Fatalf("result %v and error %v", tab, err)
		}
		if err != nil {
			return
		}
		// Round trip: the structures rebuild a table that parses the same.
		again, err := Parse(Build(tab.Revision, tab.Sequence, tab.Structures))
		if err != nil || len(again.Structures) != len(tab.Structures) || again.Length != tab.Length {
			t.Fatalf("round trip: %v", err)
		}
		for i := range tab.Structures {
			if !bytes.Equal(again.Structures[i].Body, tab.Structures[i].Body) || again.Structures[i].Type != tab.Structures[i].Type {
				t.Fatalf("structure %d differs", i)
			}
		}
		for i := 0; i < len(b); i++ {
			if _, err := Parse(b[:i]); err == nil {
				t.Fatalf("proper prefix %d parsed", i)
			}
		}
	})
}

// FuzzRead serves fuzzer-chosen responses (split at 0xFE bytes, one per
// request) and checks the reader never panics and only returns a table
// whose length is the one its header announced.
func FuzzRead(f *testing.F) {
	var seed []byte
	for i, e := range Entries(qemuLike()) {
		next := i + 1
		if i == len(Entries(qemuLike()))-1 {
			next = LastHandle
		}
		seed = append(seed, append([]byte{0, 0, byte(next), byte(next >> 8)}, e...)...)
		seed = append(seed, 0xFE)
	}
	f.Add(seed)
	f.Add([]byte{0, 0, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		parts := bytes.Split(b, []byte{0xFE})
		n := 0
		h := func(_ doe.Feature, req []byte) ([]byte, error) {
			if n >= len(parts) {
				return nil, errors.New("no more")
			}
			n++
			return parts[n-1], nil
		}
		tab, err := Read(context.Background(), fakeConn(h))
		if (tab == nil) == (err == nil) {
			t.Fatalf("result %x and error %v", tab, err)
		}
		if err == nil && (len(tab) < HeaderSize || int(binary.LittleEndian.Uint32(tab)) != len(tab)) {
			t.Fatalf("table of %d bytes, header says otherwise", len(tab))
		}
	})
}

// fakeConn is a doe.Conn that calls a handler directly and pads to DW.
type fakeConn doe.Handler

func (c fakeConn) Exchange(_ context.Context, f doe.Feature, req []byte) ([]byte, error) {
	r, err := c(f, req)
	if err != nil {
		return nil, err
	}
	for len(r)%4 != 0 {
		r = append(r, 0)
	}
	return r, nil
}

// ReadTable: a good table reads and parses; a table that does not parse
// (bad checksum) and an answer that does not decode are *Error; a mailbox
// that does not answer is not.
func TestReadTable(t *testing.T) {
	ctx := context.Background()
	want := qemuLike()
	raw, tab, err := ReadTable(ctx, serve(t, Handler(want)))
	if err != nil || !bytes.Equal(raw, want) || len(tab.Structures) != 7 {
		t.Fatalf("good table: %v %x %+v", err, raw, tab)
	}
	bad := bytes.Clone(want)
	bad[len(bad)-1] ^= 0xff
	var ce *Error
	if _, _, err := ReadTable(ctx, serve(t, Handler(bad))); !errors.As(err, &ce) || !errors.Is(err, ErrChecksum) {
		t.Fatalf("bad checksum: %v", err)
	}
	short := fakeConn(func(doe.Feature, []byte) ([]byte, error) { return []byte{1}, nil })
	if _, _, err := ReadTable(ctx, short); !errors.As(err, &ce) || !errors.Is(err, ErrMalformed) {
		t.Fatalf("short response: %v", err)
	}
	down := errors.New("no answer")
	dead := fakeConn(func(doe.Feature, []byte) ([]byte, error) { return nil, down })
	if raw, tab, err := ReadTable(ctx, dead); !errors.Is(err, down) || errors.As(err, &ce) || raw != nil || tab != nil {
		t.Fatalf("dead mailbox: %v", err)
	}
}
