package tpm

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadLogLimits(t *testing.T) {
	if l, err := ReadLog(filepath.Join(t.TempDir(), "absent")); err != nil || len(l.Records) != 0 {
		t.Fatalf("missing file: %v %v", l, err)
	}
	huge := `{"recnum":1,"pcr":13,"digests":[],"content_type":"vfio_gate","content":{"event_type":"baseline","event_data":"` +
		strings.Repeat("00", MaxLineBytes) + `"}}` + "\n"
	_, err := readLog("x", strings.NewReader(huge))
	var le *LogError
	if !errors.As(err, &le) || le.Line != 1 || !strings.Contains(le.Msg, "longer than") {
		t.Fatalf("huge line: %v", err)
	}
	// An endless stream without newlines stops at the line limit, not at EOF.
	_, err = readLog("x", &endless{})
	if !errors.As(err, &le) {
		t.Fatalf("endless: %v", err)
	}
	for _, bad := range []string{
		`{"recnum":1,"pcr":13,"digests":[],"content_type":"vfio_gate","content":{"event_type":"baseline","event_data":""},"extra":1}`,
		`{"recnum":1,"pcr":99,"digests":[],"content_type":"vfio_gate","content":{"event_type":"baseline","event_data":""}}`,
		`{"recnum":1,"pcr":13,"digests":[],"content_type":"vfio_gate","content":{"event_type":"verdict","event_data":""}}`,
		`{"recnum":1,"pcr":13,"digests":[{"hashAlg":"md5","digest":"00"}],"content_type":"pcclient_std","content":{"event_type":1,"event_data":""}}`,
		`{"recnum":1,"pcr":13,"digests":[{"hashAlg":"sha1","digest":"00"}],"content_type":"pcclient_std","content":{"event_type":1,"event_data":""}}`,
		`{"recnum":1,"pcr":13,"digests":[],"content_type":"vfio_gate","content":{"event_type":"baseline","event_data":""}} {}`,
		`{"recnum":1,"pcr":13,"digests":[],"content_type":"other","content":{"event_type":"baseline","event_data":""}}`,
		`{"pcr":13,"digests":[],"content_type":"vfio_gate","content":{"event_type":"baseline","event_data":""}}`,
	} {
		if r, err := ParseRecord([]byte(bad)); err == nil {
			t.Errorf("accepted %s: %+v", bad, r)
		}
	}
}

type endless struct{}

func (*endless) Read(p []byte) (int, error) { return copy(p, bytes.Repeat([]byte("a"), len(p))), nil }
