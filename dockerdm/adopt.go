package dockerdm

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/dm"
	"github.com/thinctl/thinctl/errdefs"
	"github.com/thinctl/thinctl/fs"
	"github.com/thinctl/thinctl/thinpool"
)

// Errors Adopt returns for a store it will not take over as it is.
var (
	// ErrOpenTransaction: Docker's last transaction never closed.
	ErrOpenTransaction = errdefs.New("Docker's last transaction is open", errdefs.ErrCorrupt)
	// ErrMissingDevices: layers or containers whose devices are missing.
	ErrMissingDevices = errdefs.New("devices of the store are missing", errdefs.ErrCorrupt)
	// ErrNotAdoptable: the store or its pool is in a state no adoption
	// can be right for (two records share a thin id, the pool needs a
	// check, its devices could not be listed).
	ErrNotAdoptable = errdefs.New("the store cannot be adopted", errdefs.ErrCorrupt)
	// ErrDeviceOpen: a Docker device is still open (mounted).
	ErrDeviceOpen = errdefs.New("a device of the store is still open", errdefs.ErrBusy)
)

// Labels every adopted device carries (thinctl list shows them with -o json).
const (
	// LabelHash is Docker's hash of the device: the layer's cache-id, the
	// container's mount-id (<mount-id>-init for its init device), or the
	// record's name.
	LabelHash = "docker.hash"
	// LabelKind is layer, container-init, container or unreferenced.
	LabelKind = "docker.kind"
	// LabelChainID and LabelDiffID are a layer's.
	LabelChainID = "docker.chain_id"
	LabelDiffID  = "docker.diff_id"
	// LabelTags lists (comma-separated, sorted) the tags of the images
	// whose top layer the device is; LabelImages their image ids. Each
	// holds as many whole entries as fit in 2 KiB, so that a layer a
	// thousand tags share still fits its record; when some were left out,
	// LabelTagsTotal and LabelImagesTotal give the full counts (Docker's
	// repositories.json, kept as it was, has the full lists).
	LabelTags        = "docker.tags"
	LabelImages      = "docker.image_ids"
	LabelTagsTotal   = "docker.tags_total"
	LabelImagesTotal = "docker.image_ids_total"
	// LabelContainer and LabelContainerName are a container's id and
	// name; LabelImage the image it was created from.
	LabelContainer     = "docker.container_id"
	LabelContainerName = "docker.container_name"
	LabelImage         = "docker.image"
)

// Device kinds (LabelKind).
const (
	KindLayer         = "layer"
	KindContainerInit = "container-init"
	KindContainer     = "container"
	KindUnreferenced  = "unreferenced"
)

// AdoptOptions are Adopt's options.
type AdoptOptions struct {
	OpenOptions
	// DM is the device-mapper client (nil: dm.Default).
	DM *dm.Client
	// DropOpenTransaction leaves the device of Docker's open transaction
	// out, as Docker's own rollback at its next start would have (its
	// thin device stays in the pool until thinctl check --repair deletes
	// it); without it Adopt refuses a store whose transaction is open.
	DropOpenTransaction bool
	// SkipMissing leaves out the layers and containers whose devices are
	// missing (no record, or a record whose thin device the pool lacks);
	// without it Adopt refuses such a store.
	SkipMissing bool
	// Progress is as in thinpool.Options.
	Progress func(step string, fraction float64)
}

// AdoptedDevice is one device Adopt recorded.
type AdoptedDevice struct {
	ID       string `json:"id"`
	Kind     string `json:"kind"`
	Hash     string `json:"hash"`
	DeviceID uint32 `json:"device_id"`
	Parent   string `json:"parent,omitempty"`
	// What says what it holds: an image's tags, a layer's chain id, a
	// container's name.
	What string `json:"what"`
}

// AdoptResult is what Adopt did.
type AdoptResult struct {
	DockerRoot string `json:"docker_root"`
	Root       string `json:"root"`
	// Pool is the name thinctl gives the pool (Docker's for a
	// dm.thinpooldev store).
	Pool string `json:"pool"`
	// BaseDeviceID is Docker's base device, now the pool's base device.
	BaseDeviceID uint32 `json:"base_device_id"`
	Filesystem   string `json:"filesystem"`
	// Devices are in thin id order (Docker's creation order: parents first).
	Devices []AdoptedDevice `json:"devices"`
	// TransactionID is the pool's transaction id, left as Docker left it.
	TransactionID uint64 `json:"transaction_id"`
	// Released names Docker's device-mapper devices Adopt took down (a
	// killed dockerd leaves its pool up).
	Released []string `json:"released,omitempty"`
	// LeftOut says which of Docker's devices were not adopted, and why.
	LeftOut []string `json:"left_out,omitempty"`
}

// Adopt makes root a thinctl root whose pool is the store's own: every
// live device of the store is recorded under an id derived from what it
// holds (see docs/docker.md), Docker's base device becomes the pool's base
// device, and no data is copied. Docker's files are not written; the
// pool's metadata is from then on thinctl's (the store is no longer
// Docker's to use). A pool a killed dockerd left up is taken down first,
// with its devices, unless one is open (ErrDeviceOpen, nothing changed).
// It refuses (nothing changed) while a process holds the store (ErrHeld),
// while Docker's transaction is open (ErrOpenTransaction) or devices are
// missing (ErrMissingDevices) unless opts say how to resolve it, and when
// no adoption can be right (ErrNotAdoptable).
func Adopt(ctx context.Context, dockerRoot, root string, opts AdoptOptions) (*AdoptResult, error) {
	if thinpool.Exists(root) {
		return nil, errors.Wrapf(thinpool.ErrAlreadyInit, "%s", root)
	}
	s, err := Open(dockerRoot, opts.OpenOptions)
	if err != nil {
		return nil, err
	}
	if err := CheckNotHeld(dockerRoot); err != nil {
		return nil, err
	}
	c := opts.DM
	if c == nil {
		if c, err = dm.Default(); err != nil {
			return nil, errors.Wrap(err, "device-mapper")
		}
	}
	if opts.Progress != nil {
		opts.Progress("reading the store and its pool", 0.02)
	}
	view, err := ReadPool(ctx, s, c)
	if err != nil {
		return nil, err
	}
	rep := Compare(s, view)
	topts, res, err := Plan(s, rep, opts)
	if err != nil {
		return nil, err
	}
	if thinpool.Exists(root) {
		return nil, errors.Wrapf(thinpool.ErrAlreadyInit, "%s", root)
	}
	if res.Released, err = releasePool(ctx, s, c); err != nil {
		return nil, err
	}
	topts.DM, topts.Progress = c, opts.Progress
	p, err := thinpool.Adopt(ctx, root, *topts)
	if err != nil {
		return nil, err
	}
	res.Root, res.Pool = p.Root(), p.Name()
	return res, p.Close()
}

// idChars turns s into a valid thinctl id fragment: anything outside
// [A-Za-z0-9_.-] becomes '_'.
func idChars(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '.', c == '-':
		default:
			b[i] = '_'
		}
	}
	return string(b)
}

func short12(h string) string {
	h = strings.TrimPrefix(h, "sha256:")
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// Plan works out the thinpool.AdoptOptions for a store and the report
// Compare made of it, and the result Adopt will return; it changes
// nothing. Ids:
//
//   - the top layer of tagged images: image-<first tag>, e.g.
//     image-thinctl_a_1 for thinctl/a:1 (characters outside
//     [A-Za-z0-9_.-] become '_');
//   - every other layer: layer-<first 12 hex digits of its chain id>;
//   - a container's read-write device: container-<name>, its init device
//     container-<name>-init (container-<first 12 digits of its id> when
//     it has no name);
//   - a live record no layer or container uses: docker-<first 12
//     characters of its hash>.
//
// An id taken already gets -<first 12 characters of the device's hash>
// appended, then the whole hash. Every device keeps its hash in the
// LabelHash label.
func Plan(s *Store, rep *Report, opts AdoptOptions) (*thinpool.AdoptOptions, *AdoptResult, error) {
	p := rep.Pool
	switch {
	case p.NeedsCheck:
		return nil, nil, errors.Wrapf(ErrNotAdoptable, "pool %s asks for a check (needs_check): repair its metadata with thin_check and thin_repair first", p.Name)
	case !p.Compared:
		return nil, nil, errors.Wrapf(ErrNotAdoptable, "the pool's devices could not be listed (%s)", strings.Join(p.Notes, "; "))
	case rep.Base == nil:
		return nil, nil, errors.Wrapf(ErrNotAdoptable, "the store has no base device record")
	}
	skip := map[string]string{} // hash -> why it is left out
	var missing []string
	for _, d := range rep.Disagreements {
		switch d.Kind {
		case KindSharedThinID:
			return nil, nil, errors.Wrapf(ErrNotAdoptable, "%s", d.Detail)
		case KindOpenTransaction:
			if !opts.DropOpenTransaction {
				return nil, nil, errors.Wrapf(ErrOpenTransaction, "%s", d.Detail)
			}
			skip[d.Hash] = fmt.Sprintf("the device of Docker's open transaction %d (thin id %d)", p.DockerTransaction, *d.DeviceID)
		case KindRecordWithoutThin:
			skip[d.Hash] = fmt.Sprintf("its thin id %d is not in the pool", *d.DeviceID)
			missing = append(missing, d.Detail)
		case KindLayerWithoutRecord, KindContainerWithoutRecord, KindImageWithoutLayer:
			missing = append(missing, d.Detail)
		}
	}
	if len(missing) > 0 && !opts.SkipMissing {
		more := ""
		if len(missing) > 1 {
			more = fmt.Sprintf(" (and %d more)", len(missing)-1)
		}
		return nil, nil, errors.Wrapf(ErrMissingDevices, "%s%s", missing[0], more)
	}
	base := s.Records[BaseHash]
	if base.DeviceID == 0 {
		return nil, nil, errors.Wrap(ErrNotAdoptable, "the base device's record names thin id 0")
	}
	fsType := fs.Ext4
	if s.DeviceSet != nil {
		switch s.DeviceSet.BaseDeviceFilesystem {
		case "xfs":
			fsType = fs.XFS
		case "ext4", "":
		default:
			return nil, nil, errors.Wrapf(ErrNotAdoptable, "the base device's filesystem is %q; thinctl mounts ext4 and xfs", s.DeviceSet.BaseDeviceFilesystem)
		}
	}
	res := &AdoptResult{DockerRoot: s.Root, BaseDeviceID: base.DeviceID, Filesystem: string(fsType), TransactionID: p.TransactionID}
	o := &thinpool.AdoptOptions{
		DataFile: s.DataFile, MetadataFile: s.MetadataFile, BlockSize: uint64(p.DataBlockSize) * 512,
		Filesystem: fsType, BaseDeviceID: base.DeviceID, BaseSize: base.Size,
		Origin: "docker devicemapper store " + s.Root, TransactionID: p.TransactionID,
	}
	if s.DataFile == "" {
		o.ThinPoolDevice = s.PoolName
		o.DataSize, o.MetadataSize = p.DataBlocks*uint64(p.DataBlockSize)*512, p.MetaBlocks*4096
	}
	if s.DeviceSet != nil {
		o.BaseUUID = s.DeviceSet.BaseDeviceUUID
	}

	taken := map[string]bool{}
	idOf := map[string]string{} // hash -> id
	name := func(candidate, hash string) string {
		for _, c := range []string{candidate, candidate + "-" + short12(hash), candidate + "-" + hash} {
			if len(c) <= 128 && !taken[c] && thinpool.ValidateID(c) == nil {
				taken[c] = true
				return c
			}
		}
		c := "docker-" + idChars(hash) // hashes are unique
		taken[c] = true
		return c
	}
	live := func(hash string) bool {
		r, ok := s.Records[hash]
		_, skipped := skip[hash]
		return ok && !r.Deleted && !skipped && hash != BaseHash
	}
	// Layers: tagged images' top layers first, named after the tag.
	tops := map[string][]Image{} // chain id -> images it tops
	for _, img := range s.Images {
		if n := len(img.Layers); n > 0 {
			tops[img.Layers[n-1]] = append(tops[img.Layers[n-1]], img)
		}
	}
	var layerIDs []string
	for _, img := range s.Images {
		tags := plainTags(img.Tags)
		if len(tags) == 0 || len(img.Layers) == 0 {
			continue
		}
		l, ok := s.Layers[img.Layers[len(img.Layers)-1]]
		if !ok || !live(l.CacheID) || idOf[l.CacheID] != "" {
			continue
		}
		idOf[l.CacheID] = name("image-"+idChars(tags[0]), l.CacheID)
	}
	chains := make([]string, 0, len(s.Layers))
	for c := range s.Layers {
		chains = append(chains, c)
	}
	sort.Strings(chains)
	for _, c := range chains {
		l := s.Layers[c]
		if !live(l.CacheID) {
			if _, ok := s.Records[l.CacheID]; ok && s.Records[l.CacheID].Deleted {
				continue
			}
			res.LeftOut = append(res.LeftOut, fmt.Sprintf("layer %s (device %s): %s", c, l.CacheID, leftWhy(skip, l.CacheID)))
			continue
		}
		if idOf[l.CacheID] == "" {
			idOf[l.CacheID] = name("layer-"+short12(c), l.CacheID)
		}
		layerIDs = append(layerIDs, c)
	}
	// The nearest adopted ancestor of a chain id ("": the base).
	var parentOf func(chain string) string
	parentOf = func(chain string) string {
		for depth := 0; chain != "" && depth < 1000; depth++ {
			l, ok := s.Layers[chain]
			if !ok {
				return ""
			}
			if id := idOf[l.CacheID]; id != "" && live(l.CacheID) {
				return id
			}
			chain = l.Parent
		}
		return ""
	}
	used := map[string]bool{BaseHash: true}
	add := func(d thinpool.AdoptDevice, kind, hash, what string) {
		r := s.Records[hash]
		d.DeviceID, d.Size = r.DeviceID, r.Size
		if d.Labels == nil {
			d.Labels = map[string]string{}
		}
		d.Labels[LabelHash], d.Labels[LabelKind] = hash, kind
		o.Devices = append(o.Devices, d)
		res.Devices = append(res.Devices, AdoptedDevice{ID: d.ID, Kind: kind, Hash: hash, DeviceID: d.DeviceID, Parent: d.Parent, What: what})
		used[hash] = true
	}
	usedBy := map[string][]string{} // chain id -> tags of the images with that layer
	for _, img := range s.Images {
		for i, c := range img.Layers {
			if tags := plainTags(img.Tags); len(tags) > 0 {
				usedBy[c] = append(usedBy[c], fmt.Sprintf("%d of %s", i+1, tags[0]))
			}
		}
	}
	for _, c := range layerIDs {
		l := s.Layers[c]
		labels := map[string]string{LabelChainID: l.ChainID, LabelDiffID: l.DiffID}
		what := "layer " + short12(c)
		if u := usedBy[c]; len(u) > 0 {
			what = "layer " + listText(u)
		}
		if imgs := tops[c]; len(imgs) > 0 {
			var tags, ids []string
			for _, img := range imgs {
				tags = append(tags, plainTags(img.Tags)...)
				ids = append(ids, img.ID)
			}
			if len(tags) > 0 {
				listLabel(labels, LabelTags, LabelTagsTotal, tags)
				what = "image " + listText(tags)
			} else {
				what = "image " + short12(ids[0])
			}
			listLabel(labels, LabelImages, LabelImagesTotal, ids)
		}
		add(thinpool.AdoptDevice{ID: idOf[l.CacheID], Parent: parentOf(l.Parent), Labels: labels}, KindLayer, l.CacheID, what)
	}
	for _, ct := range s.Containers {
		stem := "container-" + short12(ct.ID)
		if n := strings.TrimPrefix(ct.Name, "/"); n != "" {
			stem = "container-" + idChars(n)
		}
		labels := func() map[string]string {
			m := map[string]string{LabelContainer: ct.ID}
			if ct.Name != "" {
				m[LabelContainerName] = capLabel(strings.TrimPrefix(ct.Name, "/"))
			}
			if ct.Ref != "" {
				m[LabelImage] = capLabel(ct.Ref)
			}
			return m
		}
		parent := parentOf(ct.Parent)
		what := "container " + dashIfEmpty(strings.TrimPrefix(ct.Name, "/"))
		if ct.InitID != "" {
			if live(ct.InitID) {
				id := name(stem+"-init", ct.InitID)
				add(thinpool.AdoptDevice{ID: id, Parent: parent, Labels: labels()}, KindContainerInit, ct.InitID, what+" (init)")
				parent = id
			} else if !deleted(s, ct.InitID) {
				res.LeftOut = append(res.LeftOut, fmt.Sprintf("container %s init device %s: %s", ct.ID, ct.InitID, leftWhy(skip, ct.InitID)))
			}
		}
		if live(ct.MountID) {
			add(thinpool.AdoptDevice{ID: name(stem, ct.MountID), Parent: parent, Labels: labels()}, KindContainer, ct.MountID, what)
		} else if !deleted(s, ct.MountID) {
			res.LeftOut = append(res.LeftOut, fmt.Sprintf("container %s read-write device %s: %s", ct.ID, ct.MountID, leftWhy(skip, ct.MountID)))
		}
	}
	hashes := make([]string, 0, len(s.Records))
	for h := range s.Records {
		hashes = append(hashes, h)
	}
	sort.Strings(hashes)
	for _, h := range hashes {
		switch r := s.Records[h]; {
		case used[h]:
		case r.Deleted:
			res.LeftOut = append(res.LeftOut, fmt.Sprintf("device %s (thin id %d): Docker marked it deleted; thinctl check lists its thin device and --repair deletes it", h, r.DeviceID))
		case !live(h):
			res.LeftOut = append(res.LeftOut, fmt.Sprintf("device %s (thin id %d): %s", h, r.DeviceID, leftWhy(skip, h)))
		default:
			add(thinpool.AdoptDevice{ID: name("docker-"+idChars(short12(h)), h)}, KindUnreferenced, h, "no layer or container uses it")
		}
	}
	sort.SliceStable(res.Devices, func(i, j int) bool { return res.Devices[i].DeviceID < res.Devices[j].DeviceID })
	for _, d := range rep.Disagreements {
		if d.Kind == KindThinWithoutRecord {
			res.LeftOut = append(res.LeftOut, fmt.Sprintf("thin id %d: no record names it; thinctl check lists it and --repair deletes it", *d.DeviceID))
		}
	}
	return o, res, nil
}

func deleted(s *Store, hash string) bool {
	r, ok := s.Records[hash]
	return ok && r.Deleted
}

func leftWhy(skip map[string]string, hash string) string {
	if why, ok := skip[hash]; ok {
		return why
	}
	return "it has no device record"
}

func dashIfEmpty(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// listLabelMax bounds a label that lists tags or image ids: a record's
// labels together may take 64 KiB (thinpool), and a store may give one
// layer any number of tags.
const listLabelMax = 2 << 10

// listLabel sets labels[key] to as many of items (comma-separated, in
// order) as fit in listLabelMax bytes, and labels[totalKey] to
// len(items) when some did not fit.
func listLabel(labels map[string]string, key, totalKey string, items []string) {
	var b strings.Builder
	n := 0
	for _, it := range items {
		if b.Len()+len(it)+1 > listLabelMax {
			break
		}
		if n > 0 {
			b.WriteByte(',')
		}
		b.WriteString(it)
		n++
	}
	labels[key] = b.String()
	if n < len(items) {
		labels[totalKey] = strconv.Itoa(len(items))
	}
}

// listText names the first three items and counts the rest, for the
// HOLDS column of a report.
func listText(items []string) string {
	if len(items) <= 3 {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:3], ", "), len(items)-3)
}

// labelValueMax is what a label value of a store's text (a container's
// name, an image reference) is cut to; thinpool refuses values over 4 KiB.
const labelValueMax = 1 << 10

// capLabel cuts s to labelValueMax bytes on a character boundary.
func capLabel(s string) string {
	if len(s) <= labelValueMax {
		return s
	}
	cut := labelValueMax
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// plainTags returns the tags that are not digests (name@sha256:...), sorted.
func plainTags(tags []string) []string {
	var out []string
	for _, t := range tags {
		if !strings.Contains(t, "@") {
			out = append(out, t)
		}
	}
	sort.Strings(out)
	return out
}

// releasePool takes down Docker's devices of the store that are still
// active (a killed dockerd leaves its pool and some devices up), and the
// pool itself when it is the store's own loop-file pool, so that thinctl
// can bring the pool up under its own name. It refuses (nothing removed)
// while any of them is open. It returns the names it removed.
func releasePool(ctx context.Context, s *Store, c *dm.Client) ([]string, error) {
	all, err := c.ListDevices()
	if err != nil {
		return nil, errors.Wrap(err, "list device-mapper devices")
	}
	var thins []string
	pool := false
	for _, d := range all {
		switch {
		case d.Name == s.PoolName:
			pool = s.DataFile != ""
		case strings.HasPrefix(d.Name, s.Prefix+"-"):
			thins = append(thins, d.Name)
		}
	}
	sort.Strings(thins)
	for _, n := range thins {
		info, err := c.Info(n)
		if err != nil {
			return nil, errors.Wrapf(err, "device %s", n)
		}
		if info.OpenCount > 0 {
			return nil, errors.Wrapf(ErrDeviceOpen, "Docker's device %s is open %d time(s) (a killed dockerd leaves its mounts under %s)", n, info.OpenCount, s.DMDir+"/mnt")
		}
	}
	var done []string
	for _, n := range thins {
		if err := c.Remove(ctx, n, dm.RemoveOptions{}); err != nil && !errors.Is(err, dm.ErrNotFound) {
			return done, errors.Wrapf(err, "remove Docker's device %s", n)
		}
		done = append(done, n)
	}
	if pool {
		if err := c.Remove(ctx, s.PoolName, dm.RemoveOptions{}); err != nil && !errors.Is(err, dm.ErrNotFound) {
			return done, errors.Wrapf(err, "remove Docker's pool %s", s.PoolName)
		}
		done = append(done, s.PoolName)
	}
	return done, nil
}
