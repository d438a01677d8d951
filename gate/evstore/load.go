package evstore

import (
	"os"
	"strings"
)

// Load reads the bundle arg names, as `vfio-gate evidence show|verify`
// takes it: 64 characters without "/" or "." are a digest in the store
// dir (Store.Get), anything else a bundle file (ReadFile) that must exist
// (a missing one is os.Stat's error).
func Load(dir, arg string) (*Bundle, error) {
	if len(arg) == 64 && !strings.ContainsAny(arg, "/.") {
		return Open(dir, Options{}).Get(arg)
	}
	if _, err := os.Stat(arg); err != nil {
		return nil, err
	}
	return ReadFile(arg)
}
