package dockerdm

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sort"
	"strings"

	"github.com/pkg/errors"
)

// ImageConfig is what this package reads of an image configuration
// (image/devicemapper/imagedb/content/sha256/<id>).
type ImageConfig struct {
	// DiffIDs are the digests of the image's uncompressed layer tars, base first.
	DiffIDs []string
	// Created is the creation time as the configuration says it.
	Created string
}

// ParseImageConfig reads an image configuration's rootfs.
func ParseImageConfig(b []byte) (ImageConfig, error) {
	var raw struct {
		Created string `json:"created"`
		RootFS  *struct {
			Type    string   `json:"type"`
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := strictJSON(b, &raw); err != nil {
		return ImageConfig{}, err
	}
	if raw.RootFS == nil {
		return ImageConfig{}, errors.Wrap(ErrCorrupt, "no rootfs")
	}
	if raw.RootFS.Type != "layers" {
		return ImageConfig{}, errors.Wrapf(ErrCorrupt, "rootfs type %q, not layers", raw.RootFS.Type)
	}
	for _, d := range raw.RootFS.DiffIDs {
		if !IsDigest(d) {
			return ImageConfig{}, errors.Wrapf(ErrCorrupt, "diff_id %q is not a sha256 digest", d)
		}
	}
	return ImageConfig{DiffIDs: raw.RootFS.DiffIDs, Created: raw.Created}, nil
}

// ParseRepositories reads repositories.json and returns the references
// (name:tag, or name@digest) of every image id, sorted.
func ParseRepositories(b []byte) (map[string][]string, error) {
	var raw struct {
		Repositories map[string]map[string]string `json:"Repositories"`
	}
	if err := strictJSON(b, &raw); err != nil {
		return nil, err
	}
	refs := map[string][]string{}
	for repo, m := range raw.Repositories {
		for ref, id := range m {
			if !IsDigest(id) {
				return nil, errors.Wrapf(ErrCorrupt, "%s names image %q, not a sha256 digest", ref, id)
			}
			if ref != repo && !strings.HasPrefix(ref, repo+":") && !strings.HasPrefix(ref, repo+"@") {
				return nil, errors.Wrapf(ErrCorrupt, "reference %q is not in repository %q", ref, repo)
			}
			refs[id] = append(refs[id], ref)
		}
	}
	for _, r := range refs {
		sort.Strings(r)
	}
	return refs, nil
}

// IsDigest says whether s is "sha256:" and 64 lower-case hex digits.
func IsDigest(s string) bool {
	h, ok := strings.CutPrefix(s, "sha256:")
	return ok && isHex64(h)
}

func isHex64(h string) bool {
	if len(h) != 64 {
		return false
	}
	for _, c := range h {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// ChainIDs returns the layer chain ids of diffIDs: the first is the first
// diff id, each next one sha256(previous chain id + " " + diff id).
func ChainIDs(diffIDs []string) []string {
	out := make([]string, len(diffIDs))
	for i, d := range diffIDs {
		if i == 0 {
			out[i] = d
			continue
		}
		sum := sha256.Sum256([]byte(out[i-1] + " " + d))
		out[i] = "sha256:" + hex.EncodeToString(sum[:])
	}
	return out
}

// ContainerConfig is what this package reads of containers/<id>/config.v2.json.
type ContainerConfig struct {
	ID      string
	Name    string // without Docker's leading "/"
	Image   string // the image id (sha256:...)
	Ref     string // the image as the user named it (Config.Image)
	Running bool   // what Docker last wrote; after a crash it may be stale
}

// ParseContainerConfig reads a container's config.v2.json.
func ParseContainerConfig(b []byte) (ContainerConfig, error) {
	var raw struct {
		ID     string `json:"ID"`
		Name   string `json:"Name"`
		Image  string `json:"Image"`
		Config struct {
			Image string `json:"Image"`
		} `json:"Config"`
		State struct {
			Running bool `json:"Running"`
		} `json:"State"`
	}
	if err := strictJSON(b, &raw); err != nil {
		return ContainerConfig{}, err
	}
	if !isHex64(raw.ID) {
		return ContainerConfig{}, errors.Wrapf(ErrCorrupt, "container id %q is not 64 hex digits", raw.ID)
	}
	if raw.Image != "" && !IsDigest(raw.Image) {
		return ContainerConfig{}, errors.Wrapf(ErrCorrupt, "image %q is not a sha256 digest", raw.Image)
	}
	return ContainerConfig{ID: raw.ID, Name: strings.TrimPrefix(raw.Name, "/"), Image: raw.Image, Ref: raw.Config.Image, Running: raw.State.Running}, nil
}

// ParseLegacyDevices reads the single devicemapper/devicemapper/json file
// of Docker before 1.7 ({"Devices":{"<hash>":{...}}}; the base's hash is "").
// Docker migrates it to metadata/<hash> files and renames it json.migrated.
func ParseLegacyDevices(b []byte) ([]DeviceRecord, error) {
	var raw struct {
		Devices map[string]json.RawMessage `json:"Devices"`
	}
	if err := strictJSON(b, &raw); err != nil {
		return nil, err
	}
	if raw.Devices == nil {
		return nil, errors.Wrap(ErrCorrupt, "no Devices")
	}
	var out []DeviceRecord
	for h, m := range raw.Devices {
		r, err := ParseDeviceRecord(m)
		if err != nil {
			return nil, errors.Wrapf(err, "device %q", h)
		}
		if h == "" {
			h = BaseHash
		}
		r.Hash = h
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].DeviceID < out[j].DeviceID })
	return out, nil
}
