package main

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
	"golang.org/x/sys/unix"
)

// DefaultConfig is the configuration file every command reads when it
// exists (--config names another; an explicit --config must exist).
const DefaultConfig = "/etc/vfio-gate/vfio-gate.yaml"

// maxConfig caps the configuration file.
const maxConfig = 64 << 10

const configHelp = `Configuration file (--config, default ` + DefaultConfig + `, read when it exists):
YAML whose top-level keys are global flags (policy, tpm, state-dir, daemon-socket, log-level,
sysfs-root) and whose mappings, keyed by a command's name ("daemon", "libvirt-hook",
"doctor", "tdisp lock", ...), hold that command's flags, e.g.

  version: 1
  tpm: /dev/tpmrm0
  log-level: info
  daemon:
    poll-interval: 30s
    metrics-listen: 127.0.0.1:9464

Precedence: a flag on the command line > the configuration file > the built-in default.
Unknown keys, and keys naming no flag of that command, are errors (exit 1).`

// configFile is a parsed configuration: flag values by command path ("" for
// the global flags).
type configFile struct {
	path    string
	version int
	flags   map[string][]configValue // command path -> values
}

type configValue struct {
	name, value string
	line        int
}

// loadConfig reads path; a missing file is (nil, nil) unless required.
// For root (euid 0) the file must be owned by root and not writable by
// group or others: it names the policy and the TPM.
func loadConfig(path string, required bool, euid int) (*configFile, error) {
	// Non-blocking: a FIFO given as the configuration must not hang the
	// command (a blocking open waits for a writer); only a regular file is read.
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && !required {
			return nil, nil
		}
		return nil, usageErrorf("config: %v", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return nil, usageErrorf("config %s: not a regular file", path)
	}
	if euid == 0 {
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil {
			return nil, usageErrorf("config %s: %v", path, err)
		}
		if st.Uid != 0 || st.Mode&0o022 != 0 {
			return nil, usageErrorf("config %s: owned by uid %d with mode %#o: must be root's and not group/other writable (chown root: and chmod go-w)",
				path, st.Uid, st.Mode&0o777)
		}
	}
	data, err := io.ReadAll(io.LimitReader(f, maxConfig+1))
	if err != nil {
		return nil, usageErrorf("config %s: %v", path, err)
	}
	if len(data) > maxConfig {
		return nil, usageErrorf("config %s: larger than %d bytes", path, maxConfig)
	}
	return parseConfig(path, data)
}

// parseConfig decodes a configuration file's bytes (untrusted only in the
// sense of hand-edited: every shape error has a line).
func parseConfig(path string, data []byte) (*configFile, error) {
	c := &configFile{path: path, flags: map[string][]configValue{}}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, usageErrorf("config %s: %v", path, err)
	}
	if doc.Kind == 0 { // empty file
		return c, nil
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, usageErrorf("config %s: want a mapping of flag names to values", path)
	}
	top := doc.Content[0]
	seen := map[string]bool{}
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		if seen[k.Value] {
			return nil, usageErrorf("config %s:%d: %q given twice", path, k.Line, k.Value)
		}
		seen[k.Value] = true
		switch {
		case k.Value == "version":
			if v.Value != "1" {
				return nil, usageErrorf("config %s:%d: version %q: this vfio-gate reads version 1", path, k.Line, v.Value)
			}
			c.version = 1
		case v.Kind == yaml.ScalarNode && v.Tag == "!!null":
			c.flags[k.Value] = append(c.flags[k.Value], configValue{line: k.Line}) // an empty command section
		case v.Kind == yaml.ScalarNode:
			c.flags[""] = append(c.flags[""], configValue{name: k.Value, value: v.Value, line: k.Line})
		case v.Kind == yaml.MappingNode:
			for j := 0; j+1 < len(v.Content); j += 2 {
				fk, fv := v.Content[j], v.Content[j+1]
				if fv.Kind != yaml.ScalarNode {
					return nil, usageErrorf("config %s:%d: %s.%s: want a single value", path, fk.Line, k.Value, fk.Value)
				}
				c.flags[k.Value] = append(c.flags[k.Value], configValue{name: fk.Value, value: fv.Value, line: fk.Line})
			}
		default:
			return nil, usageErrorf("config %s:%d: %q: want a value or a mapping of a command's flags", path, k.Line, k.Value)
		}
	}
	if c.version == 0 && len(c.flags) > 0 {
		return nil, usageErrorf("config %s: no \"version: 1\"", path)
	}
	return c, nil
}

// apply checks every key against the flags it names and sets, on cmd (the
// command that runs), each flag the command line left unset: flag > config
// > default.
func (c *configFile) apply(root, cmd *cobra.Command) error {
	path := strings.TrimSpace(strings.TrimPrefix(cmd.CommandPath(), root.Name()))
	for sect, vals := range c.flags {
		var fs *pflag.FlagSet
		if sect == "" {
			fs = root.PersistentFlags()
		} else {
			target, rest, err := root.Find(strings.Fields(sect))
			if err != nil || len(rest) > 0 || target == root {
				return usageErrorf("config %s:%d: %q is not a vfio-gate command", c.path, vals[0].line, sect)
			}
			fs = target.LocalFlags()
		}
		for _, v := range vals {
			if v.name == "" {
				continue // the empty section's marker: its command was checked above
			}
			f := fs.Lookup(v.name)
			if f == nil || v.name == "config" || v.name == "help" {
				where := "a global flag"
				if sect != "" {
					where = "a flag of " + sect
				}
				return usageErrorf("config %s:%d: %q is not %s", c.path, v.line, v.name, where)
			}
			if sect != "" && sect != path {
				continue // another command's setting
			}
			if f = cmd.Flags().Lookup(v.name); f == nil || f.Changed {
				continue // the command line wins
			}
			if err := f.Value.Set(v.value); err != nil {
				return usageErrorf("config %s:%d: %s: %v", c.path, v.line, v.name, err)
			}
		}
	}
	return nil
}
