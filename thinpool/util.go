package thinpool

import (
	"fmt"
	"strconv"
)

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

func fmtSscan(s string, v *uint64) (int, error) { return fmt.Sscan(s, v) }
