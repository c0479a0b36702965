package render_test

import (
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/render"
)

// TestTLSFingerprint: 16 hex digits, the same for the same certificate and
// CA, different when either changes, independent of the private key, and
// unambiguous about where tls.crt ends.
func TestTLSFingerprint(t *testing.T) {
	g := NewWithT(t)
	secret := func(cert, key, ca string) map[string][]byte {
		return map[string][]byte{render.TLSCertKey: []byte(cert), render.TLSPrivateKeyKey: []byte(key), render.TLSCAKey: []byte(ca)}
	}
	fp := render.TLSFingerprint(secret("cert", "key", "ca"))
	g.Expect(fp).To(MatchRegexp(`^[0-9a-f]{16}$`))
	g.Expect(render.TLSFingerprint(secret("cert", "key", "ca"))).To(Equal(fp), "deterministic")
	g.Expect(render.TLSFingerprint(secret("cert", "other key", "ca"))).To(Equal(fp), "the key is not hashed")
	g.Expect(render.TLSFingerprint(secret("renewed cert", "key", "ca"))).NotTo(Equal(fp), "a renewed certificate")
	g.Expect(render.TLSFingerprint(secret("cert", "key", "new ca"))).NotTo(Equal(fp), "a new CA")
	g.Expect(render.TLSFingerprint(secret("certc", "key", "a"))).NotTo(Equal(fp), "the boundary between tls.crt and ca.crt counts")
	g.Expect(render.TLSFingerprint(secret("", "key", "ca"))).To(BeEmpty(), "no certificate, no fingerprint")
}

// TestObservedTLSCertificate: with TLS on, the observed fingerprint is the
// pod template's annotation and a new one changes nothing else (the
// ConfigMap and its checksum stay, only the pods roll); with TLS off an
// observed fingerprint changes nothing at all; nothing observed renders as
// Render does.
func TestObservedTLSCertificate(t *testing.T) {
	for _, typ := range []databasev1.DatabaseType{databasev1.PostgreSQL, databasev1.MySQL} {
		t.Run(string(typ), func(t *testing.T) {
			g := NewWithT(t)
			renderWith := func(db *databasev1.Database, fp string) *render.Children {
				c, err := render.RenderObserved(db, render.DefaultOptions(), render.Observed{TLSCertificate: fp})
				g.Expect(err).NotTo(HaveOccurred())
				return c
			}
			first := render.TLSFingerprint(map[string][]byte{render.TLSCertKey: []byte("first"), render.TLSCAKey: []byte("ca")})
			renewed := render.TLSFingerprint(map[string][]byte{render.TLSCertKey: []byte("renewed"), render.TLSCAKey: []byte("ca")})
			g.Expect(first).NotTo(Equal(renewed))

			db := newDatabase(typ, facts[typ].version, environment(databasev1.Production), replicas(2), backup(true), metrics(true), tls(""))
			a, b := renderWith(db, first), renderWith(db, renewed)
			stsA, stsB := typed[appsv1.StatefulSet](t, a.StatefulSet), typed[appsv1.StatefulSet](t, b.StatefulSet)
			g.Expect(stsA.Spec.Template.Annotations).To(HaveKeyWithValue(render.TLSCertificateAnnotation, first))
			g.Expect(stsB.Spec.Template.Annotations).To(HaveKeyWithValue(render.TLSCertificateAnnotation, renewed))
			g.Expect(stsA.Annotations).NotTo(HaveKey(render.TLSCertificateAnnotation), "on the pod template only")
			g.Expect(stsB.Spec.Template.Annotations[render.ConfigChecksumAnnotation]).
				To(Equal(stsA.Spec.Template.Annotations[render.ConfigChecksumAnnotation]), "the configuration is the same")
			delete(stsA.Spec.Template.Annotations, render.TLSCertificateAnnotation)
			delete(stsB.Spec.Template.Annotations, render.TLSCertificateAnnotation)
			g.Expect(stsB).To(Equal(stsA), "only the annotation differs")
			a.StatefulSet, b.StatefulSet = nil, nil
			g.Expect(marshalChildren(t, b)).To(Equal(marshalChildren(t, a)), "no other child depends on the fingerprint")

			unobserved := typed[appsv1.StatefulSet](t, renderWith(db, "").StatefulSet)
			g.Expect(unobserved.Spec.Template.Annotations).NotTo(HaveKey(render.TLSCertificateAnnotation), "nothing observed, no annotation")
			plain, err := render.Render(db, render.DefaultOptions())
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(marshalChildren(t, renderWith(db, ""))).To(Equal(marshalChildren(t, plain)), "Render is RenderObserved with nothing observed")

			off := newDatabase(typ, facts[typ].version, environment(databasev1.Production), replicas(2), backup(true), metrics(true))
			plain, err = render.Render(off, render.DefaultOptions())
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(marshalChildren(t, renderWith(off, first))).To(Equal(marshalChildren(t, plain)), "with TLS off the fingerprint changes nothing")
		})
	}
}
