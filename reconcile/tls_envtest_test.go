package reconcile_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"maps"
	"math/big"
	"slices"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
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
	g.Expect(sts.Spec.Template.Annotations).To(HaveKeyWithValue(render.TLSCertificateAnnotation, render.TLSFingerprint(original.Data)),
		"the pod template carries the certificate's fingerprint")

	// Rotation: delete the Secret; the operator issues a new one and the
	// pods roll onto it.
	g.Expect(env.Client.Delete(ctx, original)).To(Succeed())
	g.Eventually(func(g Gomega) {
		renewed, sts := &corev1.Secret{}, &appsv1.StatefulSet{}
		g.Expect(env.Client.Get(ctx, secretKey, renewed)).To(Succeed())
		g.Expect(renewed.UID).NotTo(Equal(original.UID))
		g.Expect(env.Client.Get(ctx, key, sts)).To(Succeed())
		g.Expect(sts.Spec.Template.Annotations).To(HaveKeyWithValue(render.TLSCertificateAnnotation, render.TLSFingerprint(renewed.Data)))
	}).Should(Succeed())
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

	waitObserved(ctx, g, key, phaseIs(databasev1.PhaseFailed),
		degradedWith("TLSSecretMissing", "Secret pg-cert", "does not exist", "annotate the Database"))
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
	waitObserved(ctx, g, key, degradedWith("TLSSecretInvalid", "Secret pg-cert", "no key ca.crt"))
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

// backupEnv returns the environment of the backup CronJob's container.
func backupEnv(g Gomega, cj *batchv1.CronJob) map[string]string {
	containers := cj.Spec.JobTemplate.Spec.Template.Spec.Containers
	g.Expect(containers).To(HaveLen(1))
	env := map[string]string{}
	for _, e := range containers[0].Env {
		env[e.Name] = e.Value
	}
	return env
}

// TestTLSMissingSecretHoldsRollout: turning TLS on for a running Database
// with a Secret that does not exist leaves the StatefulSet, the ConfigMap
// and the backup CronJob as they are (a restarted pod would not find the
// files; a backup asking for TLS would fail against pods that do not offer
// it yet), until the Secret exists; a Secret with the operator's labels is
// noticed without annotating the Database, and then all three turn TLS on,
// the pod template carrying the certificate's fingerprint.
func TestTLSMissingSecretHoldsRollout(t *testing.T) {
	g, ctx := newG(t), ctxFor(t)
	ns := env.Namespace(t)
	db := readyDatabase(ctx, g, newDatabase(ns, "pg", withBackup(true)))
	key := client.ObjectKeyFromObject(db)
	before := get(ctx, g, ns, "pg", &appsv1.StatefulSet{})
	beforeCM := get(ctx, g, ns, "pg-config", &corev1.ConfigMap{})
	beforeCJ := get(ctx, g, ns, "pg-backup", &batchv1.CronJob{})
	g.Expect(backupEnv(g, beforeCJ)).NotTo(HaveKey("PGSSLMODE"))
	g.Expect(before.Spec.Template.Annotations).NotTo(HaveKey(render.TLSCertificateAnnotation), "no TLS, no fingerprint")

	updateDatabase(ctx, g, key, withTLS("pg-cert"))
	waitObserved(ctx, g, key, conditionIs(databasev1.ConditionDegraded, metav1.ConditionTrue, "TLSSecretMissing"))
	g.Consistently(func(g Gomega) {
		sts, cm, cj := &appsv1.StatefulSet{}, &corev1.ConfigMap{}, &batchv1.CronJob{}
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(before), sts)).To(Succeed())
		g.Expect(sts.Generation).To(Equal(before.Generation), "the StatefulSet was changed")
		g.Expect(tlsVolumeOf(sts)).To(BeNil())
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(beforeCM), cm)).To(Succeed())
		g.Expect(cm.Data).To(Equal(beforeCM.Data), "the ConfigMap was changed")
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(beforeCJ), cj)).To(Succeed())
		g.Expect(cj.Generation).To(Equal(beforeCJ.Generation), "the CronJob was changed")
		g.Expect(cj.Spec).To(Equal(beforeCJ.Spec), "the CronJob was changed")
	}).Should(Succeed())

	// A Secret labelled for this Database is watched: no annotation needed.
	labelled := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pg-cert", Labels: map[string]string{
		render.LabelManagedBy: "database-operator", render.LabelInstance: "pg",
	}}, Type: corev1.SecretTypeTLS, Data: issueFor(g, ns, "pg")}
	g.Expect(env.Client.Create(ctx, labelled)).To(Succeed())
	waitObserved(ctx, g, key, conditionIs(databasev1.ConditionDegraded, metav1.ConditionFalse))
	g.Eventually(func(g Gomega) {
		sts, cm, cj := &appsv1.StatefulSet{}, &corev1.ConfigMap{}, &batchv1.CronJob{}
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(before), sts)).To(Succeed())
		expectMounts(g, sts, "pg-cert")
		g.Expect(sts.Spec.Template.Annotations[render.ConfigChecksumAnnotation]).
			NotTo(Equal(before.Spec.Template.Annotations[render.ConfigChecksumAnnotation]), "the pods roll onto the TLS configuration")
		g.Expect(sts.Spec.Template.Annotations).To(HaveKeyWithValue(render.TLSCertificateAnnotation, render.TLSFingerprint(labelled.Data)))
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(beforeCM), cm)).To(Succeed())
		g.Expect(cm.Data["postgresql.conf"]).To(ContainSubstring("\nssl = on\n"))
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(beforeCJ), cj)).To(Succeed())
		g.Expect(backupEnv(g, cj)).To(HaveKeyWithValue("PGSSLMODE", "require"), "backups use TLS once the pods offer it")
	}).Should(Succeed())
}

// testCA is a CA that, unlike internal/pki, keeps its key, so it can
// renew a server certificate as cert-manager's CA issuer does: tls.crt
// and tls.key change, ca.crt stays.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(g Gomega) *testCA {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	g.Expect(err).NotTo(HaveOccurred())
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test issuer"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	g.Expect(err).NotTo(HaveOccurred())
	cert, err := x509.ParseCertificate(der)
	g.Expect(err).NotTo(HaveOccurred())
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns Secret data with a new server certificate for dnsNames,
// valid from notBefore to notAfter, and this CA.
func (ca *testCA) issue(g Gomega, serial int64, dnsNames []string, notBefore, notAfter time.Time) map[string][]byte {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	g.Expect(err).NotTo(HaveOccurred())
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: dnsNames[0]}, DNSNames: dnsNames,
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	g.Expect(err).NotTo(HaveOccurred())
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	g.Expect(err).NotTo(HaveOccurred())
	return map[string][]byte{
		"tls.crt": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"tls.key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		"ca.crt":  ca.pem,
	}
}

// TestTLSRenewalRollsPods: the engines read their certificate only when
// they start, so the pod template carries the fingerprint of the user
// Secret's certificate. A renewal (new tls.crt and tls.key, same ca.crt) in
// a Secret with the operator's labels rolls the pods without annotating
// the Database; a write that leaves the certificate as it was rolls
// nothing; an expired certificate, or one its ca.crt does not verify,
// degrades the Database (TLSSecretInvalid) and the pods stay on the last
// good certificate.
func TestTLSRenewalRollsPods(t *testing.T) {
	g, ctx := newG(t), ctxFor(t)
	ns := env.Namespace(t)
	ca := newTestCA(g)
	names := render.ServerDNSNames("pg", ns)
	now := time.Now()
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pg-cert", Labels: map[string]string{
		render.LabelManagedBy: "database-operator", render.LabelInstance: "pg",
	}}, Type: corev1.SecretTypeTLS, Data: ca.issue(g, 2, names, now.Add(-time.Hour), now.Add(time.Hour))}
	g.Expect(env.Client.Create(ctx, secret)).To(Succeed())
	db := readyDatabase(ctx, g, newDatabase(ns, "pg", withTLS("pg-cert"), withBackup(true)))
	key := client.ObjectKeyFromObject(db)
	secretKey := client.ObjectKeyFromObject(secret)
	updateSecret := func(change func(*corev1.Secret)) {
		t.Helper()
		g.Eventually(func(g Gomega) {
			s := &corev1.Secret{}
			g.Expect(env.Client.Get(ctx, secretKey, s)).To(Succeed())
			change(s)
			g.Expect(env.Client.Update(ctx, s)).To(Succeed())
		}).Should(Succeed())
	}

	first := get(ctx, g, ns, "pg", &appsv1.StatefulSet{})
	expectMounts(g, first, "pg-cert")
	g.Expect(first.Spec.Template.Annotations).To(HaveKeyWithValue(render.TLSCertificateAnnotation, render.TLSFingerprint(secret.Data)))
	checksum := first.Spec.Template.Annotations[render.ConfigChecksumAnnotation]
	stays := func(want *appsv1.StatefulSet, why string) {
		t.Helper()
		g.Consistently(func(g Gomega) {
			sts := &appsv1.StatefulSet{}
			g.Expect(env.Client.Get(ctx, key, sts)).To(Succeed())
			g.Expect(sts.Generation).To(Equal(want.Generation), why)
			g.Expect(sts.Spec.Template.Annotations).To(Equal(want.Spec.Template.Annotations), why)
		}).Should(Succeed())
	}

	// A write to the Secret that leaves its certificate alone (here an
	// annotation), and a reconcile for another reason: no roll.
	reconciled := reconciles(g)
	updateSecret(func(s *corev1.Secret) { s.Annotations = map[string]string{"test.example.com/touched": "1"} })
	g.Eventually(func(g Gomega) float64 { return reconciles(g) }).Should(BeNumerically(">", reconciled),
		"a labelled Secret's update is noticed")
	touchAnnotation(ctx, g, key, "1")
	stays(first, "the certificate did not change: the pods must not roll")

	// Renewed by the issuer: same CA, new certificate and key. Noticed
	// without annotating the Database, and the pods roll.
	renewed := ca.issue(g, 3, names, now.Add(-time.Minute), now.Add(2*time.Hour))
	g.Expect(renewed["ca.crt"]).To(Equal(secret.Data["ca.crt"]))
	updateSecret(func(s *corev1.Secret) { s.Data = renewed })
	var rolled *appsv1.StatefulSet
	g.Eventually(func(g Gomega) {
		rolled = &appsv1.StatefulSet{}
		g.Expect(env.Client.Get(ctx, key, rolled)).To(Succeed())
		g.Expect(rolled.Spec.Template.Annotations).To(HaveKeyWithValue(render.TLSCertificateAnnotation, render.TLSFingerprint(renewed)),
			"a renewed certificate rolls the pods")
	}).Should(Succeed())
	g.Expect(render.TLSFingerprint(renewed)).NotTo(Equal(render.TLSFingerprint(secret.Data)))
	g.Expect(rolled.Generation).To(BeNumerically(">", first.Generation))
	g.Expect(rolled.Spec.Template.Annotations[render.ConfigChecksumAnnotation]).To(Equal(checksum), "the configuration is the same")
	expectMounts(g, rolled, "pg-cert")
	waitObserved(ctx, g, key, conditionIs(databasev1.ConditionDegraded, metav1.ConditionFalse))
	cronJob := get(ctx, g, ns, "pg-backup", &batchv1.CronJob{})

	// Expired: degraded, and the pods, the configuration and the backups
	// stay on the last good certificate.
	expired := ca.issue(g, 4, names, now.Add(-2*time.Hour), now.Add(-time.Hour))
	updateSecret(func(s *corev1.Secret) { s.Data = expired })
	waitObserved(ctx, g, key, conditionIs(databasev1.ConditionDegraded, metav1.ConditionTrue, "TLSSecretInvalid"),
		func(g Gomega, db *databasev1.Database) {
			g.Expect(condition(g, db, databasev1.ConditionDegraded).Message).To(ContainSubstring("the certificate in tls.crt expired at"))
		})
	stays(rolled, "an expired certificate must not reach the pods")
	g.Expect(get(ctx, g, ns, "pg-backup", &batchv1.CronJob{}).Generation).To(Equal(cronJob.Generation))

	// Issued by another CA than ca.crt: degraded as well.
	foreign := newTestCA(g).issue(g, 5, names, now.Add(-time.Hour), now.Add(time.Hour))
	foreign["ca.crt"] = ca.pem
	updateSecret(func(s *corev1.Secret) { s.Data = foreign })
	waitObserved(ctx, g, key, conditionIs(databasev1.ConditionDegraded, metav1.ConditionTrue, "TLSSecretInvalid"),
		func(g Gomega, db *databasev1.Database) {
			g.Expect(condition(g, db, databasev1.ConditionDegraded).Message).To(ContainSubstring("ca.crt does not verify the certificate in tls.crt"))
		})
	stays(rolled, "a certificate ca.crt does not verify must not reach the pods")

	// Fixed: the pods roll onto the good certificate.
	fixed := ca.issue(g, 6, names, now.Add(-time.Minute), now.Add(3*time.Hour))
	updateSecret(func(s *corev1.Secret) { s.Data = fixed })
	waitObserved(ctx, g, key, conditionIs(databasev1.ConditionDegraded, metav1.ConditionFalse))
	g.Eventually(func(g Gomega) {
		sts := &appsv1.StatefulSet{}
		g.Expect(env.Client.Get(ctx, key, sts)).To(Succeed())
		g.Expect(sts.Spec.Template.Annotations).To(HaveKeyWithValue(render.TLSCertificateAnnotation, render.TLSFingerprint(fixed)))
	}).Should(Succeed())
}
