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
func runMain(args []string) int {
	// Only test builds (-tags failpoints) read THINCTL_FAILPOINTS; a spec
	// they cannot use must not be ignored, or a crash test passes vacuously.
	if err := failpoint.EnvError(); err != nil {
		fmt.Fprintf(os.Stderr, "thinctl: %s: %v\n", failpoint.Env, err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop()
	}()
	return run(ctx, args, os.Stdout, os.Stderr)
}
