package report

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// Progress writes progress lines for a run over n functions to w (stderr):
// at once when n > 1, else only when the run takes longer than a second;
// and, when it wrote the first, how long the run took when done is called.
func Progress(w io.Writer, what string, n int) (done func()) {
	start := time.Now()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	printed := n > 1
	if printed {
		fmt.Fprintf(w, "vfio-gate: %s %d functions...\n", what, n)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTimer(time.Second)
		defer t.Stop()
		select {
		case <-stop:
		case <-t.C:
			if !printed {
				fmt.Fprintf(w, "vfio-gate: %s 1 function (attesting, this may take a while)...\n", what)
				printed = true
			}
			<-stop
		}
	}()
	return func() {
		close(stop)
		wg.Wait()
		if printed {
			fmt.Fprintf(w, "vfio-gate: %s done in %s\n", what, time.Since(start).Round(time.Millisecond))
		}
	}
}
