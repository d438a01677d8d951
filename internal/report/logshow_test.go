package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-tpm-tools/simulator"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/vfio-gate/vfio-gate/tpm"
)

// TestReadLogShow: the boots asked for are read into the document and the
// table; nothing logged is an empty list; a boot that is not there is an
// error.
func TestReadLogShow(t *testing.T) {
	sim, err := simulator.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	dir := filepath.Join(t.TempDir(), "events")
	doc, err := ReadLogShow(dir, 0, false, nil)
	if j, _ := json.Marshal(doc); err != nil || string(j) != `{"boots":[],"dir":"`+dir+`"}` {
		t.Fatalf("nothing logged: %s %v", j, err)
	}
	tp := transport.FromReadWriteCloser(sim)
	r, err := tpm.NewRecorder(tp, tpm.RecorderOptions{PCR: 16, Dir: dir, AllowResettable: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if i == 1 {
			if err := sim.Reset(); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := r.Record(t.Context(), tpm.ReleaseEvent(tpm.Release{BDF: "0000:3b:00.0", Domain: "vm1"})); err != nil {
			t.Fatal(err)
		}
	}
	var b bytes.Buffer
	tab := NewLogTable(&b)
	doc, err = ReadLogShow(dir, 0, true, tab)
	if err != nil || len(doc.Boots) != 2 || doc.Boots[0].Seq != 1 || doc.Boots[1].Seq != 2 {
		t.Fatalf("all: %+v %v", doc, err)
	}
	if err := tab.Flush(dir, false); err != nil || strings.Count(b.String(), "released from vm1") != 2 || !strings.HasPrefix(b.String(), "boot 1 ") {
		t.Fatalf("table:\n%s", b.String())
	}
	if doc, err := ReadLogShow(dir, 0, false, nil); err != nil || len(doc.Boots) != 1 || doc.Boots[0].Seq != 2 {
		t.Fatalf("newest: %+v %v", doc, err)
	}
	if _, err := ReadLogShow(dir, 9, false, nil); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("boot 9: %v", err)
	}
}
