// Package daemon is the long-lived vfio-gate process: it hosts one gate,
// holds the SPDM sessions of locked TDIs, and serves a versioned HTTP+JSON
// API on a root-only unix socket (peer credentials checked with SO_PEERCRED).
// The libvirt hook and the CLI are its clients.
package daemon
