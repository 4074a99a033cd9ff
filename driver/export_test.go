package driver

// ForceUserspaceResolve lets external tests take the path-resolution
// fallback that kernels without openat2 use.
var ForceUserspaceResolve = &forceUserspaceResolve

// LimitFreeSpace caps the free space ApplyTar believes the layer has.
var LimitFreeSpace = &testFreeLimit
