// Package report holds the documents vfio-gate prints: for each `--json`
// kind (docs/json.md, docs/schema/<kind>.v1.json) the Go type of its body,
// the function that builds it from the library's results, and its readable
// text form. cmd/vfio-gate chooses which form to write; it does not format.
//
// Text forms are for people and may change between releases; the JSON
// bodies are the contract and change only with their schema version.
package report
