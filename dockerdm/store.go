package dockerdm

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/errdefs"
)

// BaseHash is the hash this package gives the base device (Docker's
// record file metadata/base; Docker itself calls it "").
const BaseHash = "base"

// Errors Open returns for a directory that is not a readable store.
var (
	// ErrNoStore: the directory does not exist or is not a Docker data root.
	ErrNoStore = errdefs.New("no Docker data root", errdefs.ErrNotFound)
	// ErrNotDevicemapper: a Docker data root of another storage driver.
	ErrNotDevicemapper = errdefs.New("not a devicemapper store", errdefs.ErrInvalidArgument)
	// ErrPartial: a devicemapper store with parts missing.
	ErrPartial = errdefs.New("partial devicemapper store", errdefs.ErrCorrupt)
)

// maxRecordSize bounds the JSON files read; Docker's are far smaller.
const maxRecordSize = 4 << 20

// Layer is one layer of the layer database (layerdb/sha256/<chain>).
type Layer struct {
	ChainID string `json:"chain_id"`
	DiffID  string `json:"diff_id"`
	// Parent is the chain id of the layer below ("" for a base layer).
	Parent string `json:"parent,omitempty"`
	// CacheID is the hash of the layer's thin device.
	CacheID string `json:"cache_id"`
	// Size is what Docker recorded as the layer's size in bytes.
	Size int64 `json:"size"`
	// TarSplit says whether Docker kept tar-split.json.gz, which rebuilds
	// the layer's original tar byte for byte.
	TarSplit bool `json:"tar_split"`
}

// Image is one image of the image database.
type Image struct {
	ID      string   `json:"id"`
	Tags    []string `json:"tags"`
	Created string   `json:"created,omitempty"`
	// Parent is the image Docker recorded as its parent (docker commit).
	Parent  string   `json:"parent,omitempty"`
	DiffIDs []string `json:"diff_ids"`
	// Layers are the chain ids of the image's layers, base first.
	Layers []string `json:"layers"`
}

// Container is a container's read-write layer (layerdb/mounts/<id>) with
// what its configuration says.
type Container struct {
	ID    string `json:"id"`
	Name  string `json:"name,omitempty"`
	Image string `json:"image,omitempty"`
	Ref   string `json:"image_ref,omitempty"`
	// MountID is the hash of its read-write device, InitID that of its
	// init device (<mount-id>-init).
	MountID string `json:"mount_id"`
	InitID  string `json:"init_id,omitempty"`
	// Parent is the chain id of the image layer it is built on.
	Parent string `json:"parent,omitempty"`
	// HasConfig says whether containers/<id>/config.v2.json exists.
	HasConfig bool `json:"has_config"`
}

// Store is what Open read of a store. It holds no open files.
type Store struct {
	// Root is the data root as given; DMDir is Root/devicemapper.
	Root, DMDir string
	// Prefix is Docker's device name prefix, docker-<maj>:<min>-<inode>
	// of DMDir; PoolName the pool's name (<Prefix>-pool unless a pool
	// was named by OpenOptions).
	Prefix, PoolName string
	// DataFile and MetadataFile are the pool's loop-backed files ("" for
	// a store on an external pool).
	DataFile, MetadataFile string
	// Records are Docker's device records by hash (BaseHash for the base).
	Records map[string]DeviceRecord
	// Legacy says the records came from the pre-1.7 single json file.
	Legacy      bool
	DeviceSet   *DeviceSetMetadata
	Transaction *TransactionMetadata
	Images      []Image
	Layers      map[string]Layer
	Containers  []Container
	// Notes tell of what was skipped, as Docker itself skips it.
	Notes []string
}

// OpenOptions changes how Open reads a store.
type OpenOptions struct {
	// PoolName is the pool of a store made with dm.thinpooldev (Docker's
	// configuration names it, not the store); "" for loop files.
	PoolName string
}

// Open reads the store under root. It only reads.
func Open(root string, opts OpenOptions) (*Store, error) {
	st, err := os.Stat(root)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, errors.Wrapf(ErrNoStore, "%s does not exist", root)
		}
		return nil, errors.Wrapf(err, "docker data root %s", root)
	}
	if !st.IsDir() {
		return nil, errors.Wrapf(ErrNoStore, "%s is not a directory", root)
	}
	s := &Store{Root: root, DMDir: filepath.Join(root, "devicemapper"), Records: map[string]DeviceRecord{}, Layers: map[string]Layer{}}
	var sys unix.Stat_t
	if err := unix.Stat(s.DMDir, &sys); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, errors.Wrapf(ErrNotDevicemapper, "%s has no devicemapper/ directory%s", root, otherDrivers(root))
		}
		return nil, errors.Wrapf(err, "docker store: stat %s", s.DMDir)
	}
	s.Prefix = fmt.Sprintf("docker-%d:%d-%d", unix.Major(sys.Dev), unix.Minor(sys.Dev), sys.Ino)
	s.PoolName = s.Prefix + "-pool"
	if opts.PoolName != "" {
		s.PoolName = opts.PoolName
	} else {
		for _, f := range []*string{&s.DataFile, &s.MetadataFile} {
			name := "data"
			if f == &s.MetadataFile {
				name = "metadata"
			}
			resolved, note, err := poolFile(filepath.Join(s.DMDir, "devicemapper", name))
			if err != nil {
				return nil, err
			}
			*f = resolved
			if note != "" {
				s.Notes = append(s.Notes, note)
			}
		}
	}
	if err := s.readRecords(); err != nil {
		return nil, err
	}
	if err := s.readImages(); err != nil {
		return nil, err
	}
	if err := s.readContainers(); err != nil {
		return nil, err
	}
	return s, nil
}

// otherDrivers names the graph drivers whose image databases root holds.
func otherDrivers(root string) string {
	ents, err := readDir(filepath.Join(root, "image"))
	if err != nil || len(ents) == 0 {
		return ""
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return " (its image database is for " + strings.Join(names, ", ") + ")"
}

// readFile reads a store file of at most maxRecordSize bytes: a regular
// file, not a symlink (openStoreFile), its size checked before reading.
func readFile(p string) ([]byte, error) {
	f, err := openStoreFile(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readAtMost(f, maxRecordSize)
}

func (s *Store) readRecords() error {
	mdir := filepath.Join(s.DMDir, "metadata")
	ents, err := readDir(mdir)
	if os.IsNotExist(err) {
		legacy := filepath.Join(s.DMDir, "devicemapper", "json")
		b, lerr := readFile(legacy)
		if lerr != nil {
			return errors.Wrapf(ErrPartial, "%s is missing", mdir)
		}
		recs, err := ParseLegacyDevices(b)
		if err != nil {
			return errors.Wrapf(err, "%s", legacy)
		}
		for _, r := range recs {
			s.Records[r.Hash] = r
		}
		s.Legacy = true
		return nil
	}
	if err != nil {
		return errors.Wrapf(err, "docker store %s", mdir)
	}
	for _, e := range ents {
		name := e.Name()
		p := filepath.Join(mdir, name)
		switch {
		case strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".migrated") || e.IsDir():
			continue // Docker skips these too
		case name == "deviceset-metadata":
			b, err := readFile(p)
			if err != nil {
				return err
			}
			m, err := ParseDeviceSetMetadata(b)
			if err != nil {
				return errors.Wrapf(err, "%s", p)
			}
			s.DeviceSet = &m
		case name == "transaction-metadata":
			b, err := readFile(p)
			if err != nil {
				return err
			}
			m, err := ParseTransactionMetadata(b)
			if err != nil {
				return errors.Wrapf(err, "%s", p)
			}
			s.Transaction = &m
		default:
			b, err := readFile(p)
			if err != nil {
				return err
			}
			r, err := ParseDeviceRecord(b)
			if err != nil {
				return errors.Wrapf(err, "device record %s", p)
			}
			r.Hash = name
			s.Records[name] = r
		}
	}
	if _, ok := s.Records[BaseHash]; !ok && len(s.Records) > 0 {
		return errors.Wrapf(ErrPartial, "%s has device records but no base", mdir)
	}
	return nil
}

// readSmallText reads a one-line store file and trims it; "" when absent.
func readSmallText(p string) (string, bool, error) {
	b, err := readFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return strings.TrimSpace(string(b)), true, nil
}

func (s *Store) readImages() error {
	idir := filepath.Join(s.Root, "image", "devicemapper")
	if fi, err := os.Stat(idir); err != nil || !fi.IsDir() {
		return errors.Wrapf(ErrPartial, "%s is missing", idir)
	}
	refs := map[string][]string{}
	if b, err := readFile(filepath.Join(idir, "repositories.json")); err == nil {
		if refs, err = ParseRepositories(b); err != nil {
			return errors.Wrapf(err, "%s", filepath.Join(idir, "repositories.json"))
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := s.readLayers(filepath.Join(idir, "layerdb", "sha256")); err != nil {
		return err
	}
	cdir := filepath.Join(idir, "imagedb", "content", "sha256")
	ents, err := readDir(cdir)
	if err != nil && !os.IsNotExist(err) {
		return errors.Wrapf(err, "image database %s", cdir)
	}
	for _, e := range ents {
		if !isHex64(e.Name()) || e.IsDir() {
			s.Notes = append(s.Notes, "skipped "+filepath.Join(cdir, e.Name())+": not an image configuration")
			continue
		}
		p := filepath.Join(cdir, e.Name())
		b, err := readFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		if hex.EncodeToString(sum[:]) != e.Name() {
			return errors.Wrapf(ErrCorrupt, "image configuration %s does not hash to its name", p)
		}
		cfg, err := ParseImageConfig(b)
		if err != nil {
			return errors.Wrapf(err, "image configuration %s", p)
		}
		id := "sha256:" + e.Name()
		img := Image{ID: id, Tags: refs[id], Created: cfg.Created, DiffIDs: cfg.DiffIDs, Layers: ChainIDs(cfg.DiffIDs)}
		if img.Tags == nil {
			img.Tags = []string{}
		}
		if par, ok, err := readSmallText(filepath.Join(idir, "imagedb", "metadata", "sha256", e.Name(), "parent")); err != nil {
			return err
		} else if ok {
			img.Parent = par
		}
		s.Images = append(s.Images, img)
	}
	sort.Slice(s.Images, func(i, j int) bool { return imageKey(s.Images[i]) < imageKey(s.Images[j]) })
	return nil
}

func imageKey(i Image) string {
	if len(i.Tags) > 0 {
		return "0" + i.Tags[0]
	}
	return "1" + i.ID
}

func (s *Store) readLayers(ldir string) error {
	ents, err := readDir(ldir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return errors.Wrapf(err, "layer database %s", ldir)
	}
	for _, e := range ents {
		dir := filepath.Join(ldir, e.Name())
		if !e.IsDir() || !isHex64(e.Name()) {
			// <chain>-<random>-removing and tmp/: Docker's own leftovers.
			s.Notes = append(s.Notes, "skipped "+dir+": not a layer (Docker skips it too)")
			continue
		}
		l := Layer{ChainID: "sha256:" + e.Name()}
		var ok bool
		if l.CacheID, ok, err = readSmallText(filepath.Join(dir, "cache-id")); err != nil {
			return err
		} else if !ok || l.CacheID == "" {
			s.Notes = append(s.Notes, "skipped "+dir+": no cache-id (Docker skips it too)")
			continue
		}
		if !isHashName(l.CacheID) || l.CacheID == BaseHash {
			return errors.Wrapf(ErrCorrupt, "%s: cache-id %q cannot name a device", dir, l.CacheID)
		}
		if l.DiffID, ok, err = readSmallText(filepath.Join(dir, "diff")); err != nil {
			return err
		} else if !ok || !IsDigest(l.DiffID) {
			return errors.Wrapf(ErrCorrupt, "%s: diff %q is not a sha256 digest", dir, l.DiffID)
		}
		if l.Parent, _, err = readSmallText(filepath.Join(dir, "parent")); err != nil {
			return err
		} else if l.Parent != "" && !IsDigest(l.Parent) {
			return errors.Wrapf(ErrCorrupt, "%s: parent %q is not a sha256 digest", dir, l.Parent)
		}
		if sz, ok, err := readSmallText(filepath.Join(dir, "size")); err != nil {
			return err
		} else if ok {
			if l.Size, err = strconv.ParseInt(sz, 10, 64); err != nil || l.Size < 0 {
				return errors.Wrapf(ErrCorrupt, "%s: size %q is not a byte count", dir, sz)
			}
		}
		l.TarSplit = isRegularFile(filepath.Join(dir, "tar-split.json.gz"))
		s.Layers[l.ChainID] = l
	}
	return nil
}

func (s *Store) readContainers() error {
	mdir := filepath.Join(s.Root, "image", "devicemapper", "layerdb", "mounts")
	byID := map[string]*Container{}
	ents, err := readDir(mdir)
	if err != nil && !os.IsNotExist(err) {
		return errors.Wrapf(err, "layer database %s", mdir)
	}
	for _, e := range ents {
		dir := filepath.Join(mdir, e.Name())
		if !e.IsDir() || !isHex64(e.Name()) {
			s.Notes = append(s.Notes, "skipped "+dir+": not a container's layer")
			continue
		}
		c := &Container{ID: e.Name()}
		var ok bool
		if c.MountID, ok, err = readSmallText(filepath.Join(dir, "mount-id")); err != nil {
			return err
		} else if !ok || !isHashName(c.MountID) {
			return errors.Wrapf(ErrCorrupt, "%s: mount-id %q cannot name a device", dir, c.MountID)
		}
		if c.InitID, _, err = readSmallText(filepath.Join(dir, "init-id")); err != nil {
			return err
		} else if c.InitID != "" && !isHashName(c.InitID) {
			return errors.Wrapf(ErrCorrupt, "%s: init-id %q cannot name a device", dir, c.InitID)
		}
		if c.Parent, _, err = readSmallText(filepath.Join(dir, "parent")); err != nil {
			return err
		} else if c.Parent != "" && !IsDigest(c.Parent) {
			return errors.Wrapf(ErrCorrupt, "%s: parent %q is not a sha256 digest", dir, c.Parent)
		}
		byID[c.ID] = c
	}
	cdir := filepath.Join(s.Root, "containers")
	ents, err = readDir(cdir)
	if err != nil && !os.IsNotExist(err) {
		return errors.Wrapf(err, "containers %s", cdir)
	}
	for _, e := range ents {
		p := filepath.Join(cdir, e.Name(), "config.v2.json")
		b, err := readFile(p)
		if errors.Is(err, os.ErrNotExist) || !e.IsDir() {
			continue
		}
		if err != nil {
			return err
		}
		cfg, err := ParseContainerConfig(b)
		if err != nil {
			return errors.Wrapf(err, "container configuration %s", p)
		}
		if cfg.ID != e.Name() {
			return errors.Wrapf(ErrCorrupt, "container configuration %s is for container %s", p, cfg.ID)
		}
		c := byID[cfg.ID]
		if c == nil {
			c = &Container{ID: cfg.ID}
			byID[cfg.ID] = c
		}
		c.Name, c.Image, c.Ref, c.HasConfig = cfg.Name, cfg.Image, cfg.Ref, true
	}
	for _, c := range byID {
		s.Containers = append(s.Containers, *c)
	}
	sort.Slice(s.Containers, func(i, j int) bool {
		if s.Containers[i].Name != s.Containers[j].Name {
			return s.Containers[i].Name < s.Containers[j].Name
		}
		return s.Containers[i].ID < s.Containers[j].ID
	})
	return nil
}

// DeviceName is the device-mapper name Docker gives the device with this
// hash (<prefix>-<hash>, the base <prefix>-base).
func (s *Store) DeviceName(hash string) string { return s.Prefix + "-" + hash }

// isHashName reports whether h can be the hash of a device record: the
// name of a file in metadata/ (not empty, no slash or NUL, not . or ..,
// at most 255 bytes).
func isHashName(h string) bool {
	return h != "" && h != "." && h != ".." && len(h) <= 255 && !strings.ContainsAny(h, "/\x00")
}
