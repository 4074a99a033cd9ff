package devicemapper_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/thinctl/thinctl/dm"
	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/driver/devicemapper"
	"github.com/thinctl/thinctl/thinpool"
)

// Init through the driver package with Docker's dm.* options, then use the
// pool as a driver. Needs root and a kernel with dm-thin-pool, so it has no
// Output line; TestTheExamplesRun runs it in the VM.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	root, _ := os.MkdirTemp("", "thinctl-dm-example-")
	defer os.RemoveAll(root)

	d, ch, err := driver.Select(ctx, root, devicemapper.Name, driver.Options{StorageOpt: map[string]string{
		"dm.loopdatasize": "1G", "dm.loopmetadatasize": "64M", "dm.basesize": "256M",
	}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ch.Name, "in", ch.Home)
	if err := d.Create(ctx, "web", "", &driver.CreateOpts{StorageOpt: map[string]string{"size": "512M"}}); err != nil {
		log.Fatal(err)
	}
	dev, err := d.(driver.Activator).Activate(ctx, "web")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("web is", filepath.Base(filepath.Dir(dev)), "device")
	if err := d.(driver.Destroyer).Destroy(ctx, true); err != nil {
		log.Fatal(err)
	}
}

// New wraps a pool opened with a device-mapper client of the program's own
// (its own logger and udev wait, touching no other user of dm.Default), for
// a program that wants the engine's calls next to the driver's.
func ExampleNew() {
	ctx := context.Background()
	client, err := dm.Open(dm.Options{
		Logger:      func(format string, args ...any) { log.Printf("dm: "+format, args...) },
		UdevTimeout: 10 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	pool, err := thinpool.Open(ctx, "/var/lib/thinctl", thinpool.OpenOptions{DM: client})
	if err != nil {
		log.Fatal(err)
	}
	d := devicemapper.New(pool) // Close and Cleanup close the pool; the client stays the program's
	defer d.Close()
	layers, err := d.List()
	if err != nil {
		log.Fatal(err)
	}
	for _, l := range layers {
		name, _ := pool.DeviceName(l.ID)
		fmt.Println(l.ID, name)
	}
}
