// Package clitree holds the conventions vfio-gate's cobra command tree
// follows that cobra does not offer: a command that only groups
// subcommands refuses an unknown one (a usage error, exit 1) instead of
// printing its help and exiting 0, also when --help is given with it; and
// a subcommand's help names the root's global flags in one line instead of
// repeating their descriptions, which the root help documents once.
//
// It knows nothing of vfio-gate's commands; cmd/vfio-gate applies it to
// its tree. Build functions are safe for concurrent use (tests build many
// trees at once).
package clitree
