package report

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/vfio-gate/vfio-gate/tpm"
)

func TestLogTable(t *testing.T) {
	rel, _ := json.Marshal(tpm.Release{BDF: "0000:3b:00.0", Domain: "vm1"})
	l := &tpm.Log{Records: []*tpm.Record{
		{RecNum: 1, PCR: 16, Event: tpm.Event{ContentType: tpm.ContentVFIOGate, Kind: tpm.KindRelease, Data: rel}},
		{RecNum: 2, PCR: 16, Digests: []tpm.Digest{{HashAlg: "sha256", Digest: "00"}},
			Event: tpm.Event{ContentType: tpm.ContentVFIOGate, Kind: tpm.KindRelease, Data: rel}},
	}, Torn: true, TornSegment: "seg-1.json", TornLine: 3}
	lb := LogBootOf(tpm.Boot{Seq: 2, ResetCount: 5, RestartCount: 1, Segments: []string{"a"}}, l)
	if len(lb.Events) != 2 || lb.Events[0].Extended || !lb.Events[1].Extended || !lb.Torn {
		t.Fatalf("LogBootOf: %+v", lb)
	}
	j, err := json.Marshal(lb)
	if err != nil || !strings.Contains(string(j), `"boot":2,`) || !strings.Contains(string(j), `"torn_last_line":true`) || strings.Contains(string(j), "seg-1") {
		t.Fatalf("json: %s %v", j, err)
	}
	var b bytes.Buffer
	tab := NewLogTable(&b)
	tab.Boot(lb)
	if err := tab.Flush("/st/events", false); err != nil {
		t.Fatal(err)
	}
	want := `boot 2 (TPM resetCount 5, restartCount 1), 2 records in 1 segments
RECNUM  PCR  TYPE     EVENT
1       -    release  0000:3b:00.0 released from vm1
2       16   release  0000:3b:00.0 released from vm1
seg-1.json line 3: incomplete (torn append), not shown
`
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	if err := NewLogTable(&b).Flush("/st/events", true); err != nil || b.String() != "/st/events: no records\n" {
		t.Fatalf("no boots: %q %v", b.String(), err)
	}
}

func TestWriteVerify(t *testing.T) {
	res := &tpm.VerifyResult{OK: false, PCR: 16, Boot: 1, Segments: 2, Records: 9, Checked: 8,
		Banks:    []tpm.BankResult{{Alg: "sha256", PCR: []byte{1}, Match: true}, {Alg: "sha384", PCR: []byte{1}}, {Alg: "sha1"}},
		Problems: []tpm.Problem{{Kind: "digest", Msg: "record 4 altered"}},
		Warnings: []tpm.Problem{{Kind: "torn", Msg: "last line"}}}
	var b bytes.Buffer
	WriteVerify(&b, res, "/st/events")
	want := `/st/events: boot 1, PCR 16, 9 records in 2 segments, 8 replayed: FAILED (sha256 match, sha384 MISMATCH, sha1 replay only)
problem  digest      record 4 altered
warning  torn        last line
`
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	WriteVerify(&b, &tpm.VerifyResult{OK: true}, "x")
	if b.String() != "x: boot 0, PCR 0, 0 records in 0 segments, 0 replayed: OK ()\n" {
		t.Fatalf("ok: %q", b.String())
	}
}
