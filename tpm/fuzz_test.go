package tpm

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-tpm-tools/simulator"
	"github.com/google/go-tpm/tpm2/transport"
)

func FuzzParseRecord(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Add([]byte(`{"recnum":1,"pcr":13,"digests":[],"content_type":"vfio_gate","content":{"event_type":"baseline","event_data":""}}`))
	f.Add([]byte(`{"recnum":1,"pcr":13,"digests":[{"hashAlg":"sha256","digest":"00"}],"content_type":"pcclient_std","content":{"event_type":1,"event_data":"zz"}}`))
	f.Add([]byte(`{"recnum":-1}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := ParseRecord(line)
		if (r == nil) == (err == nil) {
			t.Fatalf("result %v, err %v", r, err)
		}
		if err != nil {
			return
		}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("re-marshal: %v", err)
		}
		r2, err := ParseRecord(b)
		if err != nil {
			t.Fatalf("re-parse %s: %v", b, err)
		}
		if diff := cmp.Diff(r, r2); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}

func FuzzReadLog(f *testing.F) {
	var all []byte
	for _, s := range fuzzSeeds(f) {
		all = append(append(all, s...), '\n')
	}
	f.Add(all)
	f.Add(all[:len(all)/2])
	f.Add(append(all, bytes.Repeat([]byte("x"), 1000)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := readLog("fuzz", bytes.NewReader(data))
		if (l == nil) == (err == nil) {
			t.Fatalf("result %v, err %v", l, err)
		}
		if err != nil {
			return
		}
		if l.Size > int64(len(data)) || (l.Torn && l.Size >= int64(len(data))) {
			t.Fatalf("size %d of %d, torn %v", l.Size, len(data), l.Torn)
		}
		// The complete part re-reads to the same records, and is not torn.
		l2, err := readLog("fuzz", bytes.NewReader(data[:l.Size]))
		if err != nil || l2.Torn || len(l2.Records) != len(l.Records) {
			t.Fatalf("complete prefix: %v torn=%v %d vs %d", err, l2 != nil && l2.Torn, len(l2.Records), len(l.Records))
		}
	})
}

func FuzzDecodeSPDMEvent(f *testing.F) {
	evs := sampleEvents(true)
	for _, e := range evs[:4] {
		f.Add(e.Data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := DecodeSPDMEvent(data)
		if (e == nil) == (err == nil) {
			t.Fatalf("result %v, err %v", e, err)
		}
		if err == nil && len(data) > 0 {
			if _, err := DecodeSPDMEvent(data[:len(data)-1]); err == nil {
				t.Fatal("proper prefix of a valid event decodes")
			}
		}
	})
}

func FuzzDecodeAuthorityEvent(f *testing.F) {
	evs := sampleEvents(true)
	f.Add(evs[4].Data)
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := DecodeAuthorityEvent(data)
		if (a == nil) == (err == nil) {
			t.Fatalf("result %v, err %v", a, err)
		}
		if err == nil && len(data) > 0 {
			if _, err := DecodeAuthorityEvent(data[:len(data)-1]); err == nil {
				t.Fatal("proper prefix of a valid event decodes")
			}
		}
	})
}

// fuzzSeeds returns the lines of a real log recorded on the simulator.
func fuzzSeeds(f *testing.F) [][]byte {
	f.Helper()
	s, err := simulatorGet()
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	path := filepath.Join(f.TempDir(), "events")
	r, err := NewRecorder(s.tpm, RecorderOptions{PCR: DefaultPCR, Dir: path})
	if err != nil {
		f.Fatal(err)
	}
	evs := sampleEvents(false)
	evs = append(evs, ReleaseEvent(Release{BDF: "0000:3b:00.0"}), TDISPStateEvent(TDISPState{BDF: "0000:3b:00.0", From: "RUN", To: "ERROR"}))
	if _, err := r.Record(f.Context(), evs...); err != nil {
		f.Fatal(err)
	}
	b, err := os.ReadFile(lastSegment(f, path))
	if err != nil {
		f.Fatal(err)
	}
	return bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
}

type simHandle struct {
	s   *simulator.Simulator
	tpm transport.TPM
}

func (h simHandle) Close() error { return h.s.Close() }

func simulatorGet() (simHandle, error) {
	s, err := simulator.Get()
	if err != nil {
		return simHandle{}, err
	}
	return simHandle{s: s, tpm: transport.FromReadWriteCloser(s)}, nil
}

func FuzzParseIndex(f *testing.F) {
	f.Add([]byte(`{"schema":"vfio-gate/log-index/v1","boot":1,"reset_count":1,"restart_count":0,"segment":1,"size":400,"segment_records":7,"next_recnum":8,"values":{"sha256":"00"}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ix, err := parseIndex(data)
		if (ix == nil) == (err == nil) {
			t.Fatalf("result %v, err %v", ix, err)
		}
		if err == nil && (ix.Boot <= 0 || ix.Segment <= 0 || ix.Size <= 0 || len(ix.Values) == 0) {
			t.Fatalf("accepted an incomplete index %+v", ix)
		}
	})
}
