// Package buildinfo names the running build: the version and commit that
// packaging stamped into the binary, else what the Go toolchain recorded
// (debug.ReadBuildInfo). It holds no state and is safe for concurrent use.
package buildinfo
