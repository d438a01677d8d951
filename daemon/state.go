package daemon

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/vfio-gate/vfio-gate/pci"
)

// maxStateFile caps the state file the daemon reads back.
const maxStateFile = 16 << 20

// MaxDomainName is the longest domain name the API accepts, in bytes.
// libvirt keeps each domain's definition and status in <name>.xml files,
// so a name it can run fits a file name (NAME_MAX, 255 bytes); anything
// longer is refused before it is checked or recorded, so that whatever is
// accepted can also be released (a release event must fit the log).
const MaxDomainName = 255

// maxLaunchSecurity caps <launchSecurity type=...>; libvirt's are short words.
const maxLaunchSecurity = 64

// checkDomainName applies libvirt's own rules for a domain name (it refuses
// an empty name, a newline and, for the QEMU driver, '/') plus the length
// bound above and valid UTF-8.
func checkDomainName(name string) error {
	switch {
	case name == "":
		return errors.New("empty domain name")
	case len(name) > MaxDomainName:
		return fmt.Errorf("domain name of %d bytes: libvirt's are at most %d (they name files)", len(name), MaxDomainName)
	case !utf8.ValidString(name):
		return errors.New("domain name is not valid UTF-8")
	case strings.ContainsAny(name, "\n/\x00"):
		return fmt.Errorf("domain name %q holds a newline, '/' or NUL, which libvirt refuses", name)
	}
	return nil
}

// checkRequestStrings bounds the free-form strings of a request.
func checkRequestStrings(domain, launchSecurity string, needDomain bool) *Error {
	if domain != "" || needDomain {
		if err := checkDomainName(domain); err != nil {
			return badRequest("%v", err)
		}
	}
	if len(launchSecurity) > maxLaunchSecurity || strings.ContainsFunc(launchSecurity, func(r rune) bool { return r < 0x20 || r == 0x7f }) ||
		!utf8.ValidString(launchSecurity) {
		return badRequest("launch_security: at most %d printable bytes", maxLaunchSecurity)
	}
	return nil
}

// validate checks a state file read back: every record well formed and
// filed under its own BDF, no function held by two domains. Anything else
// is refused: the daemon must not forget, or give away, what it holds.
func (st *state) validate() error {
	holder := map[string]string{}
	claim := func(dom, key string, b pci.BDF, what string) error {
		if p, err := pci.ParseBDF(key); err != nil || p != b {
			return fmt.Errorf("domain %q: %s record filed under %q holds BDF %s", dom, what, key, b)
		}
		if other, ok := holder[key]; ok && other != dom {
			return fmt.Errorf("%s is held by both %q and %q", key, other, dom)
		}
		holder[key] = dom
		return nil
	}
	for _, name := range slices.Sorted(maps.Keys(st.Domains)) {
		if err := checkDomainName(name); err != nil {
			return fmt.Errorf("domain %q: %v", name, err)
		}
		d := st.Domains[name]
		if d == nil {
			return fmt.Errorf("domain %q: null record", name)
		}
		for _, k := range slices.Sorted(maps.Keys(d.Devices)) {
			h := d.Devices[k]
			if h == nil {
				return fmt.Errorf("domain %q: null device record %q", name, k)
			}
			if err := claim(name, k, h.BDF, "device"); err != nil {
				return err
			}
		}
		for _, k := range slices.Sorted(maps.Keys(d.Deferred)) {
			dd := d.Deferred[k]
			if dd == nil {
				return fmt.Errorf("domain %q: null deferred record %q", name, k)
			}
			if err := claim(name, k, dd.BDF, "deferred"); err != nil {
				return err
			}
		}
		for _, k := range slices.Sorted(maps.Keys(d.Denied)) {
			if p, err := pci.ParseBDF(k); err != nil || p != d.Denied[k].BDF {
				return fmt.Errorf("domain %q: denied record filed under %q holds BDF %s", name, k, d.Denied[k].BDF)
			}
		}
	}
	for i, r := range st.Released {
		if r.BDFs == nil && r.Domain == "" {
			return fmt.Errorf("released record #%d is empty", i+1)
		}
	}
	return nil
}
