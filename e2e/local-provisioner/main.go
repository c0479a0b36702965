// Command local-provisioner makes every PersistentVolumeClaim of a local
// test cluster bindable, whatever StorageClass it names: for each pending
// claim it creates a PersistentVolume of the requested size and class,
// pre-bound to the claim, and the cluster's own PV controller binds the two.
// It deletes the volumes it made once their claim is gone.
//
// It has two modes. Without --node-volumes (the kwok cluster of `make
// cluster-up`) the volumes are hostPath volumes nobody mounts: kwok plays
// the kubelets, so no pod ever reads or writes them. With --node-volumes DIR
// (the real-pod cluster of `make real-up`, whose nodes all run on this
// machine) each volume is a directory DIR/<node>/<volume> served as a
// `local` PersistentVolume with node affinity to that node, so the pod and
// its volume meet, and the kubelet applies the pod's fsGroup to it (it does
// not for hostPath). A fresh directory looks like the root of a new
// filesystem, root-owned 0755 with lost+found, as real block storage does;
// it is removed with its volume.
//
// It is test tooling, not part of the operator.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// provisionedBy marks the volumes this program made, so it deletes only those.
const provisionedBy = "local-provisioner.database.example.com"

// selectedNodeAnnotation is where the scheduler records the node it chose
// for a pod whose claim's class binds WaitForFirstConsumer.
const selectedNodeAnnotation = "volume.kubernetes.io/selected-node"

// nodeLabel names the node a local volume lives on.
const nodeLabel = "local-provisioner.database.example.com/node"

// claims provisions a volume for each pending claim. nodeVolumes, when set,
// is the folder of the node-local volumes (see the package comment).
type claims struct {
	client.Client
	nodeVolumes string
}

func (c claims) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var pvc corev1.PersistentVolumeClaim
	if err := c.Get(ctx, req.NamespacedName, &pvc); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if pvc.DeletionTimestamp != nil {
		return ctrl.Result{}, nil
	}
	class := ""
	if pvc.Spec.StorageClassName != nil {
		class = *pvc.Spec.StorageClassName
	}
	sized, err := c.sizedClass(ctx, class)
	if err != nil {
		return ctrl.Result{}, err
	}
	if pvc.Spec.VolumeName != "" {
		if sized && c.nodeVolumes != "" {
			return ctrl.Result{}, c.expand(ctx, &pvc)
		}
		return ctrl.Result{}, nil
	}
	source := corev1.PersistentVolumeSource{
		HostPath: &corev1.HostPathVolumeSource{Path: "/tmp/local-provisioner/" + string(pvc.UID)},
	}
	var affinity *corev1.VolumeNodeAffinity
	name := "local-" + string(pvc.UID)
	node := ""
	if c.nodeVolumes != "" {
		var err error
		if node, err = c.nodeFor(ctx, &pvc); err != nil || node == "" {
			return ctrl.Result{}, err
		}
		dir := filepath.Join(c.nodeVolumes, node, name)
		if err := freshFilesystemRoot(dir); err != nil {
			return ctrl.Result{}, fmt.Errorf("volume folder for %s/%s: %w", pvc.Namespace, pvc.Name, err)
		}
		if sized {
			size := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
			if err := mountImage(ctx, dir, size.Value()); err != nil {
				return ctrl.Result{}, fmt.Errorf("sized volume for %s/%s: %w", pvc.Namespace, pvc.Name, err)
			}
		}
		source = corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: dir}}
		affinity = &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
			MatchExpressions: []corev1.NodeSelectorRequirement{{
				Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{node},
			}},
		}}}}
	}
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{"pv.kubernetes.io/provisioned-by": provisionedBy},
			Labels:      map[string]string{"app.kubernetes.io/managed-by": provisionedBy, nodeLabel: node},
		},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: pvc.Spec.Resources.Requests[corev1.ResourceStorage]},
			AccessModes:                   pvc.Spec.AccessModes,
			VolumeMode:                    pvc.Spec.VolumeMode,
			StorageClassName:              class,
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			ClaimRef: &corev1.ObjectReference{
				Kind: "PersistentVolumeClaim", APIVersion: "v1",
				Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID,
			},
			PersistentVolumeSource: source,
			NodeAffinity:           affinity,
		},
	}
	if err := c.Create(ctx, pv); err != nil && !apierrors.IsAlreadyExists(err) {
		return ctrl.Result{}, fmt.Errorf("create PV for %s/%s: %w", pvc.Namespace, pvc.Name, err)
	}
	return ctrl.Result{}, nil
}

// nodeFor is the node a claim's volume must live on: the one the scheduler
// selected (WaitForFirstConsumer classes), else, for classes that bind at
// once or do not exist (or no class, when there is no default class), the
// Ready node holding the fewest of our volumes.
// An empty answer means wait: the scheduler has not chosen yet.
func (c claims) nodeFor(ctx context.Context, pvc *corev1.PersistentVolumeClaim) (string, error) {
	if node := pvc.Annotations[selectedNodeAnnotation]; node != "" {
		return node, nil
	}
	name := ""
	if pvc.Spec.StorageClassName != nil {
		name = *pvc.Spec.StorageClassName
	}
	if name != "" {
		var class storagev1.StorageClass
		err := c.Get(ctx, client.ObjectKey{Name: name}, &class)
		if err == nil && class.VolumeBindingMode != nil && *class.VolumeBindingMode == storagev1.VolumeBindingWaitForFirstConsumer {
			return "", nil
		}
		if err != nil && !apierrors.IsNotFound(err) {
			return "", fmt.Errorf("storage class %s: %w", name, err)
		}
	}
	var nodes corev1.NodeList
	if err := c.List(ctx, &nodes); err != nil {
		return "", fmt.Errorf("list nodes: %w", err)
	}
	var pvs corev1.PersistentVolumeList
	if err := c.List(ctx, &pvs, client.HasLabels{nodeLabel}); err != nil {
		return "", fmt.Errorf("list volumes: %w", err)
	}
	count := map[string]int{}
	for _, pv := range pvs.Items {
		count[pv.Labels[nodeLabel]]++
	}
	var ready []string
	for _, n := range nodes.Items {
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				ready = append(ready, n.Name)
			}
		}
	}
	if len(ready) == 0 {
		return "", errors.New("no Ready node for a volume")
	}
	sort.Slice(ready, func(i, j int) bool {
		if count[ready[i]] != count[ready[j]] {
			return count[ready[i]] < count[ready[j]]
		}
		return ready[i] < ready[j]
	})
	return ready[0], nil
}

// freshFilesystemRoot makes dir look like a newly formatted filesystem's
// root: owned by root, mode 0755, holding only lost+found (0700). Images
// that refuse a non-empty data folder, or that run as a non-root user and
// rely on fsGroup, meet here what they meet on real block storage.
func freshFilesystemRoot(dir string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil // made by an earlier attempt
		}
		return err
	}
	if err := os.Chmod(dir, 0o755); err != nil { // whatever the umask
		return err
	}
	if err := os.Chown(dir, 0, 0); err != nil {
		return err
	}
	return os.Mkdir(filepath.Join(dir, "lost+found"), 0o700)
}

// sizedParameter in a StorageClass's parameters ("true") makes its
// volumes sized: each is an XFS filesystem of exactly the claimed size in
// an image file, loop-mounted on the volume's folder, so that a volume
// fills up as real block storage does; growing the claim grows it online
// (the class then says allowVolumeExpansion). XFS, not ext4: growing a
// mounted ext4 needs CAP_SYS_RESOURCE, which this machine's root lacks;
// xfs_growfs needs CAP_SYS_ADMIN only.
const sizedParameter = "sized"

func (c claims) sizedClass(ctx context.Context, name string) (bool, error) {
	if name == "" {
		return false, nil
	}
	var class storagev1.StorageClass
	if err := c.Get(ctx, client.ObjectKey{Name: name}, &class); err != nil {
		return false, client.IgnoreNotFound(err)
	}
	return class.Parameters[sizedParameter] == "true", nil
}

// imageOf is the image file of the sized volume in folder dir.
func imageOf(dir string) string { return dir + ".img" }

// mountImage makes dir a sized volume of size bytes (see sizedParameter),
// or leaves it if it already is one.
func mountImage(ctx context.Context, dir string, size int64) error {
	if mounted(ctx, dir) {
		return nil
	}
	img := imageOf(dir)
	if _, err := os.Stat(img); errors.Is(err, os.ErrNotExist) {
		if err := run(ctx, "truncate", "-s", fmt.Sprint(size), img+".new"); err != nil {
			return err
		}
		if err := run(ctx, "mkfs.xfs", "-q", "-f", img+".new"); err != nil {
			return err
		}
		if err := os.Rename(img+".new", img); err != nil {
			return err
		}
	}
	return run(ctx, "mount", "-o", "loop", img, dir)
}

// unmountImage undoes mountImage (nothing for a plain folder).
func unmountImage(ctx context.Context, dir string) error {
	if mounted(ctx, dir) {
		if err := run(ctx, "umount", dir); err != nil {
			return err
		}
	}
	if err := os.Remove(imageOf(dir)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func mounted(ctx context.Context, dir string) bool {
	return exec.CommandContext(ctx, "mountpoint", "-q", dir).Run() == nil
}

func run(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// expand grows a bound sized volume to its claim's request, online, as a
// CSI driver's resizer and node plugin would together: the image file,
// the loop device and the filesystem, then the PersistentVolume's capacity
// and the claim's status.
func (c claims) expand(ctx context.Context, pvc *corev1.PersistentVolumeClaim) error {
	want := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	var pv corev1.PersistentVolume
	if err := c.Get(ctx, client.ObjectKey{Name: pvc.Spec.VolumeName}, &pv); err != nil {
		return client.IgnoreNotFound(err)
	}
	if pv.Annotations["pv.kubernetes.io/provisioned-by"] != provisionedBy || pv.Spec.Local == nil {
		return nil
	}
	have := pv.Spec.Capacity[corev1.ResourceStorage]
	if want.Cmp(have) > 0 {
		dir := pv.Spec.Local.Path
		out, err := exec.CommandContext(ctx, "findmnt", "-n", "-o", "SOURCE", "--mountpoint", dir).Output()
		if err != nil {
			return fmt.Errorf("the loop device of %s: %w", pv.Name, err)
		}
		dev := strings.TrimSpace(string(out))
		if err := run(ctx, "truncate", "-s", fmt.Sprint(want.Value()), imageOf(dir)); err != nil {
			return err
		}
		if err := run(ctx, "losetup", "-c", dev); err != nil {
			return err
		}
		if err := run(ctx, "xfs_growfs", dir); err != nil {
			return err
		}
		pv.Spec.Capacity = corev1.ResourceList{corev1.ResourceStorage: want}
		if err := c.Update(ctx, &pv); err != nil {
			return fmt.Errorf("capacity of %s: %w", pv.Name, err)
		}
	}
	if got := pvc.Status.Capacity[corev1.ResourceStorage]; got.Cmp(want) >= 0 {
		return nil
	}
	pvc.Status.Capacity = corev1.ResourceList{corev1.ResourceStorage: want}
	pvc.Status.AllocatedResources = corev1.ResourceList{corev1.ResourceStorage: want}
	pvc.Status.AllocatedResourceStatuses = nil
	pvc.Status.Conditions = nil
	if err := c.Status().Update(ctx, pvc); err != nil {
		return fmt.Errorf("status of %s/%s: %w", pvc.Namespace, pvc.Name, err)
	}
	return nil
}

// volumes deletes the volumes this program made once their claim is gone
// (and, for node-local volumes, their folder).
type volumes struct {
	client.Client
	nodeVolumes string
}

func (v volumes) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var pv corev1.PersistentVolume
	if err := v.Get(ctx, req.NamespacedName, &pv); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if pv.Annotations["pv.kubernetes.io/provisioned-by"] != provisionedBy || pv.Status.Phase != corev1.VolumeReleased {
		return ctrl.Result{}, nil
	}
	if local := pv.Spec.Local; local != nil && v.nodeVolumes != "" && strings.HasPrefix(local.Path, v.nodeVolumes+string(filepath.Separator)) {
		if err := unmountImage(ctx, local.Path); err != nil {
			return ctrl.Result{}, fmt.Errorf("unmount %s: %w", pv.Name, err)
		}
		if err := os.RemoveAll(local.Path); err != nil {
			return ctrl.Result{}, fmt.Errorf("remove the folder of %s: %w", pv.Name, err)
		}
	}
	return ctrl.Result{}, client.IgnoreNotFound(v.Delete(ctx, &pv))
}

func main() {
	nodeVolumes := flag.String("node-volumes", "", "Serve node-local volumes from this folder (one subfolder per node) instead of hostPath volumes nobody mounts.")
	opts := zap.Options{Development: true}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	if *nodeVolumes != "" {
		abs, err := filepath.Abs(*nodeVolumes)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		*nodeVolumes = abs
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err == nil {
		err = ctrl.NewControllerManagedBy(mgr).Named("claims").For(&corev1.PersistentVolumeClaim{}).Complete(claims{mgr.GetClient(), *nodeVolumes})
	}
	if err == nil {
		err = ctrl.NewControllerManagedBy(mgr).Named("volumes").For(&corev1.PersistentVolume{}).Complete(volumes{mgr.GetClient(), *nodeVolumes})
	}
	if err == nil {
		err = mgr.Start(ctrl.SetupSignalHandler())
	}
	if err != nil {
		ctrl.Log.Error(err, "local-provisioner failed")
		os.Exit(1)
	}
}
