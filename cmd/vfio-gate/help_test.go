package main

import (
	"io"
	"io/fs"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestHelpFilesUsed fails on a help/*.txt file no command reads (a renamed
// command leaves its old text behind) and on help text that still holds a
// placeholder.
func TestHelpFilesUsed(t *testing.T) {
	root := newRootCmd(&env{out: io.Discard, errw: io.Discard})
	files, err := fs.Glob(helpFiles, "help/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("help files: %v, %v", files, err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(strings.TrimPrefix(f, "help/"), ".txt")
		if _, ok := helpUsed.Load(name); !ok {
			t.Errorf("%s is read by no command: delete it or use it", f)
		}
	}
	for _, c := range allCommands(root) {
		if strings.Contains(c.Long, "{{") || strings.Contains(c.Example, "{{") {
			t.Errorf("%s: help holds an unreplaced placeholder", c.CommandPath())
		}
	}
}

func TestHelpTextPanics(t *testing.T) {
	for _, c := range []struct {
		name string
		kv   []string
	}{
		{"no-such-command.long", nil},
		{"check.long", nil},                      // {{eventLogName}} without a value
		{"check.long", []string{"eventLogName"}}, // odd kv
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("helpText(%q, %q) did not panic", c.name, c.kv)
				}
			}()
			helpText(c.name, c.kv...)
		}()
	}
	if s := helpText("check.long", "eventLogName", "EVENTS"); !strings.Contains(s, "<--state-dir>/EVENTS)") || strings.HasSuffix(s, "\n") {
		t.Errorf("check.long = %q", s)
	}
}

// allCommands is c and every command below it.
func allCommands(c *cobra.Command) []*cobra.Command {
	out := []*cobra.Command{c}
	for _, s := range c.Commands() {
		out = append(out, allCommands(s)...)
	}
	return out
}
