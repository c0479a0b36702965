package fuzz_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/internal/testenv"
	"github.com/example/database-operator/reconcile"
	"github.com/example/database-operator/render"
)

// restrictedNamespace is where every spec is tried: it enforces the
// restricted Pod Security profile, so a pod template that breaks it is
// refused by the API server's own PodSecurity admission.
const restrictedNamespace = "fuzz-restricted"

// maxSpecBytes keeps inputs under the API server's request limits: a larger
// body is refused for its size, which says nothing about the spec.
const maxSpecBytes = 32 << 10

// kubeconfigEnv names the kubeconfig of the control plane TestMain
// started. `go test -fuzz` runs this binary as a coordinator and as worker
// processes that inherit its environment: the workers share the
// coordinator's control plane instead of each starting one (a worker that
// crashes on an input would leave its own behind).
const kubeconfigEnv = "DATABASE_OPERATOR_FUZZ_KUBECONFIG"

// TestMain starts one kube-apiserver with the Database CRD and the
// Prometheus Operator's two CRDs (so the ServiceMonitor and PrometheusRule
// are checked too), and the restricted namespace, unless a parent process
// already did.
func TestMain(m *testing.M) {
	stop := func() {}
	if os.Getenv(kubeconfigEnv) == "" {
		var err error
		if stop, err = startControlPlane(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	code := m.Run()
	stop()
	os.Exit(code)
}

func startControlPlane() (stop func(), err error) {
	e, stopEnv, err := testenv.Options{CRDDirectories: []string{"config/crd", "reconcile/testdata"}}.StartShared()
	if err != nil {
		return nil, err
	}
	fail := func(err error) (func(), error) { stopEnv(); return nil, err }
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: restrictedNamespace,
		Labels: map[string]string{
			"pod-security.kubernetes.io/enforce":         "restricted",
			"pod-security.kubernetes.io/enforce-version": "latest",
		},
	}}); err != nil {
		return fail(fmt.Errorf("create namespace %s: %w", restrictedNamespace, err))
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: e.Config.Host, CertificateAuthorityData: e.Config.CAData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: e.Config.CertData, ClientKeyData: e.Config.KeyData}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin"}
	kc.CurrentContext = "envtest"
	dir, err := os.MkdirTemp("", "fuzz-kubeconfig-")
	if err != nil {
		return fail(err)
	}
	path := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return fail(err)
	}
	if err := os.Setenv(kubeconfigEnv, path); err != nil {
		return fail(err)
	}
	return func() { stopEnv(); _ = os.RemoveAll(dir) }, nil
}

var (
	clientOnce sync.Once
	apiClient  client.Client
	clientErr  error
)

// apiServer is a client of the control plane TestMain (here or in the
// coordinator) started.
func apiServer(t *testing.T) client.Client {
	t.Helper()
	clientOnce.Do(func() {
		cfg, err := clientcmd.BuildConfigFromFlags("", os.Getenv(kubeconfigEnv))
		if err != nil {
			clientErr = fmt.Errorf("kubeconfig from $%s: %w", kubeconfigEnv, err)
			return
		}
		apiClient, clientErr = client.New(cfg, client.Options{Scheme: testenv.Scheme()})
	})
	if clientErr != nil {
		t.Fatalf("control plane: %v", clientErr)
	}
	return apiClient
}

// FuzzDatabaseSpec feeds a Database name and a spec (JSON) to the real API
// server and to render. Every spec: render does not panic. Every spec the
// CRD admits: render succeeds, each child passes a server-side dry-run
// apply, and each pod the children would create passes a dry-run create
// under the restricted Pod Security profile.
func FuzzDatabaseSpec(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s.name, s.spec)
	}
	f.Fuzz(func(t *testing.T, name string, spec []byte) {
		checkSpec(t, name, spec)
	})
}

func checkSpec(t *testing.T, name string, spec []byte) {
	if len(spec) > maxSpecBytes || len(name) > 1024 {
		return
	}
	var fields map[string]any
	if err := json.Unmarshal(spec, &fields); err != nil || fields == nil {
		return
	}
	c := apiServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": databasev1.GroupVersion.String(),
		"kind":       "Database",
		"metadata":   map[string]any{"name": name, "namespace": restrictedNamespace},
		"spec":       fields,
	}}
	err := c.Create(ctx, u, client.DryRunAll)
	if err != nil {
		if !apierrors.IsInvalid(err) && !apierrors.IsBadRequest(err) {
			t.Fatalf("dry-run create of the Database: not a validation answer: %v", err)
		}
		// Refused: render must still not panic on it (the reconciler never
		// sees such a spec, but render is a library).
		db := &databasev1.Database{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: restrictedNamespace}}
		if json.Unmarshal(spec, &db.Spec) == nil {
			_, _ = render.Render(db, render.DefaultOptions())
		}
		t.Logf("refused: %v", err)
		return
	}

	// Admitted: render what the API server stored (its defaults applied),
	// as the reconciler would read it.
	db := &databasev1.Database{}
	if err := k8sruntime.DefaultUnstructuredConverter.FromUnstructured(u.Object, db); err != nil {
		t.Fatalf("admitted Database does not decode: %v", err)
	}
	db.UID = types.UID("00000000-0000-0000-0000-000000000001")
	children, err := render.Render(db, render.DefaultOptions())
	if err != nil {
		t.Fatalf("the CRD admits a spec render refuses: %v\nname %q\nspec %s", err, name, spec)
	}
	list := childrenOf(t, children)
	for _, ch := range list {
		if err := c.Apply(ctx, ch.ac, client.FieldOwner(reconcile.FieldManager), client.ForceOwnership, client.DryRunAll); err != nil {
			t.Fatalf("the API server refuses rendered %s: %v\nname %q\nspec %s", ch.what, err, name, spec)
		}
	}
	pods := podsOf(t, children)
	checkNoInterpolation(t, fields, children.ConfigMap, pods, spec)
	for _, p := range pods {
		if err := c.Create(ctx, p.pod, client.DryRunAll); err != nil {
			t.Fatalf("the pod of %s is refused in a namespace enforcing restricted Pod Security: %v\nname %q\nspec %s", p.what, err, name, spec)
		}
	}
	t.Logf("admitted; the API server accepts its %d children and %d pods", len(list), len(pods))
}

// child is one rendered object, named for messages.
type child struct {
	what string
	ac   k8sruntime.ApplyConfiguration
}

// childrenOf lists every non-nil field of Children by reflection, so a new
// kind of child is checked without touching this test.
func childrenOf(t *testing.T, c *render.Children) []child {
	t.Helper()
	var out []child
	v := reflect.ValueOf(c).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		if f.IsNil() {
			continue
		}
		what := v.Type().Field(i).Name
		switch obj := f.Interface().(type) {
		case *unstructured.Unstructured:
			out = append(out, child{what, client.ApplyConfigurationFromUnstructured(obj)})
		case k8sruntime.ApplyConfiguration:
			out = append(out, child{what, obj})
		default:
			t.Fatalf("render.Children.%s is a %T, neither an apply configuration nor unstructured", what, obj)
		}
	}
	return out
}

// pod is a Pod a rendered child would have created.
type pod struct {
	what string
	pod  *corev1.Pod
}

// podsOf builds the Pods of the StatefulSet and of each CronJob, as their
// controllers would: the StatefulSet adds one volume per claim template.
func podsOf(t *testing.T, c *render.Children) []pod {
	t.Helper()
	var out []pod
	add := func(what string, tmpl corev1.PodTemplateSpec) {
		p := &corev1.Pod{ObjectMeta: tmpl.ObjectMeta, Spec: tmpl.Spec}
		p.Name = strings.ToLower(what) + "-pod"
		p.Namespace = restrictedNamespace
		out = append(out, pod{what, p})
	}
	if c.StatefulSet != nil {
		var sts appsv1.StatefulSet
		convert(t, c.StatefulSet, &sts)
		tmpl := sts.Spec.Template
		for _, claim := range sts.Spec.VolumeClaimTemplates {
			tmpl.Spec.Volumes = append(tmpl.Spec.Volumes, corev1.Volume{Name: claim.Name, VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim.Name + "-" + sts.Name + "-0"},
			}})
		}
		add("StatefulSet", tmpl)
	}
	for what, cj := range map[string]any{"BackupCronJob": c.BackupCronJob, "RestoreCheckCronJob": c.RestoreCheckCronJob} {
		if reflect.ValueOf(cj).IsNil() {
			continue
		}
		var job batchv1.CronJob
		convert(t, cj, &job)
		add(what, job.Spec.JobTemplate.Spec.Template)
	}
	return out
}

// convert turns an apply configuration into the typed object it describes.
func convert(t *testing.T, ac, into any) {
	t.Helper()
	b, err := json.Marshal(ac)
	if err != nil {
		t.Fatalf("marshal %T: %v", ac, err)
	}
	if err := json.Unmarshal(b, into); err != nil {
		t.Fatalf("unmarshal into %T: %v", into, err)
	}
}

// seed is one starting input.
type seed struct {
	name string
	spec []byte
}

// seeds are the samples users copy (config/samples), and hand-written
// specs that switch on every part of the API with values at their edges.
func seeds(t testing.TB) []seed {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	var out []seed
	files, err := filepath.Glob(filepath.Join(root, "config", "samples", "*", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	top, _ := filepath.Glob(filepath.Join(root, "config", "samples", "*.yaml"))
	for _, file := range append(top, files...) {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var obj struct {
			Metadata struct{ Name string } `json:"metadata"`
			Spec     json.RawMessage       `json:"spec"`
		}
		if err := yaml.Unmarshal(b, &obj); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		out = append(out, seed{obj.Metadata.Name, obj.Spec})
	}
	for name, spec := range handSeeds {
		out = append(out, seed{name, []byte(spec)})
	}
	if len(out) < 8 {
		t.Fatalf("only %d seeds: the samples moved?", len(out))
	}
	return out
}

// handSeeds reach what the samples do not: every optional part at once,
// the longest names, and hostile strings in free-form fields.
var handSeeds = map[string]string{
	"everything-pg": `{"type":"postgresql","version":"17","replicas":3,"storage":{"size":"1Gi","class":"fast"},
		"replication":{"mode":"sync","failoverDelay":"10s"},"environment":"production","deletionProtection":true,
		"backup":{"enabled":true,"schedule":"*/5 * * * *","retention":"7d",
			"s3":{"endpoint":"https://s3.example.com:9000","bucket":"bkt","path":"a/b","region":"eu","credentialsSecret":"s3","caSecret":"ca"},
			"archiveTimeout":"60s","restoreCheck":{"schedule":"0 6 * * *","query":"SELECT count(*) FROM t"}},
		"monitoring":{"enabled":true,"metrics":true,"logging":true},
		"autoscaling":{"minReplicas":2,"maxReplicas":5,"targetCPUUtilizationPercentage":70},
		"networkPolicy":{"enabled":true,"allowFrom":[{"podSelector":{"matchLabels":{"app":"shop"}}}],"monitoringNamespace":"monitoring"},
		"tls":{"enabled":true,"secretName":"my-tls"},
		"resources":{"requests":{"cpu":"100m","memory":"256Mi"},"limits":{"memory":"1Gi"}}}`,
	"everything-mysql-at-the-name-limit-abcdefghij": `{"type":"mysql","version":"8.4","replicas":2,"storage":{"size":"1Gi"},
		"replication":{"mode":"async"},"environment":"staging",
		"backup":{"enabled":true,"s3":{"endpoint":"http://10.0.0.1:9000","bucket":"bkt","credentialsSecret":"s3"}},
		"monitoring":{"enabled":true,"metrics":true},"tls":{"enabled":true}}`,
	"restore-check-at-its-name-limit-abcdef": `{"type":"postgresql","version":"16","storage":{"size":"1Gi"},
		"backup":{"enabled":true,"s3":{"region":"eu","bucket":"bkt","credentialsSecret":"s3"},"restoreCheck":{"schedule":"@daily"}}}`,
	"restore": `{"type":"postgresql","version":"15","storage":{"size":"1Gi"},
		"restore":{"fromDatabase":"orders","pointInTime":{"targetTime":"2026-12-02T15:14:00.5Z","s3":{"region":"eu-west-1","bucket":"bkt","credentialsSecret":"s3"}}}}`,
	// One hostile value per seed, so the fuzzer starts from each field's
	// own refusal or acceptance (an admitted one must render safely).
	"hostile-class":    `{"type":"postgresql","version":"15","storage":{"size":"1Gi","class":"x'$(touch /tmp/p)\\n"}}`,
	"hostile-schedule": `{"type":"mysql","version":"8.4","storage":{"size":"1Gi"},"backup":{"enabled":true,"schedule":"0 2 * * * $(id)"}}`,
	"hostile-s3": `{"type":"postgresql","version":"15","storage":{"size":"1Gi"},
		"backup":{"enabled":true,"s3":{"bucket":"bkt","path":"a/$(id)/\\\\;'\\"` + "`id`" + `","endpoint":"http://x$(id):1","credentialsSecret":"s3"}}}`,
	"hostile-query": `{"type":"postgresql","version":"15","storage":{"size":"1Gi"},
		"backup":{"enabled":true,"s3":{"bucket":"bkt","region":"eu","credentialsSecret":"s3"},
			"restoreCheck":{"schedule":"0 6 * * *","query":"SELECT 1'; \\! touch /tmp/p\\n$(id)` + "`id`" + `"}}}`,
	"hostile-restore": `{"type":"mysql","version":"8.4","storage":{"size":"1Gi"},"restore":{"fromDatabase":"a'$(id)","backup":"x'\\n$(id).sql.gz"}}`,
	"hostile-peers": `{"type":"postgresql","version":"15","storage":{"size":"1Gi"},
		"networkPolicy":{"enabled":true,"allowFrom":[{"podSelector":{"matchLabels":{"app":"$(id)"}}}],"monitoringNamespace":"m$(id)"}}`,
	"hostile-tls":   `{"type":"postgresql","version":"15","storage":{"size":"1Gi"},"tls":{"enabled":true,"secretName":"a'b$(id)"}}`,
	"hostile-image": `{"type":"postgresql","version":"15","image":"x'$(id)\\n","storage":{"size":"1Gi"}}`,
	"hostile-nul":   `{"type":"postgresql","version":"15\\u0000","storage":{"size":"1Gi","class":"a\\u0000b"}}`,
}

// shellOrConfigMeta are the characters that change the meaning of shell,
// SQL or configuration text: a free-form value that holds one must reach
// a script only as data (an environment variable), never as text.
const shellOrConfigMeta = "$`'\"\\\n;"

// checkNoInterpolation fails when a string of the spec that holds a
// metacharacter appears inside a script or a configuration file: in the
// ConfigMap's data, or in the command or arguments of a container that
// runs a shell. Environment variables are where such values belong.
func checkNoInterpolation(t *testing.T, fields map[string]any, cm *corev1ac.ConfigMapApplyConfiguration, pods []pod, spec []byte) {
	t.Helper()
	var hostile []string
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			if len(v) >= 3 && strings.ContainsAny(v, shellOrConfigMeta) {
				hostile = append(hostile, v)
			}
		case map[string]any:
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(fields)
	if len(hostile) == 0 {
		return
	}
	texts := map[string]string{}
	if cm != nil {
		for k, v := range cm.Data {
			texts["ConfigMap key "+k] = v
		}
	}
	for _, p := range pods {
		for _, ct := range append(append([]corev1.Container{}, p.pod.Spec.InitContainers...), p.pod.Spec.Containers...) {
			if len(ct.Command) == 0 || !strings.HasSuffix(ct.Command[0], "sh") {
				continue
			}
			texts[p.what+" container "+ct.Name] = strings.Join(append(ct.Command, ct.Args...), " ")
		}
	}
	for _, h := range hostile {
		for where, text := range texts {
			if strings.Contains(text, h) {
				t.Fatalf("the spec's value %q is written into the text of %s: it must reach it as data\nspec %s", h, where, spec)
			}
		}
	}
}
