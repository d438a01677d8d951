package phase

import (
	"strings"
	"testing"

	"github.com/vfio-gate/vfio-gate/pci"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		in   string
		bind bool
		want string
		err  string
	}{
		{"", false, Prepare, ""},
		{"", true, Prepare, ""},
		{Prepare, true, Prepare, ""},
		{Start, false, Start, ""},
		{Start, true, "", "bind takes no phase"},
		{"started", false, "", `unknown phase "started"`},
		{"PREPARE", false, "", "unknown phase"},
	} {
		got, err := Parse(c.in, c.bind)
		if got != c.want || (err == nil) != (c.err == "") || err != nil && !strings.Contains(err.Error(), c.err) {
			t.Errorf("Parse(%q, bind %v) = %q, %v; want %q, %q", c.in, c.bind, got, err, c.want, c.err)
		}
	}
}

// TestDecide is libvirt's phase table as the daemon applies it.
func TestDecide(t *testing.T) {
	host, vfio, none := "nvme", pci.VFIODriver, ""
	for _, c := range []struct {
		name   string
		phase  string
		bind   bool
		domain bool
		f      Function
		want   Action
	}{
		{"prepare: managed on a host driver is deferred", Prepare, false, true, Function{Driver: host, Managed: true}, Defer},
		{"prepare without a domain (preflight) defers too", Prepare, false, false, Function{Driver: host, Managed: true}, Defer},
		{"prepare: unmanaged on a host driver is attested (and denied mailbox-owned there)", Prepare, false, true, Function{Driver: host}, Attest},
		{"prepare: managed on vfio-pci is attested at once", Prepare, false, true, Function{Driver: vfio, Managed: true}, Attest},
		{"bind never defers: it moves the function itself", Prepare, true, true, Function{Driver: host, Managed: true}, Attest},
		{"start: allowed at prepare, on vfio-pci: the decision stands", Start, false, true, Function{Driver: vfio, Allowed: true}, Keep},
		{"start: allowed at prepare, unbound: the decision stands", Start, false, true, Function{Driver: none, Allowed: true}, Keep},
		{"start: allowed, but its TDI must be locked again", Start, false, true, Function{Driver: vfio, Allowed: true, Relock: true}, Attest},
		{"start: no earlier allow (deferred, now on vfio-pci)", Start, false, true, Function{Driver: vfio, Deferred: true}, Attest},
		{"start without a domain keeps nothing", Start, false, false, Function{Driver: vfio, Allowed: true}, Attest},
		{"start: deferred and still on the host driver", Start, false, true, Function{Driver: host, Managed: true, Deferred: true}, RefuseOnHost},
		{"start: on a host driver, never deferred: the gate denies it", Start, false, true, Function{Driver: host, Managed: true}, Attest},
		{"start without a domain: no deferral to refuse", Start, false, false, Function{Driver: host, Deferred: true}, Attest},
	} {
		if got := Decide(c.phase, c.bind, c.domain, c.f); got != c.want {
			t.Errorf("%s: Decide = %d, want %d", c.name, got, c.want)
		}
	}
}

func TestMessages(t *testing.T) {
	b := pci.BDF{Bus: 0x3d}
	if m := StillOnHostMessage(b, "nvme", "vm1"); !strings.Contains(m, "0000:3d:00.0") || !strings.Contains(m, "nvme") ||
		!strings.Contains(m, "vfio-gate bind --domain vm1 0000:3d:00.0") {
		t.Errorf("StillOnHostMessage: %s", m)
	}
	if m := UnknownLaunchSecurity("vm1", "cca"); !strings.Contains(m, "type='cca'") || !strings.Contains(m, "sev-snp") ||
		!strings.Contains(m, "libvirt.confidential_types") {
		t.Errorf("UnknownLaunchSecurity: %s", m)
	}
	start := MailboxOwnedAdvice("nvme", "x", "vm1", Start, true)
	unmanaged := MailboxOwnedAdvice("nvme", "x", "vm1", Prepare, false)
	plain := MailboxOwnedAdvice("nvme", "x", "", Prepare, false)
	if !strings.Contains(start, "at libvirt start begin") || !strings.Contains(unmanaged, "not managed='yes'") ||
		!strings.Contains(plain, "checked at start begin instead") || start == unmanaged || unmanaged == plain {
		t.Errorf("advice does not follow the phase:\n%s\n%s\n%s", start, unmanaged, plain)
	}
}
