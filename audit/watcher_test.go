package audit

import (
	"os"
	"testing"
)

// dispatch keeps other processes' accesses for the watches of the accessed
// device only, drops the Watcher's own, and counts what exceeds MaxKept.
func TestWatcherDispatch(t *testing.T) {
	w := &Watcher{self: uint32(os.Getpid()), watches: map[string]map[*watch]struct{}{}}
	a, b, c := &watch{}, &watch{}, &watch{}
	w.watches["0000:01:00.0"] = map[*watch]struct{}{a: {}, b: {}}
	w.watches["0000:02:00.0"] = map[*watch]struct{}{c: {}}
	other := w.self + 1
	w.dispatch(&Access{PID: other, Device: "0000:01:00.0", Offset: 0x19c})
	w.dispatch(&Access{PID: w.self, Device: "0000:01:00.0", Offset: 0x190})
	w.dispatch(&Access{PID: other, Device: "0000:03:00.0"})
	if len(a.got) != 1 || len(b.got) != 1 || len(c.got) != 0 || a.got[0].Offset != 0x19c {
		t.Fatalf("a %+v b %+v c %+v", a.got, b.got, c.got)
	}
	for range MaxKept + 5 {
		w.dispatch(&Access{PID: other, Device: "0000:02:00.0"})
	}
	if len(c.got) != MaxKept || c.dropped != 5 {
		t.Fatalf("kept %d dropped %d, want %d and 5", len(c.got), c.dropped, MaxKept)
	}
}
