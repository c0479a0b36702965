package reconcile_test

import (
	"context"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/reconcile"
	"github.com/example/database-operator/render"
)

// A MySQL replication password longer than 32 characters fails every
// replica's CHANGE REPLICATION SOURCE (error 3056). A user-supplied Secret
// with one makes the Database Degraded, naming the key and the limit, and no
// StatefulSet is created; a password within the limit lets it go on.
func TestMySQLReplicationPasswordTooLong(t *testing.T) {
	g, ctx := newG(t), ctxFor(t)
	ns := env.Namespace(t)
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "my-credentials"},
		StringData: map[string]string{
			render.SecretKeyRootPassword:        "root-password-0123456789",
			render.SecretKeyUsername:            "app",
			render.SecretKeyPassword:            "app-password-0123456789",
			render.SecretKeyDatabase:            "app",
			render.SecretKeyReplicationPassword: strings.Repeat("r", 33),
		},
	}
	g.Expect(env.Client.Create(ctx, secret)).To(Succeed())
	db := createDatabase(ctx, g, newDatabase(ns, "my", withReplicas(2), func(db *databasev1.Database) {
		db.Spec.Type, db.Spec.Version = databasev1.MySQL, "8.4"
	}))
	key := client.ObjectKeyFromObject(db)
	db = waitObserved(ctx, g, key, conditionIs(databasev1.ConditionDegraded, metav1.ConditionTrue, "ReplicationPasswordTooLong"))
	msg := condition(g, db, databasev1.ConditionDegraded).Message
	g.Expect(msg).To(ContainSubstring("key " + render.SecretKeyReplicationPassword + " holds 33 characters"))
	g.Expect(msg).To(ContainSubstring("at most 32"))
	g.Expect(msg).NotTo(ContainSubstring(strings.Repeat("r", 33)), "never the password itself")
	g.Expect(db.Status.Phase).To(Equal(databasev1.PhaseFailed))
	err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "my"}, &appsv1.StatefulSet{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "no StatefulSet while the password cannot work: %v", err)

	g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(secret), secret)).To(Succeed())
	secret.Data[render.SecretKeyReplicationPassword] = []byte(strings.Repeat("r", 32))
	g.Expect(env.Client.Update(ctx, secret)).To(Succeed())
	// The user's Secret has no operator labels, so the operator does not
	// watch it: an annotation asks for a reconcile.
	updateDatabase(ctx, g, key, func(db *databasev1.Database) {
		db.Annotations = map[string]string{"touch": time.Now().String()}
	})
	waitObserved(ctx, g, key, conditionIs(databasev1.ConditionDegraded, metav1.ConditionFalse))
	get(ctx, g, ns, "my", &appsv1.StatefulSet{})
}

// A user-supplied Secret whose values the official images would paste into
// SQL (the MySQL entrypoint writes MYSQL_USER into CREATE USER '...'
// unescaped) makes the Database Degraded, naming the Secret and the key,
// and no database pod is created; fixing the Secret lets it go on.
func TestHostileCredentialsRefused(t *testing.T) {
	g, ctx := newG(t), ctxFor(t)
	ns := env.Namespace(t)
	hostileUser := "x'@'%'; GRANT ALL ON *.* TO 'x'@'%'; -- "
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "my-credentials"},
		StringData: map[string]string{
			render.SecretKeyRootPassword:        "root-password-0123456789",
			render.SecretKeyUsername:            hostileUser,
			render.SecretKeyPassword:            "app-password-0123456789",
			render.SecretKeyDatabase:            "app",
			render.SecretKeyReplicationPassword: "replication-pw",
		},
	}
	g.Expect(env.Client.Create(ctx, secret)).To(Succeed())
	db := createDatabase(ctx, g, newDatabase(ns, "my", func(db *databasev1.Database) {
		db.Spec.Type, db.Spec.Version = databasev1.MySQL, "8.4"
	}))
	key := client.ObjectKeyFromObject(db)
	db = waitObserved(ctx, g, key, conditionIs(databasev1.ConditionDegraded, metav1.ConditionTrue, "CredentialsInvalid"))
	msg := condition(g, db, databasev1.ConditionDegraded).Message
	g.Expect(msg).To(ContainSubstring("Secret my-credentials: key username must be"))
	g.Expect(msg).NotTo(ContainSubstring("GRANT"), "the hostile value is not repeated")
	err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "my"}, &appsv1.StatefulSet{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "no StatefulSet while the Secret is unsafe: %v", err)

	g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(secret), secret)).To(Succeed())
	secret.Data[render.SecretKeyUsername] = []byte("shop_owner")
	g.Expect(env.Client.Update(ctx, secret)).To(Succeed())
	updateDatabase(ctx, g, key, func(db *databasev1.Database) {
		db.Annotations = map[string]string{"touch": time.Now().String()}
	})
	waitObserved(ctx, g, key, conditionIs(databasev1.ConditionDegraded, metav1.ConditionFalse))
	get(ctx, g, ns, "my", &appsv1.StatefulSet{})
}

// While a namespace is being deleted, the API server refuses to create
// anything in it. That is not an error to retry (and log) for ever: the
// Database goes with the namespace. (envtest runs no namespace controller,
// so the namespace stays Terminating.)
func TestTerminatingNamespaceIsNotAnError(t *testing.T) {
	g, ctx := newG(t), ctxFor(t)
	ns := env.Namespace(t)
	db := createDatabase(ctx, g, newDatabase(ns, "pg"))
	key := client.ObjectKeyFromObject(db)
	credentials := get(ctx, g, ns, render.CredentialsSecretName("pg"), &corev1.Secret{})

	g.Expect(env.Client.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	g.Eventually(func(g Gomega) {
		var n corev1.Namespace
		g.Expect(env.Client.Get(ctx, client.ObjectKey{Name: ns}, &n)).To(Succeed())
		g.Expect(n.Status.Phase).To(Equal(corev1.NamespaceTerminating))
	}).Should(Succeed())
	// With the Secret gone, the next reconcile tries to create it.
	g.Expect(env.Client.Delete(ctx, credentials)).To(Succeed())
	probe := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "probe"}}
	err := env.Client.Create(ctx, probe)
	g.Expect(apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause)).To(BeTrue(), "the API server refuses creations: %v", err)

	r := &reconcile.Reconciler{Client: env.Client, APIReader: env.Client, Render: render.DefaultOptions()}
	_, err = r.Reconcile(context.Background(), ctrl.Request{NamespacedName: key})
	g.Expect(err).NotTo(HaveOccurred())
}
