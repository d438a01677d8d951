package conn

import (
	"slices"
	"strings"
	"testing"

	"github.com/vfio-gate/vfio-gate/internal/testutil"
)

// TestRealLibvirtdTestDriver talks to a real libvirtd, through go-libvirt, with
// libvirt's built-in test driver (a real daemon, a fake hypervisor).
func TestRealLibvirtdTestDriver(t *testing.T) {
	testutil.StartLibvirtd(t)
	c, err := Dial("test:///default", "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	names, err := c.Domains()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(names, "test") {
		t.Fatalf("test driver domains = %v, want the built-in \"test\"", names)
	}
	x, err := c.DomainXML("test")
	if err != nil || !strings.Contains(x, "<name>test</name>") {
		t.Fatalf("xml %q err %v", x, err)
	}
	if _, err := c.DomainXML("no-such-domain"); err == nil {
		t.Fatal("lookup of a missing domain succeeded")
	}
}
