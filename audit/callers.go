package audit

import (
	"bufio"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// callerRange is an address range [Start, End) of kernel text whose calls
// to pci_user_*_config_* come by one path (enum access_path in
// cfgaccess.c).
type callerRange struct {
	Start, End uint64
	Path       uint8
}

// Path codes (enum access_path in cfgaccess.c; names in paths).
const (
	pathSysfs  uint8 = 1
	pathProcfs uint8 = 2
	pathVFIO   uint8 = 3
)

// pathFuncs are the kernel functions that call pci_user_*_config_*
// directly, by path: the sysfs config file's handlers (pci-sysfs.c) and
// /proc/bus/pci's (proc.c). VFIO's callers are spread over vfio-pci-core
// (static helpers of vfio_pci_config.c, vfio_pci_igd.c), so its range is
// the module's text (vfioModule).
var pathFuncs = []struct {
	sym  string
	path uint8
}{
	{"pci_read_config", pathSysfs},
	{"pci_write_config", pathSysfs},
	{"proc_bus_pci_read", pathProcfs},
	{"proc_bus_pci_write", pathProcfs},
}

// vfioModule is the module whose text calls pci_user_*_config_* for VFIO;
// vfioSym is the name reported for it (the function every VFIO config
// access enters by).
const (
	vfioModule = "vfio_pci_core"
	vfioSym    = "vfio_pci_config_rw"
)

// readCallers reads a kallsyms listing ("ADDRESS TYPE NAME [MODULE]" per
// line, as /proc/kallsyms) and returns the caller ranges of the paths it
// finds, and the names of the functions found (pathFuncs' symbols, and
// vfioSym for vfio-pci-core's text when the module is loaded). A function ends where the next
// symbol starts; the module's range ends where the first symbol after its
// last function starts. A compiler clone (pci_read_config.isra.0) counts
// as the function. Addresses hidden by kptr_restrict (all zero) give no
// ranges.
func readCallers(r io.Reader) ([]callerRange, []string, error) {
	type sym struct {
		addr uint64
		path uint8
		name string
	}
	var (
		addrs  []uint64 // every symbol's address
		funcs  []sym    // pathFuncs found
		vfioLo = uint64(math.MaxUint64)
		vfioHi uint64
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 {
			continue
		}
		addr, err := strconv.ParseUint(f[0], 16, 64)
		if err != nil || addr == 0 {
			continue
		}
		addrs = append(addrs, addr)
		text := f[1] == "t" || f[1] == "T"
		if !text {
			continue
		}
		if len(f) >= 4 {
			if f[3] == "["+vfioModule+"]" {
				vfioLo, vfioHi = min(vfioLo, addr), max(vfioHi, addr)
			}
			continue
		}
		name, _, _ := strings.Cut(f[2], ".")
		for _, p := range pathFuncs {
			if name == p.sym {
				funcs = append(funcs, sym{addr, p.path, p.sym})
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, err
	}
	// next returns the first symbol address after a (or a+4096).
	next := func(a uint64) uint64 {
		end := uint64(math.MaxUint64)
		for _, x := range addrs {
			if x > a && x < end {
				end = x
			}
		}
		if end == math.MaxUint64 {
			end = a + 4096
		}
		return end
	}
	var ranges []callerRange
	var found []string
	for _, f := range funcs {
		ranges = append(ranges, callerRange{f.addr, next(f.addr), f.path})
		if !slices.Contains(found, f.name) {
			found = append(found, f.name)
		}
	}
	if vfioHi != 0 {
		ranges = append(ranges, callerRange{vfioLo, next(vfioHi), pathVFIO})
		found = append(found, vfioSym)
	}
	return ranges, found, nil
}
