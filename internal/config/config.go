package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"go.yaml.in/yaml/v3"
	"golang.org/x/sys/unix"

	"github.com/vfio-gate/vfio-gate/internal/securepath"
)

// Default is the configuration file every command reads when it exists
// (--config names another; an explicit --config must exist).
const Default = "/etc/vfio-gate/vfio-gate.yaml"

// MaxSize caps the configuration file.
const MaxSize = 64 << 10

// File is a parsed configuration: flag values by command path ("" for the
// global flags).
type File struct {
	Path    string
	Version int
	// Flags holds each section's values in file order. A command whose
	// section is empty ("daemon:" with nothing under it) has one Value with
	// an empty Name, so that its name is still checked.
	Flags map[string][]Value
}

// Value is one "name: value" setting of a section.
type Value struct {
	Name, Value string
	Line        int
}

// Load reads path; a missing file is (nil, nil) unless required. For root
// (euid 0) the file must be owned by root and not writable by group or
// others, and so must every directory on the way to it, from "/" and
// through every symlink (checkPath): it names the policy and the TPM. Only
// a regular file is read, and at most MaxSize bytes of it.
func Load(path string, required bool, euid int) (*File, error) {
	// Non-blocking: a FIFO given as the configuration must not hang the
	// command (a blocking open waits for a writer); only a regular file is read.
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && !required {
			return nil, nil
		}
		return nil, fmt.Errorf("config: %v", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return nil, fmt.Errorf("config %s: not a regular file", path)
	}
	if euid == 0 {
		if err := checkOwner(f, path); err != nil {
			return nil, err
		}
		if err := checkPath(f, path); err != nil {
			return nil, err
		}
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("config %s: %v", path, err)
	}
	if len(data) > MaxSize {
		return nil, fmt.Errorf("config %s: larger than %d bytes", path, MaxSize)
	}
	return Parse(path, data)
}

// checkOwner refuses a file not owned by root or writable by group or others.
func checkOwner(f *os.File, path string) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("config %s: %v", path, err)
	}
	if st.Uid != 0 || st.Mode&0o022 != 0 {
		return fmt.Errorf("config %s: owned by uid %d with mode %#o: must be root's and not group/other writable (chown root: and chmod go-w)",
			path, st.Uid, st.Mode&0o777)
	}
	return nil
}

// checkPath refuses path unless every directory on the way to it, from "/"
// and through every symlink, is root's and not group/other writable
// (securepath.Resolve, as the policy file's), and the file it resolves to
// is the one f has open: a file in a directory others can write could be
// swapped by them.
func checkPath(f *os.File, path string) error {
	real, err := securepath.Resolve(path)
	if err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	opened, err := f.Stat()
	if err != nil {
		return fmt.Errorf("config %s: %v", path, err)
	}
	resolved, err := os.Lstat(real)
	if err != nil {
		return fmt.Errorf("config %s: %v", path, err)
	}
	if !os.SameFile(opened, resolved) {
		return fmt.Errorf("config %s: replaced while it was read (now %s); read it again", path, real)
	}
	return nil
}

// Parse decodes a configuration file's bytes (untrusted only in the sense
// of hand-edited: every shape error has a line). Exactly one of its results
// is nil.
func Parse(path string, data []byte) (*File, error) {
	c := &File{Path: path, Flags: map[string][]Value{}}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("config %s: %v", path, err)
	}
	if doc.Kind == 0 { // empty file
		return c, nil
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("config %s: want a mapping of flag names to values", path)
	}
	top := doc.Content[0]
	seen := map[string]bool{}
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		if seen[k.Value] {
			return nil, fmt.Errorf("config %s:%d: %q given twice", path, k.Line, k.Value)
		}
		seen[k.Value] = true
		if err := c.add(k, v); err != nil {
			return nil, err
		}
	}
	if c.Version == 0 && len(c.Flags) > 0 {
		return nil, fmt.Errorf("config %s: no \"version: 1\"", path)
	}
	return c, nil
}

// add records one top-level key k with its value v.
func (c *File) add(k, v *yaml.Node) error {
	switch {
	case k.Value == "version":
		if v.Value != "1" {
			return fmt.Errorf("config %s:%d: version %q: this vfio-gate reads version 1", c.Path, k.Line, v.Value)
		}
		c.Version = 1
	case v.Kind == yaml.ScalarNode && v.Tag == "!!null":
		c.Flags[k.Value] = append(c.Flags[k.Value], Value{Line: k.Line}) // an empty command section
	case v.Kind == yaml.ScalarNode:
		c.Flags[""] = append(c.Flags[""], Value{Name: k.Value, Value: v.Value, Line: k.Line})
	case v.Kind == yaml.MappingNode:
		for j := 0; j+1 < len(v.Content); j += 2 {
			fk, fv := v.Content[j], v.Content[j+1]
			if fv.Kind != yaml.ScalarNode {
				return fmt.Errorf("config %s:%d: %s.%s: want a single value", c.Path, fk.Line, k.Value, fk.Value)
			}
			c.Flags[k.Value] = append(c.Flags[k.Value], Value{Name: fk.Value, Value: fv.Value, Line: fk.Line})
		}
	default:
		return fmt.Errorf("config %s:%d: %q: want a value or a mapping of a command's flags", c.Path, k.Line, k.Value)
	}
	return nil
}
