// Command thinctl-snapshotter serves containerd's snapshots API on a unix
// socket, as a containerd proxy plugin, over the devicemapper thin pool
// `thinctl pool init` made under --root. docs/containerd.md describes the
// containerd configuration and a systemd unit.
//
//	thinctl-snapshotter --root /var/lib/thinctl --address /run/thinctl-snapshotter.sock
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/v2/contrib/snapshotservice"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/thinctl/thinctl/containerd/snapshotter"
	"github.com/thinctl/thinctl/thinpool"
	"github.com/thinctl/thinctl/unixsock"
)

// version is set with -ldflags "-X main.version=...".
var version = "unknown"

// stopGrace bounds how long SIGTERM waits for requests in flight.
const stopGrace = 10 * time.Second

func main() {
	os.Exit(run(os.Args[1:], os.Stderr, nil))
}

// config is what the flags say.
type config struct {
	root, address string
	debug         bool
}

func parseFlags(args []string, stderr io.Writer) (config, int) {
	var c config
	fs := flag.NewFlagSet("thinctl-snapshotter", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.root, "root", "/var/lib/thinctl", "thinctl root `DIR` holding the pool `thinctl --root DIR pool init` made")
	fs.StringVar(&c.address, "address", "/run/thinctl-snapshotter.sock", "unix `SOCKET` to serve containerd on")
	fs.BoolVar(&c.debug, "debug", false, "log every request, not only failures")
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: thinctl-snapshotter [--root DIR] [--address SOCKET] [--debug]\n\n"+
			"Serves containerd's snapshots API over the thinctl thin pool under DIR (a proxy plugin;\n"+
			"see docs/containerd.md for containerd's configuration).\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, 0
		}
		return c, 2
	}
	if *showVersion {
		fmt.Fprintln(stderr, "thinctl-snapshotter", version)
		return c, 0
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "thinctl-snapshotter: unexpected argument %q (flags only; see --help)\n", fs.Arg(0))
		return c, 2
	}
	if !filepath.IsAbs(c.address) {
		fmt.Fprintf(stderr, "thinctl-snapshotter: --address %q: give an absolute socket path\n", c.address)
		return c, 2
	}
	return c, -1
}

// run is main without the exit; ready, when set, is called once the
// socket accepts connections (tests).
func run(args []string, stderr io.Writer, ready func()) int {
	c, code := parseFlags(args, stderr)
	if code >= 0 {
		return code
	}
	level := slog.LevelInfo
	if c.debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "thinctl-snapshotter: "+format+"\n", a...)
		return 1
	}
	if err := checkRoot(c.root); err != nil {
		return fail("%v", err)
	}
	unlock, err := lockRoot(c.root)
	if err != nil {
		return fail("%v", err)
	}
	defer unlock()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	t0 := time.Now()
	cfg := snapshotter.Config{Root: c.root, Logger: log}
	if c.debug {
		cfg.Trace = func(method, step string, took time.Duration) {
			log.Debug("step", "method", method, "step", step, "took", took.Round(time.Microsecond))
		}
	}
	sn, err := snapshotter.New(ctx, cfg)
	if err != nil {
		return fail("%s", oneLine(err))
	}
	defer sn.Close()

	l, err := listen(c.address)
	if err != nil {
		return fail("%v", err)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(logRequests(log)))
	snapshotsapi.RegisterSnapshotsServer(srv, snapshotservice.FromSnapshotter(sn))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	log.Info("serving containerd's snapshots API", "root", c.root, "address", c.address, "version", version,
		"startup", time.Since(t0).Round(time.Millisecond))
	if ready != nil {
		ready()
	}
	select {
	case err := <-served:
		return fail("serve %s: %v", c.address, err)
	case <-ctx.Done():
	}
	log.Info("stopping: waiting for requests in flight", "grace", stopGrace)
	done := make(chan struct{})
	go func() { srv.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(stopGrace):
		srv.Stop()
	}
	os.Remove(c.address)
	log.Info("stopped")
	return 0
}

// checkRoot refuses a root without a thinctl devicemapper pool with a line
// naming what to run.
func checkRoot(root string) error {
	if thinpool.Exists(root) {
		return nil
	}
	for _, other := range []string{"overlay2", "aufs"} {
		if st, err := os.Stat(filepath.Join(root, other)); err == nil && st.IsDir() {
			return fmt.Errorf("%s holds a thinctl %s store, and thinctl-snapshotter serves only the devicemapper backend: "+
				"give another --root and run `thinctl --root DIR --driver devicemapper pool init` there", root, other)
		}
	}
	return fmt.Errorf("no thinctl thin pool under %s: run `thinctl --root %s --driver devicemapper pool init` first", root, root)
}

// lockRoot takes <root>/snapshotter.lock so that one snapshotter serves a
// root at a time (its index of snapshots is in memory). The kernel drops
// the lock when the process dies, so a restart after SIGKILL finds it free.
func lockRoot(root string) (func(), error) {
	path := filepath.Join(root, "snapshotter.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %v", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another thinctl-snapshotter serves %s (%s is locked): stop it first", root, path)
	}
	return func() { f.Close() }, nil
}

// listen listens on --address, its owner's alone (unixsock.Listen), with
// the flag named in what goes wrong.
func listen(address string) (net.Listener, error) {
	l, err := unixsock.Listen(address)
	switch {
	case errors.Is(err, unixsock.ErrNotSocket):
		return nil, fmt.Errorf("--address %s exists and is not a socket: remove it or give another path", address)
	case errors.Is(err, unixsock.ErrInUse):
		return nil, fmt.Errorf("something already serves %s: stop it or give another --address", address)
	case err != nil:
		return nil, fmt.Errorf("--address: %v", err)
	}
	return l, nil
}

// logRequests logs failed requests (and, at debug level, every request)
// with the method, the time taken and the error.
func logRequests(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		t0 := time.Now()
		resp, err := handler(ctx, req)
		method := info.FullMethod[strings.LastIndex(info.FullMethod, "/")+1:]
		if err != nil {
			log.Warn("request failed", "method", method, "took", time.Since(t0).Round(time.Microsecond),
				"code", status.Code(err).String(), "error", oneLineText(status.Convert(err).Message()))
		} else {
			log.Debug("request", "method", method, "took", time.Since(t0).Round(time.Microsecond))
		}
		return resp, err
	}
}

func oneLine(err error) string { return oneLineText(err.Error()) }

func oneLineText(s string) string { return strings.Join(strings.Fields(s), " ") }
