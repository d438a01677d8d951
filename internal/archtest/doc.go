// Package archtest checks the code against docs/architecture.md: every
// import of every library package is an arrow of its "## Imports" table
// and every arrow is used, no library imports test support or the CLI, and
// every library package has its doc comment (its internals, for go doc) in
// doc.go. It has no non-test code.
package archtest
