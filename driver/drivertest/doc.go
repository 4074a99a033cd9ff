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
// The suite needs root (it sets owners and device nodes).
package drivertest
