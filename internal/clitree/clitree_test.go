package clitree

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// tree is root → grp → leaf, with a global --json.
func tree(out *bytes.Buffer) *cobra.Command {
	root := &cobra.Command{Use: "tool", SilenceErrors: true, SilenceUsage: true}
	root.PersistentFlags().Bool("json", false, "JSON output")
	grp := &cobra.Command{Use: "grp", Short: "a group"}
	grp.PersistentFlags().String("lock-dir", "/run", "passed down by grp")
	grp.AddCommand(&cobra.Command{Use: "leaf", Short: "a leaf", RunE: func(*cobra.Command, []string) error { return nil }})
	root.AddCommand(grp)
	root.SetUsageTemplate(GlobalFlagsOnce(root))
	StrictGroups(grp)
	root.SetOut(out)
	root.SetErr(out)
	return root
}

func TestStrictGroups(t *testing.T) {
	for _, c := range []struct {
		args     []string
		usageErr bool
		help     bool
	}{
		{[]string{"grp", "bogus"}, true, false},
		{[]string{"grp", "bogus", "--help"}, true, false}, // a typo with --help is not a help request
		{[]string{"grp", "--help"}, false, true},
		{[]string{"grp"}, false, true},
		{[]string{"grp", "leaf"}, false, false},
	} {
		var out bytes.Buffer
		root := tree(&out)
		root.SetArgs(c.args)
		err := root.Execute()
		var ue *UsageError
		if got := errors.As(err, &ue); got != c.usageErr {
			t.Errorf("%q: err %v, want usage error %v", c.args, err, c.usageErr)
		}
		if ue != nil && !strings.Contains(ue.Msg, `unknown command "bogus" for "tool grp"`) {
			t.Errorf("%q: message %q", c.args, ue.Msg)
		}
		if got := strings.Contains(out.String(), "Available Commands"); got != c.help {
			t.Errorf("%q: help printed %v, want %v:\n%s", c.args, got, c.help, out.String())
		}
	}
}

func TestGlobalFlagsOnce(t *testing.T) {
	var out bytes.Buffer
	root := tree(&out)
	root.SetArgs([]string{"grp", "leaf", "--help"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	h := out.String()
	for _, want := range []string{`Global flags: --json (see "tool --help")`, "Flags of the parent command:", "--lock-dir"} {
		if !strings.Contains(h, want) {
			t.Errorf("leaf help lacks %q:\n%s", want, h)
		}
	}
	if strings.Contains(h, "Global Flags:") || strings.Contains(h, "JSON output") {
		t.Errorf("leaf help repeats the global flags:\n%s", h)
	}
}
