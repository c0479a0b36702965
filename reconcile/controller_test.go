package reconcile_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/reconcile"
	"github.com/example/database-operator/render"
)

// childSpec is one child a Database should have.
type childSpec struct {
	name string
	obj  func() client.Object
	// owned: a controller owner reference to the Database; otherwise none.
	owned bool
	// applied: written by server-side apply (operation Apply); otherwise
	// created once (operation Update).
	applied bool
}

func (c childSpec) String() string { return fmt.Sprintf("%T %s", c.obj(), c.name) }

// wantChildren lists the children of a Database named db with the given
// replicas and backup setting, and those it must not have.
func wantChildren(db string, replicas int32, backup bool) (present, missing []childSpec) {
	add := func(cond bool, c childSpec) {
		if cond {
			present = append(present, c)
		} else {
			missing = append(missing, c)
		}
	}
	sts := func() client.Object { return &appsv1.StatefulSet{} }
	svc := func() client.Object { return &corev1.Service{} }
	add(true, childSpec{db, sts, true, true})
	add(true, childSpec{db + "-headless", svc, true, true})
	add(true, childSpec{db, svc, true, true})
	add(true, childSpec{db + "-config", func() client.Object { return &corev1.ConfigMap{} }, true, true})
	add(true, childSpec{db + "-credentials", func() client.Object { return &corev1.Secret{} }, false, false})
	add(replicas > 1, childSpec{db + "-ro", svc, true, true})
	add(replicas > 1, childSpec{db, func() client.Object { return &policyv1.PodDisruptionBudget{} }, true, true})
	add(backup, childSpec{db + "-backup", func() client.Object { return &batchv1.CronJob{} }, true, true})
	add(backup, childSpec{db + "-backup", func() client.Object { return &corev1.PersistentVolumeClaim{} }, false, true})
	return present, missing
}

// TestChildren: every child exists under its contract name, with a
// controller owner reference to the Database (none on the credentials Secret
// and the backup PVC), written by the database-operator field manager; the
// conditional children exist only when their setting asks for them.
func TestChildren(t *testing.T) {
	cases := []struct {
		name     string
		replicas int32
		backup   bool
	}{
		{name: "one replica without backup", replicas: 1, backup: false},
		{name: "three replicas with backup", replicas: 3, backup: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g, ctx := newG(t), ctxFor(t)
			ns := env.Namespace(t)
			db := createDatabase(ctx, g, newDatabase(ns, "pg", withReplicas(tc.replicas), withBackup(tc.backup)))
			// The status is applied last: once it describes the spec, every
			// child of this reconcile has been applied.
			waitObserved(ctx, g, client.ObjectKeyFromObject(db))

			present, missing := wantChildren(db.Name, tc.replicas, tc.backup)
			for _, c := range present {
				obj := get(ctx, g, ns, c.name, c.obj())
				if c.owned {
					controllerRefTo(g, obj, db)
				} else {
					g.Expect(obj.GetOwnerReferences()).To(BeEmpty(), "%s must outlive the Database: no owner reference", c)
				}
				entries := managedBy(obj, reconcile.FieldManager)
				g.Expect(entries).NotTo(BeEmpty(), "%s: no managedFields entry of %s: %+v", c, reconcile.FieldManager, obj.GetManagedFields())
				op := metav1.ManagedFieldsOperationUpdate
				if c.applied {
					op = metav1.ManagedFieldsOperationApply
				}
				g.Expect(entries).To(ContainElement(And(HaveField("Operation", op), HaveField("Subresource", ""))),
					"%s: %s should write it with operation %s", c, reconcile.FieldManager, op)
				for _, e := range obj.GetManagedFields() {
					if e.Subresource == "" && e.Manager != reconcile.FieldManager {
						t.Errorf("%s: unexpected field manager %q (%s)", c, e.Manager, e.Operation)
					}
				}
			}
			for _, c := range missing {
				absent(ctx, g, ns, c.name, c.obj())
			}

			// The status, too, is applied by the operator's field manager.
			stored := &databasev1.Database{}
			g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(db), stored)).To(Succeed())
			g.Expect(managedBy(stored, reconcile.FieldManager)).To(ContainElement(And(
				HaveField("Operation", metav1.ManagedFieldsOperationApply), HaveField("Subresource", "status"))))
		})
	}
}

// TestCredentialsCreatedOnce: the credentials Secret is generated once and
// keeps its values across another reconcile, an operator restart, and
// deleting and re-creating the Database; no Event carries a password.
func TestCredentialsCreatedOnce(t *testing.T) {
	g, ctx := newG(t), ctxFor(t)
	ns := env.Namespace(t)
	db := createDatabase(ctx, g, newDatabase(ns, "pg"))
	key := client.ObjectKeyFromObject(db)
	secretKey := client.ObjectKey{Namespace: ns, Name: "pg-credentials"}
	waitObserved(ctx, g, key)

	secret := get(ctx, g, ns, secretKey.Name, &corev1.Secret{})
	g.Expect(secret.OwnerReferences).To(BeEmpty(), "the credentials Secret outlives the Database: no owner reference")
	g.Expect(slices.Sorted(maps.Keys(secret.Data))).To(Equal([]string{
		"database", "host", "password", "port", "replication-password", "root-password", "uri", "username",
	}))
	for _, k := range []string{"root-password", "password", "replication-password"} {
		g.Expect(len(secret.Data[k])).To(BeNumerically(">=", 32), "%s length", k)
	}
	g.Expect(passwords(secret)).To(HaveLen(3))
	g.Expect(slices.Compact(slices.Sorted(slices.Values(passwords(secret))))).To(HaveLen(3), "the three passwords differ")
	g.Expect(string(secret.Data["host"])).To(Equal("pg." + ns + ".svc"))
	g.Expect(string(secret.Data["port"])).To(Equal("5432"))
	g.Expect(string(secret.Data["uri"])).To(And(
		HavePrefix("postgresql://"+string(secret.Data["username"])+":"+string(secret.Data["password"])+"@pg."+ns+".svc:5432/"),
		HaveSuffix("/"+string(secret.Data["database"]))))
	original := secret.DeepCopy()
	waitEvent(ctx, g, db, "CredentialsCreated")

	unchanged := func(step string) {
		t.Helper()
		now := &corev1.Secret{}
		g.Expect(env.Client.Get(ctx, secretKey, now)).To(Succeed())
		g.Expect(now.UID).To(Equal(original.UID), "%s: the Secret was re-created", step)
		g.Expect(now.ResourceVersion).To(Equal(original.ResourceVersion), "%s: the Secret was written", step)
		g.Expect(now.Data).To(Equal(original.Data), "%s: credentials changed", step)
	}

	// Another reconcile: a label change, then a spec change whose observed
	// generation says a reconcile ran after both.
	updateDatabase(ctx, g, key, func(db *databasev1.Database) { db.Labels = map[string]string{"team": "a"} })
	updateDatabase(ctx, g, key, func(db *databasev1.Database) { db.Spec.Replicas = ptr.To[int32](2) })
	waitObserved(ctx, g, key)
	unchanged("after another reconcile")

	// An operator restart.
	restartOperator(t)
	updateDatabase(ctx, g, key, func(db *databasev1.Database) { db.Spec.Replicas = ptr.To[int32](1) })
	waitObserved(ctx, g, key)
	unchanged("after an operator restart")

	// Delete the Database and create it again with the same name. envtest
	// runs no garbage collector: delete what it would (the children the old
	// Database controls); the Secret has no owner and stays.
	g.Expect(env.Client.Delete(ctx, db)).To(Succeed())
	gone(ctx, g, ns, db.Name, &databasev1.Database{})
	collectGarbage(ctx, g, ns, db)
	unchanged("after deleting the Database")
	again := createDatabase(ctx, g, newDatabase(ns, "pg"))
	g.Expect(again.UID).NotTo(Equal(db.UID))
	waitObserved(ctx, g, key, conditionIs(databasev1.ConditionDegraded, metav1.ConditionFalse))
	controllerRefTo(g, get(ctx, g, ns, "pg", &appsv1.StatefulSet{}), again)
	unchanged("after re-creating the Database")

	// Only the first Database had its credentials created.
	g.Consistently(func(g Gomega) {
		for _, e := range databaseEvents(ctx, g, ns, "pg") {
			if e.Reason == "CredentialsCreated" {
				g.Expect(e.Regarding.UID).To(Equal(db.UID), "credentials created again for the re-created Database")
			}
		}
	}).WithTimeout(time.Second).Should(Succeed())
	noSecretInEvents(ctx, g, ns, passwords(original))
}

// collectGarbage plays the garbage collector for a deleted Database: it
// deletes every object db controlled.
func collectGarbage(ctx context.Context, g *WithT, ns string, db *databasev1.Database) {
	g.THelper()
	lists := []client.ObjectList{
		&appsv1.StatefulSetList{}, &corev1.ServiceList{}, &corev1.ConfigMapList{},
		&policyv1.PodDisruptionBudgetList{}, &batchv1.CronJobList{},
	}
	for _, list := range lists {
		g.Expect(env.Client.List(ctx, list, client.InNamespace(ns))).To(Succeed())
		items, err := meta.ExtractList(list)
		g.Expect(err).NotTo(HaveOccurred())
		for _, item := range items {
			if obj := item.(client.Object); metav1.IsControlledBy(obj, db) {
				g.Expect(client.IgnoreNotFound(env.Client.Delete(ctx, obj))).To(Succeed())
			}
		}
	}
}

// TestCredentialsPreCreatedSecretUsedAsIs: a Secret the user created before
// the Database, without the operator's labels, is used as it is.
func TestCredentialsPreCreatedSecretUsedAsIs(t *testing.T) {
	g, ctx := newG(t), ctxFor(t)
	ns := env.Namespace(t)
	mine := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pg-credentials"},
		StringData: map[string]string{
			"root-password":        "my-own-root-password-0123456789abcdef",
			"username":             "me",
			"password":             "my-own-app-password-0123456789abcdef",
			"database":             "mine",
			"replication-password": "my-own-replication-password-0123456789",
		},
	}
	g.Expect(env.Client.Create(ctx, mine)).To(Succeed())

	db := createDatabase(ctx, g, newDatabase(ns, "pg"))
	waitObserved(ctx, g, client.ObjectKeyFromObject(db), conditionIs(databasev1.ConditionDegraded, metav1.ConditionFalse))
	// The StatefulSet reads the user's Secret.
	sts := get(ctx, g, ns, "pg", &appsv1.StatefulSet{})
	var refs []string
	for _, c := range sts.Spec.Template.Spec.Containers {
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				refs = append(refs, e.ValueFrom.SecretKeyRef.Name)
			}
		}
	}
	g.Expect(refs).NotTo(BeEmpty())
	g.Expect(slices.Compact(refs)).To(Equal([]string{"pg-credentials"}))

	// Give the operator time for more reconciles (a spec change), then check
	// the Secret is untouched.
	updateDatabase(ctx, g, client.ObjectKeyFromObject(db), func(db *databasev1.Database) { db.Spec.Replicas = ptr.To[int32](2) })
	waitObserved(ctx, g, client.ObjectKeyFromObject(db))
	g.Consistently(func(g Gomega) {
		now := &corev1.Secret{}
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(mine), now)).To(Succeed())
		g.Expect(now.UID).To(Equal(mine.UID))
		g.Expect(now.ResourceVersion).To(Equal(mine.ResourceVersion), "the user's Secret was written")
		g.Expect(now.Data).To(Equal(mine.Data))
		g.Expect(now.Labels).To(BeEmpty())
		g.Expect(now.OwnerReferences).To(BeEmpty())
		for _, e := range databaseEvents(ctx, g, ns, db.Name) {
			g.Expect(e.Reason).NotTo(Equal("CredentialsCreated"), "the operator says it created credentials")
		}
	}).WithTimeout(2 * time.Second).Should(Succeed())
	noSecretInEvents(ctx, g, ns, passwords(mine))
}

// TestCredentialsMissingRecovers: with the data volumes there and the
// credentials Secret gone, the operator reports Degraded (CredentialsMissing)
// instead of generating passwords that would not match the data. Once the
// human re-creates the Secret, as the condition message asks, the Database
// recovers without any further nudge. The Secret is re-created the way users
// bring their own (see TestCredentialsPreCreatedSecretUsedAsIs): without the
// operator's labels.
func TestCredentialsMissingRecovers(t *testing.T) {
	g, ctx := newG(t), ctxFor(t)
	ns := env.Namespace(t)
	db := readyDatabase(ctx, g, newDatabase(ns, "pg"))
	key := client.ObjectKeyFromObject(db)
	// The data volume of pod 0, as the StatefulSet controller creates it.
	data := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "data-pg-0", Labels: render.SelectorLabels("pg")},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
	g.Expect(env.Client.Create(ctx, data)).To(Succeed())
	g.Eventually(func() int { return len(listDataPVCs(ctx, g, ns, "pg")) }).Should(Equal(1))
	time.Sleep(500 * time.Millisecond)

	secret := get(ctx, g, ns, "pg-credentials", &corev1.Secret{})
	g.Expect(env.Client.Delete(ctx, secret)).To(Succeed())
	degraded := waitObserved(ctx, g, key, phaseIs(databasev1.PhaseFailed),
		conditionIs(databasev1.ConditionDegraded, metav1.ConditionTrue, "CredentialsMissing"))
	t.Logf("Degraded: %s", condition(g, degraded, databasev1.ConditionDegraded).Message)
	absent(ctx, g, ns, "pg-credentials", &corev1.Secret{})
	waitEvent(ctx, g, db, "CredentialsMissing")

	// The human restores the Secret with the original values and labels, as
	// the Degraded message says (a restore from a backup keeps the labels).
	g.Expect(degraded.Status.Conditions).To(ContainElement(HaveField("Message", ContainSubstring("app.kubernetes.io/managed-by=database-operator"))))
	restored := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pg-credentials", Labels: secret.Labels},
		Data:       secret.Data,
	}
	g.Expect(env.Client.Create(ctx, restored)).To(Succeed())
	g.Eventually(func(g Gomega) {
		now := &databasev1.Database{}
		g.Expect(env.Client.Get(ctx, key, now)).To(Succeed())
		conditionIs(databasev1.ConditionDegraded, metav1.ConditionFalse)(g, now)
		phaseIs(databasev1.PhaseReady)(g, now)
	}).WithTimeout(10*time.Second).Should(Succeed(), "the Database did not notice the restored Secret")
	now := &corev1.Secret{}
	g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(restored), now)).To(Succeed())
	g.Expect(now.Data).To(Equal(secret.Data), "the restored Secret was changed")
}

// TestPrune: children the Database no longer renders are deleted; the backup
// PVC and objects the Database does not control are kept.
func TestPrune(t *testing.T) {
	g, ctx := newG(t), ctxFor(t)
	ns := env.Namespace(t)
	instanceLabels := map[string]string{
		render.LabelInstance:  "pg",
		render.LabelManagedBy: reconcile.FieldManager,
		render.LabelName:      "database",
	}
	// A user's Service with the Database's labels but no owner.
	foreignService := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pg-extra", Labels: instanceLabels},
		Spec: corev1.ServiceSpec{
			Ports: []corev1.ServicePort{{Name: "x", Port: 1234}},
		},
	}
	g.Expect(env.Client.Create(ctx, foreignService)).To(Succeed())

	db := createDatabase(ctx, g, newDatabase(ns, "pg", withReplicas(3), withBackup(true)))
	key := client.ObjectKeyFromObject(db)
	// A user's ConfigMap owned by, but not controlled by, the Database.
	foreignConfigMap := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: "pg-notes", Labels: instanceLabels,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "database.example.com/v1", Kind: "Database", Name: db.Name, UID: db.UID,
			}},
		},
		Data: map[string]string{"note": "mine"},
	}
	g.Expect(env.Client.Create(ctx, foreignConfigMap)).To(Succeed())
	waitObserved(ctx, g, key)
	cronJob := get(ctx, g, ns, "pg-backup", &batchv1.CronJob{})
	backupPVC := get(ctx, g, ns, "pg-backup", &corev1.PersistentVolumeClaim{})
	get(ctx, g, ns, "pg-ro", &corev1.Service{})
	get(ctx, g, ns, "pg", &policyv1.PodDisruptionBudget{})

	// Backup disabled: the CronJob goes, the PVC with the dumps stays.
	updateDatabase(ctx, g, key, withBackup(false))
	gone(ctx, g, ns, cronJob.Name, &batchv1.CronJob{})
	waitObserved(ctx, g, key)
	pvc := get(ctx, g, ns, "pg-backup", &corev1.PersistentVolumeClaim{})
	g.Expect(pvc.UID).To(Equal(backupPVC.UID))
	g.Expect(pvc.DeletionTimestamp).To(BeNil(), "the backup PVC is being deleted")

	// Back to one replica: the read Service and the PDB go.
	updateDatabase(ctx, g, key, withReplicas(1))
	gone(ctx, g, ns, "pg-ro", &corev1.Service{})
	gone(ctx, g, ns, "pg", &policyv1.PodDisruptionBudget{})
	waitObserved(ctx, g, key)

	// Nothing else went, and nothing the Database does not control is
	// deleted, now or later.
	g.Consistently(func(g Gomega) {
		for _, c := range []struct {
			obj client.Object
			uid types.UID
		}{
			{&corev1.Service{}, foreignService.UID},
			{&corev1.ConfigMap{}, foreignConfigMap.UID},
			{&corev1.PersistentVolumeClaim{}, backupPVC.UID},
		} {
			name := map[types.UID]string{foreignService.UID: "pg-extra", foreignConfigMap.UID: "pg-notes", backupPVC.UID: "pg-backup"}[c.uid]
			g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, c.obj)).To(Succeed(), "%T %s was deleted", c.obj, name)
			g.Expect(c.obj.GetUID()).To(Equal(c.uid))
			g.Expect(c.obj.GetDeletionTimestamp()).To(BeNil(), "%T %s is being deleted", c.obj, name)
		}
		for _, c := range []struct {
			name string
			obj  client.Object
		}{
			{"pg", &appsv1.StatefulSet{}}, {"pg", &corev1.Service{}}, {"pg-headless", &corev1.Service{}},
			{"pg-config", &corev1.ConfigMap{}}, {"pg-credentials", &corev1.Secret{}},
		} {
			g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: c.name}, c.obj)).To(Succeed(), "%T %s", c.obj, c.name)
			g.Expect(c.obj.GetDeletionTimestamp()).To(BeNil(), "%T %s is being deleted", c.obj, c.name)
		}
	}).WithTimeout(2 * time.Second).Should(Succeed())
}

// TestDrift: another field manager's change to a field the operator owns is
// taken back; its change to a field the operator does not own stays.
func TestDrift(t *testing.T) {
	const annotation = "example.com/owner-note"
	cases := []struct {
		name    string
		manager string
		// drift changes the StatefulSet's replicas to 5 as the manager.
		drift func(ctx context.Context, g Gomega, sts *appsv1.StatefulSet)
	}{
		{
			name:    "update (kubectl edit)",
			manager: "kubectl-edit",
			drift: func(ctx context.Context, g Gomega, sts *appsv1.StatefulSet) {
				sts.Spec.Replicas = ptr.To[int32](5)
				g.Expect(env.Client.Update(ctx, sts, client.FieldOwner("kubectl-edit"))).To(Succeed())
				g.Expect(*sts.Spec.Replicas).To(Equal(int32(5)), "the server's answer")
			},
		},
		{
			name:    "scale subresource (kubectl scale)",
			manager: "kubectl-scale",
			drift: func(ctx context.Context, g Gomega, sts *appsv1.StatefulSet) {
				scale := &autoscalingv1.Scale{}
				g.Expect(env.Client.SubResource("scale").Get(ctx, sts, scale)).To(Succeed())
				scale.Spec.Replicas = 5
				g.Expect(env.Client.SubResource("scale").Update(ctx, sts,
					client.WithSubResourceBody(scale), client.FieldOwner("kubectl-scale"))).To(Succeed())
				g.Expect(scale.Spec.Replicas).To(Equal(int32(5)), "the server's answer")
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g, ctx := newG(t), ctxFor(t)
			ns := env.Namespace(t)
			db := createDatabase(ctx, g, newDatabase(ns, "pg", withReplicas(2)))
			waitObserved(ctx, g, client.ObjectKeyFromObject(db))
			get(ctx, g, ns, "pg", &appsv1.StatefulSet{})

			// A human adds an annotation (kubectl annotate) ...
			g.Eventually(func(g Gomega) {
				sts := &appsv1.StatefulSet{}
				g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "pg"}, sts)).To(Succeed())
				if sts.Annotations == nil {
					sts.Annotations = map[string]string{}
				}
				sts.Annotations[annotation] = "keep me"
				g.Expect(env.Client.Update(ctx, sts, client.FieldOwner("kubectl-annotate"))).To(Succeed())
			}).Should(Succeed())
			// ... and scales the StatefulSet behind the operator's back.
			g.Eventually(func(g Gomega) {
				sts := &appsv1.StatefulSet{}
				g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "pg"}, sts)).To(Succeed())
				tc.drift(ctx, g, sts)
			}).Should(Succeed())

			g.Eventually(func(g Gomega) {
				sts := &appsv1.StatefulSet{}
				g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "pg"}, sts)).To(Succeed())
				g.Expect(sts.Spec.Replicas).To(Equal(ptr.To[int32](2)), "replicas not restored")
				g.Expect(sts.Annotations).To(HaveKeyWithValue(annotation, "keep me"))
				g.Expect(ownsField(sts, reconcile.FieldManager, `"f:replicas"`)).To(BeTrue(), "the operator owns spec.replicas again")
				g.Expect(ownsField(sts, tc.manager, `"f:replicas"`)).To(BeFalse(), "%s still owns spec.replicas", tc.manager)
			}).Should(Succeed())
			g.Consistently(func(g Gomega) {
				sts := &appsv1.StatefulSet{}
				g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "pg"}, sts)).To(Succeed())
				g.Expect(sts.Spec.Replicas).To(Equal(ptr.To[int32](2)))
				g.Expect(sts.Annotations).To(HaveKeyWithValue(annotation, "keep me"))
			}).WithTimeout(time.Second).Should(Succeed())
		})
	}
}

// TestEvents: the operator records CredentialsCreated, BackupEnabled, Ready
// (the first time), Scaled and BackupDisabled on the Database.
func TestEvents(t *testing.T) {
	g, ctx := newG(t), ctxFor(t)
	ns := env.Namespace(t)
	db := createDatabase(ctx, g, newDatabase(ns, "pg", withBackup(true)))
	key := client.ObjectKeyFromObject(db)
	waitEvent(ctx, g, db, "CredentialsCreated")
	waitEvent(ctx, g, db, "BackupEnabled")

	setStatefulSetStatus(ctx, g, ns, "pg", 1)
	waitObserved(ctx, g, key, phaseIs(databasev1.PhaseReady))
	ready := waitEvent(ctx, g, db, "Ready")
	g.Expect(ready.Type).To(Equal(corev1.EventTypeNormal))
	g.Expect(ready.ReportingController).To(Equal("database-operator"))
	g.Expect(ready.Regarding.APIVersion).To(Equal("database.example.com/v1"))

	updateDatabase(ctx, g, key, withReplicas(2))
	scaled := waitEvent(ctx, g, db, "Scaled")
	g.Expect(scaled.Note).To(ContainSubstring("1"))
	g.Expect(scaled.Note).To(ContainSubstring("2"))

	updateDatabase(ctx, g, key, withBackup(false))
	waitEvent(ctx, g, db, "BackupDisabled")

	g.Eventually(func(g Gomega) []string { return reasons(databaseEvents(ctx, g, ns, db.Name)) }).Should(
		ContainElements("CredentialsCreated", "BackupEnabled", "Ready", "Scaled", "BackupDisabled"))
	for _, e := range databaseEvents(ctx, g, ns, db.Name) {
		g.Expect(e.Regarding.UID).To(Equal(db.UID))
		g.Expect(e.Type).To(Equal(corev1.EventTypeNormal), "unexpected %s %s: %s", e.Type, e.Reason, e.Note)
	}
}

// TestEventReadyOnlyFirstTime: issue 3 asks for an Event the first time a
// Database is Ready, not each time it becomes Ready again (after a
// scale-up, a rollout, a pod restart).
func TestEventReadyOnlyFirstTime(t *testing.T) {
	g, ctx := newG(t), ctxFor(t)
	ns := env.Namespace(t)
	db := readyDatabase(ctx, g, newDatabase(ns, "pg"))
	key := client.ObjectKeyFromObject(db)
	first := waitEvent(ctx, g, db, "Ready")

	// Scale up: not Ready while the new replica starts, then Ready again.
	updateDatabase(ctx, g, key, withReplicas(2))
	waitObserved(ctx, g, key, phaseIs(databasev1.PhasePartiallyReady))
	setStatefulSetStatus(ctx, g, ns, "pg", 2)
	waitObserved(ctx, g, key, phaseIs(databasev1.PhaseReady))

	g.Consistently(func(g Gomega) {
		for _, e := range databaseEvents(ctx, g, ns, db.Name) {
			if e.Reason == "Ready" {
				g.Expect(e.Name).To(Equal(first.Name), "a second Ready Event: %q", e.Note)
				g.Expect(e.Series).To(BeNil(), "Ready recorded again (as a series)")
			}
		}
	}).WithTimeout(2 * time.Second).Should(Succeed())
}
