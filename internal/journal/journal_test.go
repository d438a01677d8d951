package journal

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestJournalPriorities: when stderr is the journal stream (JOURNAL_STREAM
// names its device and inode), each line carries its level's priority, so
// journalctl -p warning shows WARN lines (they all had one priority before);
// any other stderr keeps plain text lines.
func TestJournalPriorities(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	js := fmt.Sprintf("%d:%d", st.Dev, st.Ino)
	getenv := func(k string) string {
		if k == "JOURNAL_STREAM" {
			return js
		}
		return ""
	}
	log := slog.New(NewHandler(f, getenv, slog.LevelDebug)).With("daemon", true).WithGroup("g")
	log.Debug("d", "k", 1)
	log.Info("i")
	log.Warn("w")
	log.Error("e")
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	want := []string{"<7>level=DEBUG msg=d daemon=true g.k=1", "<6>level=INFO msg=i daemon=true", "<4>level=WARN msg=w daemon=true", "<3>level=ERROR msg=e daemon=true"}
	if len(lines) != len(want) {
		t.Fatalf("lines %q", lines)
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d = %q, want %q", i, lines[i], want[i])
		}
	}

	// not the journal: another stream, or no JOURNAL_STREAM
	var sb strings.Builder
	slog.New(NewHandler(&sb, getenv, slog.LevelInfo)).Warn("w")
	if strings.HasPrefix(sb.String(), "<") || !strings.Contains(sb.String(), "level=WARN") {
		t.Fatalf("non-journal stderr: %q", sb.String())
	}
	if IsJournal(f, func(string) string { return "" }) || IsJournal(f, func(string) string { return "1:2" }) {
		t.Fatal("journal detected without a matching JOURNAL_STREAM")
	}
}

// TestParseLevel: the four --log-level names in any case (and slog's
// offsets) parse; anything else does not.
func TestParseLevel(t *testing.T) {
	for s, want := range map[string]slog.Level{"debug": slog.LevelDebug, "INFO": slog.LevelInfo, "Warn": slog.LevelWarn,
		"error": slog.LevelError, "info+2": slog.LevelInfo + 2} {
		if l, ok := ParseLevel(s); !ok || l != want {
			t.Errorf("ParseLevel(%q) = %v, %v; want %v", s, l, ok, want)
		}
	}
	for _, s := range []string{"", "verbose", "warning", "3"} {
		if _, ok := ParseLevel(s); ok {
			t.Errorf("ParseLevel(%q) ok; want refused", s)
		}
	}
}
