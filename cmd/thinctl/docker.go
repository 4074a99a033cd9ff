package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/thinctl/thinctl/dockerdm"
	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/thinpool"
)

// dockerInspectCommand is "thinctl docker inspect".
var dockerInspectCommand = &command{
	name:     "docker inspect",
	synopsis: "docker inspect --docker-root DIR [--pool NAME]",
	summary:  "report what a Docker devicemapper store holds and where it disagrees with its pool (read-only)",
	detail: "Reads the store Docker's devicemapper driver left under DIR (Docker's --data-root,\n" +
		"e.g. /var/lib/docker) without Docker: images with their tags and layers (base first,\n" +
		"each with its thin device id and size), containers with their init and read-write\n" +
		"devices, the pool (size, use, transaction id against Docker's last transaction) and\n" +
		"every disagreement between Docker's records and the pool's own metadata. It writes\n" +
		"none of Docker's files; a pool that is down is read from its metadata file, a pool\n" +
		"that is up through a held metadata root. It refuses while a process (dockerd, its\n" +
		"containerd) holds files of the store, naming the process. --pool names the pool of\n" +
		"a store made with dm.thinpooldev. Exit 0 also when there are disagreements; they are\n" +
		"listed last (and under \"disagreements\" with -o json).",
	json:     true,
	flags:    dockerStoreFlags,
	validate: validateDockerRoot,
	run:      runDockerInspect,
}

func dockerStoreFlags(fs *flag.FlagSet, o *options) {
	fs.StringVar(&o.dockerRoot, "docker-root", "", "Docker's data root `DIR` (required)")
	fs.StringVar(&o.dockerPool, "pool", "", "`NAME` of the pool of a store made with dm.thinpooldev")
}

func validateDockerRoot(c *call) error {
	if c.opts.dockerRoot == "" {
		return usagef("--docker-root is required (Docker's data root, e.g. /var/lib/docker)")
	}
	return nil
}

// dockerExportCommand is "thinctl docker export".
var dockerExportCommand = &command{
	name:     "docker export",
	synopsis: "docker export --docker-root DIR [--pool NAME] [--image REF]... [--containers] [--file FILE|-]",
	summary:  "write images (and containers) of a Docker devicemapper store as an archive docker load accepts",
	detail: "Writes the images (a tag such as name:tag, or an image id or its first digits) as a\n" +
		"docker save archive: manifest.json, each image's configuration and each layer's tar,\n" +
		"read from the layer's device mounted read-only (a pool that is down is brought up\n" +
		"read-only for the export and taken down again). A layer Docker kept a tar-split for\n" +
		"is rebuilt byte for byte and checked against the diff_id Docker recorded; a layer\n" +
		"without one is re-created as the difference to its parent layer (whiteouts as .wh.\n" +
		"files, opaque directories as .wh..wh..opq), which gives it a new diff_id: the images\n" +
		"using it get their configuration rewritten (and a new id), and the output names them.\n" +
		"--containers also exports every container's read-write layer as an image, like docker\n" +
		"commit, tagged containers/<name>:latest. It refuses while a process holds the store,\n" +
		"and writes nothing of it. The archive goes to --file (written beside it and renamed: a\n" +
		"failed export leaves no partial file) or to stdout, which must not be a terminal.",
	flags: func(fs *flag.FlagSet, o *options) {
		dockerStoreFlags(fs, o)
		fs.Var(listValue{&o.images}, "image", "export image `REF` (repeatable)")
		fs.BoolVar(&o.containers, "containers", false, "also export every container's read-write layer as an image")
		fs.StringVar(&o.file, "file", "", "write the archive to `FILE` (- or nothing: stdout)")
	},
	validate: func(c *call) error {
		if err := validateDockerRoot(c); err != nil {
			return err
		}
		if len(c.opts.images) == 0 && !c.opts.containers {
			return usagef("--image or --containers is required: name at least one image (docker images lists them; so does thinctl docker inspect)")
		}
		return nil
	},
	run: runDockerExport,
}

func runDockerExport(c *call) error {
	toStdout := c.opts.file == "" || c.opts.file == "-"
	if toStdout && c.app.isTerminal(c.app.stdout) {
		return &hintedError{msg: errTerminal.Error() + ": stdout is one",
			hint: "give --file FILE, or redirect stdout: thinctl docker export ... > images.tar"}
	}
	opts := dockerdm.ExportOptions{OpenOptions: dockerdm.OpenOptions{PoolName: c.opts.dockerPool}, Containers: c.opts.containers}
	if !toStdout {
		if err := checkOutputFile(c.opts.file); err != nil {
			return err
		}
		// The layer files go beside the archive, on its filesystem (not
		// a tmpfs), and are bounded by its free space.
		opts.WorkDir = filepath.Dir(c.opts.file)
	}
	prog := c.progress()
	if prog != nil {
		opts.Progress = func(done, total int, l dockerdm.LayerExport) {
			prog(fmt.Sprintf("exporting layer %d of %d", done, total), float64(done)/float64(total))
		}
	}
	t0 := time.Now()
	var res *dockerdm.ExportResult
	if toStdout {
		var err error
		if res, err = dockerdm.Export(c.ctx(), c.opts.dockerRoot, c.opts.images, c.app.stdout, opts); err != nil {
			return dockerError(err)
		}
		return nil
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		var err error
		res, err = dockerdm.Export(c.ctx(), c.opts.dockerRoot, c.opts.images, pw, opts)
		pw.CloseWithError(err)
		done <- err
	}()
	werr := writeFileAtomically(c.opts.file, pr)
	pr.CloseWithError(werr)
	if err := <-done; err != nil {
		return dockerError(err)
	}
	if werr != nil {
		return werr
	}
	c.endProgress()
	return writeExportSummary(c.stdout(), res, c.opts.file, time.Since(t0))
}

// writeExportSummary prints what docker export wrote.
func writeExportSummary(w io.Writer, res *dockerdm.ExportResult, file string, took time.Duration) error {
	var n int64
	var split int
	var recreated []dockerdm.LayerExport
	for _, l := range res.Layers {
		n += l.Bytes
		if l.FromTarSplit {
			split++
		} else {
			recreated = append(recreated, l)
		}
	}
	for _, ct := range res.Containers {
		n += ct.Bytes
	}
	fmt.Fprintf(w, "Exported %d image(s), %d layer(s) (%s of layer tars) to %s in %v:\n", len(res.Images), len(res.Layers)+len(res.Containers), humanSize(uint64(n)), file, took.Round(time.Second))
	fmt.Fprintf(w, "  %d layer(s) rebuilt from their tar-splits, each matching its diff_id\n", split)
	for _, l := range recreated {
		fmt.Fprintf(w, "  layer %s re-created from its device (no tar-split): diff_id %s, was %s\n", short(l.ChainID), short(l.DiffID), short(l.RecordedDiffID))
	}
	for _, r := range res.Renamed {
		fmt.Fprintf(w, "  image %s is %s in the archive (its configuration names the new diff_ids)\n", short(r.From), short(r.To))
	}
	for _, ct := range res.Containers {
		fmt.Fprintf(w, "  container %s exported as image %s (%s): its read-write layer, %s\n", escapeControls(dash(ct.Name)), escapeControls(ct.Tag), short(ct.ImageID), humanSize(uint64(ct.Bytes)))
	}
	return nil
}

func runDockerInspect(c *call) error {
	rep, err := dockerdm.Inspect(c.ctx(), c.opts.dockerRoot, dockerdm.InspectOptions{OpenOptions: dockerdm.OpenOptions{PoolName: c.opts.dockerPool}})
	if err != nil {
		return dockerError(err)
	}
	if c.json() {
		return writeJSON(c.stdout(), rep)
	}
	return writeDockerReport(c.stdout(), rep)
}

// dockerError gives the store's errors hints of their own: the generic
// ones speak of thinctl's registry and devices.
func dockerError(err error) error {
	hint := ""
	switch {
	case errors.Is(err, dockerdm.ErrHeld):
		hint = "stop Docker first (systemctl stop docker docker.socket containerd); thinctl reads the store only while nothing else uses it"
	case errors.Is(err, dockerdm.ErrNoStore), errors.Is(err, dockerdm.ErrNotDevicemapper):
		hint = "--docker-root names Docker's data root (dockerd --data-root, default /var/lib/docker) of a store made with --storage-driver devicemapper"
	case errors.Is(err, dockerdm.ErrUnknownImage):
		hint = "thinctl docker inspect lists the store's images (a tag, or an image id or its first digits)"
	case errors.Is(err, dockerdm.ErrOpenTransaction):
		hint = "nothing was changed; --drop-open-transaction leaves that device out, as Docker's own rollback would have"
	case errors.Is(err, dockerdm.ErrMissingDevices):
		hint = "nothing was changed; thinctl docker inspect lists every disagreement, and --skip-missing leaves those layers and containers out"
	case errors.Is(err, dockerdm.ErrNotAdoptable):
		hint = "nothing was changed; thinctl docker inspect lists every disagreement"
	case errors.Is(err, dockerdm.ErrDeviceOpen):
		hint = "nothing was changed; unmount what is mounted from Docker's devices (findmnt | grep devicemapper/mnt) and run it again"
	case errors.Is(err, thinpool.ErrAlreadyInit):
		hint = "--root already holds a thinctl pool; give another --root"
	case errors.Is(err, dockerdm.ErrPartial), errors.Is(err, dockerdm.ErrCorrupt), errors.Is(err, dockerdm.ErrNotThinMetadata):
		hint = "thinctl changed nothing; restore the named file from a backup, or copy the store aside and remove it from the copy to see the rest"
	default:
		return err
	}
	return &hintedError{msg: err.Error(), hint: hint}
}

func short(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func thinText(id *uint32) string {
	if id == nil {
		return "-"
	}
	return strconv.FormatUint(uint64(*id), 10)
}

// writeDockerReport prints "docker inspect".
func writeDockerReport(w io.Writer, r *dockerdm.Report) error {
	p := r.Pool
	block := uint64(p.DataBlockSize) * 512
	state := "down (read from its metadata file)"
	if p.Active {
		state = "up (read through a held metadata root)"
	}
	tx := fmt.Sprintf("%d; Docker's last: %d", p.TransactionID, p.DockerTransaction)
	if p.TransactionOpen {
		tx += " (open: it never closed)"
	}
	fields := []driver.KV{
		{Key: "Docker root", Value: r.Root},
		{Key: "Pool", Value: p.Name + ", " + state},
		{Key: "Transaction ID", Value: tx},
		{Key: "Data%", Value: usageLine(p.DataUsed*block, p.DataBlocks*block)},
		{Key: "Meta%", Value: usageLine(p.MetaUsed*4096, p.MetaBlocks*4096)},
	}
	if r.Base != nil {
		fields = append(fields, driver.KV{Key: "Base device", Value: fmt.Sprintf("thin id %d, %s, %s", r.Base.DeviceID, humanSize(r.Base.Size), escapeControls(dash(p.BaseDeviceFilesystem)))})
	}
	devs := "-"
	if p.Compared {
		devs = strconv.Itoa(len(p.Devices))
	}
	fields = append(fields, driver.KV{Key: "Devices", Value: fmt.Sprintf("%s in the pool, %d records", devs, r.Records)})
	if p.NeedsCheck {
		fields = append(fields, driver.KV{Key: "Needs check", Value: "yes (the kernel asks for thin_check)"})
	}
	if err := writeFields(w, fields); err != nil {
		return err
	}
	fmt.Fprintln(w)
	var rows [][]string
	for _, img := range r.Images {
		tag := "<none>"
		for _, t := range img.Tags {
			if !strings.Contains(t, "@") {
				tag = escapeControls(t)
				break
			}
		}
		for i, l := range img.LayerReports {
			name, id := "", ""
			if i == 0 {
				name, id = tag, short(img.ID)
			}
			rows = append(rows, []string{name, id, strconv.Itoa(i + 1), short(l.ChainID), thinText(l.DeviceID), sizeText(uint64(l.Size)), escapeControls(dash(short(l.CacheID)))})
		}
		if len(img.LayerReports) == 0 {
			rows = append(rows, []string{tag, short(img.ID), "-", "-", "-", "-", "-"})
		}
	}
	if err := writeTable(w, []string{"IMAGE", "ID", "LAYER", "CHAIN_ID", "DEV_ID", "SIZE", "CACHE_ID"}, rows); err != nil {
		return err
	}
	fmt.Fprintln(w)
	rows = rows[:0]
	for _, ct := range r.Containers {
		rows = append(rows, []string{escapeControls(dash(ct.Name)), short(ct.ID), escapeControls(dash(ct.Ref)), thinText(ct.InitDevice), thinText(ct.RWDevice), escapeControls(dash(short(ct.MountID)))})
	}
	if err := writeTable(w, []string{"CONTAINER", "ID", "IMAGE", "INIT_DEV_ID", "RW_DEV_ID", "MOUNT_ID"}, rows); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if len(r.Disagreements) == 0 {
		fmt.Fprintln(w, "Docker's records and the pool agree.")
	} else {
		fmt.Fprintf(w, "%d disagreement(s):\n", len(r.Disagreements))
		for _, d := range r.Disagreements {
			fmt.Fprintf(w, "  %s\n", escapeControls(fmt.Sprint(d)))
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", escapeControls(n))
	}
	return nil
}

// dockerAdoptCommand is "thinctl docker adopt".
var dockerAdoptCommand = &command{
	name:     "docker adopt",
	synopsis: "docker adopt --docker-root DIR --root DIR [--pool NAME] [--drop-open-transaction] [--skip-missing]",
	summary:  "take a Docker devicemapper store's pool over in place as the pool of --root (no data copied)",
	detail: "Makes --root a thinctl root whose pool is the store's own: every live device of the\n" +
		"store gets a registry record (image-<tag> for a tagged image's top layer, layer-<chain\n" +
		"id> for other layers, container-<name> and container-<name>-init, docker-<hash> for a\n" +
		"record nothing uses; Docker's hash is kept in the label docker.hash) and Docker's base\n" +
		"device becomes the pool's base. Then list, mount, create, remove and check work on\n" +
		"them. Docker's files are not written, but the pool is thinctl's from then on: do not\n" +
		"start a Docker on the store again. A pool a killed dockerd left up is taken down\n" +
		"first. It refuses, changing nothing, while a process holds the store or a Docker\n" +
		"device is open, while Docker's last transaction is open (--drop-open-transaction\n" +
		"leaves that device out, as Docker's rollback would), when layers or containers lack\n" +
		"their devices (--skip-missing leaves them out), and when two records share a thin id\n" +
		"or the pool needs a check. An interrupted adopt leaves no registry; run it again.",
	json: true,
	flags: func(fs *flag.FlagSet, o *options) {
		dockerStoreFlags(fs, o)
		fs.BoolVar(&o.dropOpenTx, "drop-open-transaction", false, "leave out the device of Docker's open transaction")
		fs.BoolVar(&o.skipMissing, "skip-missing", false, "leave out layers and containers whose devices are missing")
	},
	validate: validateDockerRoot,
	run:      runDockerAdopt,
}

func runDockerAdopt(c *call) error {
	opts := dockerdm.AdoptOptions{OpenOptions: dockerdm.OpenOptions{PoolName: c.opts.dockerPool},
		DropOpenTransaction: c.opts.dropOpenTx, SkipMissing: c.opts.skipMissing, Progress: c.progress()}
	res, err := dockerdm.Adopt(c.ctx(), c.opts.dockerRoot, c.g.root, opts)
	if err != nil {
		return dockerError(err)
	}
	c.endProgress()
	if c.json() {
		return writeJSON(c.stdout(), res)
	}
	return writeAdoptReport(c.stdout(), res)
}

// writeAdoptReport prints "docker adopt".
func writeAdoptReport(w io.Writer, res *dockerdm.AdoptResult) error {
	fmt.Fprintf(w, "Adopted %s into %s in place (no data copied): pool %s, base device thin id %d (%s), %d devices.\n",
		res.DockerRoot, res.Root, res.Pool, res.BaseDeviceID, res.Filesystem, len(res.Devices))
	if len(res.Released) > 0 {
		fmt.Fprintf(w, "Took down what the last dockerd left up: %s.\n", strings.Join(res.Released, ", "))
	}
	fmt.Fprintln(w)
	var rows [][]string
	for _, d := range res.Devices {
		rows = append(rows, []string{d.ID, d.Kind, strconv.FormatUint(uint64(d.DeviceID), 10), dash(d.Parent), escapeControls(d.What)})
	}
	if err := writeTable(w, []string{"ID", "KIND", "THIN_ID", "PARENT", "HOLDS"}, rows); err != nil {
		return err
	}
	for _, l := range res.LeftOut {
		fmt.Fprintf(w, "left out: %s\n", escapeControls(l))
	}
	fmt.Fprintf(w, "\nThe pool is thinctl's now (its transaction id stays %d, as Docker left it). Docker's files under %s\n"+
		"were not changed, but they no longer describe the pool once thinctl changes it: do not start Docker\n"+
		"on that data root again. thinctl list, mount, create, remove and check work on the devices above.\n", res.TransactionID, res.DockerRoot)
	return nil
}
