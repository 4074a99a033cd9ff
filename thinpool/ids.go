package thinpool

import "github.com/thinctl/thinctl/thinpool/internal/store"

// ValidateID checks a device id: 1..128 of [A-Za-z0-9_.-], not starting
// with '.' or '-'. Ids become file names in the registry and mount point
// names, so the rules keep them safe as both.
func ValidateID(id string) error { return store.ValidateID(id) }
