package tpm

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/go-tpm/tpm2/transport"
	"golang.org/x/sys/unix"
)

// RecorderOptions configure a Recorder.
type RecorderOptions struct {
	// PCR to extend; 0 means DefaultPCR (PCR 0 is the firmware's and never a
	// sensible choice).
	PCR int
	// LogPath is the CEL-JSON event log, e.g. /var/lib/vfio-gate/events.cel.jsonl.
	LogPath string
	// AllowResettable permits PCR 16 and 23 (test mode only).
	AllowResettable bool
	// Now is the clock for baseline records; nil → time.Now.
	Now func() time.Time
	// Logger; nil → discard.
	Logger *slog.Logger
}

// Recorder extends events into one PCR and appends them to the event log.
// It is safe for concurrent use; across processes it holds an exclusive
// flock on the log while recording.
type Recorder struct {
	t    transport.TPM
	pcr  int
	path string
	now  func() time.Time
	log  *slog.Logger
	mu   sync.Mutex
}

// NewRecorder checks the options; it does not touch the TPM yet.
func NewRecorder(t transport.TPM, opts RecorderOptions) (*Recorder, error) {
	if t == nil {
		return nil, errors.New("tpm: NewRecorder: nil TPM")
	}
	if opts.PCR == 0 {
		opts.PCR = DefaultPCR
	}
	if err := checkPCR(opts.PCR, opts.AllowResettable); err != nil {
		return nil, err
	}
	if opts.LogPath == "" {
		return nil, errors.New("tpm: NewRecorder: empty LogPath")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Recorder{t: t, pcr: opts.PCR, path: opts.LogPath, now: opts.Now, log: opts.Logger}, nil
}

// PCR is the PCR this recorder extends.
func (r *Recorder) PCR() int { return r.pcr }

// lockPoll is how often Record retries a contended flock.
const lockPoll = 10 * time.Millisecond

// Record measures events in order and returns their log records.
//
// Order (write-ahead): the CEL-JSON lines of all events are appended with
// one write(2) and fsync'd, THEN each event's digests are extended, in order,
// into every active bank with one TPM2_PCR_Extend per event. If an extend
// fails, Record returns the records extended so far and the error. A crash can therefore leave (a) an incomplete last
// line, never extended: Record truncates it and logs a warning, Verify
// reports it as torn; or (b) complete records at the tail that were never
// extended (crash or TPM failure between append and extend): the next Record
// sees that the log replays to the PCR only without them, and appends a
// "resync" baseline holding the current PCR values before its own records;
// Verify names those records as never extended. A PCR that holds extends
// the log does not explain is never papered over.
//
// Before the first event of a boot (TPM resetCount differs from the last
// baseline's) a "boot" baseline record with the PCR's current values is
// appended; baselines are logged but not extended.
func (r *Recorder) Record(ctx context.Context, events ...Event) ([]Record, error) {
	if len(events) == 0 {
		return nil, nil
	}
	for i, e := range events {
		if err := checkEvent(e); err != nil {
			return nil, fmt.Errorf("tpm: event %d: %w", i, err)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(r.path), 0o750); err != nil {
		return nil, &LogError{Path: r.path, Msg: "create state directory", Err: err}
	}
	_, statErr := os.Stat(r.path)
	f, err := os.OpenFile(r.path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, &LogError{Path: r.path, Msg: "open", Err: err}
	}
	defer f.Close()
	if errors.Is(statErr, os.ErrNotExist) {
		// A new file: make its directory entry durable too.
		if err := syncDir(filepath.Dir(r.path)); err != nil {
			return nil, &LogError{Path: r.path, Msg: "fsync directory", Err: err}
		}
	}
	if err := flock(ctx, f); err != nil {
		return nil, &LogError{Path: r.path, Msg: "lock", Err: err}
	}
	// Closing f releases the lock.

	lg, err := readLog(r.path, f)
	if err != nil {
		return nil, err
	}
	if lg.Torn {
		r.log.WarnContext(ctx, "event log: dropping incomplete last line (torn append, never extended)",
			"path", r.path, "line", lg.TornLine)
		if err := f.Truncate(lg.Size); err != nil {
			return nil, &LogError{Path: r.path, Msg: "truncate torn tail", Err: err}
		}
		if err := f.Sync(); err != nil {
			return nil, &LogError{Path: r.path, Msg: "fsync", Err: err}
		}
	}

	banks, err := activeBanks(r.t, r.pcr)
	if err != nil {
		return nil, err
	}
	pcrs, err := readPCR(r.t, r.pcr, banks)
	if err != nil {
		return nil, err
	}
	rc, err := resetCount(r.t)
	if err != nil {
		return nil, err
	}
	var next uint64 = 1
	if n := len(lg.Records); n > 0 {
		next = lg.Records[n-1].RecNum + 1
	}
	var out []Record
	appendRec := func(rec Record) error {
		line, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		next++
		return appendDurably(f, r.path, append(line, '\n'))
	}

	// Baseline: a new boot, or a torn tail to acknowledge.
	seg, base := currentSegment(lg.Records, rc)
	reason, note := "", ""
	switch {
	case base == nil:
		reason = "boot"
	default:
		st := replaySegment(seg, base, banks, r.pcr)
		if st.err != nil {
			r.log.WarnContext(ctx, "event log has a bad record; recording anyway (log verify will fail)",
				"path", r.path, "recnum", st.err.RecNum, "err", st.err.Msg)
		} else if !equalPCRs(st.values[len(seg)], pcrs, banks) {
			if k := matchingPrefix(st.values, pcrs, banks); k >= 0 {
				reason = "resync"
				note = fmt.Sprintf("records %d..%d were appended but never extended", seg[k].RecNum, seg[len(seg)-1].RecNum)
				r.log.WarnContext(ctx, "event log: tail records were never extended; appending a resync baseline",
					"path", r.path, "first", seg[k].RecNum, "last", seg[len(seg)-1].RecNum)
			} else {
				r.log.WarnContext(ctx, "event log does not replay to the PCR; recording anyway (log verify will fail)",
					"path", r.path, "pcr", r.pcr)
			}
		}
	}
	if reason != "" {
		bd := BaselineData{ResetCount: rc, PCRs: map[string]HexBytes{}, Reason: reason, Note: note, Time: r.now().UTC()}
		for _, b := range banks {
			bd.PCRs[b.name] = pcrs[b.name]
		}
		ev := vfioEvent(KindBaseline, bd)
		if err := appendRec(Record{RecNum: next, PCR: r.pcr, Event: ev}); err != nil {
			return nil, err
		}
	}

	// Append every record of the batch, make them durable with one fsync,
	// then extend them in order.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	recs := make([]Record, 0, len(events))
	sums := make([]map[string][]byte, 0, len(events))
	var buf []byte
	for _, e := range events {
		rec := Record{RecNum: next, PCR: r.pcr, Event: e}
		s := make(map[string][]byte, len(banks))
		for _, b := range banks {
			s[b.name] = b.sum(e.Data)
			rec.Digests = append(rec.Digests, Digest{HashAlg: b.name, Digest: hex.EncodeToString(s[b.name])})
		}
		line, err := json.Marshal(rec)
		if err != nil {
			return nil, err
		}
		buf = append(append(buf, line...), '\n')
		recs, sums = append(recs, rec), append(sums, s)
		next++
	}
	if err := appendDurably(f, r.path, buf); err != nil {
		return nil, err
	}
	for i, rec := range recs {
		if err := extend(r.t, r.pcr, banks, sums[i]); err != nil {
			return out, err
		}
		r.log.DebugContext(ctx, "event recorded", "pcr", r.pcr, "recnum", rec.RecNum, "content_type", rec.Event.ContentType)
		out = append(out, rec)
	}
	return out, nil
}

func checkEvent(e Event) error {
	switch e.ContentType {
	case ContentPCClient:
	case ContentVFIOGate:
		switch e.Kind {
		case KindVerdict, KindRelease, KindTDISP:
		default:
			return fmt.Errorf("unknown vfio_gate kind %q", e.Kind)
		}
	default:
		return fmt.Errorf("unknown content type %q", e.ContentType)
	}
	if len(e.Data) > maxEventData {
		return fmt.Errorf("event data of %d bytes exceeds %d", len(e.Data), maxEventData)
	}
	return nil
}

func flock(ctx context.Context, f *os.File) error {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if err != unix.EWOULDBLOCK && err != unix.EINTR {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(lockPoll):
		}
	}
}

// currentSegment returns the records after the last baseline of the boot
// with resetCount rc, and that baseline (nil when this boot has none).
func currentSegment(recs []*Record, rc uint32) ([]*Record, *BaselineData) {
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].Event.Kind != KindBaseline {
			continue
		}
		bd, err := parseBaseline(recs[i].Event.Data)
		if err != nil || bd.ResetCount != rc {
			return nil, nil
		}
		return recs[i+1:], bd
	}
	return nil, nil
}

func parseBaseline(data []byte) (*BaselineData, error) {
	var bd BaselineData
	if err := strictUnmarshal(data, &bd); err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	if len(bd.PCRs) == 0 || len(bd.PCRs) > maxDigests {
		return nil, errors.New("baseline: no PCR values")
	}
	for name, v := range bd.PCRs {
		b, ok := bankByName(name)
		if !ok || len(v) != b.hash.Size() {
			return nil, fmt.Errorf("baseline: bad %q value", name)
		}
	}
	return &bd, nil
}

// replayState is the replay of one segment: values[i] is the PCR after the
// first i records (values[0] = baseline).
type replayState struct {
	values []map[string][]byte
	err    *Problem
}

// replaySegment replays records from a baseline, checking each record's
// digests against its event data. It stops at the first bad record.
func replaySegment(seg []*Record, base *BaselineData, banks []bank, pcr int) replayState {
	cur := map[string][]byte{}
	for _, b := range banks {
		v, ok := base.PCRs[b.name]
		if !ok {
			return replayState{err: &Problem{Kind: ProblemBaseline, Msg: fmt.Sprintf("baseline has no %s value but the TPM has that bank", b.name)}}
		}
		cur[b.name] = v
	}
	st := replayState{values: []map[string][]byte{cur}}
	for _, rec := range seg {
		if p := checkRecord(rec, banks, pcr); p != nil {
			st.err = p
			return st
		}
		nv := map[string][]byte{}
		for _, b := range banks {
			d, _ := hex.DecodeString(digestOf(rec, b.name))
			nv[b.name] = b.extendValue(cur[b.name], d)
		}
		cur = nv
		st.values = append(st.values, cur)
	}
	return st
}

func digestOf(rec *Record, name string) string {
	for _, d := range rec.Digests {
		if d.HashAlg == name {
			return d.Digest
		}
	}
	return ""
}

// checkRecord checks that rec is for pcr, has a digest for every active bank,
// and that each digest is the hash of its event data.
func checkRecord(rec *Record, banks []bank, pcr int) *Problem {
	if rec.Event.Kind == KindBaseline {
		return &Problem{RecNum: rec.RecNum, Line: rec.Line, Kind: ProblemOrder, Msg: "baseline inside a segment"}
	}
	if rec.PCR != pcr {
		return &Problem{RecNum: rec.RecNum, Line: rec.Line, Kind: ProblemPCR,
			Msg: fmt.Sprintf("record %d is for PCR %d, the log is for PCR %d", rec.RecNum, rec.PCR, pcr)}
	}
	if len(rec.Digests) != len(banks) {
		return &Problem{RecNum: rec.RecNum, Line: rec.Line, Kind: ProblemAltered,
			Msg: fmt.Sprintf("record %d has %d digests, the TPM has %d active banks", rec.RecNum, len(rec.Digests), len(banks))}
	}
	for _, b := range banks {
		d := digestOf(rec, b.name)
		if d == "" {
			return &Problem{RecNum: rec.RecNum, Line: rec.Line, Kind: ProblemAltered,
				Msg: fmt.Sprintf("record %d has no %s digest", rec.RecNum, b.name)}
		}
		if d != hex.EncodeToString(b.sum(rec.Event.Data)) {
			return &Problem{RecNum: rec.RecNum, Line: rec.Line, Kind: ProblemAltered,
				Msg: fmt.Sprintf("record %d (line %d): %s digest does not match its event data: the record was altered", rec.RecNum, rec.Line, b.name)}
		}
	}
	return nil
}

func equalPCRs(a, b map[string][]byte, banks []bank) bool {
	for _, bk := range banks {
		if !bytes.Equal(a[bk.name], b[bk.name]) {
			return false
		}
	}
	return true
}

// matchingPrefix returns the largest k < len(values)-1 with values[k] equal
// to pcrs, or -1.
func matchingPrefix(values []map[string][]byte, pcrs map[string][]byte, banks []bank) int {
	for k := len(values) - 2; k >= 0; k-- {
		if equalPCRs(values[k], pcrs, banks) {
			return k
		}
	}
	return -1
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// appendDurably writes whole lines with one write(2) (O_APPEND) and fsyncs.
func appendDurably(f *os.File, path string, lines []byte) error {
	if n, err := f.Write(lines); err != nil || n != len(lines) {
		return &LogError{Path: path, Msg: "append", Err: errors.Join(err, fmt.Errorf("wrote %d of %d bytes", n, len(lines)))}
	}
	if err := f.Sync(); err != nil {
		return &LogError{Path: path, Msg: "fsync", Err: err}
	}
	return nil
}
