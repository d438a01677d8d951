// Package archtest holds the import-direction test of ARCHITECTURE.md. It has
// no non-test code.
package archtest
