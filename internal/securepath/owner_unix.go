//go:build unix

package securepath

import (
	"io/fs"
	"syscall"
)

func ownerUID(st fs.FileInfo) (uint32, bool) {
	s, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return s.Uid, true
}
