package deploy

import (
	"io/fs"
	"slices"
	"strings"
	"testing"

	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	"sigs.k8s.io/yaml"

	"github.com/thinctl/thinctl/csi/plugin"
)

// objects decodes every document of every manifest strictly (an unknown
// or misspelt field fails) into its API type, by apiVersion and kind.
func objects(t *testing.T) map[string]any {
	t.Helper()
	types := map[string]func() any{
		"storage.k8s.io/v1/CSIDriver":                     func() any { return &storagev1.CSIDriver{} },
		"storage.k8s.io/v1/StorageClass":                  func() any { return &storagev1.StorageClass{} },
		"apps/v1/DaemonSet":                               func() any { return &appsv1.DaemonSet{} },
		"v1/ServiceAccount":                               func() any { return &corev1.ServiceAccount{} },
		"rbac.authorization.k8s.io/v1/ClusterRole":        func() any { return &rbacv1.ClusterRole{} },
		"rbac.authorization.k8s.io/v1/ClusterRoleBinding": func() any { return &rbacv1.ClusterRoleBinding{} },
		"snapshot.storage.k8s.io/v1/VolumeSnapshotClass":  func() any { return &snapv1.VolumeSnapshotClass{} },
	}
	out := map[string]any{}
	files, err := fs.Glob(Manifests, "*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	for _, f := range files {
		b, err := fs.ReadFile(Manifests, f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range strings.Split(string(b), "\n---\n") {
			var head struct{ APIVersion, Kind string }
			if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
				t.Fatalf("%s #%d: %v", f, i, err)
			}
			key := head.APIVersion + "/" + head.Kind
			mk, ok := types[key]
			if !ok {
				t.Fatalf("%s #%d: %s is not a kind this test knows", f, i, key)
			}
			obj := mk()
			if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
				t.Fatalf("%s #%d (%s): %v", f, i, key, err)
			}
			out[head.Kind] = obj
		}
	}
	if len(out) != len(types) {
		t.Fatalf("decoded %d kinds, want %d", len(out), len(types))
	}
	return out
}

func TestTheManifestsDecodeWithTheKubernetesTypesAndNameTheDriver(t *testing.T) {
	objs := objects(t)
	drv := objs["CSIDriver"].(*storagev1.CSIDriver)
	if drv.Name != plugin.DriverName || drv.Spec.AttachRequired == nil || *drv.Spec.AttachRequired ||
		drv.Spec.StorageCapacity == nil || !*drv.Spec.StorageCapacity {
		t.Errorf("CSIDriver: %+v", drv)
	}
	sc := objs["StorageClass"].(*storagev1.StorageClass)
	if sc.Provisioner != plugin.DriverName || sc.VolumeBindingMode == nil || *sc.VolumeBindingMode != storagev1.VolumeBindingWaitForFirstConsumer {
		t.Errorf("StorageClass: %+v", sc)
	}
	for k := range sc.Parameters {
		if k != plugin.ParamOverProvisioning {
			t.Errorf("StorageClass parameter %q is one the driver refuses", k)
		}
	}
	if vsc := objs["VolumeSnapshotClass"].(*snapv1.VolumeSnapshotClass); vsc.Driver != plugin.DriverName {
		t.Errorf("VolumeSnapshotClass driver %q", vsc.Driver)
	}
}

func TestTheDaemonSetWiresTheDriverAndItsSidecarsToOneSocket(t *testing.T) {
	ds := objects(t)["DaemonSet"].(*appsv1.DaemonSet)
	pod := ds.Spec.Template.Spec
	var names []string
	containers := map[string]corev1.Container{}
	for _, c := range pod.Containers {
		names = append(names, c.Name)
		containers[c.Name] = c
	}
	for _, want := range []string{"thinctl-csi", "node-driver-registrar", "csi-provisioner", "csi-snapshotter"} {
		if !slices.Contains(names, want) {
			t.Fatalf("no %s container in %v", want, names)
		}
	}
	drv := containers["thinctl-csi"]
	if drv.SecurityContext == nil || drv.SecurityContext.Privileged == nil || !*drv.SecurityContext.Privileged {
		t.Error("the driver must be privileged (device-mapper, mounts)")
	}
	endpoint := flagValue(drv.Args, "--endpoint")
	sock := strings.TrimPrefix(endpoint, "unix://")
	if !strings.HasPrefix(sock, flagValue(drv.Args, "--path-root")+"/plugins/") {
		t.Errorf("socket %s is not in the kubelet's plugins directory", sock)
	}
	if flagValue(drv.Args, "--node-id") != "$(NODE_NAME)" || !envFromNodeName(drv, "NODE_NAME") {
		t.Errorf("--node-id is not the node's name: %v", drv.Args)
	}
	// The kubelet's directory is seen at the same path, with the driver's
	// mounts propagated back to the host.
	if m := mountOf(drv, "/var/lib/kubelet"); m == nil || m.MountPropagation == nil || *m.MountPropagation != corev1.MountPropagationBidirectional {
		t.Errorf("the kubelet directory is not mounted Bidirectional: %+v", m)
	}
	socketDir := ""
	for _, v := range pod.Volumes {
		if v.Name == "socket-dir" && v.HostPath != nil {
			socketDir = v.HostPath.Path
		}
	}
	if socketDir+"/csi.sock" != sock {
		t.Errorf("the sidecars' socket directory %s does not hold the driver's socket %s", socketDir, sock)
	}
	for _, name := range []string{"node-driver-registrar", "csi-provisioner", "csi-snapshotter"} {
		c := containers[name]
		if m := mountOf(c, "/csi"); m == nil || m.Name != "socket-dir" || flagValue(c.Args, "--csi-address") != "/csi/csi.sock" {
			t.Errorf("%s does not dial the driver's socket: %v", name, c.Args)
		}
	}
	if r := containers["node-driver-registrar"]; flagValue(r.Args, "--kubelet-registration-path") != sock {
		t.Errorf("the registrar registers %q, not %s", flagValue(r.Args, "--kubelet-registration-path"), sock)
	}
	if p := containers["csi-provisioner"]; flagValue(p.Args, "--node-deployment") != "true" || !envFromNodeName(p, "NODE_NAME") {
		t.Errorf("the provisioner does not run per node: %v", p.Args)
	}
}

func flagValue(args []string, name string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

func envFromNodeName(c corev1.Container, name string) bool {
	for _, e := range c.Env {
		if e.Name == name && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName" {
			return true
		}
	}
	return false
}

func mountOf(c corev1.Container, path string) *corev1.VolumeMount {
	for i := range c.VolumeMounts {
		if c.VolumeMounts[i].MountPath == path {
			return &c.VolumeMounts[i]
		}
	}
	return nil
}

func TestAMisspeltFieldFailsTheDecoding(t *testing.T) {
	bad := "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: x}\nprovisioner: csi.thinctl.io\nvolumeBindingMod: WaitForFirstConsumer\n"
	if err := yaml.UnmarshalStrict([]byte(bad), &storagev1.StorageClass{}); err == nil {
		t.Fatal("a misspelt field decoded")
	}
}
