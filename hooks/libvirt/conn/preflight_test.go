package conn

import (
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
