package main

import (
	"flag"
	"strings"
)

// options holds every command flag; each command registers the ones it
// takes (see command.flags).
type options struct {
	dataSize     uint64
	metadataSize uint64
	blockSize    uint64
	baseSize     uint64
	fsType       string
	mkfsArgs     []string
	mountOpts    []string
	minFree      float64
	minFreeSet   bool
	dataDev      string
	metadataDev  string
	thinpoolDev  string
	noDiscard    bool
	noWait       bool // remove: leave the space return to gc or a later remove

	parent   string
	size     uint64
	activate bool // create --activate
	force    bool
	repair   bool

	spareMetaDev string // pool repair: where thin_repair writes for a pool on block devices

	file string // export/import: the archive ("" or "-": stdout/stdin)

	dockerRoot  string   // docker ...: Docker's data root
	dockerPool  string   // docker ...: the pool of a dm.thinpooldev store
	images      []string // docker export: the images
	containers  bool     // docker export: also the containers
	dropOpenTx  bool     // docker adopt: leave out the open transaction's device
	skipMissing bool     // docker adopt: leave out layers and containers without devices

	watch watchOptions // pool watch; --preallocate of pool init and grow

	manDir  string // __man: where to write the pages
	manDate string // __man: the pages' date
}

// command describes one thinctl command: how it is called, what it says
// about itself in --help, and the function doing the work.
type command struct {
	name     string   // "create", "pool init"
	synopsis string   // the usage line after "thinctl "
	summary  string   // one line for the command list
	detail   string   // a paragraph for "thinctl <command> --help"
	args     []string // names of the positional arguments, in order
	json     bool     // supports -o json
	dmOnly   bool     // only meaningful for the devicemapper driver
	noRoot   bool     // runs without root (version)
	hidden   bool     // left out of --help, the docs and completion (build helpers)
	flags    func(fs *flag.FlagSet, o *options)
	// validate checks flag combinations after parsing (usage errors).
	validate func(c *call) error
	run      func(c *call) error
}

// id flag helpers shared by several commands.
func mountOptFlag(fs *flag.FlagSet, o *options) {
	fs.Var(listValue{&o.mountOpts}, "mount-opt", "add mount option `OPT` (repeatable)")
}

func growFlags(fs *flag.FlagSet, o *options) {
	fs.Var(sizeValue{&o.dataSize}, "data-size", "new data `SIZE` (larger than now)")
	fs.Var(sizeValue{&o.metadataSize}, "metadata-size", "new metadata `SIZE` (larger than now)")
	preallocateFlag(fs, o)
}

// commands is the command tree in the order --help lists it.
var commands = []*command{
	{
		name: "pool init",
		synopsis: "pool init [--data-size 100G] [--metadata-size 2G] [--block-size 64K] [--base-size 10G]\n" +
			"                  [--fs ext4|xfs] [--mkfs-arg ARG]... [--mount-opt OPT]... [--min-free-space 10%]\n" +
			"                  [--data-dev DEV --metadata-dev DEV | --thinpool-dev NAME] [--no-discard] [--preallocate]",
		summary: "create the thin pool and its base device (or the driver's home) under --root",
		detail: "Creates the pool under <root>/devicemapper: a sparse data file and an allocated\n" +
			"metadata file on loop devices (or the given block devices, or an existing thin-pool),\n" +
			"the pool table and a base device with a filesystem that every new device snapshots.\n" +
			"A warning says when the host filesystem cannot hold what the pool may take. Under\n" +
			"overlay2 or aufs it creates the driver's home directory (<root>/overlay2, <root>/aufs);\n" +
			"the size and device flags are devicemapper-only.",
		flags: func(fs *flag.FlagSet, o *options) {
			fs.Var(sizeValue{&o.dataSize}, "data-size", "`SIZE` of the sparse data file (default 100G)")
			fs.Var(sizeValue{&o.metadataSize}, "metadata-size", "`SIZE` of the metadata file, allocated on the host filesystem (default 2G)")
			fs.Var(sizeValue{&o.blockSize}, "block-size", "allocation block `SIZE`: 64K to 1G in steps of 64K (default 64K)")
			fs.Var(sizeValue{&o.baseSize}, "base-size", "`SIZE` of the base device every device starts from (default 10G)")
			fs.Var(choiceValue{&o.fsType, []string{"ext4", "xfs"}}, "fs", "filesystem `TYPE` of the base device: ext4 or xfs (default ext4)")
			fs.Var(listValue{&o.mkfsArgs}, "mkfs-arg", "pass `ARG` to mkfs (repeatable)")
			mountOptFlag(fs, o)
			fs.Var(percentValue{&o.minFree, &o.minFreeSet}, "min-free-space", "refuse new devices when less than `PCT` of data or metadata is free (default 10%; 0 for no minimum)")
			fs.StringVar(&o.dataDev, "data-dev", "", "use block device `DEV` for data instead of a loop file")
			fs.StringVar(&o.metadataDev, "metadata-dev", "", "use block device `DEV` for metadata instead of a loop file")
			fs.StringVar(&o.thinpoolDev, "thinpool-dev", "", "use the existing thin-pool device `NAME` (never deactivated)")
			fs.BoolVar(&o.noDiscard, "no-discard", false, "do not discard a device's blocks when removing it")
			preallocateFlag(fs, o)
		},
		validate: validatePoolInit,
		run:      runPoolInit,
	},
	{
		name:     "pool status",
		synopsis: "pool status",
		summary:  "show the driver (and why it was chosen), space used and device count",
		detail: "Shows the driver and why --driver auto chose it, the pool's state and transaction id,\n" +
			"Data% and Meta% with a small gauge, and the number of devices.",
		json: true,
		run:  runPoolStatus,
	},
	{
		name:     "pool up",
		synopsis: "pool up",
		summary:  "bring the pool up after a reboot (loop devices, pool table)",
		detail: "Re-attaches the data and metadata files, recreates the pool and finishes interrupted\n" +
			"work. Harmless when the pool is already up.",
		run: runPoolUp,
	},
	{
		name:     "pool down",
		synopsis: "pool down",
		summary:  "deactivate every device and the pool, detach the loop devices",
		detail:   "Takes the pool down; refuses while devices are mounted (unmount them first).",
		run:      runPoolDown,
	},
	{
		name:     "pool grow",
		synopsis: "pool grow [--data-size SIZE] [--metadata-size SIZE] [--preallocate]",
		summary:  "grow the pool's data and/or metadata online (devicemapper)",
		detail: "Grows the data and/or metadata space while devices stay mounted. Give at least one size.\n" +
			"A loop pool's metadata file is allocated whole on the host filesystem (--preallocate: the\n" +
			"data file too); a warning says when the host filesystem cannot hold what the pool may take.",
		dmOnly:   true,
		flags:    growFlags,
		validate: validatePoolGrow,
		run:      runPoolGrow,
	},
	{
		name:     "pool repair",
		synopsis: "pool repair [--spare-metadata-dev DEV]",
		summary:  "bring a read-only, failed or needs_check pool back (thin_check, thin_repair) (devicemapper)",
		detail: "Refuses while devices are mounted or open (naming them). Deactivates the devices and the\n" +
			"pool, runs thin_check on the metadata and, when it passes, only clears needs_check and\n" +
			"activates the pool again. When it fails, thin_repair writes fresh metadata (a new file\n" +
			"next to the old one, or --spare-metadata-dev for a pool on block devices), the pool\n" +
			"switches to it and the old metadata stays untouched. Devices the repaired metadata lacks\n" +
			"are reported, never dropped; devices whose filesystem recorded errors are named for fsck.",
		dmOnly: true,
		flags: func(fs *flag.FlagSet, o *options) {
			fs.StringVar(&o.spareMetaDev, "spare-metadata-dev", "", "write the repaired metadata to block device `DEV` (pools on --metadata-dev)")
		},
		run: runPoolRepair,
	},
	{
		name: "pool watch",
		synopsis: "pool watch [--autoextend-threshold 80%] [--autoextend-step 20%] [--max-data-size SIZE]\n" +
			"                   [--max-metadata-size SIZE] [--host-reserve SIZE] [--interval 10s]\n" +
			"                   [--thin-command CMD] [--metrics-file FILE]",
		summary: "guard the pool: warn, grow data and metadata by policy, write metrics (runs until stopped)",
		detail: "Sleeps on the kernel's pool events and reads the host filesystem every --interval. Warns\n" +
			"at 80, 85, 90 and 95% use. When data or metadata use reaches --autoextend-threshold it\n" +
			"grows that part by --autoextend-step (more when one step would stay above the threshold):\n" +
			"loop pools grow their files, never past --max-data-size/--max-metadata-size and always\n" +
			"leaving --host-reserve free on the host filesystem; pools on block devices or\n" +
			"--thinpool-dev run --thin-command with DMEVENTD_THIN_POOL_DATA/METADATA set, as\n" +
			"dmeventd does. While the pool can still grow, writes that find it full wait for the growth\n" +
			"instead of failing. SIGTERM or Ctrl-C stops it and puts the pool table back.",
		dmOnly:   true,
		flags:    watchFlags,
		validate: validatePoolWatch,
		run:      runPoolWatch,
	},
	{
		name:     "pool destroy",
		synopsis: "pool destroy [--force]",
		summary:  "remove the pool, every device and the state under --root",
		detail:   "Refuses while devices other than the base exist, unless --force is given.",
		flags: func(fs *flag.FlagSet, o *options) {
			fs.BoolVar(&o.force, "force", false, "also remove every device")
		},
		run: runPoolDestroy,
	},
	{
		name:     "create",
		synopsis: "create ID [--parent ID] [--size SIZE] [--activate]",
		summary:  "create device ID as a snapshot of --parent (default: the base device)",
		detail: "Creates device ID as a snapshot of the device named by --parent, or of the base device\n" +
			"when none is given (under overlay2/aufs: an empty layer). --size grows the new device's\n" +
			"filesystem to SIZE (at least the parent's) when it is first activated. --activate also\n" +
			"activates it in the same process and prints its /dev/mapper path (devicemapper).",
		args: []string{"ID"},
		flags: func(fs *flag.FlagSet, o *options) {
			fs.StringVar(&o.parent, "parent", "", "snapshot device `ID` (default: the base device)")
			fs.Var(sizeValue{&o.size}, "size", "`SIZE` of the new device (at least the parent's)")
			fs.BoolVar(&o.activate, "activate", false, "activate the new device and print its path (devicemapper)")
		},
		run: runCreate,
	},
	{
		name:     "mount",
		synopsis: "mount ID [--mount-opt OPT]...",
		summary:  "activate and mount device ID; prints the mount path",
		detail:   "Mounts device ID at <root>/mnt/<ID> (reference counted) and prints the path.",
		args:     []string{"ID"},
		flags:    mountOptFlag,
		run:      runMount,
	},
	{
		name:     "unmount",
		synopsis: "unmount ID",
		summary:  "unmount device ID, remove its mount point and deactivate it",
		detail: "Unmounts device ID lazily (a mount leaked into another mount namespace does not keep\n" +
			"it), removes its mount point and deactivates it; a device something else still holds open\n" +
			"stays active. Mount references live inside one process, so every thinctl unmount unmounts,\n" +
			"however many times thinctl mount ran. Unmounting a device that is not mounted succeeds.",
		args: []string{"ID"},
		run:  runUnmount,
	},
	{
		name:     "fsck",
		synopsis: "fsck ID",
		summary:  "check and repair the filesystem of device ID (e2fsck, xfs_repair) (devicemapper)",
		detail: "Runs e2fsck -p (and -y when needed) or xfs_repair on device ID, which must not be\n" +
			"mounted; an inactive device is activated for the check and deactivated after. Says what\n" +
			"the checker fixed; exits 1 when errors are left.",
		args:   []string{"ID"},
		dmOnly: true,
		run:    runFsck,
	},
	{
		name:     "activate",
		synopsis: "activate ID",
		summary:  "activate device ID without mounting it; prints the device path (devicemapper)",
		detail:   "Activates device ID and prints its /dev/mapper path.",
		args:     []string{"ID"},
		dmOnly:   true,
		run:      runActivate,
	},
	{
		name:     "deactivate",
		synopsis: "deactivate ID",
		summary:  "deactivate device ID (devicemapper)",
		detail:   "Deactivates device ID; refuses while it is mounted or open.",
		args:     []string{"ID"},
		dmOnly:   true,
		run:      runDeactivate,
	},
	{
		name:     "resize",
		synopsis: "resize ID --size SIZE",
		summary:  "grow device ID and its filesystem to SIZE (devicemapper)",
		detail: "Grows device ID to SIZE (no smaller than now) with its filesystem: at once when it is\n" +
			"mounted, else when it is next activated (ext4) or mounted (xfs).",
		args:     []string{"ID"},
		dmOnly:   true,
		flags:    func(fs *flag.FlagSet, o *options) { fs.Var(sizeValue{&o.size}, "size", "new `SIZE` of the device") },
		validate: validateResize,
		run:      runResize,
	},
	{
		name:     "remove",
		synopsis: "remove ID [--no-wait]",
		summary:  "delete device ID and free its space (deferred while it is busy)",
		detail: "Unmounts, deactivates and deletes device ID, discarding its blocks. When something\n" +
			"still holds it, deletion is deferred and finished by 'thinctl gc' or the next command.\n" +
			"The ID is free again once the deletion is recorded; remove then waits until the\n" +
			"device's space is back in the pool's data. With --no-wait it returns at once and\n" +
			"'thinctl pool status' shows the space still being returned until 'thinctl gc', the\n" +
			"next remove or a long-running user of the pool (the snapshotter) finishes it.",
		args: []string{"ID"},
		flags: func(fs *flag.FlagSet, o *options) {
			fs.BoolVar(&o.noWait, "no-wait", false, "return once the deletion is recorded; the space is returned later")
		},
		run: runRemove,
	},
	{
		name:     "list",
		synopsis: "list",
		summary:  "list every device",
		detail:   "Lists every device, including ones whose deletion is deferred, sorted by ID.",
		json:     true,
		run:      runList,
	},
	{
		name:     "info",
		synopsis: "info ID",
		summary:  "show one device",
		detail:   "Shows device ID: parent, size, state and mount path.",
		args:     []string{"ID"},
		json:     true,
		run:      runInfo,
	},
	{
		name:     "check",
		synopsis: "check [--repair]",
		summary:  "compare registry, pool metadata and live devices (exit 1 when problems remain)",
		detail: "Compares the device registry, the pool's metadata and the live devices. Exits 0 when\n" +
			"consistent (or when --repair fixed every problem) and 1 when problems remain.",
		json: true,
		flags: func(fs *flag.FlagSet, o *options) {
			fs.BoolVar(&o.repair, "repair", false, "fix what can be fixed without losing data")
		},
		run: runCheck,
	},
	{
		name:     "gc",
		synopsis: "gc",
		summary:  "finish deferred deletions",
		detail:   "Deletes devices whose removal was deferred because they were busy, when they are free now.",
		run:      runGC,
	},
	{
		name:     "version",
		synopsis: "version",
		summary:  "print thinctl's, Go's and the kernel's versions",
		detail:   "Prints thinctl's version, the Go version it was built with and the running kernel.",
		json:     true,
		noRoot:   true,
		run:      runVersion,
	},
	{
		name:     "export",
		synopsis: "export ID [--parent ID] [--file FILE|-]",
		summary:  "write layer ID's changes against its parent as a tar archive",
		detail: "Writes the difference between layer ID and --parent (default: its own parent; none:\n" +
			"the whole tree) as a tar archive with OCI whiteouts (.wh.<name> for a deleted path,\n" +
			".wh..wh..opq for an opaque directory) to --file, or to stdout, which must not be a\n" +
			"terminal. Owners, modes, times, xattrs, hard links, symlinks and device nodes are kept.\n" +
			"A failed export leaves no partial file.",
		args: []string{"ID"},
		flags: func(fs *flag.FlagSet, o *options) {
			fs.StringVar(&o.parent, "parent", "", "compare against layer `ID` instead of ID's parent")
			fs.StringVar(&o.file, "file", "", "write the archive to `FILE` (default and -: stdout)")
		},
		run: runExport,
	},
	{
		name:     "import",
		synopsis: "import ID [--parent ID] [--file FILE|-]",
		summary:  "create layer ID on --parent and apply a tar archive to it",
		detail: "Creates layer ID on --parent (default: the base device, or nothing under overlay2/aufs)\n" +
			"and applies the tar archive from --file or stdin to it, whiteouts included: the\n" +
			"inverse of export, from any driver to any other. An archive with absolute names or\n" +
			"'..', an entry cut short, a stream without tar's end blocks or an entry larger than\n" +
			"the layer's free space is refused, and the half-imported layer removed; symlinks in\n" +
			"the archive resolve inside the layer.",
		args: []string{"ID"},
		flags: func(fs *flag.FlagSet, o *options) {
			fs.StringVar(&o.parent, "parent", "", "create the layer on layer `ID`")
			fs.StringVar(&o.file, "file", "", "read the archive from `FILE` (default and -: stdin)")
		},
		run: runImport,
	},
	dockerInspectCommand,
	dockerExportCommand,
	dockerAdoptCommand,
	{
		name:     "completion",
		synopsis: "completion bash|zsh|fish",
		summary:  "print the shell completion script for bash, zsh or fish",
		detail: "Prints a completion script generated from this command table: commands, flags,\n" +
			"--driver and --output values, size units and existing device IDs (read with\n" +
			"'thinctl list', so IDs complete only where that runs: as root). The packages install\n" +
			"it; to load it by hand: source <(thinctl completion bash).",
		args:     []string{"SHELL"},
		noRoot:   true,
		validate: validateCompletion,
		// run is set by completion.go's init: the generator reads this table.
	},
	{
		name:     "__man",
		synopsis: "__man --dir DIR [--date YYYY-MM-DD]",
		summary:  "write thinctl(8) and one page per command into DIR (package builds)",
		detail:   "Writes the manual pages, generated from the same table as --help, into DIR.",
		hidden:   true,
		noRoot:   true,
		flags: func(fs *flag.FlagSet, o *options) {
			fs.StringVar(&o.manDir, "dir", "", "write the pages into `DIR`")
			fs.StringVar(&o.manDate, "date", "", "the pages' `DATE` (YYYY-MM-DD; default: none)")
		},
		validate: validateMan,
		// run is set by man.go's init: the generator reads this table.
	},
}

// groups are command words that only prefix subcommands.
var groups = map[string]string{
	"pool":   "Manage the pool itself",
	"docker": "Read or adopt a store Docker's devicemapper driver left behind",
}

// lookupCommand finds the command named by words ("pool", "init").
func lookupCommand(words []string) *command {
	name := strings.Join(words, " ")
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// subcommands lists the commands under a group, in help order.
func subcommands(group string) []*command {
	var out []*command
	for _, c := range commands {
		if strings.HasPrefix(c.name, group+" ") {
			out = append(out, c)
		}
	}
	return out
}
