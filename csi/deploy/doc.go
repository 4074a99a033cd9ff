// Package deploy holds the Kubernetes manifests of thinctl-csi (the
// CSIDriver, the DaemonSet with the node plugin and its sidecars, their
// RBAC, a StorageClass and a VolumeSnapshotClass) as Manifests; its test
// decodes every document strictly with the Kubernetes API types, so that
// they cannot drift from the API or from the driver. docs/csi.md describes
// them.
package deploy

import "embed"

// Manifests are the YAML files, one or more documents each.
//
//go:embed *.yaml
var Manifests embed.FS
