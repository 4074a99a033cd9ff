// Package drivertest is the conformance suite every thinctl storage backend
// runs, in the spirit of Docker's graphtest: empty layers, exact modes and
// owners surviving a remount, snapshots, a deep layer chain, diff and apply
// round trips, change lists, size quotas, refusal to remove a parent, and
// Get/Put reference counting.
//
// A backend's test calls Run with a constructor that opens a fresh driver
// in a temporary home and registers its cleanup:
//
//	func TestConformance(t *testing.T) {
//		drivertest.Run(t, func(t *testing.T) driver.Driver {
//			d, err := overlay2.New(t.TempDir(), driver.Options{})
//			if err != nil {
//				t.Skip(err)
//			}
//			t.Cleanup(func() { d.Cleanup() })
//			return d
//		})
//	}
//
// RunHostile is the second suite: it imports every archive of
// HostileArchives (layer roots replaced by symlinks, symlinked parents
// leading out, hard links, whiteouts and opaque markers through symlinks,
// late directory times, 2^60-byte and sparse entries, PAX and GNU
// oddities, every file type) into fresh layers as thinctl import does, and
// checks after each that a sentinel directory outside (MakeSentinel,
// Snapshot) is unchanged in every byte, mode, owner and time, that the
// layer root is still a real directory, and that a refused import leaves
// no layer. A backend runs it the same way:
//
//	func TestHostile(t *testing.T) {
//		drivertest.RunHostile(t, newDriver)
//	}
//
// Both suites need root (they set owners and make device nodes).
package drivertest
