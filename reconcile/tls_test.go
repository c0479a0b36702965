package reconcile

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/internal/pki"
	"github.com/example/database-operator/render"
)

// TestCheckTLSSecret: a Secret is usable when it has the three keys, its
// certificate and key belong together, the certificate has not expired at
// the reconciler's clock and ca.crt verifies it; otherwise TLSSecretInvalid
// names the key and the problem, never a value.
func TestCheckTLSSecret(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	db := &databasev1.Database{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "orders"}}
	issue := func(at time.Time, validity time.Duration) *pki.Bundle {
		t.Helper()
		b, err := pki.Issue(pki.Request{CAName: "test CA", DNSNames: render.ServerDNSNames("orders", "shop"),
			Now: at, Validity: validity, Rand: rand.Reader})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	data := func(b *pki.Bundle) map[string][]byte {
		return map[string][]byte{render.TLSCertKey: b.CertPEM, render.TLSPrivateKeyKey: b.KeyPEM, render.TLSCAKey: b.CAPEM}
	}
	valid, other := issue(now.Add(-24*time.Hour), 90*24*time.Hour), issue(now, 0)
	// A certificate for the pods and the read-only Service, without the
	// read-write Service's name.
	noPrimaryService, err := pki.Issue(pki.Request{CAName: "test CA", DNSNames: []string{"*.orders-headless.shop.svc", "orders-ro.shop.svc"},
		Now: now.Add(-time.Hour), Rand: rand.Reader})
	if err != nil {
		t.Fatal(err)
	}
	replicated := db.DeepCopy()
	replicated.Spec.Replicas = ptr.To[int32](2)
	autoscaled := db.DeepCopy()
	autoscaled.Spec.Autoscaling = &databasev1.AutoscalingSpec{MaxReplicas: 3}
	chain := data(valid)
	// An intermediate-free chain in tls.crt is fine; so is the CA appended
	// (cert-manager's CA issuer may put the chain in tls.crt).
	chain[render.TLSCertKey] = append(append([]byte{}, valid.CertPEM...), valid.CAPEM...)

	cases := []struct {
		name  string
		db    *databasev1.Database // db when nil
		data  map[string][]byte
		words []string // nil: usable
	}{
		{name: "valid", data: data(valid)},
		{name: "valid with replicas", db: replicated, data: data(valid)},
		{name: "no read-write Service name, one pod", data: data(noPrimaryService)},
		{name: "no read-write Service name, replicas", db: replicated, data: data(noPrimaryService),
			words: []string{"does not name orders.shop.svc, the read-write Service replicas connect to", "add it to its DNS names"}},
		{name: "no read-write Service name, autoscaled", db: autoscaled, data: data(noPrimaryService),
			words: []string{"does not name orders.shop.svc"}},
		{name: "valid, chain in tls.crt", data: chain},
		{name: "issued by an issuer whose clock is ahead", data: data(issue(now.Add(3*time.Hour), 0))},
		{name: "expired", data: data(issue(now.Add(-91*24*time.Hour), 90*24*time.Hour)),
			words: []string{"Secret orders-cert", "the certificate in tls.crt expired at 2026-02-28T12:00:00Z", "fix the Secret"}},
		{name: "another CA", data: func() map[string][]byte { d := data(valid); d[render.TLSCAKey] = other.CAPEM; return d }(),
			words: []string{"Secret orders-cert", "ca.crt does not verify the certificate in tls.crt", "unknown authority"}},
		{name: "CA not PEM", data: func() map[string][]byte { d := data(valid); d[render.TLSCAKey] = []byte("not a certificate"); return d }(),
			words: []string{"ca.crt holds no PEM certificate"}},
		{name: "key of another certificate", data: func() map[string][]byte { d := data(valid); d[render.TLSPrivateKeyKey] = other.KeyPEM; return d }(),
			words: []string{"tls.crt and tls.key are not a PEM certificate and its private key"}},
		{name: "no ca.crt", data: func() map[string][]byte { d := data(valid); delete(d, render.TLSCAKey); return d }(),
			words: []string{"Secret orders-cert has no key ca.crt"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "orders-cert"}, Data: tc.data}
			target := db
			if tc.db != nil {
				target = tc.db
			}
			problem := checkTLSSecret(target, secret, true, now)
			if tc.words == nil {
				g.Expect(problem).To(BeNil())
				return
			}
			g.Expect(problem).NotTo(BeNil())
			g.Expect(problem.reason).To(Equal("TLSSecretInvalid"))
			for _, w := range tc.words {
				g.Expect(problem.message).To(ContainSubstring(w))
			}
			for key, value := range tc.data {
				g.Expect(problem.message).NotTo(ContainSubstring(string(value)), "the message carries %s", key)
			}
			g.Expect(problem.message).NotTo(ContainSubstring("PRIVATE KEY"))
		})
	}

	t.Run("the operator's own Secret, at the end of its validity", func(t *testing.T) {
		g := NewWithT(t)
		secret, err := newTLSSecret(db, now, rand.Reader)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(checkTLSSecret(db, secret, false, now)).To(BeNil())
		g.Expect(checkTLSSecret(db, secret, false, now.Add(pki.DefaultValidity-time.Minute))).To(BeNil())
		problem := checkTLSSecret(db, secret, false, now.Add(pki.DefaultValidity+time.Minute))
		g.Expect(problem).NotTo(BeNil())
		g.Expect(problem.message).To(ContainSubstring("expired"))
		g.Expect(problem.message).To(ContainSubstring("delete it so the operator creates a new one"))
	})
}

// TestTLSDependentsHeldBack: every child applied with the others whose
// rendering changes when TLS is turned on is one withoutTLSDependents
// holds back, so while the TLS Secret is unusable nothing that expects TLS
// reaches the cluster; the children that do not depend on TLS are still
// applied.
func TestTLSDependentsHeldBack(t *testing.T) {
	served := MonitoringAPIs{ServiceMonitors: true, PrometheusRules: true}
	for _, typ := range []databasev1.DatabaseType{databasev1.PostgreSQL, databasev1.MySQL} {
		for _, env := range []databasev1.Environment{databasev1.Development, databasev1.Production} {
			t.Run(fmt.Sprintf("%s/%s", typ, env), func(t *testing.T) {
				g := NewWithT(t)
				version := map[databasev1.DatabaseType]string{databasev1.PostgreSQL: "16", databasev1.MySQL: "8.4"}[typ]
				db := &databasev1.Database{
					ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "orders", UID: "u"},
					Spec: databasev1.DatabaseSpec{Type: typ, Version: version, Environment: env, Replicas: ptr.To[int32](2),
						Backup:        &databasev1.BackupSpec{Enabled: true},
						Monitoring:    &databasev1.MonitoringSpec{Enabled: true, Metrics: true},
						NetworkPolicy: &databasev1.NetworkPolicySpec{Enabled: ptr.To(true)},
						Autoscaling: &databasev1.AutoscalingSpec{MinReplicas: ptr.To[int32](2), MaxReplicas: 4,
							TargetCPUUtilizationPercentage: ptr.To[int32](70)}},
				}
				plain, err := render.Render(db, render.DefaultOptions())
				g.Expect(err).NotTo(HaveOccurred())
				withTLS := db.DeepCopy()
				withTLS.Spec.TLS = &databasev1.TLSSpec{Enabled: true}
				rendered, err := render.RenderObserved(withTLS, render.DefaultOptions(), render.Observed{TLSCertificate: "0123456789abcdef"})
				g.Expect(err).NotTo(HaveOccurred())

				// The StatefulSet is applied apart, and held back by the
				// degradation itself.
				g.Expect(json.Marshal(rendered.StatefulSet)).NotTo(MatchJSON(must(json.Marshal(plain.StatefulSet))))
				before := map[string]string{}
				for _, ch := range children(plain, served) {
					before[ch.kind+"/"+ch.name] = string(must(json.Marshal(ch.ac)))
				}
				all := children(rendered, served)
				dependent := map[string]bool{}
				for _, ch := range all {
					if string(must(json.Marshal(ch.ac))) != before[ch.kind+"/"+ch.name] {
						dependent[ch.kind+"/"+ch.name] = true
						g.Expect(tlsDependentKinds).To(HaveKey(ch.kind), "%s %s depends on TLS but is not held back", ch.kind, ch.name)
					}
				}
				g.Expect(dependent).To(HaveKey("ConfigMap/orders-config"))
				if typ == databasev1.PostgreSQL {
					g.Expect(dependent).To(HaveKey("CronJob/orders-backup"), "PGSSLMODE=require")
				}

				held := withoutTLSDependents(all)
				for _, ch := range held {
					g.Expect(tlsDependentKinds).NotTo(HaveKey(ch.kind))
				}
				g.Expect(held).To(HaveLen(len(all)-2), "only the ConfigMap and the CronJob are held back")
			})
		}
	}
}

// must returns v, or panics with err: for values a test builds itself.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
