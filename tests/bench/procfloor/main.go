// Command thinctl-procfloor is the process floor of measurement 6: the
// least one process per action can cost. It does exactly the kernel work of
// one `thinctl create ID --parent P --activate` (or one `thinctl remove
// ID`) with the dm package and nothing else: no registry, no root, no flag
// package, no driver layer. thinctl-bench runs it beside the thinctl
// process, on the same pool, and divides.
//
//	thinctl-procfloor create POOL MAJ:MIN ORIGIN_ID NEW_ID NAME SECTORS
//	    message POOL "create_snap NEW_ID ORIGIN_ID", create NAME, load
//	    "0 SECTORS thin MAJ:MIN NEW_ID", resume; prints /dev/mapper/NAME
//	thinctl-procfloor remove POOL NAME ID
//	    remove NAME, message POOL "delete ID"
//
// It is its own small program (it links only dm and what dm needs) so that
// its start-up is what any Go program pays, and stays out of thinctl's
// binary and the bench's.
package main

import (
	"context"
	"os"
	"strconv"

	"github.com/thinctl/thinctl/dm"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		os.Stderr.WriteString("thinctl-procfloor: " + err.Error() + "\n")
		os.Exit(1)
	}
}

// usageError is a command line the program does not take.
type usageError string

func (e usageError) Error() string { return string(e) }

const usage = usageError("usage: thinctl-procfloor create POOL MAJ:MIN ORIGIN_ID NEW_ID NAME SECTORS | remove POOL NAME ID")

func run(args []string) error {
	if len(args) == 0 {
		return usage
	}
	switch {
	case args[0] == "create" && len(args) == 7:
		return create(args[1], args[2], args[3], args[4], args[5], args[6])
	case args[0] == "remove" && len(args) == 4:
		return remove(args[1], args[2], args[3])
	}
	return usage
}

// thinID reads a thin device id (24 bits, as the pool takes them).
func thinID(s string) (uint32, error) {
	v, err := strconv.ParseUint(s, 10, 24)
	return uint32(v), err
}

func create(pool, poolDev, origin, id, name, sectors string) error {
	o, err := thinID(origin)
	if err != nil {
		return err
	}
	n, err := thinID(id)
	if err != nil {
		return err
	}
	size, err := strconv.ParseUint(sectors, 10, 64)
	if err != nil {
		return err
	}
	c, err := dm.Default()
	if err != nil {
		return err
	}
	if _, err := c.Message(pool, 0, dm.ThinCreateSnap(n, o)); err != nil {
		return err
	}
	if _, err := c.Create(name, dm.CreateOptions{}); err != nil {
		return err
	}
	t := dm.Target{Start: 0, Length: size, Type: "thin", Params: poolDev + " " + id}
	if err := c.LoadTable(name, []dm.Target{t}, dm.LoadOptions{}); err != nil {
		return err
	}
	// As thinpool resumes a thin device: with udev, the dm rules skip
	// their disk rules.
	if err := c.ResumeWith(context.Background(), name, dm.ResumeOptions{NoDiskRules: true}); err != nil {
		return err
	}
	os.Stdout.WriteString("/dev/mapper/" + name + "\n")
	return nil
}

func remove(pool, name, id string) error {
	n, err := thinID(id)
	if err != nil {
		return err
	}
	c, err := dm.Default()
	if err != nil {
		return err
	}
	if err := c.Remove(context.Background(), name, dm.RemoveOptions{}); err != nil {
		return err
	}
	_, err = c.Message(pool, 0, dm.ThinDelete(n))
	return err
}
