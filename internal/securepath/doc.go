// Package securepath decides whether a file may be trusted as root's: every
// directory on the way to it, from "/" and through every symlink, and the
// file itself must be owned by root (or the effective user) and not
// writable by group or others, as sshd's StrictModes but through symlinks.
// policy (the policy, its anchors and CRLs) and config (the configuration
// file, for root) use it.
//
// Refusals for an owner or a mode are *UnsafeError; their text names the
// component and what to do, and carries no package prefix, so each caller
// adds its own.
//
// The functions keep no state and may be called from any goroutine.
package securepath
