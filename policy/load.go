package policy

import (
	"errors"
	"fmt"
	"path/filepath"
)

// DefaultPath is where the CLI looks for the policy unless --policy says otherwise.
const DefaultPath = "/etc/vfio-gate/policy.yaml"

// maxFileSize caps the policy, anchor and CRL files.
const maxFileSize = 1 << 20

// maxErrors caps how many errors one load reports.
const maxErrors = 20

// ErrInsecure is wrapped by every refusal of a file because of its owner or mode.
var ErrInsecure = errors.New("policy: unsafe file permissions")

// Error is one problem in a policy file, at a line (0 when the problem is the
// file as a whole). Load returns one *Error or several joined with errors.Join.
type Error struct {
	File   string
	Line   int
	Column int
	Msg    string
	Err    error // wrapped cause, if any (for example ErrInsecure)
}

func (e *Error) Error() string {
	switch {
	case e.Line > 0 && e.Column > 0:
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
	case e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	default:
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
}

func (e *Error) Unwrap() error { return e.Err }

// Load reads, checks and validates the policy file at path, and loads the
// trust anchors and CRLs it names (relative paths are relative to the
// policy file's directory). The policy file, every anchor and CRL file and
// their directories must be owned by root and not writable by group or
// others, unless opts.SkipPermissionCheck is set. Any problem is an error:
// there is no partial or default policy.
func Load(path string, opts *LoadOptions) (*Policy, error) {
	data, err := readSecure(path, opts)
	if err != nil {
		return nil, &Error{File: path, Msg: err.Error(), Err: err}
	}
	return Parse(data, path, opts)
}

// Parse validates policy text. name is used in errors and to resolve
// relative anchor and CRL paths (its directory); those files are read with
// the same permission checks as Load.
func Parse(data []byte, name string, opts *LoadOptions) (*Policy, error) {
	if len(data) > maxFileSize {
		return nil, &Error{File: name, Msg: fmt.Sprintf("larger than %d bytes", maxFileSize)}
	}
	d := &decoder{file: name, dir: filepath.Dir(name), opts: opts}
	p := d.document(data)
	if err := d.err(); err != nil {
		return nil, err
	}
	p.Path = name
	p.Warnings = d.warns
	return p, nil
}
