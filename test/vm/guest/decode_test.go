//go:build linux

package main

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// cfgWith builds a 4 KiB config space with the given extended capability
// headers at their offsets.
func cfgWith(hdrs map[int]uint32) []byte {
	b := make([]byte, 4096)
	for off, h := range hdrs {
		binary.LittleEndian.PutUint32(b[off:], h)
	}
	return b
}

func extHdr(id uint16, next int) uint32 { return uint32(id) | 1<<16 | uint32(next)<<20 }

func TestExtCaps(t *testing.T) {
	// The layout QEMU 7.2 gives the CXL type-3 function: AER, DSN, DVSECs, DOE.
	cfg := cfgWith(map[int]uint32{0x100: extHdr(0x0001, 0x148), 0x148: extHdr(0x0003, 0x190), 0x190: extHdr(extCapIDDOE, 0)})
	caps, err := extCaps(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := caps[extCapIDDOE]; len(got) != 1 || got[0] != 0x190 {
		t.Errorf("DOE at %v, want [0x190]", got)
	}
	if len(caps) != 3 {
		t.Errorf("%d capability IDs, want 3: %v", len(caps), caps)
	}
	empty, err := extCaps(make([]byte, 4096))
	if err != nil || len(empty) != 0 {
		t.Errorf("empty extended space: %v, %v", empty, err)
	}
	for name, c := range map[string][]byte{
		"loop":         cfgWith(map[int]uint32{0x100: extHdr(1, 0x104), 0x104: extHdr(2, 0x100)}),
		"self loop":    cfgWith(map[int]uint32{0x100: extHdr(1, 0x100)}),
		"backwards":    cfgWith(map[int]uint32{0x100: extHdr(1, 0x40)}),
		"misaligned":   cfgWith(map[int]uint32{0x100: extHdr(1, 0x102)}),
		"empty middle": cfgWith(map[int]uint32{0x100: extHdr(1, 0x200)}),
		"short":        make([]byte, 64),
	} {
		if _, err := extCaps(c); !errors.Is(err, errDecode) {
			t.Errorf("%s: err %v, want a decode error", name, err)
		}
	}
}

func TestDOEHeader(t *testing.T) {
	h := doeHeader(doeVendorCXL, doeTypeCXLCDAT, 1)
	if h[0] != 0x00021e98 || h[1] != 3 {
		t.Errorf("header %08x %08x, want 00021e98 00000003", h[0], h[1])
	}
	if doeLength(0) != 1<<18 || doeLength(3) != 3 || doeLength(0xfffc0005) != 5 {
		t.Errorf("doeLength: 0 -> %d, 3 -> %d, reserved bits -> %d", doeLength(0), doeLength(3), doeLength(0xfffc0005))
	}
}

func TestDecodeDiscovery(t *testing.T) {
	f, next, err := decodeDiscovery([]uint32{0x01021e98})
	if err != nil || f != (Feature{doeVendorCXL, doeTypeCXLCDAT}) || next != 1 {
		t.Errorf("got %v next %d err %v", f, next, err)
	}
	if _, _, err := decodeDiscovery(nil); err == nil {
		t.Error("empty discovery payload decoded")
	}
}

// cdatTable builds a valid CDAT table: header plus structures of the given
// lengths (type = index), with a correct checksum.
func cdatTable(lens ...int) []byte {
	total := cdatHeaderLen
	for _, n := range lens {
		total += n
	}
	b := make([]byte, total)
	binary.LittleEndian.PutUint32(b, uint32(total))
	b[4] = 1
	off := cdatHeaderLen
	for i, n := range lens {
		b[off] = byte(i)
		binary.LittleEndian.PutUint16(b[off+2:], uint16(n))
		if n > 4 {
			b[off+4] = 0x5a
		}
		off += n
	}
	return fixSum(b)
}

// fixSum sets the CDAT header checksum so that the bytes sum to 0.
func fixSum(b []byte) []byte {
	b[5] = 0
	var sum byte
	for _, c := range b {
		sum += c
	}
	b[5] = -sum
	return b
}

func TestCheckCDAT(t *testing.T) {
	good := cdatTable(24, 24, 8)
	tab, err := checkCDAT(good)
	if err != nil {
		t.Fatal(err)
	}
	if tab.Length != uint32(len(good)) || len(tab.Entries) != 3 || tab.Entries[2] != (CDATEntry{Type: 2, Length: 8}) {
		t.Errorf("got %+v", tab)
	}
	// Each mutation breaks one rule; the checksum is fixed up except where
	// the checksum is the point.
	bad := func(mut func(b []byte) []byte) []byte { return fixSum(mut(append([]byte(nil), good...))) }
	for name, b := range map[string][]byte{
		"checksum":     append(append([]byte(nil), good[:20]...), append([]byte{good[20] + 1}, good[21:]...)...),
		"length":       bad(func(b []byte) []byte { return b[:len(b)-4] }),
		"short":        good[:8],
		"entry length": bad(func(b []byte) []byte { binary.LittleEndian.PutUint16(b[16+2:], 2); return b }),
		"entry beyond": bad(func(b []byte) []byte { binary.LittleEndian.PutUint16(b[16+2:], 200); return b }),
		"trailing":     bad(func(b []byte) []byte { b = append(b, 0, 0); binary.LittleEndian.PutUint32(b, uint32(len(b))); return b }),
	} {
		if _, err := checkCDAT(b); !errors.Is(err, errDecode) {
			t.Errorf("%s: err %v, want a decode error", name, err)
		}
	}
}

// dws packs bytes (a multiple of 4 long) into little-endian DWs.
func dws(b []byte) []uint32 {
	out := make([]uint32, len(b)/4)
	for i := range out {
		out[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return out
}

func TestDecodeCDATResponse(t *testing.T) {
	tab := cdatTable(24)
	next, e, err := decodeCDATResponse(append([]uint32{1 << 16}, dws(tab[:16])...), true)
	if err != nil || next != 1 || len(e) != 16 {
		t.Fatalf("header entry: next %d, %d bytes, %v", next, len(e), err)
	}
	next, e, err = decodeCDATResponse(append([]uint32{0xffff << 16}, dws(tab[16:])...), false)
	if err != nil || next != 0xffff || len(e) != 24 {
		t.Fatalf("last entry: next %d, %d bytes, %v", next, len(e), err)
	}
	for name, p := range map[string][]uint32{
		"empty":      nil,
		"code":       {1},
		"table type": {1 << 8},
		"truncated":  append([]uint32{0}, dws(tab[16:32])...),
		"oversize":   append(append([]uint32{0}, dws(tab[16:])...), 0),
		"no header":  {0},
	} {
		if _, _, err := decodeCDATResponse(p, false); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

func TestFormatResult(t *testing.T) {
	got := FormatResult("x", failf("two\nlines\t here"))
	if got != "RESULT x FAIL two lines here" {
		t.Errorf("got %q", got)
	}
	if got := FormatResult("y", Result{Pass, ""}); got != "RESULT y PASS -" {
		t.Errorf("got %q", got)
	}
	if got := FormatResult("z", skipf("%s", strings.Repeat("a", 1000))); len(got) > 450 || !strings.HasSuffix(got, "...") {
		t.Errorf("long reason not cut: %d bytes", len(got))
	}
	if r := notYet("log verify"); r.Status != Skip || r.Reason != "not yet implemented: vfio-gate log verify" {
		t.Errorf("notYet = %+v", r)
	}
}

func TestSelected(t *testing.T) {
	if !selected("", "a") || !selected("b,a", "a") || selected("b", "a") || selected("ab", "a") {
		t.Error("selected")
	}
}

func TestScenarioNamesUnique(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range scenarios() {
		if seen[s.Name] || strings.ContainsAny(s.Name, " \t\n@") || (s.Mode != "run" && s.Mode != "lockdown" && s.Mode != "spdm") ||
			(s.Mode == "spdm") != strings.HasPrefix(s.Name, "spdm-") {
			t.Errorf("bad or duplicate scenario %+v", s)
		}
		seen[s.Name] = true
	}
}

// Fuzz targets for every decoder of device bytes in the guest driver.
// Properties: no panic; a result is returned iff there is no error.

func FuzzExtCaps(f *testing.F) {
	f.Add(cfgWith(map[int]uint32{0x100: extHdr(0x0001, 0x148), 0x148: extHdr(extCapIDDOE, 0)}))
	f.Add(cfgWith(map[int]uint32{0x100: extHdr(1, 0x100)}))
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg := make([]byte, 4096)
		copy(cfg[0x100:], b)
		caps, err := extCaps(cfg)
		if err == nil {
			n := 0
			for _, offs := range caps {
				n += len(offs)
			}
			if n > (4096-0x100)/4 {
				t.Fatalf("%d capabilities in 3840 bytes", n)
			}
		}
	})
}

func FuzzCheckCDAT(f *testing.F) {
	f.Add(cdatTable(24, 24, 8))
	f.Add(cdatTable())
	f.Fuzz(func(t *testing.T, b []byte) {
		tab, err := checkCDAT(b)
		if (tab == nil) == (err == nil) {
			t.Fatalf("result %v with error %v", tab, err)
		}
		if err == nil {
			sum := cdatHeaderLen
			for _, e := range tab.Entries {
				sum += e.Length
			}
			if sum != len(b) {
				t.Fatalf("entries cover %d of %d bytes", sum, len(b))
			}
			// No proper prefix of a valid table is valid.
			for n := range len(b) {
				if _, err := checkCDAT(b[:n]); err == nil {
					t.Fatalf("prefix of %d/%d bytes accepted", n, len(b))
				}
			}
		}
	})
}

func FuzzDecodeCDATResponse(f *testing.F) {
	tab := cdatTable(24)
	f.Add(binary.LittleEndian.AppendUint32(nil, 0xffff<<16), tab[16:], false)
	f.Add(binary.LittleEndian.AppendUint32(nil, 1<<16), tab[:16], true)
	f.Fuzz(func(t *testing.T, hdr, body []byte, first bool) {
		p := dws(append(append([]byte(nil), hdr[:len(hdr)/4*4]...), body[:len(body)/4*4]...))
		_, e, err := decodeCDATResponse(p, first)
		if (e == nil) == (err == nil) {
			t.Fatalf("entry %v with error %v", e, err)
		}
		if err == nil && 4*(len(p)-1)-len(e) >= 4 {
			t.Fatalf("entry of %d bytes from %d payload DWs", len(e), len(p))
		}
	})
}

func TestWatchWriter(t *testing.T) {
	w := &watchWriter{want: "audit attached", seen: make(chan struct{})}
	w.Write([]byte("level=INFO msg=\"audit "))
	select {
	case <-w.seen:
		t.Fatal("seen before the whole phrase arrived")
	default:
	}
	w.Write([]byte("attached\" path_taggers=2\n"))
	w.Write([]byte("audit attached again\n")) // must not close twice
	select {
	case <-w.seen:
	default:
		t.Fatal("phrase split across writes not seen")
	}
	if got := w.String(); !strings.Contains(got, "path_taggers=2") {
		t.Errorf("String() = %q", got)
	}
}
