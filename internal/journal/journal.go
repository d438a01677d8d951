package journal

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// IsJournal reports whether w is the stream systemd connected to the
// journal: JOURNAL_STREAM holds "DEV:INODE" of that stream (systemd.exec(5)).
func IsJournal(w io.Writer, getenv func(string) string) bool {
	js := getenv("JOURNAL_STREAM")
	f, ok := w.(*os.File)
	if js == "" || !ok {
		return false
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	return js == fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}

// journalPriority is the syslog priority of a level: debug 7, info 6,
// warn 4, error 3 (sd-daemon(3) "<N>" prefixes).
func journalPriority(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return 3
	case l >= slog.LevelWarn:
		return 4
	case l >= slog.LevelInfo:
		return 6
	default:
		return 7
	}
}

// journalHandler writes text records prefixed with "<N>", which journald
// turns into the entry's priority (journalctl -p warning then shows WARN
// lines), and no time (the journal stamps entries itself).
type journalHandler struct {
	mu    *sync.Mutex
	w     io.Writer
	opts  slog.HandlerOptions
	chain []func(slog.Handler) slog.Handler // WithAttrs/WithGroup, in order
}

func newJournalHandler(w io.Writer, opts *slog.HandlerOptions) *journalHandler {
	o := *opts
	prev := o.ReplaceAttr
	o.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		if prev != nil {
			return prev(groups, a)
		}
		return a
	}
	return &journalHandler{mu: &sync.Mutex{}, w: w, opts: o}
}

func (h *journalHandler) Enabled(_ context.Context, l slog.Level) bool {
	min := slog.LevelInfo
	if h.opts.Level != nil {
		min = h.opts.Level.Level()
	}
	return l >= min
}

func (h *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "<%d>", journalPriority(r.Level))
	var th slog.Handler = slog.NewTextHandler(&buf, &h.opts)
	for _, f := range h.chain {
		th = f(th)
	}
	if err := th.Handle(ctx, r); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := h.w.Write(buf.Bytes())
	return err
}

func (h *journalHandler) with(f func(slog.Handler) slog.Handler) *journalHandler {
	n := *h
	n.chain = append(append([]func(slog.Handler) slog.Handler{}, h.chain...), f)
	return &n
}

func (h *journalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return h.with(func(x slog.Handler) slog.Handler { return x.WithAttrs(as) })
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	return h.with(func(x slog.Handler) slog.Handler { return x.WithGroup(name) })
}

// NewHandler is the handler of --log-level on w (stderr) at lvl:
// journal-aware when w is the journal stream.
func NewHandler(w io.Writer, getenv func(string) string, lvl slog.Level) slog.Handler {
	opts := &slog.HandlerOptions{Level: lvl}
	if getenv != nil && IsJournal(w, getenv) {
		return newJournalHandler(w, opts)
	}
	return slog.NewTextHandler(w, opts)
}

// ParseLevel parses a --log-level value (debug, info, warn, error; any
// case, with slog's offsets such as "info+2"); ok is false for anything else.
func ParseLevel(s string) (l slog.Level, ok bool) {
	return l, l.UnmarshalText([]byte(strings.ToUpper(s))) == nil
}
