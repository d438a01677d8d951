// Package statedir opens vfio-gate's state directory (--state-dir): the
// daemon's state file, the bound-function records, the TDISP journal.
//
// Root writes there, so the directory must be root's (or, for tests and
// unprivileged runs, the user's own) and not writable by group or others:
// otherwise another user could plant a symlink where root is about to write
// and have root overwrite a file of their choosing. Inside it, every file is
// opened through an os.Root (no path can leave the directory, not even by a
// symlink) with O_NOFOLLOW on the last component, and every replacement is
// write-temp, fsync, rename, fsync the directory, so a power loss leaves the
// old or the new file, never an empty one.
//
// The functions are safe for concurrent use on distinct names.
package statedir
