// Command vfio-gate decides whether a PCI function may be bound to vfio-pci
// and handed to a virtual machine: it attests the device over DOE/SPDM,
// evaluates a policy, records the decision in the TPM, and binds or refuses.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	rpt "github.com/vfio-gate/vfio-gate/internal/report"
)

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go onSignals(sigs, cancel, os.Exit, os.Stderr)
	code := run(ctx, os.Args, os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	signal.Stop(sigs)
	cancel()
	os.Exit(code)
}

// onSignals cancels the command at the first SIGTERM or SIGINT (it then
// winds down: releases locks, ends sessions) and exits at once, with
// 128+signal, at the second: an operator who asks twice is not kept waiting
// by a step that does not honour the cancellation.
func onSignals(sigs <-chan os.Signal, cancel func(), exit func(int), errw io.Writer) {
	<-sigs
	cancel()
	s := <-sigs
	code := 128 + int(syscall.SIGTERM)
	if n, ok := s.(syscall.Signal); ok {
		code = 128 + int(n)
	}
	fmt.Fprintf(errw, "vfio-gate: second %v: exiting now\n", s)
	exit(code)
}

// run is main without the process: it is what tests call.
func run(ctx context.Context, args []string, in io.Reader, out, errw io.Writer, getenv func(string) string) int {
	return execute(ctx, &env{in: in, out: out, errw: errw, getenv: getenv}, args[1:])
}

// execute runs the command line args (without the program name) in e and
// returns the exit code.
func execute(ctx context.Context, e *env, args []string) int {
	out := e.out
	cw := &rpt.CountingWriter{W: out}
	e.out = cw
	root := newRootCmd(e)
	root.SetArgs(args)
	root.SetIn(e.in)
	root.SetOut(cw)
	root.SetErr(e.errw)
	err := root.ExecuteContext(ctx)
	if err != nil && jsonRequested(root, args) && cw.N == 0 {
		// --json: the error is the one JSON document on stdout (docs/json.md),
		// and the message still goes to stderr for a human.
		reportErrorJSON(out, err)
	}
	return report(e.errw, err)
}
