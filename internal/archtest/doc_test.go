package archtest

import (
	"fmt"
	"go/build"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// minDocLines is how many lines a package doc comment has at least: what
// the package owns, how it is used, and what is safe for concurrent use.
const minDocLines = 3

// docExempt are not library packages: the CLI and the end-to-end tests.
var docExempt = []string{"cmd/", "test/"}

// docProblems checks every library package under root: its package doc
// comment is in doc.go (and only there) and has at least minDocLines lines.
// The internals of a package are documented there, for go doc
// (docs/internals.md keeps only what crosses packages).
func docProblems(root string) ([]string, error) {
	var out []string
	err := packageDirs(root, docExempt, func(path, rel string) error {
		pkg, err := build.ImportDir(path, build.ImportComment)
		if err != nil || pkg.Name == "main" {
			return nil // no Go files here, or a command
		}
		files := slices.Concat(pkg.GoFiles, pkg.CgoFiles, pkg.IgnoredGoFiles)
		if !slices.Contains(files, "doc.go") {
			out = append(out, fmt.Sprintf("%s has no doc.go (its package doc comment goes there)", rel))
		}
		fset := token.NewFileSet()
		for _, fn := range files {
			f, err := parser.ParseFile(fset, filepath.Join(path, fn), nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				return err
			}
			text := ""
			if f.Doc != nil {
				text = strings.TrimSpace(f.Doc.Text())
			}
			switch {
			case fn != "doc.go" && strings.HasPrefix(text, "Package "):
				out = append(out, fmt.Sprintf("%s/%s has a package doc comment: merge it into doc.go", rel, fn))
			case fn == "doc.go" && !strings.HasPrefix(text, "Package "+f.Name.Name+" "):
				out = append(out, fmt.Sprintf("%s/doc.go has no package doc comment (\"// Package %s ...\")", rel, f.Name.Name))
			case fn == "doc.go" && strings.Count(text, "\n")+1 < minDocLines:
				out = append(out, fmt.Sprintf("%s/doc.go: the package doc comment has %d lines, want at least %d", rel, strings.Count(text, "\n")+1, minDocLines))
			}
		}
		return nil
	})
	return out, err
}

// TestPackageDocs: every library package documents itself in doc.go, for
// go doc.
func TestPackageDocs(t *testing.T) {
	problems, err := docProblems(repoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
}

// TestDocProblems: the check finds a missing doc.go, a short comment, a
// doc.go without one and a second package comment, and passes a good
// package and a command.
func TestDocProblems(t *testing.T) {
	root := t.TempDir()
	write := func(name, text string) { t.Helper(); writeTreeFile(t, root, name, text) }
	const good = "// Package good is\n// documented\n// well.\npackage good\n"
	write("good/doc.go", good)
	write("good/good.go", "package good\n")
	write("missing/missing.go", "// Package missing has its comment elsewhere,\n// which is not doc.go,\n// however long it is.\npackage missing\n")
	write("short/doc.go", "// Package short is short.\npackage short\n")
	write("none/doc.go", "package none\n")
	write("twice/doc.go", strings.ReplaceAll(good, "good", "twice"))
	write("twice/twice.go", "// Package twice again.\npackage twice\n")
	write("cmd/tool/main.go", "package main\n")
	write("lib/tool/main.go", "package main\n")
	got, err := docProblems(root)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"missing has no doc.go (its package doc comment goes there)",
		"missing/missing.go has a package doc comment: merge it into doc.go",
		"none/doc.go has no package doc comment (\"// Package none ...\")",
		"short/doc.go: the package doc comment has 1 lines, want at least 3",
		"twice/twice.go has a package doc comment: merge it into doc.go",
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
