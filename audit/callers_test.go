package audit

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// TestReadCallers: the caller ranges from a kallsyms listing: each path
// function (and its compiler clones) up to the next symbol, vfio-pci-core's
// text as one range up to the first symbol after it, hidden addresses
// ignored.
func TestReadCallers(t *testing.T) {
	const kallsyms = `ffffffff81000000 T _stext
ffffffff81230900 t pci_write_config.cold
ffffffff81230924 t other_cold
ffffffff81c9f1b0 t proc_bus_pci_read
ffffffff81c9f450 t proc_bus_pci_lseek
ffffffff81ca0860 t pci_write_config
ffffffff81ca0ae0 t pci_read_config
ffffffff81ca0d80 t pci_read_rom
0000000000000000 t hidden_by_kptr_restrict
ffffffffc0a01000 t vfio_pci_config_rw	[vfio_pci_core]
ffffffffc0a00000 t vfio_user_config_read	[vfio_pci_core]
ffffffffc0a02000 T vfio_pci_core_read	[vfio_pci_core]
ffffffffc0a02400 d vfio_pci_core_data	[vfio_pci_core]
ffffffffc0b00000 t e1000_probe	[e1000e]
`
	ranges, found, err := readCallers(strings.NewReader(kallsyms))
	if err != nil {
		t.Fatal(err)
	}
	want := []callerRange{
		{0xffffffff81230900, 0xffffffff81230924, pathSysfs},
		{0xffffffff81c9f1b0, 0xffffffff81c9f450, pathProcfs},
		{0xffffffff81ca0860, 0xffffffff81ca0ae0, pathSysfs},
		{0xffffffff81ca0ae0, 0xffffffff81ca0d80, pathSysfs},
		{0xffffffffc0a00000, 0xffffffffc0a02400, pathVFIO},
	}
	if !reflect.DeepEqual(ranges, want) {
		t.Errorf("ranges\n got %x\nwant %x", ranges, want)
	}
	if w := []string{"pci_write_config", "proc_bus_pci_read", "pci_read_config", vfioSym}; !reflect.DeepEqual(found, w) {
		t.Errorf("found %v, want %v", found, w)
	}
	// No addresses (kptr_restrict), no vfio-pci-core: nothing.
	ranges, found, err = readCallers(strings.NewReader("0000000000000000 t pci_read_config\n"))
	if err != nil || len(ranges) != 0 || len(found) != 0 {
		t.Errorf("hidden addresses: %v %v %v", ranges, found, err)
	}
}

// TestReadCallersAllocs: parsing the listing allocates only for what it
// keeps, not per line (the garbage of ~10^5 lines would cost the audited
// machine a collection).
func TestReadCallersAllocs(t *testing.T) {
	var b strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&b, "ffffffff8%07x t some_function_%d\n", i*64, i)
	}
	listing := b.String()
	allocs := testing.AllocsPerRun(5, func() {
		if _, _, err := readCallers(strings.NewReader(listing)); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 10 {
		t.Fatalf("%v allocations for 5,000 lines", allocs)
	}
}
