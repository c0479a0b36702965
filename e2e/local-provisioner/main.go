// Command local-provisioner makes every PersistentVolumeClaim of the local
// test cluster bindable, whatever StorageClass it names: for each pending
// claim it creates a PersistentVolume of the requested size and class,
// pre-bound to the claim, and the cluster's own PV controller binds the two.
// It deletes the volumes it made once their claim is gone. The volumes are
// hostPath volumes nobody mounts: the local cluster's nodes are simulated by
// kwok, so no pod ever reads or writes them.
//
// It is test tooling for `make cluster-up`, not part of the operator.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	corev1 "k8s.io/api/core/v1"
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

// claims provisions a volume for each pending claim.
type claims struct{ client.Client }

func (c claims) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var pvc corev1.PersistentVolumeClaim
	if err := c.Get(ctx, req.NamespacedName, &pvc); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if pvc.Spec.VolumeName != "" || pvc.DeletionTimestamp != nil {
		return ctrl.Result{}, nil
	}
	class := ""
	if pvc.Spec.StorageClassName != nil {
		class = *pvc.Spec.StorageClassName
	}
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{
			Name:        "local-" + string(pvc.UID),
			Annotations: map[string]string{"pv.kubernetes.io/provisioned-by": provisionedBy},
			Labels:      map[string]string{"app.kubernetes.io/managed-by": provisionedBy},
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
			PersistentVolumeSource: corev1.PersistentVolumeSource{
				HostPath: &corev1.HostPathVolumeSource{Path: "/tmp/local-provisioner/" + string(pvc.UID)},
			},
		},
	}
	if err := c.Create(ctx, pv); err != nil && !apierrors.IsAlreadyExists(err) {
		return ctrl.Result{}, fmt.Errorf("create PV for %s/%s: %w", pvc.Namespace, pvc.Name, err)
	}
	return ctrl.Result{}, nil
}

// volumes deletes the volumes this program made once their claim is gone.
type volumes struct{ client.Client }

func (v volumes) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var pv corev1.PersistentVolume
	if err := v.Get(ctx, req.NamespacedName, &pv); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if pv.Annotations["pv.kubernetes.io/provisioned-by"] != provisionedBy || pv.Status.Phase != corev1.VolumeReleased {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{}, client.IgnoreNotFound(v.Delete(ctx, &pv))
}

func main() {
	opts := zap.Options{Development: true}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
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
		err = ctrl.NewControllerManagedBy(mgr).Named("claims").For(&corev1.PersistentVolumeClaim{}).Complete(claims{mgr.GetClient()})
	}
	if err == nil {
		err = ctrl.NewControllerManagedBy(mgr).Named("volumes").For(&corev1.PersistentVolume{}).Complete(volumes{mgr.GetClient()})
	}
	if err == nil {
		err = mgr.Start(ctrl.SetupSignalHandler())
	}
	if err != nil {
		ctrl.Log.Error(err, "local-provisioner failed")
		os.Exit(1)
	}
}
