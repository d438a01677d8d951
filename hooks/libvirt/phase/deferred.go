package phase

import "github.com/vfio-gate/vfio-gate/pci"

// Deferred is a function whose check Decide deferred (Defer) to start
// begin, with the reason given (DeferredMessage, or the daemon's).
type Deferred struct {
	BDF     pci.BDF
	Message string
}
