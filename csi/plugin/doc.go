// Package plugin serves the Container Storage Interface (CSI) Identity,
// Controller and Node services over one thinctl thin pool: every volume and
// every snapshot is one thin device of the pool, named after a hash of the
// name the container orchestrator gave it, with what the request asked for
// kept in the device's labels (so a restarted plugin finds the same answer
// without any file of its own). docs/csi.md describes the deployment.
//
// Every field of a request is treated as hostile: names and ids are checked
// before they reach the pool, sizes are bounded, parameters are checked
// against the few this plugin knows, and staging and target paths must lie
// beneath one directory (the kubelet's) and are resolved without following
// any symbolic link.
package plugin
