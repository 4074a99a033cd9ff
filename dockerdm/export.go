package dockerdm

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/dm"
	"github.com/thinctl/thinctl/errdefs"
)

// ErrUnknownImage is returned for an image the store does not have.
var ErrUnknownImage = errdefs.New("no such image in the Docker store", errdefs.ErrNotFound)

// ExportOptions are Export's options.
type ExportOptions struct {
	OpenOptions
	// DM is the device-mapper client (nil: dm.Default).
	DM *dm.Client
	// WorkDir holds the mount points and the layer tars while they are
	// checked (default os.TempDir()); give the directory of the archive's
	// file so that they go to the same filesystem, not a tmpfs. A layer
	// file never takes the last 1/20 of that filesystem (nor its last
	// 64 MiB): what does not fit is ErrWorkSpace before it is written.
	WorkDir string
	// Containers also exports every container's read-write layer as an
	// image (ContainerTag names it).
	Containers bool
	// Progress, when set, is called after each layer.
	Progress func(done, total int, l LayerExport)
}

// LayerExport says how one layer was exported.
type LayerExport struct {
	ChainID string `json:"chain_id"`
	DiffID  string `json:"diff_id"`
	Bytes   int64  `json:"bytes"`
	// FromTarSplit: rebuilt byte for byte from Docker's tar-split; its
	// sha256 equals DiffID (Export checks it).
	FromTarSplit bool `json:"from_tar_split"`
	// RecordedDiffID is set for a layer re-created from its device (no
	// tar-split): the diff_id Docker recorded, which DiffID replaces.
	RecordedDiffID string `json:"recorded_diff_id,omitempty"`
}

// ImageRename is an image whose configuration was rewritten because a
// layer of it was re-created: it has a new id.
type ImageRename struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// ExportResult lists the images and layers written.
type ExportResult struct {
	// Images are the ids of the images in the archive.
	Images []string      `json:"images"`
	Layers []LayerExport `json:"layers"`
	// Renamed lists the images whose ids changed (a re-created layer).
	Renamed []ImageRename `json:"renamed,omitempty"`
	// Containers are the containers exported as images.
	Containers []ContainerExport `json:"containers,omitempty"`
}

// FindImage resolves a reference the way docker does for local images: a
// tag (name:tag, name meaning name:latest), a full or short image id.
func (s *Store) FindImage(ref string) (*Image, error) {
	want := ref
	if !strings.Contains(ref, ":") && !strings.Contains(ref, "@") {
		want = ref + ":latest"
	}
	var byID *Image
	matches := 0
	for i := range s.Images {
		img := &s.Images[i]
		for _, t := range img.Tags {
			if t == want || t == ref {
				return img, nil
			}
		}
		id := strings.TrimPrefix(img.ID, "sha256:")
		r := strings.TrimPrefix(ref, "sha256:")
		if len(r) >= 4 && isHexString(r) && strings.HasPrefix(id, r) {
			byID = img
			matches++
		}
	}
	if matches == 1 {
		return byID, nil
	}
	if matches > 1 {
		return nil, errors.Wrapf(ErrUnknownImage, "%q names %d images", ref, matches)
	}
	return nil, errors.Wrapf(ErrUnknownImage, "%q", ref)
}

func isHexString(s string) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// ContainerExport says how one container's read-write layer was exported.
type ContainerExport struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Tag is the name the image has in the archive (containers/<name>:latest).
	Tag string `json:"tag"`
	// ImageID is the new image: the container's image with the layer on top.
	ImageID string `json:"image_id"`
	DiffID  string `json:"diff_id"`
	Bytes   int64  `json:"bytes"`
}

// Export writes the images named by refs as an archive docker load (and
// podman load) accepts: manifest.json, each image's configuration, and
// each layer's tar. A layer with a tar-split is rebuilt from it and its
// device (mounted read-only) byte for byte and checked to hash to its
// diff_id; a layer without one is re-created from its device as the
// difference to its parent layer's device (WriteDiff), which gives it a
// new diff_id, so the configuration of every image using it is rewritten
// with the new diff_ids (and the image gets a new id). With
// opts.Containers, every container's read-write layer is exported too, as
// an image like docker commit makes: the difference between its
// read-write and init devices on top of its image. It refuses while a
// process holds the store, and writes nothing but w.
func Export(ctx context.Context, root string, refs []string, w io.Writer, opts ExportOptions) (*ExportResult, error) {
	s, err := Open(root, opts.OpenOptions)
	if err != nil {
		return nil, err
	}
	var imgs []*Image
	for _, r := range refs {
		img, err := s.FindImage(r)
		if err != nil {
			return nil, err
		}
		imgs = append(imgs, img)
	}
	var ctrs []Container
	if opts.Containers {
		for _, c := range s.Containers {
			img := s.imageByID(c.Image)
			if img == nil {
				return nil, errors.Wrapf(ErrUnknownImage, "container %s (%s) was made from image %q, which the store does not have", c.ID, c.Name, c.Image)
			}
			for _, h := range []string{c.MountID, c.InitID} {
				if _, ok := s.Records[h]; h != "" && !ok {
					return nil, errors.Wrapf(ErrCorrupt, "container %s (%s) has device %s, which has no record", c.ID, c.Name, h)
				}
			}
			ctrs = append(ctrs, c)
			imgs = append(imgs, img)
		}
	}
	var layers []Layer
	seen := map[string]bool{}
	for _, img := range imgs {
		for _, c := range img.Layers {
			l, ok := s.Layers[c]
			if !ok {
				return nil, errors.Wrapf(ErrCorrupt, "image %s names layer %s, which the layer database does not have", img.ID, c)
			}
			if _, ok := s.Records[l.CacheID]; !ok {
				return nil, errors.Wrapf(ErrCorrupt, "layer %s has cache-id %s, which has no device record", c, l.CacheID)
			}
			if !seen[c] {
				seen[c] = true
				layers = append(layers, l)
			}
		}
	}
	if err := CheckNotHeld(root); err != nil {
		return nil, err
	}
	work := opts.WorkDir
	if work == "" {
		work = os.TempDir()
	}
	tmp, err := os.MkdirTemp(work, "thinctl-docker-export-")
	if err != nil {
		return nil, errors.Wrap(err, "work directory")
	}
	defer os.RemoveAll(tmp)
	ss, err := OpenSession(ctx, s, opts.DM, filepath.Join(tmp, "mnt"))
	if err != nil {
		return nil, err
	}
	defer ss.Close(context.WithoutCancel(ctx))

	tw := tar.NewWriter(w)
	res := &ExportResult{}
	mt := time.Unix(0, 0)
	newDiff := map[string]string{} // chain id -> diff id in the archive
	total := len(layers) + len(ctrs)
	for i, l := range layers {
		var le LayerExport
		if l.TarSplit {
			le, err = exportLayer(ctx, s, ss, l, tw, tmp, mt)
		} else {
			le, err = recreateLayer(ctx, s, ss, l, tw, tmp, mt)
		}
		if err != nil {
			return nil, err
		}
		newDiff[l.ChainID] = le.DiffID
		res.Layers = append(res.Layers, le)
		if opts.Progress != nil {
			opts.Progress(i+1, total, le)
		}
	}
	type manifest struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	var ms []manifest
	writeImage := func(img *Image, tags []string, extra *LayerExport, history string) (string, error) {
		cfg, err := readFile(filepath.Join(s.Root, "image", "devicemapper", "imagedb", "content", "sha256", img.ID[7:]))
		if err != nil {
			return "", err
		}
		diffs := make([]string, len(img.Layers))
		changed := extra != nil
		for i, c := range img.Layers {
			diffs[i] = newDiff[c]
			changed = changed || diffs[i] != img.DiffIDs[i]
		}
		if extra != nil {
			diffs = append(diffs, extra.DiffID)
		}
		if changed {
			if cfg, err = rewriteConfig(cfg, diffs, history); err != nil {
				return "", errors.Wrapf(err, "image %s", img.ID)
			}
		}
		id := sha256.Sum256(cfg)
		name := hex.EncodeToString(id[:]) + ".json"
		if err := writeMember(tw, name, cfg, mt); err != nil {
			return "", err
		}
		m := manifest{Config: name, RepoTags: tags}
		for _, d := range diffs {
			m.Layers = append(m.Layers, d[7:]+"/layer.tar")
		}
		ms = append(ms, m)
		return "sha256:" + hex.EncodeToString(id[:]), nil
	}
	for _, img := range imgs[:len(imgs)-len(ctrs)] {
		id, err := writeImage(img, plainTags(img.Tags), nil, "")
		if err != nil {
			return nil, err
		}
		if id != img.ID {
			res.Renamed = append(res.Renamed, ImageRename{From: img.ID, To: id})
		}
		res.Images = append(res.Images, id)
	}
	for i, c := range ctrs {
		ce, le, err := exportContainer(ctx, s, ss, c, tw, tmp, mt)
		if err != nil {
			return nil, err
		}
		img := imgs[len(imgs)-len(ctrs)+i]
		if ce.ImageID, err = writeImage(img, []string{ce.Tag}, &le, "thinctl docker export --containers: the read-write layer of container "+dashIfEmpty(c.Name)+" ("+c.ID+")"); err != nil {
			return nil, err
		}
		res.Containers = append(res.Containers, ce)
		res.Images = append(res.Images, ce.ImageID)
		if opts.Progress != nil {
			opts.Progress(len(layers)+i+1, total, le)
		}
	}
	mb, err := json.Marshal(ms)
	if err != nil {
		return nil, err
	}
	if err := writeMember(tw, "manifest.json", mb, mt); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, errors.Wrap(err, "write the archive")
	}
	if err := ss.Close(ctx); err != nil {
		return nil, errors.Wrap(err, "release the store's devices")
	}
	return res, nil
}

// imageByID returns the image with this id, or nil.
func (s *Store) imageByID(id string) *Image {
	for i := range s.Images {
		if s.Images[i].ID == id {
			return &s.Images[i]
		}
	}
	return nil
}

// ContainerTag is the name a container's exported image gets:
// containers/<name>:latest, the name lower-cased with every run of other
// characters than [a-z0-9] turned into one '-' (the first 12 digits of
// its id when that leaves nothing).
func ContainerTag(c Container) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(strings.TrimPrefix(c.Name, "/")) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			b.WriteRune(r)
			dash = false
		} else {
			dash = true
		}
	}
	name := b.String()
	if name == "" {
		name = short12(c.ID)
	}
	return "containers/" + name + ":latest"
}

// rewriteConfig returns an image configuration with rootfs.diff_ids
// replaced by diffs and, when history is set, a history entry for a new
// top layer (and the creation time set to now). Every other field stays.
func rewriteConfig(cfg []byte, diffs []string, history string) ([]byte, error) {
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(cfg))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, errdefs.Wrapf(ErrCorrupt, err, "configuration: %v", err)
	}
	rootfs, ok := m["rootfs"].(map[string]any)
	if !ok {
		return nil, errors.Wrap(ErrCorrupt, "configuration has no rootfs")
	}
	rootfs["diff_ids"] = diffs
	if history != "" {
		now := time.Now().UTC().Format(time.RFC3339Nano)
		h, _ := m["history"].([]any)
		m["history"] = append(h, map[string]any{"created": now, "created_by": history})
		m["created"] = now
	}
	return json.Marshal(m)
}

// writeLayerFile checks nothing: it copies the finished layer tar f (n
// bytes) into the archive as <diff>/layer.tar.
func writeLayerFile(tw *tar.Writer, f *os.File, n int64, diff string, mt time.Time) error {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: diff[7:] + "/", Mode: 0o755, ModTime: mt, Typeflag: tar.TypeDir}); err != nil {
		return errors.Wrap(err, "write the archive")
	}
	if err := tw.WriteHeader(&tar.Header{Name: diff[7:] + "/layer.tar", Mode: 0o644, Size: n, ModTime: mt, Typeflag: tar.TypeReg}); err != nil {
		return errors.Wrap(err, "write the archive")
	}
	_, err := io.Copy(tw, f)
	return errors.Wrap(err, "write the archive")
}

// diffToFile writes WriteDiff(newRoot, oldRoot) to a file under tmp and
// returns it (positioned anywhere), its size and its sha256 digest.
func diffToFile(newRoot, oldRoot, tmp string) (*os.File, int64, string, error) {
	out, err := os.CreateTemp(tmp, "layer-*.tar")
	if err != nil {
		return nil, 0, "", errors.Wrap(err, "layer file")
	}
	room, err := workRoom(tmp)
	if err != nil {
		out.Close()
		return nil, 0, "", err
	}
	h := sha256.New()
	n, err := WriteDiff(io.MultiWriter(&boundedWriter{w: out, left: room, what: "the re-created layer"}, h), newRoot, oldRoot)
	if err != nil {
		out.Close()
		return nil, 0, "", err
	}
	return out, n, "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// recreateLayer writes a layer without a tar-split: the difference between
// its device's tree and its parent layer's (none for a first layer).
func recreateLayer(ctx context.Context, s *Store, ss *Session, l Layer, tw *tar.Writer, tmp string, mt time.Time) (LayerExport, error) {
	le := LayerExport{ChainID: l.ChainID, RecordedDiffID: l.DiffID}
	mp, err := ss.Mount(ctx, l.CacheID)
	if err != nil {
		return le, err
	}
	parent := ""
	if l.Parent != "" {
		pl, ok := s.Layers[l.Parent]
		if !ok {
			return le, errors.Wrapf(ErrCorrupt, "layer %s names parent %s, which the layer database does not have", l.ChainID, l.Parent)
		}
		pmp, err := ss.Mount(ctx, pl.CacheID)
		if err != nil {
			return le, err
		}
		parent = filepath.Join(pmp, "rootfs")
	}
	f, n, diff, err := diffToFile(filepath.Join(mp, "rootfs"), parent, tmp)
	if err != nil {
		return le, errors.Wrapf(err, "layer %s", l.ChainID)
	}
	defer f.Close()
	le.DiffID, le.Bytes = diff, n
	return le, writeLayerFile(tw, f, n, diff, mt)
}

// exportContainer writes a container's read-write layer: the difference
// between its read-write device's tree and its init device's (its image's
// top layer when it has no init device).
func exportContainer(ctx context.Context, s *Store, ss *Session, c Container, tw *tar.Writer, tmp string, mt time.Time) (ContainerExport, LayerExport, error) {
	ce := ContainerExport{ID: c.ID, Name: c.Name, Tag: ContainerTag(c)}
	le := LayerExport{ChainID: "container " + c.ID}
	mp, err := ss.Mount(ctx, c.MountID)
	if err != nil {
		return ce, le, err
	}
	lower := c.InitID
	if lower == "" && c.Parent != "" {
		lower = s.Layers[c.Parent].CacheID
	}
	parent := ""
	if lower != "" {
		pmp, err := ss.Mount(ctx, lower)
		if err != nil {
			return ce, le, err
		}
		parent = filepath.Join(pmp, "rootfs")
	}
	f, n, diff, err := diffToFile(filepath.Join(mp, "rootfs"), parent, tmp)
	if err != nil {
		return ce, le, errors.Wrapf(err, "container %s (%s)", c.ID, c.Name)
	}
	defer f.Close()
	ce.DiffID, ce.Bytes, le.DiffID, le.Bytes = diff, n, diff, n
	return ce, le, writeLayerFile(tw, f, n, diff, mt)
}

func writeMember(tw *tar.Writer, name string, b []byte, mt time.Time) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: mt, Typeflag: tar.TypeReg}); err != nil {
		return errors.Wrapf(err, "write %s", name)
	}
	_, err := tw.Write(b)
	return errors.Wrapf(err, "write %s", name)
}

// exportLayer rebuilds one layer's tar into a file under tmp, checks its
// digest and copies it into the archive.
func exportLayer(ctx context.Context, s *Store, ss *Session, l Layer, tw *tar.Writer, tmp string, mt time.Time) (LayerExport, error) {
	le := LayerExport{ChainID: l.ChainID, DiffID: l.DiffID, FromTarSplit: true}
	mp, err := ss.Mount(ctx, l.CacheID)
	if err != nil {
		return le, err
	}
	tsPath := filepath.Join(s.Root, "image", "devicemapper", "layerdb", "sha256", l.ChainID[7:], "tar-split.json.gz")
	tsf, err := openStoreFile(tsPath)
	if err != nil {
		return le, errors.Wrap(err, "tar-split")
	}
	defer tsf.Close()
	zr, err := gzip.NewReader(tsf)
	if err != nil {
		return le, errdefs.Wrapf(ErrTarSplit, err, "%s: %v", tsPath, err)
	}
	// A first pass adds up what the tar-split says the tar holds, so that
	// the layer file is known to fit (and is cut off at that size) before
	// anything is written: a tar-split is a gzip stream anyone could have
	// made expand without bound.
	want, err := TarSplitSize(zr)
	if err != nil {
		return le, errors.Wrapf(err, "%s", tsPath)
	}
	if _, err := tsf.Seek(0, io.SeekStart); err != nil {
		return le, errors.Wrap(err, "tar-split")
	}
	if err := zr.Reset(tsf); err != nil {
		return le, errors.Wrapf(ErrTarSplit, "%s: %v", tsPath, err)
	}
	room, err := workRoom(tmp)
	if err != nil {
		return le, err
	}
	if want > room {
		return le, errors.Wrapf(ErrWorkSpace, "layer %s needs %d bytes in %s, which has room for %d", l.ChainID, want, tmp, room)
	}
	out, err := os.CreateTemp(tmp, "layer-*.tar")
	if err != nil {
		return le, errors.Wrap(err, "layer file")
	}
	defer out.Close()
	h := sha256.New()
	n, err := AssembleTar(zr, filepath.Join(mp, "rootfs"), io.MultiWriter(&boundedWriter{w: out, left: want, what: "layer " + l.ChainID}, h))
	if err != nil {
		return le, errors.Wrapf(err, "layer %s (%s)", l.ChainID, tsPath)
	}
	if err := zr.Close(); err != nil {
		return le, errdefs.Wrapf(ErrTarSplit, err, "%s: %v", tsPath, err)
	}
	le.Bytes = n
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != l.DiffID {
		return le, errors.Wrapf(ErrCorrupt, "layer %s rebuilt from %s hashes to %s, Docker recorded %s", l.ChainID, tsPath, got, l.DiffID)
	}
	return le, writeLayerFile(tw, out, n, l.DiffID, mt)
}
