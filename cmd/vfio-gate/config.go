package main

import (
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/vfio-gate/vfio-gate/internal/config"
)

// DefaultConfig is the configuration file every command reads when it
// exists (--config names another; an explicit --config must exist).
const DefaultConfig = config.Default

var configHelp = helpText("config", "DefaultConfig", DefaultConfig)

// configFile is a parsed configuration file, applied to the flags of the
// command that runs.
type configFile struct{ *config.File }

// loadConfig reads path (config.Load); a missing file is (nil, nil) unless
// required. Every error is a usage error.
func loadConfig(path string, required bool, euid int) (*configFile, error) {
	f, err := config.Load(path, required, euid)
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	if f == nil {
		return nil, nil
	}
	return &configFile{f}, nil
}

// apply checks every key against the flags it names and sets, on cmd (the
// command that runs), each flag the command line left unset: flag > config
// > default.
func (c *configFile) apply(root, cmd *cobra.Command) error {
	path := strings.TrimSpace(strings.TrimPrefix(cmd.CommandPath(), root.Name()))
	for sect, vals := range c.Flags {
		var fs *pflag.FlagSet
		if sect == "" {
			fs = root.PersistentFlags()
		} else {
			target, rest, err := root.Find(strings.Fields(sect))
			if err != nil || len(rest) > 0 || target == root {
				return usageErrorf("config %s:%d: %q is not a vfio-gate command", c.Path, vals[0].Line, sect)
			}
			fs = target.LocalFlags()
		}
		for _, v := range vals {
			if v.Name == "" {
				continue // the empty section's marker: its command was checked above
			}
			f := fs.Lookup(v.Name)
			if f == nil || v.Name == "config" || v.Name == "help" {
				where := "a global flag"
				if sect != "" {
					where = "a flag of " + sect
				}
				return usageErrorf("config %s:%d: %q is not %s", c.Path, v.Line, v.Name, where)
			}
			if sect != "" && sect != path {
				continue // another command's setting
			}
			if f = cmd.Flags().Lookup(v.Name); f == nil || f.Changed {
				continue // the command line wins
			}
			if err := f.Value.Set(v.Value); err != nil {
				return usageErrorf("config %s:%d: %s: %v", c.Path, v.Line, v.Name, err)
			}
		}
	}
	return nil
}
