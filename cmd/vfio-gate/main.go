// Command vfio-gate decides whether a PCI function may be bound to vfio-pci
// and handed to a virtual machine: it attests the device over DOE/SPDM,
// evaluates a policy, records the decision in the TPM, and binds or refuses.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// run is main without the process: it is what tests call.
func run(ctx context.Context, args []string, in io.Reader, out, errw io.Writer, getenv func(string) string) int {
	root := newRootCmd(&env{in: in, out: out, errw: errw, getenv: getenv})
	root.SetArgs(args[1:])
	root.SetIn(in)
	root.SetOut(out)
	root.SetErr(errw)
	err := root.ExecuteContext(ctx)
	return report(errw, err)
}
