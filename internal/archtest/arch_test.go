package archtest

import (
	"go/build"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/vfio-gate/vfio-gate/"

// allowed lists, for each package, the module packages its non-test code may
// import: the arrows of ARCHITECTURE.md. A package missing here may import
// only internal/wire. cmd/, test/ and internal/testutil are unrestricted.
var allowed = map[string][]string{
	"internal/wire": {},
	"pci":           {"internal/wire"},
	"doe":           {"pci", "internal/wire"},
	"spdm":          {"internal/wire"},
	"tdisp":         {"spdm", "pci", "internal/wire"},
	"attest":        {"pci", "doe", "spdm", "tdisp", "internal/wire"},
	"policy":        {"attest"},
	"tpm":           {"internal/wire"},
	"vfio":          {"pci"},
	"audit":         {"pci", "internal/wire"},
	"gate":          {"attest", "policy", "tpm", "vfio", "audit", "pci", "doe", "doe/socket", "spdm", "tdisp"},
	"emu":           {"doe", "spdm", "tdisp", "pci", "internal/wire"},
	"daemon":        {"gate", "attest", "policy", "tpm", "vfio", "audit", "pci", "doe", "spdm", "tdisp"},
	"hooks/libvirt": {"gate", "daemon", "attest", "policy", "pci"},
}

var unrestricted = []string{"cmd/", "test/", "internal/testutil", "internal/archtest"}

func TestImportDirection(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		name := d.Name()
		if path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "vendor") {
			return filepath.SkipDir
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		pkg, err := build.ImportDir(path, 0)
		if err != nil {
			return nil // no Go files here
		}
		for _, u := range unrestricted {
			if strings.HasPrefix(rel+"/", u) || rel == strings.TrimSuffix(u, "/") {
				return nil
			}
		}
		checked++
		allow := map[string]bool{}
		rules, known := allowed[topPkg(rel)]
		if !known {
			rules = []string{"internal/wire"}
		}
		for _, a := range rules {
			allow[a] = true
		}
		var bad []string
		for _, imp := range pkg.Imports {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			target := strings.TrimPrefix(imp, module)
			if topPkg(target) == topPkg(rel) || allow[topPkg(target)] || strings.HasPrefix(target, topPkg(rel)+"/") {
				continue
			}
			bad = append(bad, target)
		}
		sort.Strings(bad)
		if len(bad) > 0 {
			t.Errorf("%s imports %v against ARCHITECTURE.md (allowed: %v)", rel, bad, rules)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 2 {
		t.Fatalf("checked only %d packages: walker broken?", checked)
	}
}

// topPkg maps a package path to the key of allowed: "hooks/libvirt" and
// "internal/wire" keep two elements, sub-packages fold into their parent.
func topPkg(rel string) string {
	parts := strings.Split(rel, "/")
	if len(parts) >= 2 && (parts[0] == "hooks" || parts[0] == "internal") {
		return parts[0] + "/" + parts[1]
	}
	return parts[0]
}

func TestTopPkg(t *testing.T) {
	for in, want := range map[string]string{"spdm": "spdm", "doe/socket": "doe", "hooks/libvirt": "hooks/libvirt", "internal/wire": "internal/wire", "tpm/cel": "tpm"} {
		if got := topPkg(in); got != want {
			t.Errorf("topPkg(%q) = %q, want %q", in, got, want)
		}
	}
}
