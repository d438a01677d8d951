// Package archtest checks the code against docs/architecture.md.
package archtest

import (
	"bufio"
	"go/build"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/vfio-gate/vfio-gate/"

// unrestricted are not checked: the CLI, the end-to-end tests, the test
// support packages and this test.
var unrestricted = []string{"cmd/", "test/", "internal/testutil/", "internal/archtest/"}

// exceptions are imports the code still has against the table of
// docs/architecture.md, each with the reason it is there. The test fails
// when an exception is no longer needed, so this list only shrinks.
var exceptions = []struct{ pkg, imp, reason string }{}

// table reads the "## Imports" table of docs/architecture.md: package → allowed imports.
func table(t *testing.T, root string) map[string][]string {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "docs/architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			in = line == "## Imports"
			continue
		}
		if !in || !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) != 4 {
			t.Fatalf("docs/architecture.md: bad Imports row %q", line)
		}
		pkg := strings.Trim(strings.TrimSpace(cells[1]), "`")
		var imps []string
		for _, c := range strings.Split(cells[2], ",") {
			c = strings.Trim(strings.TrimSpace(c), "`")
			if c != "" && c != "—" {
				imps = append(imps, c)
			}
		}
		if _, dup := out[pkg]; dup {
			t.Fatalf("docs/architecture.md: %s listed twice", pkg)
		}
		out[pkg] = imps
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) < 10 {
		t.Fatalf("docs/architecture.md: only %d rows in the Imports table: parser broken?", len(out))
	}
	return out
}

// imports lists the module imports of every checked package's non-test code.
func imports(t *testing.T, root string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	err := packageDirs(root, unrestricted, func(path, rel string) error {
		pkg, err := build.ImportDir(path, 0)
		if err != nil {
			return nil // no Go files here
		}
		var imps []string
		for _, imp := range pkg.Imports {
			if strings.HasPrefix(imp, module) {
				imps = append(imps, strings.TrimPrefix(imp, module))
			}
		}
		sort.Strings(imps)
		out[rel] = imps
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestImportsMatchArchitecture: every import of every library package is an
// arrow of docs/architecture.md (or a listed exception), every package has
// a row, and every arrow and exception is used by the code.
func TestImportsMatchArchitecture(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	allowed := table(t, root)
	code := imports(t, root)
	if len(code) < 10 {
		t.Fatalf("found only %d packages: walker broken?", len(code))
	}
	excepted := func(pkg, imp string) bool {
		return slices.ContainsFunc(exceptions, func(e struct{ pkg, imp, reason string }) bool { return e.pkg == pkg && e.imp == imp })
	}
	used := map[[2]string]bool{}
	for pkg, imps := range code {
		rules, ok := allowed[pkg]
		if !ok {
			t.Errorf("%s has no row in docs/architecture.md's Imports table (it imports %v)", pkg, imps)
			continue
		}
		for _, imp := range imps {
			used[[2]string{pkg, imp}] = true
			if !slices.Contains(rules, imp) && !excepted(pkg, imp) {
				t.Errorf("%s imports %s: not an arrow of docs/architecture.md (allowed: %v)", pkg, imp, rules)
			}
		}
	}
	for pkg, rules := range allowed {
		if _, ok := code[pkg]; !ok {
			t.Errorf("docs/architecture.md lists %s, which is not a package", pkg)
			continue
		}
		for _, imp := range rules {
			if !used[[2]string{pkg, imp}] {
				t.Errorf("docs/architecture.md says %s imports %s; it does not (remove the arrow)", pkg, imp)
			}
		}
	}
	for _, e := range exceptions {
		if !used[[2]string{e.pkg, e.imp}] {
			t.Errorf("exception %s → %s is no longer needed (%s): delete it", e.pkg, e.imp, e.reason)
		} else {
			t.Logf("known exception: %s imports %s: %s", e.pkg, e.imp, e.reason)
		}
	}
}

// The shared plan's rules in words: nothing imports a test fixture or the
// CLI, and the lowest layers import nothing of the upper ones. The one
// exception is internal/demo (`vfio-gate demo`), which builds its world
// as a pci/sysfstest tree, as the CLI did before the demo moved out of it.
func TestNoLibraryImportsTestSupport(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	for pkg, imps := range imports(t, root) {
		for _, imp := range imps {
			if strings.HasPrefix(imp, "internal/testutil") || strings.HasPrefix(imp, "cmd/") ||
				(imp == "pci/sysfstest" && pkg != "pci/sysfstest" && pkg != "internal/demo") {
				t.Errorf("%s imports %s (test support or the CLI)", pkg, imp)
			}
		}
	}
}

// packageDirs calls fn for every directory under root (path, and rel: the
// slash-separated path from root) except hidden ones, testdata, vendor and
// those under a prefix of skip ("cmd/").
func packageDirs(root string, skip []string, fn func(path, rel string) error) error {
	return filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
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
		for _, u := range skip {
			if strings.HasPrefix(rel+"/", u) {
				return filepath.SkipDir
			}
		}
		return fn(path, rel)
	})
}
