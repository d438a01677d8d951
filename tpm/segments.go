package tpm

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	path "path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The log directory (RecorderOptions.Dir, e.g. /var/lib/vfio-gate/events):
//
//	index.json                    cache: current boot, segment, size, replay values
//	lock                          flock'd by every Recorder.Record
//	boot-000001/seg-000001.cel.jsonl
//	boot-000001/seg-000002.cel.jsonl
//	boot-000002/seg-000001.cel.jsonl
//
// One directory per boot of the TPM (a TPM Reset or Restart: the PCRs went
// back to their reset values), numbered in the order vfio-gate saw them;
// the boot key is TPMS_CLOCK_INFO (resetCount, restartCount). A segment
// holds at most SegmentMaxRecords records or SegmentMaxBytes bytes and
// starts with a baseline record ("boot" for the first segment of a boot,
// "segment" or "resync" for the others), so each segment replays on its own
// and Verify chains them. Record numbers start at 1 in every boot.
const (
	SegmentMaxRecords = 50_000
	SegmentMaxBytes   = 16 << 20
	indexName         = "index.json"
	lockName          = "lock"
	indexSchema       = "vfio-gate/log-index/v1"
)

// Retention bounds the boots kept besides the current one. Old boots are
// removed oldest first, whole, when a new boot starts; the current boot is
// never removed. Zero fields mean the defaults.
type Retention struct {
	// MaxBytes bounds the size of all earlier boots; default 256 MiB,
	// negative: unbounded.
	MaxBytes int64
	// MaxAge removes boots last written longer ago; default 0: no age limit.
	MaxAge time.Duration
}

// DefaultRetainBytes is Retention.MaxBytes when zero.
const DefaultRetainBytes = 256 << 20

func bootDirName(seq int) string { return fmt.Sprintf("boot-%06d", seq) }
func segmentName(seq int) string { return fmt.Sprintf("seg-%06d.cel.jsonl", seq) }
func parseSeq(name, prefix, suffix string) (int, bool) {
	if !strings.HasPrefix(name, prefix) || !strings.HasSuffix(name, suffix) {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(name, prefix), suffix))
	return n, err == nil && n > 0
}

// Boot is one boot's log in the log directory.
type Boot struct {
	Seq          int       `json:"boot"`
	Dir          string    `json:"dir"`
	ResetCount   uint32    `json:"reset_count"`
	RestartCount uint32    `json:"restart_count"`
	Segments     []string  `json:"segments"` // paths, in order
	Bytes        int64     `json:"bytes"`
	Modified     time.Time `json:"modified"`
	// KeyError is set when the first record is not a readable boot baseline.
	KeyError string `json:"key_error,omitempty"`
}

// ListBoots lists the boots in dir, oldest first. A missing dir has none.
func ListBoots(dir string) ([]Boot, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, &LogError{Path: dir, Msg: "list boots", Err: err}
	}
	var out []Boot
	for _, e := range ents {
		seq, ok := parseSeq(e.Name(), "boot-", "")
		if !ok || !e.IsDir() {
			continue
		}
		b, err := readBootDir(dir, seq)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b Boot) int { return cmp.Compare(a.Seq, b.Seq) })
	return out, nil
}

func readBootDir(dir string, seq int) (Boot, error) {
	b := Boot{Seq: seq, Dir: path.Join(dir, bootDirName(seq))}
	ents, err := os.ReadDir(b.Dir)
	if err != nil {
		return b, &LogError{Path: b.Dir, Msg: "list segments", Err: err}
	}
	var segs []int
	for _, e := range ents {
		if n, ok := parseSeq(e.Name(), "seg-", ".cel.jsonl"); ok && e.Type().IsRegular() {
			segs = append(segs, n)
			if fi, err := e.Info(); err == nil {
				b.Bytes += fi.Size()
				if fi.ModTime().After(b.Modified) {
					b.Modified = fi.ModTime()
				}
			}
		}
	}
	slices.Sort(segs)
	for _, n := range segs {
		b.Segments = append(b.Segments, path.Join(b.Dir, segmentName(n)))
	}
	if len(b.Segments) == 0 {
		b.KeyError = "no segments"
		return b, nil
	}
	bd, err := firstBaseline(b.Segments[0])
	if err != nil {
		b.KeyError = err.Error()
		return b, nil
	}
	b.ResetCount, b.RestartCount = bd.ResetCount, bd.RestartCount
	return b, nil
}

// firstBaseline reads the first record of a segment, which must be a baseline.
func firstBaseline(p string) (*BaselineData, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	line, err := readLine(bufio.NewReaderSize(f, 4096))
	if err != nil {
		return nil, fmt.Errorf("first record: %w", err)
	}
	rec, err := ParseRecord([]byte(strings.TrimSuffix(string(line), "\n")))
	if err != nil {
		return nil, fmt.Errorf("first record: %w", err)
	}
	if rec.Event.Kind != KindBaseline {
		return nil, errors.New("first record is not a baseline")
	}
	return parseBaseline(rec.Event.Data)
}

// FindBoot returns boot seq of dir (0: the newest).
func FindBoot(dir string, seq int) (*Boot, error) {
	boots, err := ListBoots(dir)
	if err != nil {
		return nil, err
	}
	if len(boots) == 0 {
		return nil, &LogError{Path: dir, Msg: "no boots logged", Err: fs.ErrNotExist}
	}
	if seq == 0 {
		return &boots[len(boots)-1], nil
	}
	for i := range boots {
		if boots[i].Seq == seq {
			return &boots[i], nil
		}
	}
	return nil, &LogError{Path: dir, Msg: fmt.Sprintf("no boot %d", seq), Err: fs.ErrNotExist}
}

// ReadBoot reads every segment of boot seq of dir (0: the newest) into one
// Log; a missing directory or an empty one is an empty log. Record.Line is
// the line within the record's segment, Record.Segment its path.
func ReadBoot(dir string, seq int) (*Log, error) {
	b, err := FindBoot(dir, seq)
	if errors.Is(err, fs.ErrNotExist) && seq == 0 {
		return &Log{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := &Log{}
	for i, p := range b.Segments {
		l, err := ReadLog(p)
		if err != nil {
			return nil, err
		}
		for _, r := range l.Records {
			r.Segment = p
		}
		out.Records = append(out.Records, l.Records...)
		out.Size += l.Size
		if l.Torn && i == len(b.Segments)-1 {
			out.Torn, out.TornLine, out.TornSegment = true, l.TornLine, p
		}
	}
	return out, nil
}

// logIndex caches where the current boot's log ends, so that Record reads
// only what was appended since (normally nothing). It is rebuilt from the
// last segment when missing or inconsistent; Verify never trusts it.
type logIndex struct {
	Schema       string              `json:"schema"`
	Boot         int                 `json:"boot"`
	ResetCount   uint32              `json:"reset_count"`
	RestartCount uint32              `json:"restart_count"`
	Segment      int                 `json:"segment"`
	Size         int64               `json:"size"`            // bytes of the segment, every record extended
	SegRecords   int                 `json:"segment_records"` // records in the segment, baseline included
	NextRecNum   uint64              `json:"next_recnum"`
	Values       map[string]HexBytes `json:"values"` // replay of the segment up to Size
}

func readIndex(dir string) (*logIndex, error) {
	b, err := os.ReadFile(path.Join(dir, indexName))
	if err != nil {
		return nil, err
	}
	return parseIndex(b)
}

// parseIndex decodes index.json strictly; the file is only a cache, but a
// crafted one must not crash the recorder.
func parseIndex(b []byte) (*logIndex, error) {
	if len(b) > 64<<10 {
		return nil, errors.New("index too large")
	}
	var ix logIndex
	if err := strictUnmarshal(b, &ix); err != nil {
		return nil, err
	}
	if ix.Schema != indexSchema || ix.Boot <= 0 || ix.Segment <= 0 || ix.Size <= 0 || ix.NextRecNum < 2 || len(ix.Values) == 0 {
		return nil, errors.New("index incomplete")
	}
	return &ix, nil
}

// writeIndex replaces index.json (write, fsync, rename). A lost or torn
// index only costs a rebuild.
func writeIndex(dir string, ix *logIndex) error {
	ix.Schema = indexSchema
	b, err := json.Marshal(ix)
	if err != nil {
		return err
	}
	tmp := path.Join(dir, indexName+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|oNoFollow, 0o640)
	if err != nil {
		return err
	}
	_, werr := f.Write(b)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return err
	}
	return os.Rename(tmp, path.Join(dir, indexName))
}

// readTail parses the complete lines of the segment from offset off. A last
// line without '\n' is a torn append: its offset is returned as end, so the
// caller truncates there.
func readTail(p string, f *os.File, off int64) (recs []*Record, end int64, torn bool, err error) {
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return nil, 0, false, &LogError{Path: p, Msg: "seek", Err: err}
	}
	br := bufio.NewReaderSize(f, 64<<10)
	end = off
	for {
		b, rerr := readLine(br)
		if rerr == io.EOF && len(b) == 0 {
			return recs, end, false, nil
		}
		if rerr == io.EOF {
			return recs, end, true, nil
		}
		if rerr != nil {
			return nil, 0, false, &LogError{Path: p, Msg: "read tail", Err: rerr}
		}
		rec, perr := ParseRecord([]byte(strings.TrimSuffix(string(b), "\n")))
		if perr != nil {
			return recs, end, false, &LogError{Path: p, Msg: "record does not decode", Err: perr}
		}
		recs = append(recs, rec)
		end += int64(len(b))
	}
}

// prune removes earlier boots beyond the retention, oldest first, never keep.
func prune(dir string, keep int, ret Retention, now time.Time) ([]int, error) {
	boots, err := ListBoots(dir)
	if err != nil {
		return nil, err
	}
	maxBytes := ret.MaxBytes
	if maxBytes == 0 {
		maxBytes = DefaultRetainBytes
	}
	var total int64
	for _, b := range boots {
		if b.Seq != keep {
			total += b.Bytes
		}
	}
	var removed []int
	for _, b := range boots {
		if b.Seq >= keep {
			break
		}
		old := ret.MaxAge > 0 && now.Sub(b.Modified) > ret.MaxAge
		big := maxBytes > 0 && total > maxBytes
		if !old && !big {
			continue
		}
		if err := os.RemoveAll(b.Dir); err != nil {
			return removed, &LogError{Path: b.Dir, Msg: "remove old boot", Err: err}
		}
		total -= b.Bytes
		removed = append(removed, b.Seq)
	}
	return removed, nil
}

// LockLog takes the log directory's lock, as Record does, so that no
// decision is recorded until unlock is called (an export quotes the PCR and
// copies the log under it).
func LockLog(ctx context.Context, dir string) (unlock func(), err error) {
	f, err := os.OpenFile(path.Join(dir, lockName), os.O_RDWR|os.O_CREATE|oNoFollow, 0o640)
	if err != nil {
		return nil, &LogError{Path: dir, Msg: "open lock", Err: err}
	}
	if err := flock(ctx, f); err != nil {
		f.Close()
		return nil, &LogError{Path: dir, Msg: "lock", Err: err}
	}
	return func() { f.Close() }, nil
}
