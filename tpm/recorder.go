package tpm

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
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
	// Dir is the log directory, e.g. /var/lib/vfio-gate/events (layout in
	// segments.go and docs/evidence.md).
	Dir string
	// Retention bounds the earlier boots kept; zero → defaults.
	Retention Retention
	// AllowResettable permits PCR 16 and 23 (test mode only).
	AllowResettable bool
	// Now is the clock for baseline records; nil → time.Now.
	Now func() time.Time
	// Logger; nil → discard.
	Logger *slog.Logger
}

// Recorder extends events into one PCR and appends them to the event log.
// It is safe for concurrent use; across processes it holds an exclusive
// flock on the log directory's lock file while recording.
type Recorder struct {
	t   transport.TPM
	pcr int
	dir string
	ret Retention
	now func() time.Time
	log *slog.Logger
	mu  sync.Mutex
	// segment limits: SegmentMaxRecords, SegmentMaxBytes (smaller in tests)
	segRecords int
	segBytes   int64
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
	if opts.Dir == "" {
		return nil, errors.New("tpm: NewRecorder: empty Dir")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Recorder{t: t, pcr: opts.PCR, dir: opts.Dir, ret: opts.Retention, now: opts.Now, log: opts.Logger,
		segRecords: SegmentMaxRecords, segBytes: SegmentMaxBytes}, nil
}

// PCR is the PCR this recorder extends.
func (r *Recorder) PCR() int { return r.pcr }

// Dir is the log directory.
func (r *Recorder) Dir() string { return r.dir }

// lockPoll is how often Record retries a contended flock.
const lockPoll = 10 * time.Millisecond

// oNoFollow refuses a symlink as the last path element of a log file.
const oNoFollow = unix.O_NOFOLLOW | unix.O_CLOEXEC

// Record measures events in order and returns their log records.
//
// Order (write-ahead): the CEL-JSON lines of all events are appended to the
// current segment with one write(2) and fsync'd, THEN each event's digests
// are extended, in order, into every active bank with one TPM2_PCR_Extend
// per event, THEN the index is updated. If an extend fails, Record returns
// the records extended so far and the error. A crash can therefore leave
// (a) an incomplete last line, never extended: Record truncates it and logs
// a warning; or (b) complete records past the index that were never
// extended: the next Record sees that the log replays to the PCR only
// without them, and starts a new segment with a "resync" baseline holding
// the current PCR values; Verify names those records as never extended. A
// PCR that holds extends the log does not explain is never papered over.
//
// Cost: Record reads the index and the bytes appended since it was written
// (normally none), never the whole log; the size of the log never makes it
// fail. The first event of a boot (TPM resetCount/restartCount differ from
// the newest boot's) starts a new boot directory with a "boot" baseline and
// prunes earlier boots beyond the retention; a full segment starts a new
// one with a "segment" baseline. Baselines are logged, not extended.
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
	lf, err := r.lockDir(ctx)
	if err != nil {
		return nil, err
	}
	defer lf.Close() // releases the flock

	st := &batch{}
	if st.banks, err = activeBanks(r.t, r.pcr); err != nil {
		return nil, err
	}
	if st.pcrs, err = readPCR(r.t, r.pcr, st.banks); err != nil {
		return nil, err
	}
	if st.rc, st.restart, err = clockCounts(r.t); err != nil {
		return nil, err
	}
	tl, err := r.openTail(ctx, st.banks, st.rc, st.restart)
	if err != nil {
		return nil, err
	}
	// Closes the tail's segment, or the one startSegment opened in its place.
	defer func() {
		if tl.f != nil {
			tl.f.Close()
		}
	}()
	st.tl = tl

	reason, note := r.baselineReason(ctx, st)
	st.ix = tl.ix
	st.ix.Values = map[string]HexBytes{}
	for _, b := range st.banks {
		if len(tl.values) > 0 {
			st.ix.Values[b.name] = tl.values[len(tl.values)-1][b.name]
		}
	}
	st.next = st.ix.NextRecNum
	if reason != "" {
		if err := r.startSegment(st, reason, note); err != nil {
			return nil, err
		}
	}

	// Append every record of the batch, make them durable with one fsync,
	// then extend them in order.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	recs, sums, err := r.encode(st, events)
	if err != nil {
		return nil, err
	}
	if err := appendDurably(tl.f, tl.path, st.buf); err != nil {
		return nil, err
	}
	out, err := r.extendAll(ctx, st, recs, sums)
	if err != nil {
		return out, err
	}
	st.ix.Size += int64(len(st.buf))
	st.ix.SegRecords += len(recs)
	st.ix.NextRecNum = st.next
	if err := writeIndex(r.dir, &st.ix); err != nil {
		// Only a cache: the next Record rebuilds it from the segment.
		r.log.WarnContext(ctx, "event log: cannot write the index", "dir", r.dir, "err", err)
	}
	return out, nil
}

// batch is one Record call's state once the log directory is locked: the
// TPM's banks, PCR values and boot counts, the log's tail, the index being
// built, the next record number and the lines to append.
type batch struct {
	banks       []bank
	pcrs        map[string][]byte
	rc, restart uint32
	tl          *tail
	ix          logIndex
	next        uint64
	buf         []byte
}

// lockDir creates the log directory and takes the cross-process lock on
// it; closing the returned file releases the lock.
func (r *Recorder) lockDir(ctx context.Context) (*os.File, error) {
	if err := os.MkdirAll(r.dir, 0o750); err != nil {
		return nil, &LogError{Path: r.dir, Msg: "create log directory", Err: err}
	}
	lf, err := os.OpenFile(filepath.Join(r.dir, lockName), os.O_RDWR|os.O_CREATE|oNoFollow, 0o640)
	if err != nil {
		return nil, &LogError{Path: r.dir, Msg: "open lock", Err: err}
	}
	if err := flock(ctx, lf); err != nil {
		lf.Close()
		return nil, &LogError{Path: r.dir, Msg: "lock", Err: err}
	}
	return lf, nil
}

// baselineReason says whether the batch starts with a baseline, and why: a
// new boot, records that were never extended ("resync", with a note), or
// the next segment. "" means no baseline.
func (r *Recorder) baselineReason(ctx context.Context, st *batch) (reason, note string) {
	tl := st.tl
	switch {
	case tl.f == nil:
		reason = "boot"
	case tl.broken != "":
		reason, note = "resync", tl.broken
	case !equalPCRs(tl.values[len(tl.values)-1], st.pcrs, st.banks):
		if k := matchingPrefix(tl.values, st.pcrs, st.banks); k >= 0 && k < len(tl.recs) {
			reason = "resync"
			note = fmt.Sprintf("records %d..%d were appended but never extended", tl.recs[k].RecNum, tl.recs[len(tl.recs)-1].RecNum)
			r.log.WarnContext(ctx, "event log: tail records were never extended; starting a segment with a resync baseline",
				"dir", r.dir, "first", tl.recs[k].RecNum, "last", tl.recs[len(tl.recs)-1].RecNum)
		} else {
			r.log.WarnContext(ctx, "event log does not replay to the PCR; recording anyway (log verify will fail)",
				"dir", r.dir, "pcr", r.pcr)
		}
	case tl.ix.SegRecords >= r.segRecords || tl.ix.Size >= r.segBytes:
		reason = "segment"
	}
	return reason, note
}

// startSegment closes the tail, creates the next segment (in a new boot
// directory for reason "boot") and puts its baseline, holding the current
// PCR values, first in the batch's lines.
func (r *Recorder) startSegment(st *batch, reason, note string) error {
	var err error
	if st.tl.f != nil {
		st.tl.f.Close()
	}
	if reason == "boot" {
		if st.ix, err = r.newBoot(st.rc, st.restart); err != nil {
			return err
		}
		st.ix.Values = map[string]HexBytes{}
		st.next = 1
	} else {
		st.ix.Segment++
		st.ix.Size, st.ix.SegRecords = 0, 0
	}
	segPath := filepath.Join(r.dir, bootDirName(st.ix.Boot), segmentName(st.ix.Segment))
	if st.tl.f, err = createSegment(segPath); err != nil {
		return err
	}
	st.tl.path = segPath
	bd := BaselineData{ResetCount: st.rc, RestartCount: st.restart, PCRs: map[string]HexBytes{}, Reason: reason, Note: note, Time: r.now().UTC()}
	for _, b := range st.banks {
		bd.PCRs[b.name] = st.pcrs[b.name]
		st.ix.Values[b.name] = st.pcrs[b.name]
	}
	line, err := json.Marshal(Record{RecNum: st.next, PCR: r.pcr, Event: vfioEvent(KindBaseline, bd)})
	if err != nil {
		return err
	}
	st.buf = append(line, '\n')
	st.next++
	st.ix.SegRecords++
	return nil
}

// encode numbers the events, digests them in every bank and appends their
// lines to the batch.
func (r *Recorder) encode(st *batch, events []Event) ([]Record, []map[string][]byte, error) {
	recs := make([]Record, 0, len(events))
	sums := make([]map[string][]byte, 0, len(events))
	for _, e := range events {
		rec := Record{RecNum: st.next, PCR: r.pcr, Event: e}
		s := make(map[string][]byte, len(st.banks))
		for _, b := range st.banks {
			s[b.name] = b.sum(e.Data)
			rec.Digests = append(rec.Digests, Digest{HashAlg: b.name, Digest: hex.EncodeToString(s[b.name])})
		}
		line, err := json.Marshal(rec)
		if err != nil {
			return nil, nil, err
		}
		st.buf = append(append(st.buf, line...), '\n')
		recs, sums = append(recs, rec), append(sums, s)
		st.next++
	}
	return recs, sums, nil
}

// extendAll extends the PCR with each record's digests in order, tracking
// the values in the index; on an error it returns the records extended so far.
func (r *Recorder) extendAll(ctx context.Context, st *batch, recs []Record, sums []map[string][]byte) ([]Record, error) {
	var out []Record
	for i, rec := range recs {
		if err := extend(r.t, r.pcr, st.banks, sums[i]); err != nil {
			return out, err
		}
		for _, b := range st.banks {
			st.ix.Values[b.name] = b.extendValue(st.ix.Values[b.name], sums[i][b.name])
		}
		r.log.DebugContext(ctx, "event recorded", "pcr", r.pcr, "recnum", rec.RecNum, "content_type", rec.Event.ContentType)
		out = append(out, rec)
	}
	return out, nil
}

// tail is the current boot's last segment, open for appending, replayed to
// its end: values[0] is the replay at the index (or the segment's baseline
// on a rebuild), values[i+1] after recs[i].
type tail struct {
	f      *os.File // nil: no segment of this boot yet
	path   string
	ix     logIndex
	recs   []*Record
	values []map[string][]byte
	broken string // set when the segment cannot be replayed: start a new one
}

// openTail finds the current segment of the boot with the given counts from
// the index, reading only what was appended after it; without a usable index
// it rebuilds from the last segment alone.
func (r *Recorder) openTail(ctx context.Context, banks []bank, rc, restart uint32) (*tail, error) {
	ix, err := readIndex(r.dir)
	if err == nil && (ix.ResetCount != rc || ix.RestartCount != restart) {
		// A new boot, most likely; rebuild confirms it against the newest
		// boot directory rather than trusting the cache.
		return r.rebuild(ctx, banks, rc, restart)
	}
	if err == nil {
		tl, err := r.fromIndex(ctx, ix, banks)
		if err == nil {
			return tl, nil
		}
		r.log.WarnContext(ctx, "event log: index does not match the log; rebuilding it", "dir", r.dir, "err", err)
	} else if !errors.Is(err, fs.ErrNotExist) {
		r.log.WarnContext(ctx, "event log: index unreadable; rebuilding it", "dir", r.dir, "err", err)
	}
	return r.rebuild(ctx, banks, rc, restart)
}

func (r *Recorder) fromIndex(ctx context.Context, ix *logIndex, banks []bank) (*tail, error) {
	p := filepath.Join(r.dir, bootDirName(ix.Boot), segmentName(ix.Segment))
	f, err := os.OpenFile(p, os.O_RDWR|os.O_APPEND|oNoFollow, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil || fi.Size() < ix.Size {
		f.Close()
		return nil, errors.Join(err, fmt.Errorf("segment %s is %d bytes, the index says %d", p, fi.Size(), ix.Size))
	}
	base := map[string][]byte{}
	for _, b := range banks {
		v, ok := ix.Values[b.name]
		if !ok || len(v) != b.hash.Size() {
			f.Close()
			return nil, fmt.Errorf("index has no %s value", b.name)
		}
		base[b.name] = v
	}
	tl := &tail{f: f, path: p, ix: *ix, values: []map[string][]byte{base}}
	if fi.Size() == ix.Size {
		return tl, nil
	}
	recs, end, torn, err := readTail(p, f, ix.Size)
	if err := r.repairTorn(ctx, tl, end, torn); err != nil {
		f.Close()
		return nil, err
	}
	if err != nil {
		tl.broken = err.Error()
		return tl, nil
	}
	r.replayTail(tl, recs, banks)
	return tl, nil
}

// repairTorn truncates an incomplete last line (an append torn by a crash,
// never extended).
func (r *Recorder) repairTorn(ctx context.Context, tl *tail, end int64, torn bool) error {
	if !torn {
		return nil
	}
	r.log.WarnContext(ctx, "event log: dropping incomplete last line (torn append, never extended)", "path", tl.path, "offset", end)
	if err := tl.f.Truncate(end); err != nil {
		return &LogError{Path: tl.path, Msg: "truncate torn tail", Err: err}
	}
	if err := tl.f.Sync(); err != nil {
		return &LogError{Path: tl.path, Msg: "fsync", Err: err}
	}
	return nil
}

// replayTail replays records read past the index, stopping at a bad one.
func (r *Recorder) replayTail(tl *tail, recs []*Record, banks []bank) {
	for _, rec := range recs {
		if p := checkRecord(rec, banks, r.pcr); p != nil {
			tl.broken = p.Msg
			return
		}
		cur := tl.values[len(tl.values)-1]
		nv := map[string][]byte{}
		for _, b := range banks {
			d, _ := hex.DecodeString(digestOf(rec, b.name))
			nv[b.name] = b.extendValue(cur[b.name], d)
		}
		tl.recs = append(tl.recs, rec)
		tl.values = append(tl.values, nv)
		tl.ix.SegRecords++
		tl.ix.NextRecNum = rec.RecNum + 1
	}
}

// rebuild reads the newest boot's last segment (bounded by the segment
// limits) when the index is missing or wrong.
func (r *Recorder) rebuild(ctx context.Context, banks []bank, rc, restart uint32) (*tail, error) {
	boots, err := ListBoots(r.dir)
	if err != nil {
		return nil, err
	}
	if len(boots) == 0 {
		return &tail{}, nil
	}
	b := boots[len(boots)-1]
	if b.KeyError != "" || b.ResetCount != rc || b.RestartCount != restart {
		return &tail{}, nil
	}
	last := b.Segments[len(b.Segments)-1]
	seg, _ := parseSeq(filepath.Base(last), "seg-", ".cel.jsonl")
	f, err := os.OpenFile(last, os.O_RDWR|os.O_APPEND|oNoFollow, 0)
	if err != nil {
		return nil, &LogError{Path: last, Msg: "open", Err: err}
	}
	tl := &tail{f: f, path: last, ix: logIndex{Boot: b.Seq, ResetCount: rc, RestartCount: restart, Segment: seg, NextRecNum: 2}}
	recs, end, torn, rerr := readTail(last, f, 0)
	if err := r.repairTorn(ctx, tl, end, torn); err != nil {
		f.Close()
		return nil, err
	}
	tl.ix.Size = end
	var bd *BaselineData
	if rerr == nil && len(recs) > 0 && recs[0].Event.Kind == KindBaseline {
		bd, rerr = parseBaseline(recs[0].Event.Data)
	} else if rerr == nil {
		rerr = errors.New("segment does not start with a baseline")
	}
	if len(recs) > 0 {
		tl.ix.NextRecNum = recs[len(recs)-1].RecNum + 1
	}
	base := map[string][]byte{}
	for _, bk := range banks {
		if bd != nil && len(bd.PCRs[bk.name]) != bk.hash.Size() {
			rerr = fmt.Errorf("baseline has no %s value", bk.name)
		}
		if bd != nil {
			base[bk.name] = bd.PCRs[bk.name]
		} else {
			base[bk.name] = make([]byte, bk.hash.Size())
		}
	}
	tl.values = []map[string][]byte{base}
	if rerr != nil {
		tl.broken = rerr.Error()
		return tl, nil
	}
	tl.ix.SegRecords = 1
	r.replayTail(tl, recs[1:], banks)
	// Only the records after the baseline are candidates for "never extended".
	return tl, nil
}

// newBoot creates the next boot directory and prunes earlier boots.
func (r *Recorder) newBoot(rc, restart uint32) (logIndex, error) {
	boots, err := ListBoots(r.dir)
	if err != nil {
		return logIndex{}, err
	}
	seq := 1
	if n := len(boots); n > 0 {
		seq = boots[n-1].Seq + 1
	}
	if ix, err := readIndex(r.dir); err == nil && ix.Boot >= seq {
		seq = ix.Boot + 1
	}
	d := filepath.Join(r.dir, bootDirName(seq))
	if err := os.Mkdir(d, 0o750); err != nil {
		return logIndex{}, &LogError{Path: d, Msg: "create boot directory", Err: err}
	}
	if err := syncDir(r.dir); err != nil {
		return logIndex{}, &LogError{Path: r.dir, Msg: "fsync directory", Err: err}
	}
	if removed, err := prune(r.dir, seq, r.ret, r.now()); err != nil {
		r.log.Warn("event log: pruning earlier boots failed", "dir", r.dir, "err", err)
	} else if len(removed) > 0 {
		r.log.Info("event log: removed earlier boots beyond the retention", "dir", r.dir, "boots", removed)
	}
	return logIndex{Boot: seq, ResetCount: rc, RestartCount: restart, Segment: 1}, nil
}

func createSegment(p string) (*os.File, error) {
	f, err := os.OpenFile(p, os.O_RDWR|os.O_APPEND|os.O_CREATE|os.O_EXCL|oNoFollow, 0o640)
	if err != nil {
		return nil, &LogError{Path: p, Msg: "create segment", Err: err}
	}
	if err := syncDir(filepath.Dir(p)); err != nil {
		f.Close()
		return nil, &LogError{Path: p, Msg: "fsync directory", Err: err}
	}
	return f, nil
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
