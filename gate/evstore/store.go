package evstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Schema is the bundle document's schema name.
const Schema = "vfio-gate/evidence-bundle/v1"

// Defaults of Options.
const (
	DefaultMaxBytes = 512 << 20
	DefaultMaxFiles = 100_000
	// MaxBundleBytes bounds one bundle file read back.
	MaxBundleBytes = 16 << 20
	pruneEvery     = 64
)

// Decision is what was decided on the evidence.
type Decision struct {
	BDF     string   `json:"bdf"`
	Verdict string   `json:"verdict"` // "allow" or "deny"
	Rule    string   `json:"rule,omitempty"`
	Mode    string   `json:"mode,omitempty"`
	Reasons []string `json:"reasons"`
	// Confidential: the device was destined for a confidential VM (policy
	// defaults.confidential applied).
	Confidential bool      `json:"confidential"`
	Time         time.Time `json:"time"`
}

// Bundle is one stored evidence bundle.
type Bundle struct {
	Schema   string          `json:"schema"`
	Digest   string          `json:"digest"`
	Decision Decision        `json:"decision"`
	Evidence json.RawMessage `json:"evidence"`
}

// Options bound the store; zero fields take the defaults, negative ones
// mean unbounded.
type Options struct {
	MaxBytes int64
	MaxFiles int
}

// Store is a directory of bundles. Safe for concurrent use.
type Store struct {
	dir  string
	opts Options
	mu   sync.Mutex
	puts int
}

// Open returns the store in dir (created on the first Put).
func Open(dir string, opts Options) *Store {
	if opts.MaxBytes == 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.MaxFiles == 0 {
		opts.MaxFiles = DefaultMaxFiles
	}
	return &Store{dir: dir, opts: opts}
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// New makes a bundle of canonical evidence JSON and its decision.
func New(evidence []byte, d Decision) *Bundle {
	sum := sha256.Sum256(evidence)
	if d.Reasons == nil {
		d.Reasons = []string{}
	}
	d.Time = d.Time.UTC()
	return &Bundle{Schema: Schema, Digest: hex.EncodeToString(sum[:]), Decision: d, Evidence: evidence}
}

// Marshal encodes b without touching the evidence bytes (no HTML escaping,
// no re-indentation), so that they still hash to the digest.
func (b *Bundle) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(b); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Parse decodes a bundle strictly and checks that the evidence hashes to
// the digest.
func Parse(data []byte) (*Bundle, error) {
	if len(data) > MaxBundleBytes {
		return nil, fmt.Errorf("evstore: bundle of %d bytes exceeds %d", len(data), MaxBundleBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var b Bundle
	if err := dec.Decode(&b); err != nil {
		return nil, fmt.Errorf("evstore: bundle: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("evstore: bundle: trailing data")
	}
	if b.Schema != Schema {
		return nil, fmt.Errorf("evstore: bundle schema %q, want %q", b.Schema, Schema)
	}
	if !validDigest(b.Digest) || len(b.Evidence) == 0 {
		return nil, errors.New("evstore: bundle: bad digest or no evidence")
	}
	sum := sha256.Sum256(b.Evidence)
	if hex.EncodeToString(sum[:]) != b.Digest {
		return nil, fmt.Errorf("evstore: bundle %s: the evidence does not hash to its digest (altered)", b.Digest)
	}
	return &b, nil
}

func validDigest(d string) bool {
	if len(d) != 64 || strings.ToLower(d) != d {
		return false
	}
	_, err := hex.DecodeString(d)
	return err == nil
}

func (s *Store) path(digest string) string { return filepath.Join(s.dir, digest+".json") }

// Put stores b (replacing a bundle of the same digest) and, every few
// puts, removes the oldest bundles beyond the bounds.
func (s *Store) Put(b *Bundle) error {
	if !validDigest(b.Digest) {
		return fmt.Errorf("evstore: bad digest %q", b.Digest)
	}
	data, err := b.Marshal()
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.MkdirAll(s.dir, 0o750); err != nil {
		return err
	}
	tmp := s.path(b.Digest) + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o640)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, s.path(b.Digest)); err != nil {
		return err
	}
	s.puts++
	if s.puts%pruneEvery == 1 {
		_, err := s.prune(b.Digest)
		return err
	}
	return nil
}

// Get reads the bundle of digest (lowercase hex) and checks it.
func (s *Store) Get(digest string) (*Bundle, error) {
	digest = strings.ToLower(digest)
	if !validDigest(digest) {
		return nil, fmt.Errorf("evstore: %q is not a SHA-256 digest in hex", digest)
	}
	return ReadFile(s.path(digest))
}

// ReadFile reads and checks one bundle file.
func ReadFile(path string) (*Bundle, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, errors.Join(err, fmt.Errorf("evstore: %s is not a regular file", path))
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxBundleBytes+1))
	if err != nil {
		return nil, err
	}
	return Parse(data)
}

// Prune removes the oldest bundles beyond the bounds now.
func (s *Store) Prune() ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.prune("")
}

func (s *Store) prune(keep string) ([]string, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	type file struct {
		name string
		size int64
		mod  time.Time
	}
	var files []file
	var total int64
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") || !validDigest(strings.TrimSuffix(e.Name(), ".json")) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		files = append(files, file{e.Name(), fi.Size(), fi.ModTime()})
		total += fi.Size()
	}
	slices.SortFunc(files, func(a, b file) int { return a.mod.Compare(b.mod) })
	var removed []string
	n := len(files)
	for _, f := range files {
		over := (s.opts.MaxBytes > 0 && total > s.opts.MaxBytes) || (s.opts.MaxFiles > 0 && n > s.opts.MaxFiles)
		if !over {
			break
		}
		if f.name == keep+".json" {
			continue
		}
		if err := os.Remove(filepath.Join(s.dir, f.name)); err != nil {
			return removed, err
		}
		total -= f.size
		n--
		removed = append(removed, strings.TrimSuffix(f.name, ".json"))
	}
	return removed, nil
}
