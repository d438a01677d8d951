package phase

import (
	"errors"
	"fmt"
	"strings"

	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/policy"
)

// The libvirt start phases a check belongs to.
const (
	// Prepare is libvirt's "prepare begin": a managed='yes' hostdev is
	// still on its host driver. A check without a phase is a prepare.
	Prepare = "prepare"
	// Start is libvirt's "start begin": libvirt has moved managed='yes'
	// hostdevs to vfio-pci; a non-zero hook exit still aborts the start.
	Start = "start"
)

// Parse returns the phase p names ("" is Prepare). A bind (which moves the
// functions to vfio-pci itself) takes no phase.
func Parse(p string, bind bool) (string, error) {
	switch {
	case p == "":
		return Prepare, nil
	case p != Prepare && p != Start:
		return "", fmt.Errorf("unknown phase %q (want %q or %q)", p, Prepare, Start)
	case bind && p != Prepare:
		return "", errors.New("bind takes no phase (it moves the functions to vfio-pci itself)")
	}
	return p, nil
}

// Function is what the rules need to know about one function of a domain's
// check, besides the phase.
type Function struct {
	// Driver is the function's current driver ("" unbound or unknown).
	Driver string
	// Managed: the domain XML declares the hostdev managed='yes' (libvirt
	// moves it to vfio-pci between prepare and start).
	Managed bool
	// Allowed: the domain holds an allow decision for it from an earlier
	// check. Relock: that decision needs its TDI locked again (its rule
	// requires a locked TDI and this check can lock).
	Allowed, Relock bool
	// Deferred: it was deferred at this domain's prepare.
	Deferred bool
}

// OnHost reports whether the function is on a host driver (whose DOE
// mailbox vfio-gate never drives).
func (f Function) OnHost() bool { return f.Driver != "" && f.Driver != pci.VFIODriver }

// Action is what a check does with one function.
type Action int

const (
	// Attest: the gate decides (attest, evaluate, record).
	Attest Action = iota
	// Defer: a managed='yes' hostdev on its host driver at prepare; its
	// mailbox belongs to the host driver until libvirt moves it to
	// vfio-pci, so it is checked at start begin. No decision yet.
	Defer
	// Keep: at start begin, the allow decision of prepare stands (the
	// function was on vfio-pci or unbound then and still is not on a host
	// driver).
	Keep
	// RefuseOnHost: deferred at prepare and still on its host driver at
	// start begin, although libvirt should have moved it: deny
	// mailbox-owned (fail closed).
	RefuseOnHost
)

// Decide is the rule table: what a check in phase (for a domain when
// domain is set; a bind when bind is set) does with f.
func Decide(p string, bind, domain bool, f Function) Action {
	switch {
	case !bind && p == Prepare && f.OnHost() && f.Managed:
		return Defer
	case p == Start && !f.OnHost():
		// A TDI the rule requires locked that is no longer held (daemon
		// restart, lost session) is checked and locked again.
		if domain && f.Allowed && !f.Relock {
			return Keep
		}
	case p == Start && f.OnHost() && domain && f.Deferred:
		return RefuseOnHost
	}
	return Attest
}

// DeferredMessage is the reason given with a Defer.
func DeferredMessage(driver string) string {
	return fmt.Sprintf("on host driver %s; libvirt moves it to vfio-pci before start: checked at start begin", driver)
}

// StillOnHostMessage is the reason given with a RefuseOnHost.
func StillOnHostMessage(f pci.BDF, driver, domain string) string {
	return fmt.Sprintf("%s is still on its host driver %s at libvirt start begin, although libvirt moves a managed='yes' hostdev to vfio-pci before start: "+
		"vfio-gate never drives a mailbox a host driver owns, so it is refused (check what rebound it; or run `vfio-gate bind --domain %s %s` before starting)", f, driver, domain, f)
}

// UnknownLaunchSecurity is the reason given to every function of a domain
// whose <launchSecurity type=...> the policy does not classify.
func UnknownLaunchSecurity(domain, launchSecurity string) string {
	return fmt.Sprintf("domain %s has <launchSecurity type='%s'>, which vfio-gate does not know (built in: %s): if it is a confidential "+
		"VM type, add it to the policy's libvirt.confidential_types and reload the daemon", domain, launchSecurity,
		strings.Join(policy.BuiltinConfidentialTypes, ", "))
}

// MailboxOwnedAdvice says what to do about a function denied mailbox-owned
// because it is on host driver driver; target is how `vfio-gate bind`
// names it.
func MailboxOwnedAdvice(driver, target, domain, p string, managed bool) string {
	bind := fmt.Sprintf("`vfio-gate bind %s` (moves its IOMMU group to vfio-pci, attests it there, keeps it on vfio-pci on allow "+
		"and gives it back on deny; libvirt accepts a function already on vfio-pci)", target)
	switch {
	case p == Start:
		return fmt.Sprintf(" (the function is on its host driver %s at libvirt start begin, and a check never moves it: "+
			"declare the hostdev managed='yes' so libvirt moves it to vfio-pci before start, or run %s first)", driver, bind)
	case domain != "" && !managed:
		return fmt.Sprintf(" (the function is on its host driver %s and the hostdev is not managed='yes', so libvirt will not move it "+
			"and a check never does: run %s first; or declare it managed='yes': then vfio-gate checks it at libvirt start begin, "+
			"after libvirt moved it to vfio-pci)", driver, bind)
	}
	return fmt.Sprintf(" (the function is on its host driver %s and a check never moves it: run %s first; "+
		"a libvirt managed='yes' hostdev on a host driver is checked at start begin instead, after libvirt moved it to vfio-pci)", driver, bind)
}
