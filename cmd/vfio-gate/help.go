package main

import (
	"embed"
	"strings"
	"sync"
)

// helpFiles are the commands' long help and examples (help/<command>.long.txt,
// help/<command>.example.txt) and the shared sections (config, exit-codes):
// prose kept out of the Go code. docs/cli and the man pages are generated
// from them through cobra; the docs example harness runs every example.
//
//go:embed help/*.txt
var helpFiles embed.FS

// helpUsed records the help files read, so a test can find unused ones.
var helpUsed sync.Map

// helpText is help/<name>.txt without its final newline, with each {{key}}
// replaced by its value (kv: key, value, key, value, ...). A missing file
// or a placeholder left without a value is a bug in the binary: it panics
// when the command tree is built, which every test of the CLI does.
func helpText(name string, kv ...string) string {
	b, err := helpFiles.ReadFile("help/" + name + ".txt")
	if err != nil {
		panic("vfio-gate: no help text " + name + ": " + err.Error())
	}
	helpUsed.Store(name, true)
	s := strings.TrimSuffix(string(b), "\n")
	for i := 0; i+1 < len(kv); i += 2 {
		s = strings.ReplaceAll(s, "{{"+kv[i]+"}}", kv[i+1])
	}
	if i := strings.Index(s, "{{"); i >= 0 || len(kv)%2 != 0 {
		panic("vfio-gate: help text " + name + ": a placeholder has no value")
	}
	return s
}
