package clitree

import (
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// UsageError is an unknown subcommand of a group command.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// StrictGroups makes c, if it only groups subcommands, and every such
// command below it refuse an unknown subcommand (*UsageError) instead of
// printing its help and exiting 0; with no arguments it prints its help.
func StrictGroups(c *cobra.Command) {
	if !c.HasSubCommands() {
		return
	}
	if c.RunE == nil && c.Run == nil {
		c.Args = func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return &UsageError{fmt.Sprintf("unknown command %q for %q (see %s --help)", args[0], cmd.CommandPath(), cmd.CommandPath())}
			}
			return nil
		}
		c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	}
	// cobra answers --help before it validates arguments, so
	// "doe discovery --help" (a typo) would print doe's help and exit 0.
	// This help flag reads as unset when the arguments left over fail the
	// command's Args: the usage error is reported instead.
	c.Flags().VarPF(&groupHelp{cmd: c}, "help", "h", "help for "+c.Name()).NoOptDefVal = "true"
	for _, sub := range c.Commands() {
		StrictGroups(sub)
	}
}

// groupHelp is the --help flag of a command that only groups subcommands.
type groupHelp struct {
	cmd *cobra.Command
	set bool
}

func (h *groupHelp) Set(s string) (err error) { h.set, err = strconv.ParseBool(s); return err }
func (h *groupHelp) Type() string             { return "bool" }
func (h *groupHelp) IsBoolFlag() bool         { return true }

// String is what cobra reads (GetBool) after parsing the flags.
func (h *groupHelp) String() string {
	args := h.cmd.Flags().Args()
	return strconv.FormatBool(h.set && (len(args) == 0 || h.cmd.ValidateArgs(args) == nil))
}

// parentFlagUsagesOnce registers GlobalFlagsOnce's template function.
var parentFlagUsagesOnce sync.Once

// GlobalFlagsOnce returns root's usage template with the subcommands'
// "Global Flags" listing replaced by one line naming the root's persistent
// flags (they are documented once, in the root help). Flags a parent
// command passes down are still listed in full. A cobra whose template no
// longer has the block gets its own template back.
func GlobalFlagsOnce(root *cobra.Command) string {
	var names []string
	root.PersistentFlags().VisitAll(func(f *pflag.Flag) { names = append(names, "--"+f.Name) })
	// cobra's template functions are process-wide: registered once (two
	// commands built at once, as the tests run them, raced on its map), and
	// the function asks each command for its own root.
	parentFlagUsagesOnce.Do(func() {
		cobra.AddTemplateFunc("parentFlagUsages", func(c *cobra.Command) string {
			fs := pflag.NewFlagSet(c.Name(), pflag.ContinueOnError)
			c.InheritedFlags().VisitAll(func(f *pflag.Flag) {
				if c.Root().PersistentFlags().Lookup(f.Name) == nil {
					fs.AddFlag(f)
				}
			})
			return strings.TrimRight(fs.FlagUsages(), " \n")
		})
	})
	const block = "Global Flags:\n{{.InheritedFlags.FlagUsages | trimTrailingWhitespaces}}"
	t := root.UsageTemplate()
	if !strings.Contains(t, block) {
		return t
	}
	return strings.Replace(t, block, `{{with parentFlagUsages .}}Flags of the parent command:
{{.}}

{{end}}Global flags: `+strings.Join(names, " ")+` (see "`+root.Name()+` --help")`, 1)
}
