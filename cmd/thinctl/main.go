package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() { os.Exit(runMain(os.Args[1:])) }

// runMain runs a command line the way the thinctl binary does: the first
// SIGINT or SIGTERM cancels the command's context, so the library stops at
// the next point where nothing is half done and the error says what was
// left as it was; a second signal kills thinctl the usual way.
func runMain(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop()
	}()
	return run(ctx, args, os.Stdout, os.Stderr)
}
