// Package conn talks to libvirtd with go-libvirt: it fetches defined domains'
// XML for preflight checks and watches lifecycle events for the daemon. The
// hook process never uses it (a hook must not call back into libvirtd).
package conn
