package policy

// Decoding a rule and its match.

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

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
