package driver_test

import (
	"fmt"

	"github.com/thinctl/thinctl/driver"
)

// ParseWhiteout classifies names in a layer stream.
func ExampleParseWhiteout() {
	for _, name := range []string{"etc/passwd", "etc/.wh.shadow", "var/cache/.wh..wh..opq"} {
		kind, target, _ := driver.ParseWhiteout(name)
		fmt.Printf("%-14s whiteout=%v opaque=%v target=%q\n", name, kind == driver.Whiteout, kind == driver.OpaqueMarker, target)
	}
	// Output:
	// etc/passwd     whiteout=false opaque=false target=""
	// etc/.wh.shadow whiteout=true opaque=false target="etc/shadow"
	// var/cache/.wh..wh..opq whiteout=false opaque=true target="var/cache"
}
