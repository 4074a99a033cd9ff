package snapshotter

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/filters"
	"github.com/containerd/containerd/v2/pkg/labels"
	"github.com/containerd/errdefs"
	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/dm"
	"github.com/thinctl/thinctl/fs"
	"github.com/thinctl/thinctl/internal/revert"
	"github.com/thinctl/thinctl/thinpool"
	"github.com/thinctl/thinctl/units"
)

// SizeLabel, on Prepare or View, gives the new snapshot's device size
// (bytes, or a size such as "20G"); without it a snapshot has its parent's
// size (the pool's base size for a snapshot without a parent). A device
// only grows: a size below the parent's is refused. The label is kept
// with the snapshot's other labels.
const SizeLabel = "containerd.io/snapshot/thinctl.size"

// MaxSizeLabel is containerd's generic size label (snapshots.LabelSnapshotMaxSize
// in containerd's core/snapshots, defined there as a hint that an active
// snapshot's filesystem be limited to that many bytes, a decimal int64).
// A thin device is as big as its filesystem, so here it means what
// SizeLabel means: the new snapshot's device size, which only grows. Its
// value must be a decimal number of bytes above zero (containerd's erofs
// snapshotter ignores other values; this one refuses them, so that a size
// the client wanted is never silently dropped). Beside SizeLabel it must
// give the same size.
const MaxSizeLabel = snapshots.LabelSnapshotMaxSize

// rootID is the thin device every snapshot without a parent starts from:
// a snapshot of the pool's base device whose filesystem has no lost+found
// (an image's root must be empty). It is made once, on first start.
const rootID = "containerd-root"

// Keys of the device labels the snapshotter keeps in each thin device's
// registry record (docs/containerd.md); containerd's own labels are kept
// under labelPrefix.
const (
	keyName     = "snapshot.name"
	keyKind     = "snapshot.kind"
	keyParent   = "snapshot.parent"
	keyCreated  = "snapshot.created"
	keyUpdated  = "snapshot.updated"
	keyUsage    = "snapshot.usage"
	keyReady    = "snapshot.ready"
	labelPrefix = "label:"
	kindRoot    = "root"
)

// Config configures New.
type Config struct {
	// Root is the thinctl root: the directory `thinctl pool init` made
	// its devicemapper pool under.
	Root string
	// DM is the device-mapper client; nil means dm.Default().
	DM *dm.Client
	// Trace, when set, is told how long each pool step of a request took
	// (method "Prepare", "View" or "Remove"; step "create", "activate" or
	// "remove"), for a debug log.
	Trace func(method, step string, took time.Duration)
	// Logger, when set, is given to the thin pool: it is told the pool's
	// background decisions (space reclaim, recovered transactions) at
	// debug level. nil logs nothing.
	Logger *slog.Logger
}

// Snapshotter serves containerd's snapshotter contract over a thinctl thin
// pool. Every snapshot is one thin device; what containerd knows about it
// (name, kind, parent, times, labels) is kept in the device's registry
// record, so that a crash at any point leaves snapshots and devices in
// step. It is safe for concurrent use.
type Snapshotter struct {
	pool  *thinpool.Pool
	dm    *dm.Client
	fs    fs.Type
	trace func(method, step string, took time.Duration)

	mu     sync.Mutex
	byName map[string]*snapshot // guarded by mu
	closed bool
}

// snapshot is one snapshot as the index keeps it.
type snapshot struct {
	id      string // thin device id in the registry
	name    string
	kind    snapshots.Kind
	parent  string
	created time.Time
	updated time.Time
	labels  map[string]string
	usage   int64 // committed snapshots: bytes mapped at commit
}

// New opens the thin pool under cfg.Root and loads the snapshots its
// registry holds. The pool must exist (thinpool.ErrNotInitialized
// otherwise); it is opened with thinpool.Open, which finishes whatever a
// crash left in flight.
func New(ctx context.Context, cfg Config) (*Snapshotter, error) {
	if !thinpool.Exists(cfg.Root) {
		return nil, errors.Wrapf(thinpool.ErrNotInitialized, "no devicemapper thin pool under %s", cfg.Root)
	}
	pool, err := thinpool.Open(ctx, cfg.Root, thinpool.OpenOptions{DM: cfg.DM, Logger: cfg.Logger})
	if err != nil {
		return nil, errors.Wrapf(err, "open the thin pool under %s", cfg.Root)
	}
	st, err := pool.Status()
	if err != nil {
		pool.Close()
		return nil, errors.Wrapf(err, "status of the thin pool under %s", cfg.Root)
	}
	c := cfg.DM
	if c == nil {
		if c, err = dm.Default(); err != nil {
			pool.Close()
			return nil, errors.Wrap(err, "device-mapper")
		}
	}
	s := &Snapshotter{pool: pool, dm: c, fs: st.Filesystem, trace: cfg.Trace, byName: map[string]*snapshot{}}
	if err := s.load(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// load builds the index from the registry, finishes removals a crash
// interrupted, and makes the root device on first start.
func (s *Snapshotter) load(ctx context.Context) error {
	if err := s.Cleanup(ctx); err != nil {
		return errors.Wrap(err, "finish interrupted removals")
	}
	all, err := s.pool.DeviceLabels()
	if err != nil {
		return errors.Wrap(err, "read the device registry")
	}
	for id, l := range all {
		if id == rootID || l[keyName] == "" {
			continue // the root device, or a device that is not ours
		}
		sn, err := decode(id, l)
		if err != nil {
			return err
		}
		if old, ok := s.byName[sn.name]; ok {
			return errors.Errorf("devices %q and %q both hold snapshot %q; remove one with thinctl", old.id, id, sn.name)
		}
		s.byName[sn.name] = sn
	}
	return s.ensureRoot(ctx, all[rootID])
}

// ensureRoot makes the root device unless a ready one exists: a snapshot
// of the base device with lost+found removed. A crash half way leaves a
// root device without the ready label; it is made again.
func (s *Snapshotter) ensureRoot(ctx context.Context, labels map[string]string) error {
	if labels[keyReady] == "1" {
		return nil
	}
	if labels != nil {
		if err := s.pool.Remove(ctx, rootID); err != nil {
			return errors.Wrap(err, "remove the unfinished root device")
		}
	}
	if err := s.pool.Create(ctx, rootID, "", thinpool.CreateOptions{Labels: map[string]string{keyKind: kindRoot}}); err != nil {
		return errors.Wrap(err, "create the root device")
	}
	if s.fs == fs.Ext4 {
		dir, err := s.pool.Mount(ctx, rootID, thinpool.MountOptions{})
		if err != nil {
			return errors.Wrap(err, "mount the root device")
		}
		rerr := os.Remove(filepath.Join(dir, "lost+found"))
		if err := s.pool.Unmount(ctx, rootID); err != nil {
			return errors.Wrap(err, "unmount the root device")
		}
		if rerr != nil && !os.IsNotExist(rerr) {
			return errors.Wrap(rerr, "empty the root device")
		}
	}
	return errors.Wrap(s.pool.SetLabels(ctx, rootID, map[string]string{keyKind: kindRoot, keyReady: "1"}), "mark the root device ready")
}

// decode turns a device's labels into a snapshot.
func decode(id string, l map[string]string) (*snapshot, error) {
	sn := &snapshot{id: id, name: l[keyName], parent: l[keyParent], labels: map[string]string{}}
	switch l[keyKind] {
	case "active":
		sn.kind = snapshots.KindActive
	case "view":
		sn.kind = snapshots.KindView
	case "committed":
		sn.kind = snapshots.KindCommitted
	default:
		return nil, errors.Errorf("device %q holds snapshot %q of unknown kind %q", id, sn.name, l[keyKind])
	}
	var err error
	if sn.created, err = time.Parse(time.RFC3339Nano, l[keyCreated]); err != nil {
		return nil, errors.Wrapf(err, "device %q: created time", id)
	}
	if sn.updated, err = time.Parse(time.RFC3339Nano, l[keyUpdated]); err != nil {
		return nil, errors.Wrapf(err, "device %q: updated time", id)
	}
	if u := l[keyUsage]; u != "" {
		n, err := strconv.ParseInt(u, 10, 64)
		if err != nil {
			return nil, errors.Wrapf(err, "device %q: usage", id)
		}
		sn.usage = n
	}
	for k, v := range l {
		if after, ok := strings.CutPrefix(k, labelPrefix); ok {
			sn.labels[after] = v
		}
	}
	return sn, nil
}

// kindName is the lower-case name of a kind, as containerd's filters
// ("kind==active") and the device labels spell it.
func kindName(k snapshots.Kind) string {
	switch k {
	case snapshots.KindActive:
		return "active"
	case snapshots.KindView:
		return "view"
	case snapshots.KindCommitted:
		return "committed"
	}
	return "unknown"
}

// encode turns a snapshot into the labels of its device.
func (sn *snapshot) encode() map[string]string {
	l := map[string]string{
		keyName:    sn.name,
		keyKind:    kindName(sn.kind),
		keyCreated: sn.created.Format(time.RFC3339Nano),
		keyUpdated: sn.updated.Format(time.RFC3339Nano),
	}
	if sn.parent != "" {
		l[keyParent] = sn.parent
	}
	if sn.kind == snapshots.KindCommitted {
		l[keyUsage] = strconv.FormatInt(sn.usage, 10)
	}
	for k, v := range sn.labels {
		l[labelPrefix+k] = v
	}
	return l
}

func (sn *snapshot) info() snapshots.Info {
	return snapshots.Info{Kind: sn.kind, Name: sn.name, Parent: sn.parent, Labels: cloneLabels(sn.labels),
		Created: sn.created, Updated: sn.updated}
}

// validateLabels applies containerd's own rule (labels.Validate: a key
// and its value together at most 4096 bytes, ErrInvalidArgument beyond),
// so that this snapshotter takes exactly the labels containerd's metadata
// store takes, whoever the client is. thinpool keeps each under
// labelPrefix and allows that prefix on top.
func validateLabels(l map[string]string) error {
	for k, v := range l {
		if err := labels.Validate(k, v); err != nil {
			return err
		}
	}
	return nil
}

// requestedSize reads the device size a new snapshot's labels ask for
// (SizeLabel, MaxSizeLabel), 0 when neither is there. A malformed value, or
// two labels asking for different sizes, is ErrInvalidArgument.
func requestedSize(l map[string]string) (uint64, error) {
	var size uint64
	if v, ok := l[SizeLabel]; ok {
		n, err := units.ParseSize(v)
		if err != nil {
			return 0, errors.Wrapf(errdefs.ErrInvalidArgument, "label %s: %v", SizeLabel, err)
		}
		size = n
	}
	if v, ok := l[MaxSizeLabel]; ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return 0, errors.Wrapf(errdefs.ErrInvalidArgument, "label %s=%q: give the size as a decimal number of bytes above zero", MaxSizeLabel, v)
		}
		if size != 0 && uint64(n) != size {
			return 0, errors.Wrapf(errdefs.ErrInvalidArgument, "labels %s=%q and %s=%q ask for different sizes: give one", SizeLabel, l[SizeLabel], MaxSizeLabel, v)
		}
		size = uint64(n)
	}
	return size, nil
}

// cloneLabels copies l; never nil.
func cloneLabels(l map[string]string) map[string]string {
	out := make(map[string]string, len(l))
	maps.Copy(out, l)
	return out
}

// newID returns a fresh registry id for a snapshot's device.
func newID() (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", errors.Wrap(err, "random device id")
	}
	return "ctrd-" + hex.EncodeToString(b[:]), nil
}

// now is the time stamps' clock: UTC, without the monotonic reading, so a
// time read back from the registry equals the one returned.
func now() time.Time { return time.Now().UTC().Round(0) }

// step reports to the trace how long step of method took since t0.
func (s *Snapshotter) step(method, step string, t0 time.Time) {
	if s.trace != nil {
		s.trace(method, step, time.Since(t0))
	}
}

// check returns an error when the snapshotter is closed. The caller holds mu.
func (s *Snapshotter) check() error {
	if s.closed {
		return errors.Wrap(errdefs.ErrUnavailable, "snapshotter is closed")
	}
	return nil
}

// get returns the snapshot key names; the caller holds mu.
func (s *Snapshotter) get(key string) (*snapshot, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	sn, ok := s.byName[key]
	if !ok {
		return nil, errors.Wrapf(errdefs.ErrNotFound, "snapshot %q does not exist", key)
	}
	return sn, nil
}

// Stat returns the snapshot key names.
func (s *Snapshotter) Stat(ctx context.Context, key string) (snapshots.Info, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sn, err := s.get(key)
	if err != nil {
		return snapshots.Info{}, err
	}
	return sn.info(), nil
}

// Update changes a snapshot's labels: all of them, or only those the
// field paths ("labels", "labels.<key>") name. Other fields are immutable.
func (s *Snapshotter) Update(ctx context.Context, info snapshots.Info, fieldpaths ...string) (snapshots.Info, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sn, err := s.get(info.Name)
	if err != nil {
		return snapshots.Info{}, err
	}
	labels := cloneLabels(sn.labels)
	if len(fieldpaths) == 0 {
		labels = cloneLabels(info.Labels)
	}
	for _, path := range fieldpaths {
		if key, ok := strings.CutPrefix(path, "labels."); ok {
			if v, ok := info.Labels[key]; ok {
				labels[key] = v
			} else {
				delete(labels, key)
			}
			continue
		}
		if path != "labels" {
			return snapshots.Info{}, errors.Wrapf(errdefs.ErrInvalidArgument, "cannot update %q of snapshot %q: only labels change", path, info.Name)
		}
		labels = cloneLabels(info.Labels)
	}
	if err := validateLabels(labels); err != nil {
		return snapshots.Info{}, err
	}
	next := *sn
	next.labels, next.updated = labels, now()
	if err := s.pool.SetLabels(ctx, sn.id, next.encode()); err != nil {
		return snapshots.Info{}, mapErr(err, "update snapshot %q", info.Name)
	}
	*sn = next
	return sn.info(), nil
}

// Usage returns the space a snapshot takes in the pool: for an active
// snapshot or a view, what its device maps now; for a committed one, what
// it mapped when it was committed. Inodes are not counted.
func (s *Snapshotter) Usage(ctx context.Context, key string) (snapshots.Usage, error) {
	s.mu.Lock()
	sn, err := s.get(key)
	if err != nil {
		s.mu.Unlock()
		return snapshots.Usage{}, err
	}
	id, kind, usage := sn.id, sn.kind, sn.usage
	s.mu.Unlock()
	if kind == snapshots.KindCommitted {
		return snapshots.Usage{Size: usage}, nil
	}
	d, err := s.pool.Device(id)
	if err != nil {
		return snapshots.Usage{}, mapErr(err, "usage of snapshot %q", key)
	}
	return snapshots.Usage{Size: int64(d.Used)}, nil
}

// Mounts returns the mount of an active snapshot or a view, activating its
// device when needed.
func (s *Snapshotter) Mounts(ctx context.Context, key string) ([]mount.Mount, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sn, err := s.get(key)
	if err != nil {
		return nil, err
	}
	if sn.kind == snapshots.KindCommitted {
		return nil, errors.Wrapf(errdefs.ErrFailedPrecondition, "snapshot %q is committed: only active snapshots and views have mounts", key)
	}
	return s.mounts(ctx, sn)
}

// mounts activates sn's device and returns its one mount. The caller holds mu.
func (s *Snapshotter) mounts(ctx context.Context, sn *snapshot) ([]mount.Mount, error) {
	path, err := s.pool.Activate(ctx, sn.id)
	if err != nil {
		return nil, mapErr(err, "activate the device of snapshot %q", sn.name)
	}
	var opts []string
	if sn.kind == snapshots.KindView {
		opts = append(opts, "ro")
	}
	if s.fs == fs.XFS {
		opts = append(opts, "nouuid") // snapshots share their origin's uuid
	}
	return []mount.Mount{{Type: string(s.fs), Source: path, Options: opts}}, nil
}

// Prepare creates an active snapshot key on top of the committed snapshot
// parent ("" for an empty filesystem) and returns its mount.
func (s *Snapshotter) Prepare(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	return s.create(ctx, snapshots.KindActive, key, parent, opts)
}

// View creates a read-only snapshot key of the committed snapshot parent
// and returns its (read-only) mount.
func (s *Snapshotter) View(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	return s.create(ctx, snapshots.KindView, key, parent, opts)
}

func (s *Snapshotter) create(ctx context.Context, kind snapshots.Kind, key, parent string, opts []snapshots.Opt) ([]mount.Mount, error) {
	var base snapshots.Info
	for _, o := range opts {
		if err := o(&base); err != nil {
			return nil, err
		}
	}
	if key == "" {
		return nil, errors.Wrap(errdefs.ErrInvalidArgument, "snapshot key is empty")
	}
	if err := validateLabels(base.Labels); err != nil {
		return nil, err
	}
	size, err := requestedSize(base.Labels)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(); err != nil {
		return nil, err
	}
	if _, ok := s.byName[key]; ok {
		return nil, errors.Wrapf(errdefs.ErrAlreadyExists, "snapshot %q already exists", key)
	}
	parentID := rootID
	if parent != "" {
		p, ok := s.byName[parent]
		if !ok {
			return nil, errors.Wrapf(errdefs.ErrNotFound, "parent snapshot %q does not exist", parent)
		}
		if p.kind != snapshots.KindCommitted {
			return nil, errors.Wrapf(errdefs.ErrInvalidArgument, "parent %q is not a committed snapshot", parent)
		}
		parentID = p.id
	}
	id, err := newID()
	if err != nil {
		return nil, err
	}
	t := now()
	method := map[snapshots.Kind]string{snapshots.KindActive: "Prepare", snapshots.KindView: "View"}[kind]
	sn := &snapshot{id: id, name: key, kind: kind, parent: parent, created: t, updated: t, labels: cloneLabels(base.Labels)}
	t0 := time.Now()
	var undo revert.Stack
	defer undo.Unwind()
	if err := s.pool.Create(ctx, id, parentID, thinpool.CreateOptions{Size: size, Labels: sn.encode()}); err != nil {
		return nil, mapErr(err, "create snapshot %q", key)
	}
	undo.Push(func() { _ = s.pool.Remove(context.WithoutCancel(ctx), id) })
	s.step(method, "create", t0)

	if size != 0 && s.fs == fs.XFS {
		// xfs grows while mounted: once here, before anyone uses it.
		if _, err := s.pool.Mount(ctx, id, thinpool.MountOptions{}); err == nil {
			err = s.pool.Unmount(ctx, id)
		}
		if err != nil {
			return nil, mapErr(err, "grow snapshot %q", key)
		}
	}

	t0 = time.Now()
	m, err := s.mounts(ctx, sn)
	if err != nil {
		return nil, err
	}
	s.step(method, "activate", t0)
	s.byName[key] = sn
	undo.Keep()
	return m, nil
}

// Commit turns the active snapshot key into the committed snapshot name:
// the same device, its record rewritten in one atomic write.
func (s *Snapshotter) Commit(ctx context.Context, name, key string, opts ...snapshots.Opt) error {
	var base snapshots.Info
	for _, o := range opts {
		if err := o(&base); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sn, err := s.get(key)
	if err != nil {
		return err
	}
	if sn.kind != snapshots.KindActive {
		return errors.Wrapf(errdefs.ErrFailedPrecondition, "snapshot %q is a %s snapshot, not active: only active snapshots commit", key, kindName(sn.kind))
	}
	if name == "" {
		return errors.Wrap(errdefs.ErrInvalidArgument, "commit name is empty")
	}
	if err := validateLabels(base.Labels); err != nil {
		return err
	}
	if _, ok := s.byName[name]; ok {
		return errors.Wrapf(errdefs.ErrAlreadyExists, "snapshot %q already exists", name)
	}
	d, err := s.pool.Device(sn.id)
	if err != nil {
		return mapErr(err, "commit snapshot %q", key)
	}
	t := now()
	next := &snapshot{id: sn.id, name: name, kind: snapshots.KindCommitted, parent: sn.parent, created: t, updated: t,
		labels: cloneLabels(base.Labels), usage: int64(d.Used)}
	if err := s.pool.SetLabels(ctx, sn.id, next.encode()); err != nil {
		return mapErr(err, "commit snapshot %q as %q", key, name)
	}
	delete(s.byName, key)
	s.byName[name] = next
	s.deactivateIdle(ctx, sn.id)
	return nil
}

// deactivateIdle takes a committed snapshot's device down unless something
// holds it open (a caller may commit while still mounted): a committed
// layer is only ever an origin, and an inactive origin needs no suspend
// and resume when a child is made; every active thin device also costs
// the pool's worker a little on every pass. Failure changes nothing that
// matters, so it is only skipped.
func (s *Snapshotter) deactivateIdle(ctx context.Context, id string) {
	name, err := s.pool.DeviceName(id)
	if err != nil {
		return
	}
	if info, err := s.dm.Info(name); err != nil || info.OpenCount > 0 {
		return
	}
	_ = s.pool.Deactivate(ctx, id)
}

// Remove removes snapshot key and its device. A snapshot with children is
// refused (failed precondition). A device still held (mounted somewhere)
// keeps its data until released; its deletion finishes in Cleanup.
func (s *Snapshotter) Remove(ctx context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sn, err := s.get(key)
	if err != nil {
		return err
	}
	var children []string
	for _, c := range s.byName {
		if c.parent == key {
			children = append(children, c.name)
		}
	}
	if len(children) > 0 {
		sort.Strings(children)
		return errors.Wrapf(errdefs.ErrFailedPrecondition, "cannot remove snapshot %q: it has %d children (%s); remove them first",
			key, len(children), strings.Join(children, ", "))
	}
	t0 := time.Now()
	err = s.pool.Remove(ctx, sn.id)
	s.step("Remove", "remove", t0)
	if err != nil && !errors.Is(err, thinpool.ErrDeferred) && !errors.Is(err, thinpool.ErrDeviceNotFound) {
		return mapErr(err, "remove snapshot %q", key)
	}
	delete(s.byName, key)
	return nil
}

// Walk calls fn for every snapshot matching any of the filters (containerd's
// filter syntax over name, kind, parent and labels), in name order.
func (s *Snapshotter) Walk(ctx context.Context, fn snapshots.WalkFunc, fs ...string) error {
	filter, err := filters.ParseAll(fs...)
	if err != nil {
		return errors.Wrap(errdefs.ErrInvalidArgument, err.Error())
	}
	s.mu.Lock()
	if err := s.check(); err != nil {
		s.mu.Unlock()
		return err
	}
	infos := make([]snapshots.Info, 0, len(s.byName))
	for _, sn := range s.byName {
		if info := sn.info(); filter.Match(adapt(info)) {
			infos = append(infos, info)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(infos, func(a, b snapshots.Info) int { return strings.Compare(a.Name, b.Name) })
	for _, info := range infos {
		if err := fn(ctx, info); err != nil {
			return err
		}
	}
	return nil
}

// adapt exposes a snapshot's fields to containerd's filters.
func adapt(info snapshots.Info) filters.Adaptor {
	return filters.AdapterFunc(func(fieldpath []string) (string, bool) {
		if len(fieldpath) == 0 {
			return "", false
		}
		switch fieldpath[0] {
		case "kind":
			return kindName(info.Kind), true
		case "name":
			return info.Name, true
		case "parent":
			return info.Parent, true
		case "labels":
			v, ok := info.Labels[strings.Join(fieldpath[1:], ".")]
			return v, ok
		}
		return "", false
	})
}

// Cleanup finishes deferred removals: every device whose removal waited
// for a holder to let go, and every removal a crash interrupted, is
// deleted and its blocks discarded.
func (s *Snapshotter) Cleanup(ctx context.Context) error {
	// A parent waits for its children: repeat while a pass removes some.
	for {
		removed, err := s.pool.GC(ctx)
		if err != nil {
			return mapErr(err, "cleanup")
		}
		if len(removed) == 0 {
			return nil
		}
	}
}

// Close releases the pool; devices stay as they are. A second Close does
// nothing.
func (s *Snapshotter) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.pool.Close()
}

// Pool returns the thin pool the snapshotter serves (for status and tests).
func (s *Snapshotter) Pool() *thinpool.Pool { return s.pool }

// mapErr wraps a thinpool error in the containerd error class that
// matches it, so that containerd (and its gRPC clients) see NotFound,
// AlreadyExists, FailedPrecondition and so on.
func mapErr(err error, format string, args ...any) error {
	var class error
	switch {
	case errors.Is(err, thinpool.ErrDeviceNotFound), errors.Is(err, thinpool.ErrParentNotFound):
		class = errdefs.ErrNotFound
	case errors.Is(err, thinpool.ErrDeviceExists):
		class = errdefs.ErrAlreadyExists
	case errors.Is(err, thinpool.ErrHasChildren), errors.Is(err, thinpool.ErrBusy):
		class = errdefs.ErrFailedPrecondition
	case errors.Is(err, thinpool.ErrInvalidID), errors.Is(err, thinpool.ErrInvalidSize), errors.Is(err, thinpool.ErrInvalidLabel):
		class = errdefs.ErrInvalidArgument
	case errors.Is(err, thinpool.ErrLowSpace):
		class = errdefs.ErrResourceExhausted
	case errors.Is(err, unix.EROFS), errors.Is(err, thinpool.ErrPoolReadOnly):
		class = errdefs.ErrUnavailable
	}
	if class == nil {
		return errors.Wrapf(err, format, args...)
	}
	return errors.Wrap(class, errors.Wrapf(err, format, args...).Error())
}
