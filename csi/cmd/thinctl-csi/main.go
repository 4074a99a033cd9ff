// Command thinctl-csi serves the Container Storage Interface (Identity,
// Controller and Node) on a unix socket over the thinctl thin pool under
// --root: node-local thin volumes and snapshots for Kubernetes.
// docs/csi.md describes the deployment.
//
//	thinctl-csi --root /var/lib/thinctl --endpoint unix:///var/lib/kubelet/plugins/csi.thinctl.io/csi.sock --node-id $NODE_NAME
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

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/thinctl/thinctl/csi/plugin"
	"github.com/thinctl/thinctl/thinpool"
	"github.com/thinctl/thinctl/unixsock"
)

// version is set with -ldflags "-X main.version=...".
var version = "unknown"

// stopGrace bounds how long SIGTERM waits for requests in flight.
const stopGrace = 10 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx, os.Args[1:], os.Stderr, nil)
	stop()
	os.Exit(code)
}

type config struct {
	root, endpoint, nodeID, pathRoot string
	debug                            bool
}

func parseFlags(args []string, stderr io.Writer) (config, int) {
	var c config
	fl := flag.NewFlagSet("thinctl-csi", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.StringVar(&c.root, "root", "/var/lib/thinctl", "thinctl root `DIR` holding the pool `thinctl --root DIR pool init` made")
	fl.StringVar(&c.endpoint, "endpoint", "unix:///var/lib/kubelet/plugins/csi.thinctl.io/csi.sock", "unix `SOCKET` to serve CSI on (unix:///path or /path)")
	fl.StringVar(&c.nodeID, "node-id", "", "this node's `NAME` (the Kubernetes node name)")
	fl.StringVar(&c.pathRoot, "path-root", "/var/lib/kubelet", "`DIR` every staging and target path must lie beneath")
	fl.BoolVar(&c.debug, "debug", false, "log every request, not only failures")
	showVersion := fl.Bool("version", false, "print the version and exit")
	fl.Usage = func() {
		fmt.Fprintf(stderr, "usage: thinctl-csi --node-id NAME [--root DIR] [--endpoint SOCKET] [--path-root DIR] [--debug]\n\n"+
			"Serves CSI's Identity, Controller and Node services over the thinctl thin pool under DIR\n"+
			"(see docs/csi.md).\n\n")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, 0
		}
		return c, 2
	}
	if *showVersion {
		fmt.Fprintln(stderr, "thinctl-csi", version)
		return c, 0
	}
	bad := func(format string, a ...any) (config, int) {
		fmt.Fprintf(stderr, "thinctl-csi: "+format+"\n", a...)
		return c, 2
	}
	if fl.NArg() > 0 {
		return bad("unexpected argument %q (flags only; see --help)", fl.Arg(0))
	}
	if c.nodeID == "" {
		return bad("--node-id is required: give this node's name (in a DaemonSet, from spec.nodeName)")
	}
	c.endpoint = strings.TrimPrefix(c.endpoint, "unix://")
	if !filepath.IsAbs(c.endpoint) {
		return bad("--endpoint %q: give unix:///absolute/path or an absolute path", c.endpoint)
	}
	if !filepath.IsAbs(c.pathRoot) || filepath.Clean(c.pathRoot) != c.pathRoot || c.pathRoot == "/" {
		return bad("--path-root %q: give an absolute, clean directory other than /", c.pathRoot)
	}
	return c, -1
}

// run is main without the exit: it serves until ctx ends; ready, when
// set, is called once the socket accepts connections (tests).
func run(ctx context.Context, args []string, stderr io.Writer, ready func()) int {
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
		fmt.Fprintf(stderr, "thinctl-csi: "+format+"\n", a...)
		return 1
	}
	if !thinpool.Exists(c.root) {
		return fail("no thinctl thin pool under %s: run `thinctl --root %s --driver devicemapper pool init` first", c.root, c.root)
	}
	unlock, err := lockRoot(c.root)
	if err != nil {
		return fail("%v", err)
	}
	defer unlock()
	pool, err := thinpool.Open(ctx, c.root, thinpool.OpenOptions{})
	if err != nil {
		return fail("open the thin pool under %s: %s", c.root, oneLine(err.Error()))
	}
	defer pool.Close()
	pl, err := plugin.New(plugin.Config{Pool: pool, NodeID: c.nodeID, PathRoot: c.pathRoot, Version: version})
	if err != nil {
		return fail("%v", err)
	}
	l, err := listen(c.endpoint)
	if err != nil {
		return fail("%v", err)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(logRequests(log)), grpc.MaxRecvMsgSize(1<<20))
	pl.Register(srv)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	log.Info("serving CSI", "driver", plugin.DriverName, "root", c.root, "endpoint", c.endpoint, "node", c.nodeID, "version", version)
	if ready != nil {
		ready()
	}
	select {
	case err := <-served:
		return fail("serve %s: %v", c.endpoint, err)
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
	os.Remove(c.endpoint)
	log.Info("stopped")
	return 0
}

// lockRoot takes <root>/csi.lock: one thinctl-csi per pool, since a name's
// idempotency check and its create must not interleave with another's.
func lockRoot(root string) (func(), error) {
	path := filepath.Join(root, "csi.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_CLOEXEC|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %v", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another thinctl-csi serves %s (%s is locked): stop it first", root, path)
	}
	return func() { f.Close() }, nil
}

// listen listens on --endpoint, its owner's alone (unixsock.Listen), with
// the flag named in what goes wrong.
func listen(path string) (net.Listener, error) {
	l, err := unixsock.Listen(path)
	switch {
	case errors.Is(err, unixsock.ErrNotSocket):
		return nil, fmt.Errorf("--endpoint %s exists and is not a socket: remove it or give another path", path)
	case errors.Is(err, unixsock.ErrInUse):
		return nil, fmt.Errorf("something already serves %s: stop it or give another --endpoint", path)
	case err != nil:
		return nil, fmt.Errorf("--endpoint: %v", err)
	}
	return l, nil
}

// logRequests logs failed requests (and, at debug level, every request).
func logRequests(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		t0 := time.Now()
		resp, err := handler(ctx, req)
		method := info.FullMethod[strings.LastIndex(info.FullMethod, "/")+1:]
		if err != nil {
			log.Warn("request failed", "method", method, "took", time.Since(t0).Round(time.Microsecond),
				"code", status.Code(err).String(), "error", oneLine(status.Convert(err).Message()))
		} else {
			log.Debug("request", "method", method, "took", time.Since(t0).Round(time.Microsecond))
		}
		return resp, err
	}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
