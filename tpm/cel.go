package tpm

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
)

// Limits on what ReadLog accepts: the log is a file an attacker with write
// access may have crafted, and verify must not fall over on it.
const (
	MaxLineBytes = 1 << 20  // one CEL-JSON record
	MaxLogBytes  = 64 << 20 // the whole file
	MaxRecords   = 200_000
	maxDigests   = 8
	maxEventData = 256 << 10
)

// Digest is one bank's digest of a record (CEL "digests" element).
type Digest struct {
	HashAlg string `json:"hashAlg"`
	Digest  string `json:"digest"` // hex
}

// Record is one CEL-JSON record (TCG Canonical Event Log Format 1.0 §5,
// JSON encoding): recnum, pcr, digests, content_type, content.
type Record struct {
	RecNum  uint64
	PCR     int
	Digests []Digest // empty for baseline records (not extended, like EV_NO_ACTION)
	Event   Event
	// Line is the 1-based line the record was read from (0 when written).
	Line int
	// Segment is the file the record was read from (set by ReadBoot).
	Segment string
}

type celContent struct {
	EventType json.RawMessage `json:"event_type"`
	EventData string          `json:"event_data"`
}

type celRecord struct {
	RecNum      *uint64     `json:"recnum"`
	PCR         *int        `json:"pcr"`
	Digests     []Digest    `json:"digests"`
	ContentType string      `json:"content_type"`
	Content     *celContent `json:"content"`
}

// MarshalJSON encodes the record as one CEL-JSON object.
func (r Record) MarshalJSON() ([]byte, error) {
	var et json.RawMessage
	switch r.Event.ContentType {
	case ContentPCClient:
		et = json.RawMessage(strconv.FormatUint(uint64(r.Event.Type), 10))
	case ContentVFIOGate:
		b, err := json.Marshal(r.Event.Kind)
		if err != nil {
			return nil, err
		}
		et = b
	default:
		return nil, fmt.Errorf("tpm: unknown content type %q", r.Event.ContentType)
	}
	rn, pcr := r.RecNum, r.PCR
	d := r.Digests
	if d == nil {
		d = []Digest{}
	}
	return json.Marshal(celRecord{RecNum: &rn, PCR: &pcr, Digests: d, ContentType: r.Event.ContentType,
		Content: &celContent{EventType: et, EventData: hex.EncodeToString(r.Event.Data)}})
}

func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

// ParseRecord decodes one CEL-JSON line strictly: unknown keys, missing keys,
// bad hex, unknown banks and oversize fields are errors.
func ParseRecord(line []byte) (*Record, error) {
	if len(line) > MaxLineBytes {
		return nil, fmt.Errorf("record of %d bytes exceeds %d", len(line), MaxLineBytes)
	}
	var c celRecord
	if err := strictUnmarshal(line, &c); err != nil {
		return nil, err
	}
	if c.RecNum == nil || c.PCR == nil || c.Digests == nil || c.Content == nil || c.ContentType == "" {
		return nil, errors.New("missing recnum, pcr, digests, content_type or content")
	}
	if *c.PCR < 0 || *c.PCR > maxPCR {
		return nil, fmt.Errorf("pcr %d out of range", *c.PCR)
	}
	if len(c.Digests) > maxDigests {
		return nil, fmt.Errorf("%d digests, at most %d", len(c.Digests), maxDigests)
	}
	seen := map[string]bool{}
	for _, d := range c.Digests {
		b, ok := bankByName(d.HashAlg)
		if !ok {
			return nil, fmt.Errorf("unknown hashAlg %q", d.HashAlg)
		}
		if seen[d.HashAlg] {
			return nil, fmt.Errorf("hashAlg %q twice", d.HashAlg)
		}
		seen[d.HashAlg] = true
		v, err := hex.DecodeString(d.Digest)
		if err != nil || len(v) != b.hash.Size() {
			return nil, fmt.Errorf("%s digest is not %d hex bytes", d.HashAlg, b.hash.Size())
		}
	}
	if len(c.Content.EventData) > 2*maxEventData {
		return nil, fmt.Errorf("event_data larger than %d bytes", maxEventData)
	}
	data, err := hex.DecodeString(c.Content.EventData)
	if err != nil {
		return nil, fmt.Errorf("event_data: %w", err)
	}
	r := &Record{RecNum: *c.RecNum, PCR: *c.PCR, Digests: c.Digests, Event: Event{ContentType: c.ContentType, Data: data}}
	switch c.ContentType {
	case ContentPCClient:
		var t uint32
		if err := json.Unmarshal(c.Content.EventType, &t); err != nil {
			return nil, fmt.Errorf("event_type: %w", err)
		}
		r.Event.Type = EventType(t)
	case ContentVFIOGate:
		if err := json.Unmarshal(c.Content.EventType, &r.Event.Kind); err != nil {
			return nil, fmt.Errorf("event_type: %w", err)
		}
		switch r.Event.Kind {
		case KindVerdict, KindRelease, KindTDISP, KindBaseline:
		default:
			return nil, fmt.Errorf("unknown vfio_gate event_type %q", r.Event.Kind)
		}
	default:
		return nil, fmt.Errorf("unknown content_type %q", c.ContentType)
	}
	if (r.Event.Kind == KindBaseline) != (len(r.Digests) == 0) {
		return nil, errors.New("baseline records, and only they, have no digests")
	}
	return r, nil
}

// Log is a parsed event log.
type Log struct {
	Records []*Record
	// Torn is set when the last line is incomplete (no newline, or does not
	// decode): an append interrupted by a crash. TornLine is its line number.
	Torn        bool
	TornLine    int
	TornSegment string // the file of the torn line (ReadBoot)
	// Size is the byte length of the complete lines (where a torn tail starts).
	Size int64
}

// ReadLog reads and parses the log at path. A missing file is an empty log.
// A complete line that does not decode is an error (*LogError); an
// incomplete last line (no terminating newline) is reported as Torn, since
// every append writes a whole line ending in '\n' with one write(2).
func ReadLog(path string) (*Log, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return &Log{}, nil
	}
	if err != nil {
		return nil, &LogError{Path: path, Msg: "open", Err: err}
	}
	defer f.Close()
	return readLog(path, f)
}

func readLog(path string, r io.Reader) (*Log, error) {
	br := bufio.NewReaderSize(io.LimitReader(r, MaxLogBytes+1), 64<<10)
	l := &Log{}
	var total int64
	for line := 1; ; line++ {
		b, err := readLine(br)
		total += int64(len(b))
		if total > MaxLogBytes {
			return nil, &LogError{Path: path, Line: line, Msg: fmt.Sprintf("log larger than %d bytes", MaxLogBytes)}
		}
		if err == io.EOF && len(b) == 0 {
			return l, nil
		}
		if errors.Is(err, errLineTooLong) {
			return nil, &LogError{Path: path, Line: line, Msg: fmt.Sprintf("line longer than %d bytes", MaxLineBytes)}
		}
		if err != nil && err != io.EOF {
			return nil, &LogError{Path: path, Line: line, Msg: "read", Err: err}
		}
		complete := err == nil // ends in '\n'
		rec, perr := ParseRecord(bytes.TrimSuffix(b, []byte("\n")))
		if !complete {
			// The last line has no newline: a torn append, whatever it holds.
			l.Torn, l.TornLine = true, line
			return l, nil
		}
		if perr != nil {
			return nil, &LogError{Path: path, Line: line, Msg: "record does not decode", Err: perr}
		}
		if len(l.Records) >= MaxRecords {
			return nil, &LogError{Path: path, Line: line, Msg: fmt.Sprintf("more than %d records", MaxRecords)}
		}
		rec.Line = line
		l.Records = append(l.Records, rec)
		l.Size = total
	}
}

var errLineTooLong = errors.New("line too long")

// readLine returns one line including its '\n', or the unterminated rest
// with io.EOF; it never buffers more than MaxLineBytes+1.
func readLine(br *bufio.Reader) ([]byte, error) {
	var out []byte
	for {
		frag, err := br.ReadSlice('\n')
		out = append(out, frag...)
		if len(out) > MaxLineBytes+1 {
			return nil, errLineTooLong
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		return out, err
	}
}
