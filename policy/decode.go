package policy

// The YAML decoder: errors and warnings with lines, the top-level keys of
// the document, and the node helpers.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

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
