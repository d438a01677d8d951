package policy

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
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

// readSecure reads the policy, an anchor or a CRL file. The file is opened
// without blocking (a FIFO or device named by mistake must not hang the
// load) and must be a regular file. Unless opts.SkipPermissionCheck is set,
// the path is resolved component by component (resolveSafe): every
// directory looked in on the way, from "/" through every symlink, and the
// file itself must pass checkOwnerMode; the resolved file is then opened
// with O_NOFOLLOW and checked again on the open descriptor.
func readSecure(path string, opts *LoadOptions) ([]byte, error) {
	check := opts == nil || !opts.SkipPermissionCheck
	open := path
	if check {
		real, err := resolveSafe(path)
		if err != nil {
			return nil, err
		}
		open = real
	}
	f, st, err := openRegular(open, check)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if check {
		if err := checkOwnerMode(st, "file "+open); err != nil {
			return nil, err
		}
	}
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxFileSize {
		return nil, fmt.Errorf("larger than %d bytes", maxFileSize)
	}
	return b, nil
}

// ReadRegularFile reads a configuration file the operator names (a trust
// anchor given on the command line): opened without blocking, it must be a
// regular file of at most max bytes. No ownership checks.
func ReadRegularFile(path string, max int64) ([]byte, error) {
	f, _, err := openRegular(path, false)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, max)
	}
	return b, nil
}

// maxSymlinks bounds the symlinks one resolution follows (Linux: 40).
const maxSymlinks = 40

// resolveSafe resolves path one component at a time, the way the kernel
// does, and refuses it unless every directory it looks a name up in is
// safe (checkOwnerMode; for a directory other than the file's own, a
// root-owned sticky one such as /tmp is also safe: nobody else can rename
// or remove root's entries in it). Symlinks are followed (at most
// maxSymlinks) and the directories they lead through are checked the same
// way, so a link in, or into, a directory another user controls is refused:
// that user could point it at any file, root-owned or not. It returns the
// resolved path, whose last component is not a symlink. As sshd's
// StrictModes, but through symlinks.
func resolveSafe(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	root, err := os.Lstat("/")
	if err != nil {
		return "", err
	}
	if err := checkDirMode(root, "/", false); err != nil {
		return "", err
	}
	cur, pending, links := "/", splitPath(abs), 0
	for len(pending) > 0 {
		name := pending[0]
		pending = pending[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur) // already checked on the way down
			continue
		}
		next := filepath.Join(cur, name)
		st, err := os.Lstat(next)
		if err != nil {
			return "", err
		}
		if st.Mode()&fs.ModeSymlink != 0 {
			if links++; links > maxSymlinks {
				return "", fmt.Errorf("%s: more than %d symlinks", path, maxSymlinks)
			}
			target, err := os.Readlink(next)
			if err != nil {
				return "", err
			}
			if filepath.IsAbs(target) {
				cur = "/"
			}
			pending = append(splitPath(target), pending...)
			continue
		}
		if len(pending) == 0 {
			return next, nil // the file: the caller opens and checks it
		}
		if !st.IsDir() {
			return "", fmt.Errorf("%s: not a directory", next)
		}
		if err := checkDirMode(st, next, lastDir(pending)); err != nil {
			return "", err
		}
		cur = next
	}
	return cur, nil
}

// lastDir reports whether the pending components end the path in the
// current directory (only ".", "" or the file name are left).
func lastDir(pending []string) bool {
	n := 0
	for _, p := range pending {
		if p != "" && p != "." {
			n++
		}
	}
	return n <= 1 && !slices.Contains(pending, "..")
}

func splitPath(p string) []string { return strings.Split(strings.Trim(p, "/"), "/") }

// checkDirMode is checkOwnerMode for a directory on the way to a file: above
// the file's own directory a root-owned sticky directory is accepted.
func checkDirMode(st fs.FileInfo, path string, own bool) error {
	if !own && st.Mode()&fs.ModeSticky != 0 {
		if uid, ok := ownerUID(st); ok && uid == 0 {
			return nil
		}
	}
	return checkOwnerMode(st, "directory "+path)
}

// checkOwnerMode refuses anything not owned by root (or by the user running
// vfio-gate) or writable by group or others (a sticky directory such as /tmp
// is still refused as a file's own directory: others could create the files
// it names there).
func checkOwnerMode(st fs.FileInfo, what string) error {
	if st.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%w: %s is writable by group or others (mode %04o): chmod go-w it", ErrInsecure, what, st.Mode().Perm())
	}
	uid, ok := ownerUID(st)
	if !ok {
		return fmt.Errorf("%w: cannot tell the owner of the %s on this system", ErrInsecure, what)
	}
	if uid != 0 && int64(uid) != int64(os.Geteuid()) {
		return fmt.Errorf("%w: %s is owned by uid %d, not root: chown root it", ErrInsecure, what, uid)
	}
	return nil
}

// decoder walks the yaml.Node tree, so every error has a line.
type decoder struct {
	file, dir string
	opts      *LoadOptions
	errs      []error
	warns     []Warning
}

func (d *decoder) errorf(n *yaml.Node, format string, a ...any) {
	d.errAt(n, nil, format, a...)
}

func (d *decoder) errAt(n *yaml.Node, cause error, format string, a ...any) {
	if len(d.errs) >= maxErrors {
		return
	}
	e := &Error{File: d.file, Msg: fmt.Sprintf(format, a...), Err: cause}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	d.errs = append(d.errs, e)
}

func (d *decoder) warnf(n *yaml.Node, format string, a ...any) {
	w := Warning{Message: fmt.Sprintf(format, a...)}
	if n != nil {
		w.Line = n.Line
	}
	d.warns = append(d.warns, w)
}

func (d *decoder) err() error {
	switch len(d.errs) {
	case 0:
		return nil
	case 1:
		return d.errs[0]
	}
	return errors.Join(d.errs...)
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func (d *decoder) document(data []byte) *Policy {
	p := &Policy{Mode: ModeEnforce, PCR: -1, DefaultConfidential: DenyUnattested, DefaultNonConfidential: DenyUnattested,
		Libvirt: Libvirt{Hotplug: HotplugReport, RecordTDISPExit: true}}
	root := d.rootMapping(data)
	if root == nil || !d.version(root, p) {
		return p
	}
	d.mapping(root, map[string]func(*yaml.Node){
		"version":     func(*yaml.Node) {},
		"mode":        func(v *yaml.Node) { d.mode(v, p) },
		"tpm":         func(v *yaml.Node) { d.tpm(v, p) },
		"defaults":    func(v *yaml.Node) { d.defaults(v, p) },
		"iommu_group": func(v *yaml.Node) { d.iommuGroup(v, p) },
		"libvirt":     func(v *yaml.Node) { d.libvirt(v, &p.Libvirt) },
		"rules":       func(v *yaml.Node) { d.rules(v, p) },
	})
	return p
}

// rootMapping decodes data as exactly one YAML document without aliases
// whose root is a mapping, and returns that mapping; nil after an error.
func (d *decoder) rootMapping(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.errorf(nil, "empty policy file (want at least \"version: 1\")")
			return nil
		}
		msg := err.Error()
		e := &Error{File: d.file, Msg: msg}
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			e.Line, _ = strconv.Atoi(m[1])
			e.Msg = m[2]
		}
		d.errs = append(d.errs, e)
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		d.errorf(&extra, "more than one YAML document (a policy is one document)")
		return nil
	}
	if len(doc.Content) != 1 {
		d.errorf(&doc, "empty policy file")
		return nil
	}
	root := doc.Content[0]
	if !d.noAliases(root) {
		return nil
	}
	if root.Kind != yaml.MappingNode {
		d.errorf(root, "the policy must be a mapping with version, mode, defaults and rules")
		return nil
	}
	return root
}

// version reads the version key first: a file for a newer vfio-gate is
// refused before anything else is judged. It reports whether to go on.
func (d *decoder) version(root *yaml.Node, p *Policy) bool {
	v := lookup(root, "version")
	if v == nil {
		d.errorf(root, "missing \"version: 1\"")
		return false
	}
	n, ok := d.uint(v, 32)
	if !ok {
		return false
	}
	if n != 1 {
		d.errorf(v, "unsupported policy version %d: this vfio-gate reads version 1", n)
		return false
	}
	p.Version = 1
	return true
}

func (d *decoder) mode(v *yaml.Node, p *Policy) {
	if s, ok := d.str(v); ok {
		switch Mode(s) {
		case ModeEnforce, ModeAudit:
			p.Mode = Mode(s)
		default:
			d.errorf(v, "mode %q: want enforce or audit", s)
		}
	}
}

func (d *decoder) tpm(v *yaml.Node, p *Policy) {
	d.mapping(v, map[string]func(*yaml.Node){
		"pcr": func(v *yaml.Node) {
			if n, ok := d.uint(v, 8); ok {
				if n > 23 {
					d.errorf(v, "tpm.pcr %d: want 0..23", n)
					return
				}
				p.PCR = int(n)
				if n == 16 || n == 23 {
					d.warnf(v, "tpm.pcr %d is resettable at locality 0: the TPM recorder refuses it outside test mode", n)
				}
			}
		},
	})
}

func (d *decoder) defaults(v *yaml.Node, p *Policy) {
	d.mapping(v, map[string]func(*yaml.Node){
		"confidential":     func(v *yaml.Node) { p.DefaultConfidential = d.deflt(v) },
		"non_confidential": func(v *yaml.Node) { p.DefaultNonConfidential = d.deflt(v) },
	})
	if p.DefaultConfidential == AllowUnattested {
		d.warnf(v, "defaults.confidential is allow-unattested: confidential VMs may receive devices that were never attested")
	}
}

func (d *decoder) iommuGroup(v *yaml.Node, p *Policy) {
	d.mapping(v, map[string]func(*yaml.Node){
		"exempt_classes": func(v *yaml.Node) {
			for _, c := range d.seq(v) {
				if n, ok := d.uint(c, 16); ok {
					p.ExemptClasses = append(p.ExemptClasses, uint16(n))
				}
			}
		},
	})
}

func (d *decoder) libvirt(v *yaml.Node, l *Libvirt) {
	d.mapping(v, map[string]func(*yaml.Node){
		"hotplug": func(v *yaml.Node) {
			if s, ok := d.str(v); ok {
				switch Hotplug(s) {
				case HotplugReport, HotplugDetach:
					l.Hotplug = Hotplug(s)
				default:
					d.errorf(v, "libvirt.hotplug %q: want report or detach", s)
				}
			}
		},
		"record_tdisp_exit":    func(v *yaml.Node) { l.RecordTDISPExit = d.boolean(v) },
		"confidential_types":   func(v *yaml.Node) { d.confidentialTypes(v, l) },
		"confidential_domains": func(v *yaml.Node) { d.confidentialDomains(v, l) },
	})
}

func (d *decoder) confidentialTypes(v *yaml.Node, l *Libvirt) {
	for _, n := range d.seq(v) {
		t, ok := d.str(n)
		switch {
		case !ok:
		case !launchSecurityName.MatchString(t):
			d.errorf(n, "libvirt.confidential_types: %q is not a launchSecurity type name (lowercase letters, digits, - and _)", t)
		case slices.Contains(BuiltinConfidentialTypes, t):
			d.warnf(n, "libvirt.confidential_types: %q is always confidential; listing it changes nothing", t)
		case slices.Contains(l.ConfidentialTypes, t):
			d.warnf(n, "libvirt.confidential_types: %q is listed twice", t)
		default:
			l.ConfidentialTypes = append(l.ConfidentialTypes, t)
		}
	}
}

func (d *decoder) confidentialDomains(v *yaml.Node, l *Libvirt) {
	for _, n := range d.seq(v) {
		name, ok := d.str(n)
		switch {
		case !ok:
		case name == "" || len(name) > maxDomainName || strings.ContainsAny(name, "/") ||
			strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }):
			d.errorf(n, "libvirt.confidential_domains: %q is not a libvirt domain name (1 to %d printable bytes, no /)", name, maxDomainName)
		case slices.Contains(l.ConfidentialDomains, name):
			d.warnf(n, "libvirt.confidential_domains: %q is listed twice", name)
		default:
			l.ConfidentialDomains = append(l.ConfidentialDomains, name)
		}
	}
}

// rules reads the rule list; rule names are unique.
func (d *decoder) rules(v *yaml.Node, p *Policy) {
	names := map[string]int{}
	for _, rn := range d.seq(v) {
		r := d.rule(rn)
		if r == nil {
			continue
		}
		if prev, dup := names[r.Name]; dup {
			d.errorf(rn, "rule name %q already used at line %d", r.Name, prev)
			continue
		}
		names[r.Name] = r.Line
		p.Rules = append(p.Rules, r)
	}
}

// noAliases refuses anchors, aliases and merge keys: a policy is read by
// people, and aliases make what a rule requires depend on another place.
func (d *decoder) noAliases(n *yaml.Node) bool {
	ok := true
	var walk func(*yaml.Node, int)
	walk = func(n *yaml.Node, depth int) {
		if !ok {
			return
		}
		if depth > 32 {
			d.errorf(n, "nesting deeper than 32 levels")
			ok = false
			return
		}
		if n.Kind == yaml.AliasNode || n.Anchor != "" {
			d.errorf(n, "YAML anchors and aliases are not allowed in a policy")
			ok = false
			return
		}
		if n.Kind == yaml.ScalarNode && n.Tag == "!!merge" {
			d.errorf(n, "YAML merge keys (<<) are not allowed in a policy")
			ok = false
			return
		}
		for _, c := range n.Content {
			walk(c, depth+1)
		}
	}
	walk(n, 0)
	return ok
}

func lookup(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// mapping checks that n is a mapping whose keys are all known and unique,
// and calls each key's handler in file order.
func (d *decoder) mapping(n *yaml.Node, fields map[string]func(*yaml.Node)) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "want a mapping with keys %s", keyList(fields))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag != "!!str" {
			d.errorf(k, "keys must be plain strings")
			continue
		}
		f, ok := fields[k.Value]
		if !ok {
			d.errorf(k, "unknown key %q (known: %s)", k.Value, keyList(fields))
			continue
		}
		if seen[k.Value] {
			d.errorf(k, "duplicate key %q", k.Value)
			continue
		}
		seen[k.Value] = true
		f(v)
	}
}

func keyList(fields map[string]func(*yaml.Node)) string {
	ks := make([]string, 0, len(fields))
	for k := range fields {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}

func (d *decoder) uint(n *yaml.Node, bits int) (uint64, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		d.errorf(n, "want an unsigned integer (decimal or 0x hex), got %s", describe(n))
		return 0, false
	}
	v, err := strconv.ParseUint(strings.ReplaceAll(n.Value, "_", ""), 0, bits)
	if err != nil {
		d.errorf(n, "%q is not an unsigned %d-bit integer", n.Value, bits)
		return 0, false
	}
	return v, true
}

func (d *decoder) str(n *yaml.Node) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		d.errorf(n, "want a string, got %s", describe(n))
		return "", false
	}
	return n.Value, true
}

func (d *decoder) boolean(n *yaml.Node) bool {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		d.errorf(n, "want true or false, got %s", describe(n))
		return false
	}
	switch n.Value {
	case "true":
		return true
	case "false":
		return false
	}
	d.errorf(n, "want true or false, got %q", n.Value)
	return false
}

// seq returns the items of a sequence; a scalar is accepted as a one-item list.
func (d *decoder) seq(n *yaml.Node) []*yaml.Node {
	switch {
	case n.Kind == yaml.SequenceNode:
		return n.Content
	case n.Kind == yaml.ScalarNode && n.Tag == "!!null":
		return nil // "key:" with nothing after it: an empty list
	case n.Kind == yaml.ScalarNode:
		return []*yaml.Node{n}
	}
	d.errorf(n, "want a list, got %s", describe(n))
	return nil
}

func (d *decoder) deflt(n *yaml.Node) Default {
	s, ok := d.str(n)
	if !ok {
		return DenyUnattested
	}
	switch Default(s) {
	case DenyUnattested, AllowUnattested:
		return Default(s)
	}
	d.errorf(n, "%q: want deny-unattested or allow-unattested", s)
	return DenyUnattested
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%s %q", strings.TrimPrefix(n.Tag, "!!"), n.Value)
	}
	return "something else"
}

var ruleName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// launchSecurityName is the form of a libvirt launchSecurity type.
var launchSecurityName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

func (d *decoder) rule(n *yaml.Node) *Rule {
	r := &Rule{Line: n.Line}
	var hasMatch bool
	d.mapping(n, map[string]func(*yaml.Node){
		"name": func(v *yaml.Node) {
			if s, ok := d.str(v); ok {
				if !ruleName.MatchString(s) {
					d.errorf(v, "rule name %q: use letters, digits, '.', '_' and '-' (at most 64)", s)
				}
				r.Name = s
			}
		},
		"match": func(v *yaml.Node) { hasMatch = true; d.match(v, &r.Match) },
		"spdm":  func(v *yaml.Node) { r.SPDM = d.spdm(v) },
		"measurements": func(v *yaml.Node) {
			r.Measurements = d.measurements(v)
		},
		"tdisp": func(v *yaml.Node) {
			r.TDISP = &TDISPRule{}
			d.mapping(v, map[string]func(*yaml.Node){
				"require_lock": func(v *yaml.Node) { r.TDISP.RequireLock = d.boolean(v) },
			})
		},
	})
	if n.Kind != yaml.MappingNode {
		return nil
	}
	if r.Name == "" {
		d.errorf(n, "rule without a name")
	}
	if !hasMatch {
		d.errorf(n, "rule %q has no match: a rule must say which devices it covers", r.Name)
	} else if r.Match.empty() {
		d.errorf(lookup(n, "match"), "rule %q has an empty match: it would cover every device", r.Name)
	} else if r.Match.Vendor == nil && len(r.Match.Devices) > 0 {
		d.warnf(lookup(n, "match"), "rule %q matches device IDs without a vendor: device IDs are only unique per vendor", r.Name)
	}
	if r.SPDM == nil && (r.Measurements != nil || r.TDISP != nil) {
		d.errorf(n, "rule %q has measurements or tdisp but no spdm section: they need an attested device", r.Name)
	}
	if r.Measurements != nil && !r.Measurements.RequireSigned && (len(r.Measurements.Reference) > 0 || r.Measurements.MinSVN != nil || r.Measurements.ForbidDebugMode) {
		d.warnf(lookup(n, "measurements"), "rule %q checks measurements without require_signed: true; unsigned measurements prove nothing", r.Name)
	}
	return r
}

func (m *Match) empty() bool {
	return m.Vendor == nil && len(m.Devices) == 0 && m.SubsystemVendor == nil && m.SubsystemDevice == nil &&
		m.Class == nil && m.BDF == "" && m.DSN == nil
}

func (d *decoder) u16p(v *yaml.Node) *uint16 {
	if n, ok := d.uint(v, 16); ok {
		x := uint16(n)
		return &x
	}
	return nil
}

func (d *decoder) match(n *yaml.Node, m *Match) {
	d.mapping(n, map[string]func(*yaml.Node){
		"vendor":           func(v *yaml.Node) { m.Vendor = d.u16p(v) },
		"subsystem_vendor": func(v *yaml.Node) { m.SubsystemVendor = d.u16p(v) },
		"subsystem_device": func(v *yaml.Node) { m.SubsystemDevice = d.u16p(v) },
		"device": func(v *yaml.Node) {
			items := d.seq(v)
			if v.Kind == yaml.SequenceNode && len(items) == 0 {
				d.errorf(v, "match.device is an empty list: it would match nothing")
			}
			for _, it := range items {
				if x := d.u16p(it); x != nil {
					m.Devices = append(m.Devices, *x)
				}
			}
		},
		"class": func(v *yaml.Node) {
			if v.Kind == yaml.MappingNode {
				c := &ClassMatch{Mask: 0xffffff}
				var hasValue bool
				d.mapping(v, map[string]func(*yaml.Node){
					"value": func(v *yaml.Node) {
						if x, ok := d.uint(v, 24); ok {
							c.Value, hasValue = uint32(x), true
						}
					},
					"mask": func(v *yaml.Node) {
						if x, ok := d.uint(v, 24); ok {
							c.Mask = uint32(x)
						}
					},
				})
				if !hasValue {
					d.errorf(v, "match.class needs a value")
				} else if c.Value&^c.Mask != 0 {
					d.errorf(v, "match.class value 0x%06x has bits outside mask 0x%06x", c.Value, c.Mask)
				}
				m.Class = c
				return
			}
			if x, ok := d.uint(v, 24); ok {
				m.Class = &ClassMatch{Value: uint32(x), Mask: 0xffffff}
			}
		},
		"bdf": func(v *yaml.Node) {
			if s, ok := d.str(v); ok {
				b, err := canonicalBDF(s)
				if err != nil {
					d.errorf(v, "%v", err)
				}
				m.BDF = b
			}
		},
		"dsn": func(v *yaml.Node) {
			if v.Kind == yaml.ScalarNode && v.Tag == "!!int" {
				if x, ok := d.uint(v, 64); ok {
					m.DSN = &x
				}
				return
			}
			if s, ok := d.str(v); ok {
				x, err := parseDSN(s)
				if err != nil {
					d.errorf(v, "%v", err)
					return
				}
				m.DSN = &x
			}
		},
	})
}

// canonicalBDF accepts "dddd:bb:dd.f" (any case) and returns it lower-case.
func canonicalBDF(s string) (string, error) {
	ls := strings.ToLower(s)
	if len(ls) != 12 || ls[4] != ':' || ls[7] != ':' || ls[10] != '.' {
		return "", fmt.Errorf("match.bdf %q: want dddd:bb:dd.f, e.g. 0000:3b:00.0", s)
	}
	for i, c := range ls {
		if i == 4 || i == 7 || i == 10 {
			continue
		}
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", fmt.Errorf("match.bdf %q: not hexadecimal", s)
		}
	}
	dev, _ := strconv.ParseUint(ls[8:10], 16, 8)
	fn, _ := strconv.ParseUint(ls[11:12], 16, 8)
	if dev > 31 || fn > 7 {
		return "", fmt.Errorf("match.bdf %q: device must be <= 1f and function <= 7", s)
	}
	return ls, nil
}

// parseDSN reads the lspci form "00-11-22-33-44-55-66-77" (most significant byte first).
func parseDSN(s string) (uint64, error) {
	parts := strings.Split(s, "-")
	if len(parts) != 8 {
		return 0, fmt.Errorf("match.dsn %q: want an integer or 8 hex bytes like 00-11-22-33-44-55-66-77", s)
	}
	var v uint64
	for _, p := range parts {
		b, err := strconv.ParseUint(p, 16, 8)
		if err != nil || len(p) != 2 {
			return 0, fmt.Errorf("match.dsn %q: %q is not a hex byte", s, p)
		}
		v = v<<8 | b
	}
	return v, nil
}

// KnownHash reports whether name is a hash spdm.algorithms.hash may list.
func KnownHash(name string) bool { return slices.Contains(hashNames, name) }

var versionRE = regexp.MustCompile(`^1\.[0-9]$`)

func (d *decoder) spdm(n *yaml.Node) *SPDM {
	s := &SPDM{}
	var anchorNodes []*yaml.Node
	var crlNodes []*yaml.Node
	d.mapping(n, map[string]func(*yaml.Node){
		"min_version": func(v *yaml.Node) {
			// 1.2 unquoted is a YAML float: take the text either way.
			if v.Kind != yaml.ScalarNode || (v.Tag != "!!str" && v.Tag != "!!float") || !versionRE.MatchString(v.Value) {
				d.errorf(v, "spdm.min_version: want \"1.0\" .. \"1.9\" (quoted), got %s", describe(v))
				return
			}
			s.MinVersion = v.Value
		},
		"algorithms": func(v *yaml.Node) {
			d.mapping(v, map[string]func(*yaml.Node){
				"asym": func(v *yaml.Node) { s.Asym = d.names(v, "spdm.algorithms.asym", asymNames) },
				"hash": func(v *yaml.Node) { s.Hash = d.names(v, "spdm.algorithms.hash", hashNames) },
			})
		},
		"trust_anchors": func(v *yaml.Node) { anchorNodes = d.seq(v) },
		"crls":          func(v *yaml.Node) { crlNodes = d.seq(v) },
		"require_session": func(v *yaml.Node) {
			s.RequireSession = d.boolean(v)
		},
		"require_cma_san": func(v *yaml.Node) { s.RequireCMASAN = d.boolean(v) },
	})
	if n.Kind != yaml.MappingNode {
		return s
	}
	if len(anchorNodes) == 0 {
		d.errorf(n, "spdm needs at least one trust_anchors file: without one no chain can be trusted")
	}
	for _, an := range anchorNodes {
		if p, ok := d.str(an); ok {
			s.Anchors = append(s.Anchors, d.anchors(an, p)...)
		}
	}
	seen := map[string]int{}
	for _, a := range s.Anchors {
		if l, dup := seen[a.SHA256]; dup {
			d.errorf(&yaml.Node{Line: a.Line}, "trust anchor %s (sha256 %s) is already listed at line %d", a.File, a.SHA256, l)
		}
		seen[a.SHA256] = a.Line
	}
	for _, cn := range crlNodes {
		if p, ok := d.str(cn); ok {
			if c := d.crl(cn, p, s.Anchors); c != nil {
				s.CRLs = append(s.CRLs, c)
			}
		}
	}
	return s
}

func (d *decoder) names(n *yaml.Node, what string, known []string) []string {
	var out []string
	items := d.seq(n)
	if n.Kind == yaml.SequenceNode && len(items) == 0 {
		d.errorf(n, "%s is empty: it would allow nothing", what)
	}
	for _, it := range items {
		s, ok := d.str(it)
		if !ok {
			continue
		}
		found := false
		for _, k := range known {
			if s == k {
				found = true
			}
		}
		if !found {
			d.errorf(it, "%s: unknown algorithm %q (known: %s)", what, s, strings.Join(known, ", "))
			continue
		}
		out = append(out, s)
	}
	return out
}

func (d *decoder) resolve(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(d.dir, p)
}

func (d *decoder) readRef(n *yaml.Node, p, what string) ([]byte, string, bool) {
	if p == "" {
		d.errorf(n, "empty %s path", what)
		return nil, "", false
	}
	path := d.resolve(p)
	b, err := readSecure(path, d.opts)
	if err != nil {
		d.errAt(n, err, "%s %s: %v", what, path, err)
		return nil, path, false
	}
	return b, path, true
}

// anchors loads every certificate of a PEM file (CERTIFICATE blocks only) or
// one DER certificate.
func (d *decoder) anchors(n *yaml.Node, p string) []*Anchor {
	b, path, ok := d.readRef(n, p, "trust anchor")
	if !ok {
		return nil
	}
	ders, err := pemOrDER(b, "CERTIFICATE")
	if err != nil {
		d.errorf(n, "trust anchor %s: %v", path, err)
		return nil
	}
	var out []*Anchor
	for _, der := range ders {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			d.errorf(n, "trust anchor %s: %v", path, err)
			continue
		}
		sum := sha256.Sum256(c.Raw)
		a := &Anchor{File: path, Line: n.Line, Cert: c, SHA256: hex.EncodeToString(sum[:])}
		now := d.opts.now()
		if now.After(c.NotAfter) {
			d.warnf(n, "trust anchor %s (%s) expired on %s", path, c.Subject, c.NotAfter.UTC().Format("2006-01-02"))
		}
		if !c.IsCA {
			d.warnf(n, "trust anchor %s (%s) is not a CA certificate", path, c.Subject)
		}
		out = append(out, a)
	}
	return out
}

func (d *decoder) crl(n *yaml.Node, p string, anchors []*Anchor) *CRL {
	b, path, ok := d.readRef(n, p, "CRL")
	if !ok {
		return nil
	}
	ders, err := pemOrDER(b, "X509 CRL")
	if err == nil && len(ders) != 1 {
		err = fmt.Errorf("holds %d CRLs, want one per file", len(ders))
	}
	if err != nil {
		d.errorf(n, "CRL %s: %v", path, err)
		return nil
	}
	l, err := x509.ParseRevocationList(ders[0])
	if err != nil {
		d.errorf(n, "CRL %s: %v", path, err)
		return nil
	}
	c := &CRL{File: path, Line: n.Line, List: l}
	for _, a := range anchors {
		if bytes.Equal(a.Cert.RawSubject, l.RawIssuer) {
			if err := l.CheckSignatureFrom(a.Cert); err != nil {
				continue
			}
			c.SignedBy = a.SHA256
			break
		}
	}
	if c.SignedBy == "" {
		issuedByAnchor := false
		for _, a := range anchors {
			if bytes.Equal(a.Cert.RawSubject, l.RawIssuer) {
				issuedByAnchor = true
			}
		}
		if issuedByAnchor {
			d.errorf(n, "CRL %s: signature does not verify against the trust anchor %s that issued it", path, l.Issuer)
			return nil
		}
		d.warnf(n, "CRL %s: issuer %s is not a trust anchor of this rule; it is verified against the device's chain at each check", path, l.Issuer)
	}
	now := d.opts.now()
	if !l.NextUpdate.IsZero() && now.After(l.NextUpdate) {
		d.warnf(n, "CRL %s is past its nextUpdate (%s): every device of this rule is denied (crl-expired) until it is replaced", path, l.NextUpdate.UTC().Format("2006-01-02 15:04"))
	}
	return c
}

// pemOrDER returns the DER blocks of a PEM file (only blocks of type want,
// at least one), or b itself when it is not PEM.
func pemOrDER(b []byte, want string) ([][]byte, error) {
	trimmed := bytes.TrimSpace(b)
	if !bytes.HasPrefix(trimmed, []byte("-----BEGIN")) {
		if len(trimmed) == 0 {
			return nil, errors.New("empty file")
		}
		return [][]byte{b}, nil
	}
	var out [][]byte
	rest := trimmed
	for len(bytes.TrimSpace(rest)) > 0 {
		blk, r := pem.Decode(rest)
		if blk == nil {
			return nil, errors.New("malformed PEM")
		}
		if blk.Type != want {
			return nil, fmt.Errorf("PEM block %q, want only %q", blk.Type, want)
		}
		out = append(out, blk.Bytes)
		rest = r
	}
	return out, nil
}

func (d *decoder) measurements(n *yaml.Node) *Measurements {
	m := &Measurements{}
	d.mapping(n, map[string]func(*yaml.Node){
		"require_signed":    func(v *yaml.Node) { m.RequireSigned = d.boolean(v) },
		"forbid_debug_mode": func(v *yaml.Node) { m.ForbidDebugMode = d.boolean(v) },
		"min_svn": func(v *yaml.Node) {
			if x, ok := d.uint(v, 64); ok {
				m.MinSVN = &x
			}
		},
		"reference": func(v *yaml.Node) {
			if v.Kind != yaml.MappingNode {
				d.errorf(v, "measurements.reference: want a mapping index -> list of \"alg:hex\"")
				return
			}
			m.Reference = map[uint8][]Digest{}
			for i := 0; i+1 < len(v.Content); i += 2 {
				k, vals := v.Content[i], v.Content[i+1]
				idx, ok := d.uint(k, 8)
				if !ok {
					continue
				}
				if idx == 0 || idx == 0xff {
					d.errorf(k, "measurement index %d: want 1..254", idx)
					continue
				}
				if _, dup := m.Reference[uint8(idx)]; dup {
					d.errorf(k, "measurement index %d listed twice", idx)
					continue
				}
				var ds []Digest
				items := d.seq(vals)
				if len(items) == 0 {
					d.errorf(vals, "measurement index %d has no reference values", idx)
				}
				for _, it := range items {
					if s, ok := d.str(it); ok {
						if dg, err := parseDigest(s); err != nil {
							d.errorf(it, "%v", err)
						} else {
							ds = append(ds, dg)
						}
					}
				}
				m.Reference[uint8(idx)] = ds
			}
		},
	})
	return m
}

func parseDigest(s string) (Digest, error) {
	alg, hx, ok := strings.Cut(s, ":")
	a, known := digestAlgOf(alg)
	n := a.size
	if !ok || !known {
		return Digest{}, fmt.Errorf("reference value %q: want ALG:HEX with ALG one of sha256, sha384, sha512, sha3-256, sha3-384, sha3-512", s)
	}
	v, err := hex.DecodeString(hx)
	if err != nil || len(v) != n {
		return Digest{}, fmt.Errorf("reference value %q: want %d hex digits for %s", s, 2*n, alg)
	}
	return Digest{Alg: alg, Value: v}, nil
}

// String renders a digest as in the policy file.
func (g Digest) String() string { return g.Alg + ":" + hex.EncodeToString(g.Value) }
