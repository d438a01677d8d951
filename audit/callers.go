package audit

import (
	"bufio"
	"bytes"
	"io"
	"math"
	"slices"
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
// line, as /proc/kallsyms: the kernel's own symbols sorted by address,
// then each module's) and returns the caller ranges of the paths it finds,
// and the names of the functions found (pathFuncs' symbols, and vfioSym for
// vfio-pci-core's text when the module is loaded). A function ends where
// the next symbol starts; the module's range ends at its first symbol
// after its last function (its data follows its text). A compiler clone
// (pci_read_config.isra.0) counts as the function. Addresses hidden by
// kptr_restrict (all zero) give no ranges. It allocates only for the
// symbols it keeps: the listing has ~10^5 lines, and its garbage would
// cost the audited machine a collection.
func readCallers(r io.Reader) ([]callerRange, []string, error) {
	var (
		ranges  []callerRange
		found   []string
		open    []int    // ranges of kernel functions whose end is the next symbol
		modAddr []uint64 // vfio-pci-core's symbols
		vfioLo  = uint64(math.MaxUint64)
		vfioHi  uint64
	)
	mod := []byte("[" + vfioModule + "]")
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		addrF, rest := field(line)
		typ, rest := field(rest)
		name, rest := field(rest)
		modF, _ := field(rest)
		if len(name) == 0 || len(typ) != 1 {
			continue
		}
		addr, ok := hex64(addrF)
		if !ok || addr == 0 {
			continue
		}
		text := typ[0] == 't' || typ[0] == 'T'
		if len(modF) > 0 {
			if bytes.Equal(modF, mod) {
				modAddr = append(modAddr, addr)
				if text {
					vfioLo, vfioHi = min(vfioLo, addr), max(vfioHi, addr)
				}
			}
			continue
		}
		keep := open[:0]
		for _, i := range open {
			if addr > ranges[i].Start {
				ranges[i].End = addr
			} else {
				keep = append(keep, i)
			}
		}
		open = keep
		if !text {
			continue
		}
		base, _, _ := bytes.Cut(name, []byte("."))
		for _, p := range pathFuncs {
			if string(base) == p.sym {
				open = append(open, len(ranges))
				ranges = append(ranges, callerRange{addr, addr + 4096, p.path}) // until the next symbol
				if !slices.Contains(found, p.sym) {
					found = append(found, p.sym)
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, err
	}
	if vfioHi != 0 {
		end := vfioHi + 4096
		for _, a := range modAddr {
			if a > vfioHi && a < end {
				end = a
			}
		}
		ranges = append(ranges, callerRange{vfioLo, end, pathVFIO})
		found = append(found, vfioSym)
	}
	return ranges, found, nil
}

// hex64 parses up to 16 hex digits.
func hex64(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 16 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		v = v<<4 | uint64(c)
	}
	return v, true
}

// field splits off b's first space- or tab-separated field.
func field(b []byte) (f, rest []byte) {
	b = bytes.TrimLeft(b, " \t")
	i := bytes.IndexAny(b, " \t")
	if i < 0 {
		return b, nil
	}
	return b[:i], b[i:]
}
