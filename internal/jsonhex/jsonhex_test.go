package jsonhex

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
)

func TestMarshal(t *testing.T) {
	type doc struct {
		R   U8   `json:"r"`
		V   U16  `json:"v"`
		C   U24  `json:"c"`
		DSN *U64 `json:"dsn"`
	}
	dsn := U64(math.MaxUint64 - 1)
	b, err := json.Marshal(doc{R: 2, V: 0x1B36, C: 0x010802, DSN: &dsn})
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"r":"0x02","v":"0x1b36","c":"0x010802","dsn":"0xfffffffffffffffe"}`
	if string(b) != want {
		t.Fatalf("got %s, want %s", b, want)
	}
	var back doc
	if err := json.Unmarshal(b, &back); err != nil || back.V != 0x1B36 || back.C != 0x010802 || *back.DSN != dsn || back.R != 2 {
		t.Fatalf("round trip: %+v %v", back, err)
	}
}

// Stored documents written before the hex strings have numbers, or hex
// without 0x; they still load.
func TestUnmarshalOldForms(t *testing.T) {
	for in, want := range map[string]uint64{`6966`: 0x1b36, `"1b36"`: 0x1b36, `"0x1B36"`: 0x1b36, `"0X1b36"`: 0x1b36} {
		var v U16
		if err := json.Unmarshal([]byte(in), &v); err != nil || uint64(v) != want {
			t.Errorf("%s: got %#x, %v", in, v, err)
		}
	}
	var d U64
	if err := json.Unmarshal([]byte(`81985529216486895`), &d); err != nil || d != 0x0123456789abcdef {
		t.Errorf("DSN as a number: %#x %v", d, err)
	}
}

func TestUnmarshalRejects(t *testing.T) {
	for _, in := range []string{`"0x10000"`, `65536`, `"xyz"`, `""`, `"0x"`, `-1`, `"-1"`, `1.5`, `true`, `"0x+1"`} {
		var v U16
		if err := json.Unmarshal([]byte(in), &v); err == nil {
			t.Errorf("%s: accepted as %#x", in, v)
		}
	}
}

// FuzzUnmarshal: no panic; what decodes re-encodes to the canonical form,
// which decodes to the same value.
func FuzzUnmarshal(f *testing.F) {
	for _, s := range []string{`"0x1b36"`, `6966`, `"1b36"`, `"0x"`, `""`, `-1`, `1e3`, `"0x0123456789abcdef"`, `18446744073709551615`, `"\u0030x1"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var v U64
		if err := json.Unmarshal(b, &v); err != nil {
			return
		}
		out, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var back U64
		if err := json.Unmarshal(out, &back); err != nil || back != v || len(out) != 20 {
			t.Fatalf("%s -> %s -> %#x %v", b, out, back, err)
		}
		var w U16
		if err := json.Unmarshal(b, &w); err == nil && uint64(w) != uint64(v) {
			t.Fatalf("%s: U16 %#x, U64 %#x", b, w, v)
		}
	})
}

func TestBytesRoundTrip(t *testing.T) {
	b, err := json.Marshal(Bytes{0x00, 0xab, 0x10})
	if err != nil || string(b) != `"00ab10"` {
		t.Fatalf("marshal: %s %v", b, err)
	}
	var got Bytes
	if err := json.Unmarshal(b, &got); err != nil || !bytes.Equal(got, []byte{0x00, 0xab, 0x10}) {
		t.Fatalf("unmarshal: %x %v", got, err)
	}
	for _, bad := range []string{`"0xab"`, `"abc"`, `12`, `"zz"`} {
		if err := json.Unmarshal([]byte(bad), &got); err == nil {
			t.Errorf("%s decoded as %x", bad, got)
		}
	}
}
