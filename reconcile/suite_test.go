package reconcile_test

// The reconciler's tests run against a real kube-apiserver and etcd
// (envtest) with the operator running in-process in a controller-runtime
// manager, configured the way the binary configures it: the label-filtered
// cache of CacheOptions, ClientOptions, the events.k8s.io recorder.
//
// envtest runs no kube-controller-manager: there is no StatefulSet or
// CronJob controller and no garbage collector. The tests write StatefulSet
// and CronJob status themselves and play the garbage collector where a test
// needs it (orphan finalizers, children of a deleted Database).
//
// One control plane and one manager serve every test; each test works in its
// own namespace. Tests do not run in parallel: one of them restarts the
// operator.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/internal/testenv"
	"github.com/example/database-operator/reconcile"
	"github.com/example/database-operator/render"
)

const (
	// timeout bounds every Eventually; the reconciler usually converges in
	// well under a second.
	timeout = 20 * time.Second
	// interval is how often Eventually and Consistently poll.
	interval = 100 * time.Millisecond
	// settle is how long a test gives the reconciler to misbehave before
	// asserting that nothing moved.
	settle = 3 * time.Second
)

var (
	// env is the control plane shared by every test of this package.
	env *testenv.Env
	// monitoring is what the operator found out about the
	// monitoring.coreos.com API at start (envtest: not installed).
	monitoring reconcile.MonitoringAPIs

	operatorMu sync.Mutex
	// current is the running operator.
	current *operator
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctrl.SetLogger(testLogger())
	var stop func()
	var err error
	env, stop, err = testenv.StartShared()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stop()

	// The binary asks discovery; envtest serves no ServiceMonitor CRD.
	monitoring, err = reconcile.MonitoringServed(env.Config)
	if err != nil {
		fmt.Fprintln(os.Stderr, "MonitoringServed:", err)
		return 1
	}
	if monitoring != (reconcile.MonitoringAPIs{}) {
		fmt.Fprintf(os.Stderr, "MonitoringServed: %+v, but envtest installs no monitoring.coreos.com CRD\n", monitoring)
		return 1
	}

	current, err = startOperator()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	operatorMu.Lock()
	defer operatorMu.Unlock()
	if err := current.stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// testLogger prints the operator's log to stderr when TEST_LOG is set, and
// discards it otherwise.
func testLogger() logr.Logger {
	if os.Getenv("TEST_LOG") == "" {
		return logr.Discard()
	}
	return funcr.New(func(prefix, args string) {
		fmt.Fprintln(os.Stderr, time.Now().Format("15:04:05.000"), prefix, args)
	}, funcr.Options{Verbosity: 1})
}

// operator is one running manager with the Database controller.
type operator struct {
	cancel context.CancelFunc
	done   chan error
}

// startOperator starts a manager running the Reconciler the way the binary
// does, and waits for its caches to sync.
func startOperator() (*operator, error) {
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 env.Scheme,
		Cache:                  reconcile.CacheOptions(nil, monitoring),
		Client:                 reconcile.ClientOptions(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// A restarted operator registers a controller of the same name.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		return nil, fmt.Errorf("new manager: %w", err)
	}
	r := &reconcile.Reconciler{
		Client:     mgr.GetClient(),
		APIReader:  mgr.GetAPIReader(),
		Recorder:   mgr.GetEventRecorder("database-operator"),
		Render:     render.DefaultOptions(),
		Monitoring: monitoring,
	}
	if err := r.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("set up the reconciler: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	op := &operator{cancel: cancel, done: make(chan error, 1)}
	go func() { op.done <- mgr.Start(ctx) }()

	syncCtx, syncCancel := context.WithTimeout(ctx, timeout)
	defer syncCancel()
	if !mgr.GetCache().WaitForCacheSync(syncCtx) {
		_ = op.stop()
		return nil, errors.New("the manager's cache did not sync")
	}
	return op, nil
}

// stop stops the manager and waits for it to return.
func (o *operator) stop() error {
	o.cancel()
	select {
	case err := <-o.done:
		if err != nil {
			return fmt.Errorf("manager: %w", err)
		}
		return nil
	case <-time.After(timeout):
		return errors.New("the manager did not stop")
	}
}

// restartOperator stops the running operator and starts a new one, as a
// pod restart would.
func restartOperator(t *testing.T) {
	t.Helper()
	operatorMu.Lock()
	defer operatorMu.Unlock()
	if err := current.stop(); err != nil {
		t.Fatalf("stopping the operator: %v", err)
	}
	op, err := startOperator()
	if err != nil {
		t.Fatalf("restarting the operator: %v", err)
	}
	current = op
}

// newG returns a Gomega for t with this suite's timeouts.
func newG(t *testing.T) *WithT {
	g := NewWithT(t)
	g.SetDefaultEventuallyTimeout(timeout)
	g.SetDefaultEventuallyPollingInterval(interval)
	g.SetDefaultConsistentlyDuration(settle)
	g.SetDefaultConsistentlyPollingInterval(interval)
	return g
}

// ctxFor returns a context cancelled when t ends.
func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx
}

// newDatabase returns a one-replica PostgreSQL Database with 1Gi of storage,
// changed by the mutators.
func newDatabase(ns, name string, mutators ...func(*databasev1.Database)) *databasev1.Database {
	db := &databasev1.Database{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: databasev1.DatabaseSpec{
			Type:     databasev1.PostgreSQL,
			Version:  "16",
			Replicas: ptr.To[int32](1),
			Storage:  databasev1.StorageSpec{Size: resource.MustParse("1Gi")},
		},
	}
	for _, m := range mutators {
		m(db)
	}
	return db
}

func withReplicas(n int32) func(*databasev1.Database) {
	return func(db *databasev1.Database) { db.Spec.Replicas = ptr.To(n) }
}

func withBackup(enabled bool) func(*databasev1.Database) {
	return func(db *databasev1.Database) {
		if db.Spec.Backup == nil {
			db.Spec.Backup = &databasev1.BackupSpec{}
		}
		db.Spec.Backup.Enabled = enabled
		if enabled {
			db.Spec.Backup.Schedule = "0 2 * * *"
			db.Spec.Backup.Retention = "7d"
		}
	}
}

// createDatabase creates db and returns it as the API server stored it.
func createDatabase(ctx context.Context, g *WithT, db *databasev1.Database) *databasev1.Database {
	g.THelper()
	g.Expect(env.Client.Create(ctx, db)).To(Succeed())
	return db
}

// updateDatabase applies change to the current Database, retrying on
// conflicts, and returns the Database as stored.
func updateDatabase(ctx context.Context, g *WithT, key client.ObjectKey, change func(*databasev1.Database)) *databasev1.Database {
	g.THelper()
	db := &databasev1.Database{}
	g.Eventually(func(g Gomega) {
		g.Expect(env.Client.Get(ctx, key, db)).To(Succeed())
		change(db)
		g.Expect(env.Client.Update(ctx, db)).To(Succeed())
	}).Should(Succeed())
	return db
}

// waitObserved waits until the Database's status describes its current
// generation and check passes, and returns the Database.
func waitObserved(ctx context.Context, g *WithT, key client.ObjectKey, check ...func(Gomega, *databasev1.Database)) *databasev1.Database {
	g.THelper()
	db := &databasev1.Database{}
	g.Eventually(func(g Gomega) {
		g.Expect(env.Client.Get(ctx, key, db)).To(Succeed())
		g.Expect(db.Status.ObservedGeneration).To(Equal(db.Generation), "status.observedGeneration")
		g.Expect(db.Status.Phase).NotTo(BeEmpty(), "status.phase")
		for _, c := range check {
			c(g, db)
		}
	}).Should(Succeed())
	return db
}

// degradedWith checks that the Database is Degraded for reason, with each
// of words in the message.
func degradedWith(reason string, words ...string) func(Gomega, *databasev1.Database) {
	return func(g Gomega, db *databasev1.Database) {
		c := condition(g, db, databasev1.ConditionDegraded)
		g.Expect(c.Status).To(Equal(metav1.ConditionTrue), "%+v", c)
		g.Expect(c.Reason).To(Equal(reason))
		for _, w := range words {
			g.Expect(c.Message).To(ContainSubstring(w))
		}
	}
}

// phaseIs checks the Database's phase.
func phaseIs(p databasev1.Phase) func(Gomega, *databasev1.Database) {
	return func(g Gomega, db *databasev1.Database) {
		g.Expect(db.Status.Phase).To(Equal(p), "status.phase; conditions %+v", db.Status.Conditions)
	}
}

// condition returns the condition of the type, or fails.
func condition(g Gomega, db *databasev1.Database, typ string) metav1.Condition {
	for _, c := range db.Status.Conditions {
		if c.Type == typ {
			return c
		}
	}
	g.Expect(db.Status.Conditions).To(ContainElement(HaveField("Type", typ)), "condition %s", typ)
	return metav1.Condition{}
}

// conditionIs checks a condition's status (and reason, when given).
func conditionIs(typ string, status metav1.ConditionStatus, reason ...string) func(Gomega, *databasev1.Database) {
	return func(g Gomega, db *databasev1.Database) {
		c := condition(g, db, typ)
		g.Expect(c.Status).To(Equal(status), "condition %s: %+v", typ, c)
		if len(reason) > 0 {
			g.Expect(c.Reason).To(Equal(reason[0]), "condition %s: %+v", typ, c)
		}
	}
}

// get waits for an object to exist and returns it.
func get[T client.Object](ctx context.Context, g *WithT, ns, name string, obj T) T {
	g.THelper()
	g.Eventually(func() error {
		return env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj)
	}).Should(Succeed(), "%T %s/%s", obj, ns, name)
	return obj
}

// gone waits for an object to be deleted.
func gone(ctx context.Context, g *WithT, ns, name string, obj client.Object) {
	g.THelper()
	g.Eventually(func() error {
		return env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj)
	}).Should(Satisfy(apierrors.IsNotFound), "%T %s/%s should be deleted", obj, ns, name)
}

// absent checks that an object does not exist now.
func absent(ctx context.Context, g *WithT, ns, name string, obj client.Object) {
	g.THelper()
	err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj)
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%T %s/%s should not exist; get: %v", obj, ns, name, err)
}

// setStatefulSetStatus plays the StatefulSet controller: the rollout of the
// current generation is done (one revision) with ready of the replicas ready.
func setStatefulSetStatus(ctx context.Context, g *WithT, ns, name string, ready int32) {
	g.THelper()
	g.Eventually(func(g Gomega) {
		sts := &appsv1.StatefulSet{}
		g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, sts)).To(Succeed())
		replicas := *sts.Spec.Replicas
		sts.Status = appsv1.StatefulSetStatus{
			ObservedGeneration: sts.Generation,
			Replicas:           replicas,
			ReadyReplicas:      ready,
			AvailableReplicas:  ready,
			CurrentReplicas:    replicas,
			UpdatedReplicas:    replicas,
			CurrentRevision:    "r1",
			UpdateRevision:     "r1",
		}
		g.Expect(env.Client.Status().Update(ctx, sts)).To(Succeed())
	}).Should(Succeed())
}

// setLastSuccessfulBackup plays the CronJob controller.
func setLastSuccessfulBackup(ctx context.Context, g *WithT, ns, name string, at time.Time) {
	g.THelper()
	g.Eventually(func(g Gomega) {
		cj := &batchv1.CronJob{}
		g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, cj)).To(Succeed())
		cj.Status.LastScheduleTime = &metav1.Time{Time: at}
		cj.Status.LastSuccessfulTime = &metav1.Time{Time: at}
		g.Expect(env.Client.Status().Update(ctx, cj)).To(Succeed())
	}).Should(Succeed())
}

// readyDatabase creates db, plays a settled StatefulSet with every replica
// ready, and waits for the Database to be Ready.
func readyDatabase(ctx context.Context, g *WithT, db *databasev1.Database) *databasev1.Database {
	g.THelper()
	createDatabase(ctx, g, db)
	get(ctx, g, db.Namespace, render.StatefulSetName(db.Name), &appsv1.StatefulSet{})
	setStatefulSetStatus(ctx, g, db.Namespace, render.StatefulSetName(db.Name), *db.Spec.Replicas)
	return waitObserved(ctx, g, client.ObjectKeyFromObject(db), phaseIs(databasev1.PhaseReady),
		conditionIs(databasev1.ConditionReady, metav1.ConditionTrue))
}

// databaseEvents lists the events.k8s.io Events regarding Databases named
// name in ns.
func databaseEvents(ctx context.Context, g Gomega, ns, name string) []eventsv1.Event {
	var list eventsv1.EventList
	g.Expect(env.Client.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Kind == "Database" && e.Regarding.Name == name {
			out = append(out, e)
		}
	}
	return out
}

// reasons returns the reasons of events.
func reasons(events []eventsv1.Event) []string {
	var out []string
	for _, e := range events {
		out = append(out, e.Reason)
	}
	slices.Sort(out)
	return out
}

// waitEvent waits for an Event with the reason on the Database and returns it.
func waitEvent(ctx context.Context, g *WithT, db *databasev1.Database, reason string) eventsv1.Event {
	g.THelper()
	var found eventsv1.Event
	g.Eventually(func(g Gomega) {
		events := databaseEvents(ctx, g, db.Namespace, db.Name)
		i := slices.IndexFunc(events, func(e eventsv1.Event) bool {
			return e.Reason == reason && e.Regarding.UID == db.UID
		})
		g.Expect(i).NotTo(Equal(-1), "no %s Event on Database %s; have %v", reason, db.Name, reasons(events))
		found = events[i]
	}).Should(Succeed())
	return found
}

// reconciles is how many reconciles the operator has finished, from its
// own outcome counter (database_operator_reconcile_outcomes_total).
func reconciles(g Gomega) float64 {
	families, err := metrics.Registry.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	var n float64
	for _, f := range families {
		if f.GetName() != "database_operator_reconcile_outcomes_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			n += m.GetCounter().GetValue()
		}
	}
	return n
}

// touchAnnotation sets an annotation on the Database, which triggers a
// reconcile without changing its generation, and waits for at least one
// more reconcile to finish. It returns the Database as written.
func touchAnnotation(ctx context.Context, g *WithT, key client.ObjectKey, value string) *databasev1.Database {
	g.THelper()
	before := reconciles(g)
	db := updateDatabase(ctx, g, key, func(db *databasev1.Database) {
		if db.Annotations == nil {
			db.Annotations = map[string]string{}
		}
		db.Annotations["test.example.com/touched"] = value
	})
	g.Eventually(func(g Gomega) float64 { return reconciles(g) }).Should(BeNumerically(">", before),
		"no reconcile after touching an annotation")
	return db
}

// controllerRefTo checks that obj's only owner reference is a controller
// reference to db.
func controllerRefTo(g Gomega, obj client.Object, db *databasev1.Database) {
	refs := obj.GetOwnerReferences()
	g.Expect(refs).To(HaveLen(1), "%T %s owner references", obj, obj.GetName())
	ref := refs[0]
	g.Expect(ref.APIVersion).To(Equal("database.example.com/v1"))
	g.Expect(ref.Kind).To(Equal("Database"))
	g.Expect(ref.Name).To(Equal(db.Name))
	g.Expect(ref.UID).To(Equal(db.UID))
	g.Expect(ref.Controller).To(Equal(ptr.To(true)), "%T %s: controller", obj, obj.GetName())
	g.Expect(ref.BlockOwnerDeletion).To(Equal(ptr.To(true)), "%T %s: blockOwnerDeletion", obj, obj.GetName())
}

// managedBy returns the managedFields entries of the manager.
func managedBy(obj client.Object, manager string) []metav1.ManagedFieldsEntry {
	var out []metav1.ManagedFieldsEntry
	for _, e := range obj.GetManagedFields() {
		if e.Manager == manager {
			out = append(out, e)
		}
	}
	return out
}

// ownsField reports whether any managedFields entry of manager mentions the
// field (e.g. `"f:replicas"`) in the main resource (not a subresource).
func ownsField(obj client.Object, manager, field string) bool {
	for _, e := range managedBy(obj, manager) {
		if e.Subresource == "" && e.FieldsV1 != nil && strings.Contains(string(e.FieldsV1.Raw), field) {
			return true
		}
	}
	return false
}

// passwords returns the password values of a credentials Secret.
func passwords(s *corev1.Secret) []string {
	var out []string
	for _, k := range []string{render.SecretKeyRootPassword, render.SecretKeyPassword, render.SecretKeyReplicationPassword} {
		if v := string(s.Data[k]); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// noSecretInEvents checks that no Event in ns carries any of the values.
func noSecretInEvents(ctx context.Context, g *WithT, ns string, values []string) {
	g.THelper()
	var list eventsv1.EventList
	g.Expect(env.Client.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	g.Expect(list.Items).NotTo(BeEmpty(), "expected some Events in %s", ns)
	for _, e := range list.Items {
		for _, v := range values {
			g.Expect(e.Note).NotTo(ContainSubstring(v), "Event %s (%s) carries a secret value", e.Name, e.Reason)
			g.Expect(e.Regarding.FieldPath).NotTo(ContainSubstring(v))
		}
	}
}
