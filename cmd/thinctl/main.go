package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/thinctl/thinctl/internal/failpoint"
)

func main() { os.Exit(runMain(os.Args[1:])) }

// runMain runs a command line the way the thinctl binary does: the first
// SIGINT or SIGTERM cancels the command's context, so the library stops at
// the next point where nothing is half done and the error says what was
// left as it was; a second signal kills thinctl the usual way.
//
// It is the whole life of the process (main and TestMain exit with its
// status): the signals stay registered when it returns. Unregistering them
// at exit, as signal.NotifyContext's stop would, is two more round trips
// with the runtime's signal thread and a wait for it to go idle, paid by
// every short command for nothing (measured in tests/bench's process floor).
func runMain(args []string) int {
	// Only test builds (-tags failpoints) read THINCTL_FAILPOINTS; a spec
	// they cannot use must not be ignored, or a crash test passes vacuously.
	if err := failpoint.EnvError(); err != nil {
		fmt.Fprintf(os.Stderr, "thinctl: %s: %v\n", failpoint.Env, err)
		return exitUsage
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		cancel()
		// From now on the default action applies: the next one kills.
		signal.Stop(sigs)
	}()
	return run(ctx, args, os.Stdout, os.Stderr)
}
