package conn

import (
	"errors"
	"testing"

	"github.com/vfio-gate/vfio-gate/internal/testutil"
)

// DefinedDomain reads a persistent definition and looks up its networks,
// against a real libvirtd with the test driver.
func TestDefinedDomain(t *testing.T) {
	testutil.StartLibvirtd(t)
	dom, nets, err := DefinedDomain("test:///default", "", "test")
	if err != nil {
		t.Fatal(err)
	}
	if dom.Name != "test" || len(nets) != len(dom.Networks) {
		t.Fatalf("domain %+v, networks %+v", dom, nets)
	}
	for i, n := range nets {
		if n.Name != dom.Networks[i] || n.Err != nil || n.ForwardMode == "" {
			t.Errorf("network %d: %+v", i, n)
		}
	}
	if _, _, err := DefinedDomain("test:///default", "", "no-such-domain"); err == nil {
		t.Fatal("a missing domain was fetched")
	}
}

// TestNetworkWarning: a hostdev pool and a network that could not be looked
// up are warned about; any other network is not.
func TestNetworkWarning(t *testing.T) {
	for _, c := range []struct {
		n    Network
		want string
	}{
		{Network{Name: "default", ForwardMode: "nat"}, ""},
		{Network{Name: "pool", ForwardMode: "hostdev"}, "<interface type='network'> uses network pool, a hostdev pool: libvirt picks the PCI function after prepare, so the hook cannot gate it; use <interface type='hostdev'> with a source address"},
		{Network{Name: "gone", Err: errors.New("no network")}, "network gone: no network: cannot tell whether it hands out PCI functions"},
	} {
		if got := c.n.Warning(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.n, got, c.want)
		}
	}
}
