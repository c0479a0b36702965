package reconcile_test

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"maps"
	"slices"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/internal/pki"
	"github.com/example/database-operator/render"
)

func withTLS(secretName string) func(*databasev1.Database) {
	return func(db *databasev1.Database) {
		db.Spec.TLS = &databasev1.TLSSpec{Enabled: true, SecretName: secretName}
	}
}

// tlsVolumeOf returns the StatefulSet's tls volume, or nil.
func tlsVolumeOf(sts *appsv1.StatefulSet) *corev1.Volume {
	for i, v := range sts.Spec.Template.Spec.Volumes {
		if v.Name == "tls" {
			return &sts.Spec.Template.Spec.Volumes[i]
		}
	}
	return nil
}

// expectMounts checks that the StatefulSet mounts Secret name read-only
// into the database container.
func expectMounts(g Gomega, sts *appsv1.StatefulSet, name string) {
	v := tlsVolumeOf(sts)
	g.Expect(v).NotTo(BeNil(), "StatefulSet %s has no tls volume", sts.Name)
	g.Expect(v.Secret).NotTo(BeNil())
	g.Expect(v.Secret.SecretName).To(Equal(name))
	g.Expect(*v.Secret.DefaultMode).To(Equal(int32(0o440)))
	for _, c := range sts.Spec.Template.Spec.Containers {
		if c.Name == "database" {
			g.Expect(c.VolumeMounts).To(ContainElement(corev1.VolumeMount{Name: "tls", MountPath: "/etc/database-operator/tls", ReadOnly: true}))
			return
		}
	}
	g.Expect(sts.Spec.Template.Spec.Containers).To(ContainElement(HaveField("Name", "database")))
}

// TestTLSCertificateCreatedOnce: with spec.tls.enabled the operator creates
// <db>-tls once (CA and server certificate for every Service and pod name,
// no CA key, no owner reference), the StatefulSet mounts it and the
// configuration turns TLS on; the Secret stays byte for byte the same across
// reconciles, an operator restart, and deleting and re-creating the
// Database; no Event carries key material.
func TestTLSCertificateCreatedOnce(t *testing.T) {
	g, ctx := newG(t), ctxFor(t)
	ns := env.Namespace(t)
	db := readyDatabase(ctx, g, newDatabase(ns, "pg", withTLS("")))
	key := client.ObjectKeyFromObject(db)
	secretKey := client.ObjectKey{Namespace: ns, Name: "pg-tls"}

	secret := get(ctx, g, ns, secretKey.Name, &corev1.Secret{})
	g.Expect(secret.OwnerReferences).To(BeEmpty(), "the TLS Secret outlives the Database: no owner reference")
	g.Expect(secret.Type).To(Equal(corev1.SecretTypeTLS))
	g.Expect(slices.Sorted(maps.Keys(secret.Data))).To(Equal([]string{"ca.crt", "tls.crt", "tls.key"}), "three keys; no CA key")
	g.Expect(secret.Labels).To(HaveKeyWithValue(render.LabelInstance, "pg"))
	g.Expect(secret.Labels).To(HaveKeyWithValue(render.LabelComponent, "tls"))
	block, _ := pem.Decode(secret.Data["tls.crt"])
	g.Expect(block).NotTo(BeNil())
	cert, err := x509.ParseCertificate(block.Bytes)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cert.DNSNames).To(ContainElements("pg", "pg."+ns+".svc", "pg-ro."+ns+".svc.cluster.local", "*.pg-headless."+ns+".svc"))
	caBlock, _ := pem.Decode(secret.Data["ca.crt"])
	ca, err := x509.ParseCertificate(caBlock.Bytes)
	g.Expect(err).NotTo(HaveOccurred())
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	_, err = cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "pg-0.pg-headless." + ns + ".svc"})
	g.Expect(err).NotTo(HaveOccurred(), "ca.crt verifies the server certificate for a pod name")
	g.Expect(cert.NotAfter).To(BeTemporally(">", time.Now().Add(9*365*24*time.Hour)), "long validity")
	original := secret.DeepCopy()
	created := waitEvent(ctx, g, db, "TLSCertificateCreated")
	g.Expect(created.Note).To(ContainSubstring("pg-tls"))

	expectMounts(g, get(ctx, g, ns, "pg", &appsv1.StatefulSet{}), "pg-tls")
	cm := get(ctx, g, ns, "pg-config", &corev1.ConfigMap{})
	g.Expect(cm.Data["postgresql.conf"]).To(ContainSubstring("\nssl = on\n"))

	unchanged := func(step string) {
		t.Helper()
		now := &corev1.Secret{}
		g.Expect(env.Client.Get(ctx, secretKey, now)).To(Succeed())
		g.Expect(now.UID).To(Equal(original.UID), "%s: the Secret was re-created", step)
		g.Expect(now.ResourceVersion).To(Equal(original.ResourceVersion), "%s: the Secret was written", step)
		g.Expect(now.Data).To(Equal(original.Data), "%s: the certificate changed", step)
	}
	touchAnnotation(ctx, g, key, "1")
	updateDatabase(ctx, g, key, func(db *databasev1.Database) { db.Spec.Replicas = ptr.To[int32](2) })
	waitObserved(ctx, g, key)
	unchanged("after other reconciles")

	restartOperator(t)
	touchAnnotation(ctx, g, key, "2")
	waitObserved(ctx, g, key, conditionIs(databasev1.ConditionDegraded, metav1.ConditionFalse))
	unchanged("after an operator restart")

	g.Expect(env.Client.Delete(ctx, db)).To(Succeed())
	gone(ctx, g, ns, db.Name, &databasev1.Database{})
	collectGarbage(ctx, g, ns, db)
	unchanged("after deleting the Database")
	again := createDatabase(ctx, g, newDatabase(ns, "pg", withTLS("")))
	waitObserved(ctx, g, key, conditionIs(databasev1.ConditionDegraded, metav1.ConditionFalse))
	sts := get(ctx, g, ns, "pg", &appsv1.StatefulSet{})
	controllerRefTo(g, sts, again)
	expectMounts(g, sts, "pg-tls")
	unchanged("after re-creating the Database")
	g.Consistently(func(g Gomega) {
		for _, e := range databaseEvents(ctx, g, ns, "pg") {
			if e.Reason == "TLSCertificateCreated" {
				g.Expect(e.Regarding.UID).To(Equal(db.UID), "certificate created again for the re-created Database")
			}
		}
	}).WithTimeout(time.Second).Should(Succeed())
	noSecretInEvents(ctx, g, ns, []string{string(original.Data["tls.key"]), "PRIVATE KEY"})
}

// issueFor issues a certificate for db as a user's issuer would, as Secret
// data.
func issueFor(g Gomega, ns, db string) map[string][]byte {
	b, err := pki.Issue(pki.Request{CAName: "user CA", DNSNames: render.ServerDNSNames(db, ns), Now: time.Now(), Rand: rand.Reader})
	g.Expect(err).NotTo(HaveOccurred())
	return map[string][]byte{"tls.crt": b.CertPEM, "tls.key": b.KeyPEM, "ca.crt": b.CAPEM}
}

// TestTLSUserSecret: with spec.tls.secretName the operator creates no
// Secret; while the named Secret is missing or lacks a key the Database is
// Degraded (naming the Secret and the key, and how to make the operator
// look again) and nothing mounts it; once fixed and the Database annotated,
// it recovers and the StatefulSet mounts the user's Secret.
func TestTLSUserSecret(t *testing.T) {
	g, ctx := newG(t), ctxFor(t)
	ns := env.Namespace(t)
	db := createDatabase(ctx, g, newDatabase(ns, "pg", withTLS("pg-cert")))
	key := client.ObjectKeyFromObject(db)

	degraded := func(reason string, words ...string) func(Gomega, *databasev1.Database) {
		return func(g Gomega, db *databasev1.Database) {
			c := condition(g, db, databasev1.ConditionDegraded)
			g.Expect(c.Status).To(Equal(metav1.ConditionTrue), "%+v", c)
			g.Expect(c.Reason).To(Equal(reason))
			for _, w := range words {
				g.Expect(c.Message).To(ContainSubstring(w))
			}
		}
	}
	waitObserved(ctx, g, key, phaseIs(databasev1.PhaseFailed),
		degraded("TLSSecretMissing", "Secret pg-cert", "does not exist", "annotate the Database"))
	g.Consistently(func() bool {
		err := env.Client.Get(ctx, key, &appsv1.StatefulSet{})
		return apierrors.IsNotFound(err)
	}).WithTimeout(time.Second).Should(BeTrue(), "no StatefulSet while the Secret is missing")
	absent(ctx, g, ns, "pg-config", &corev1.ConfigMap{})
	absent(ctx, g, ns, "pg-tls", &corev1.Secret{})

	// The Secret appears without ca.crt (and without the operator's labels).
	data := issueFor(g, ns, "pg")
	partial := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pg-cert"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{"tls.crt": data["tls.crt"], "tls.key": data["tls.key"]}}
	g.Expect(env.Client.Create(ctx, partial)).To(Succeed())
	touchAnnotation(ctx, g, key, "1")
	waitObserved(ctx, g, key, degraded("TLSSecretInvalid", "Secret pg-cert", "no key ca.crt"))
	absent(ctx, g, ns, "pg", &appsv1.StatefulSet{})

	// Fixed: the Database recovers and mounts the user's Secret.
	g.Eventually(func() error {
		s := &corev1.Secret{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(partial), s); err != nil {
			return err
		}
		s.Data["ca.crt"] = data["ca.crt"]
		return env.Client.Update(ctx, s)
	}).Should(Succeed())
	touchAnnotation(ctx, g, key, "2")
	waitObserved(ctx, g, key, conditionIs(databasev1.ConditionDegraded, metav1.ConditionFalse))
	sts := get(ctx, g, ns, "pg", &appsv1.StatefulSet{})
	expectMounts(g, sts, "pg-cert")
	absent(ctx, g, ns, "pg-tls", &corev1.Secret{})
	user := &corev1.Secret{}
	g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(partial), user)).To(Succeed())
	g.Expect(user.OwnerReferences).To(BeEmpty(), "the operator leaves the user's Secret alone")
	g.Expect(user.Labels).To(BeEmpty())
	g.Expect(user.Data).To(Equal(data))
	g.Expect(databaseEvents(ctx, g, ns, "pg")).NotTo(ContainElement(HaveField("Reason", "TLSCertificateCreated")))
}

// TestTLSMissingSecretHoldsRollout: turning TLS on for a running Database
// with a Secret that does not exist leaves the StatefulSet and the
// ConfigMap as they are (a restarted pod would not find the files), until
// the Secret exists; a Secret with the operator's labels is noticed
// without annotating the Database.
func TestTLSMissingSecretHoldsRollout(t *testing.T) {
	g, ctx := newG(t), ctxFor(t)
	ns := env.Namespace(t)
	db := readyDatabase(ctx, g, newDatabase(ns, "pg"))
	key := client.ObjectKeyFromObject(db)
	before := get(ctx, g, ns, "pg", &appsv1.StatefulSet{})
	beforeCM := get(ctx, g, ns, "pg-config", &corev1.ConfigMap{})

	updateDatabase(ctx, g, key, withTLS("pg-cert"))
	waitObserved(ctx, g, key, conditionIs(databasev1.ConditionDegraded, metav1.ConditionTrue, "TLSSecretMissing"))
	g.Consistently(func(g Gomega) {
		sts, cm := &appsv1.StatefulSet{}, &corev1.ConfigMap{}
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(before), sts)).To(Succeed())
		g.Expect(sts.Generation).To(Equal(before.Generation), "the StatefulSet was changed")
		g.Expect(tlsVolumeOf(sts)).To(BeNil())
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(beforeCM), cm)).To(Succeed())
		g.Expect(cm.Data).To(Equal(beforeCM.Data), "the ConfigMap was changed")
	}).Should(Succeed())

	// A Secret labelled for this Database is watched: no annotation needed.
	labelled := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pg-cert", Labels: map[string]string{
		render.LabelManagedBy: "database-operator", render.LabelInstance: "pg",
	}}, Type: corev1.SecretTypeTLS, Data: issueFor(g, ns, "pg")}
	g.Expect(env.Client.Create(ctx, labelled)).To(Succeed())
	waitObserved(ctx, g, key, conditionIs(databasev1.ConditionDegraded, metav1.ConditionFalse))
	g.Eventually(func(g Gomega) {
		sts, cm := &appsv1.StatefulSet{}, &corev1.ConfigMap{}
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(before), sts)).To(Succeed())
		expectMounts(g, sts, "pg-cert")
		g.Expect(sts.Spec.Template.Annotations[render.ConfigChecksumAnnotation]).
			NotTo(Equal(before.Spec.Template.Annotations[render.ConfigChecksumAnnotation]), "the pods roll onto the TLS configuration")
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(beforeCM), cm)).To(Succeed())
		g.Expect(cm.Data["postgresql.conf"]).To(ContainSubstring("\nssl = on\n"))
	}).Should(Succeed())
}
