package dockerdm

import (
	"archive/tar"
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

// ErrNoTarSplit is returned for a layer without tar-split.json.gz: its tar
// cannot be rebuilt byte for byte (re-creating it from the device's files
// is not built yet).
var ErrNoTarSplit = errdefs.New("layer has no tar-split", errdefs.ErrNotSupported)

// ExportOptions are Export's options.
type ExportOptions struct {
	OpenOptions
	// DM is the device-mapper client (nil: dm.Default).
	DM *dm.Client
	// WorkDir holds the mount points and the layer tars while they are
	// checked (default os.TempDir()).
	WorkDir string
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
}

// ExportResult lists the images and layers written.
type ExportResult struct {
	Images []string      `json:"images"`
	Layers []LayerExport `json:"layers"`
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

// Export writes the images named by refs as an archive docker load (and
// podman load) accepts: manifest.json, each image's configuration as
// Docker stored it, and each layer's tar rebuilt from its tar-split and
// its device (mounted read-only) and checked to hash to its diff_id. It
// refuses while a process holds the store, and writes nothing but w.
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
			if !l.TarSplit {
				return nil, errors.Wrapf(ErrNoTarSplit, "layer %s", c)
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
	for i, l := range layers {
		le, err := exportLayer(ctx, s, ss, l, tw, tmp, mt)
		if err != nil {
			return nil, err
		}
		res.Layers = append(res.Layers, le)
		if opts.Progress != nil {
			opts.Progress(i+1, len(layers), le)
		}
	}
	type manifest struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	var ms []manifest
	for _, img := range imgs {
		cfg, err := readFile(filepath.Join(s.Root, "image", "devicemapper", "imagedb", "content", "sha256", img.ID[7:]))
		if err != nil {
			return nil, err
		}
		name := img.ID[7:] + ".json"
		if err := writeMember(tw, name, cfg, mt); err != nil {
			return nil, err
		}
		m := manifest{Config: name, RepoTags: []string{}}
		for _, t := range img.Tags {
			if !strings.Contains(t, "@") {
				m.RepoTags = append(m.RepoTags, t)
			}
		}
		for _, d := range img.DiffIDs {
			m.Layers = append(m.Layers, d[7:]+"/layer.tar")
		}
		ms = append(ms, m)
		res.Images = append(res.Images, img.ID)
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
	tsf, err := os.Open(tsPath)
	if err != nil {
		return le, errors.Wrap(err, "tar-split")
	}
	defer tsf.Close()
	zr, err := gzip.NewReader(tsf)
	if err != nil {
		return le, errors.Wrapf(ErrTarSplit, "%s: %v", tsPath, err)
	}
	out, err := os.CreateTemp(tmp, "layer-*.tar")
	if err != nil {
		return le, errors.Wrap(err, "layer file")
	}
	defer out.Close()
	h := sha256.New()
	n, err := AssembleTar(zr, filepath.Join(mp, "rootfs"), io.MultiWriter(out, h))
	if err != nil {
		return le, errors.Wrapf(err, "layer %s (%s)", l.ChainID, tsPath)
	}
	if err := zr.Close(); err != nil {
		return le, errors.Wrapf(ErrTarSplit, "%s: %v", tsPath, err)
	}
	le.Bytes = n
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != l.DiffID {
		return le, errors.Wrapf(ErrCorrupt, "layer %s rebuilt from %s hashes to %s, Docker recorded %s", l.ChainID, tsPath, got, l.DiffID)
	}
	if _, err := out.Seek(0, io.SeekStart); err != nil {
		return le, err
	}
	if err := tw.WriteHeader(&tar.Header{Name: l.DiffID[7:] + "/", Mode: 0o755, ModTime: mt, Typeflag: tar.TypeDir}); err != nil {
		return le, errors.Wrap(err, "write the archive")
	}
	if err := tw.WriteHeader(&tar.Header{Name: l.DiffID[7:] + "/layer.tar", Mode: 0o644, Size: n, ModTime: mt, Typeflag: tar.TypeReg}); err != nil {
		return le, errors.Wrap(err, "write the archive")
	}
	if _, err := io.Copy(tw, out); err != nil {
		return le, errors.Wrap(err, "write the archive")
	}
	return le, nil
}
