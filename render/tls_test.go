package render_test

import (
	"crypto/x509"
	"fmt"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/render"
)

// tls turns spec.tls on, with the operator's certificate when secretName is
// empty.
func tls(secretName string) dbOption {
	return func(db *databasev1.Database) {
		db.Spec.TLS = &databasev1.TLSSpec{Enabled: true, SecretName: secretName}
	}
}

// tlsDir is where the TLS Secret is mounted in the containers.
const tlsDir = "/etc/database-operator/tls"

// TestTLS renders both engines in every environment with the operator's and
// a user's certificate, and checks what TLS changes: the Secret mounted
// read-only (0440) into the database container, the engine configuration
// naming the mounted files, TLS-only TCP in production, and TLS for
// replication, backups and the exporter.
func TestTLS(t *testing.T) {
	type tlsCase struct {
		typ        databasev1.DatabaseType
		env        databasev1.Environment
		secretName string
	}
	var cases []tlsCase
	for _, typ := range []databasev1.DatabaseType{databasev1.PostgreSQL, databasev1.MySQL} {
		for _, env := range []databasev1.Environment{databasev1.Development, databasev1.Staging, databasev1.Production} {
			for _, secretName := range []string{"", "orders-cert"} {
				cases = append(cases, tlsCase{typ, env, secretName})
			}
		}
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s/%s/secret=%q", tc.typ, tc.env, tc.secretName), func(t *testing.T) {
			g := NewWithT(t)
			opts := []dbOption{environment(tc.env), replicas(2), backup(true), metrics(true), tls(tc.secretName)}
			db := newDatabase(tc.typ, facts[tc.typ].version, opts...)
			c := mustRender(t, db)
			wantSecret := "orders-tls"
			if tc.secretName != "" {
				wantSecret = tc.secretName
			}
			g.Expect(render.TLSSecretFor(db)).To(Equal(wantSecret))

			sts := typed[appsv1.StatefulSet](t, c.StatefulSet)
			pod := sts.Spec.Template.Spec
			var vol *corev1.Volume
			for i := range pod.Volumes {
				if pod.Volumes[i].Name == "tls" {
					vol = &pod.Volumes[i]
				}
			}
			g.Expect(vol).NotTo(BeNil(), "a tls volume")
			g.Expect(vol.Secret).NotTo(BeNil())
			g.Expect(vol.Secret.SecretName).To(Equal(wantSecret))
			g.Expect(*vol.Secret.DefaultMode).To(Equal(int32(0o440)), "readable by the fsGroup, not by others")
			g.Expect(vol.Secret.Items).To(ConsistOf(
				corev1.KeyToPath{Key: "tls.crt", Path: "tls.crt"},
				corev1.KeyToPath{Key: "tls.key", Path: "tls.key"},
				corev1.KeyToPath{Key: "ca.crt", Path: "ca.crt"}))
			tlsMount := corev1.VolumeMount{Name: "tls", MountPath: tlsDir, ReadOnly: true}
			g.Expect(containerNamed(g, pod.Containers, "database").VolumeMounts).To(ContainElement(tlsMount))

			off := typed[appsv1.StatefulSet](t, mustRender(t, newDatabase(tc.typ, facts[tc.typ].version, opts[:4]...)).StatefulSet)
			g.Expect(sts.Spec.Template.Annotations[render.ConfigChecksumAnnotation]).
				NotTo(Equal(off.Spec.Template.Annotations[render.ConfigChecksumAnnotation]), "turning TLS on rolls the pods")

			cm := typed[corev1.ConfigMap](t, c.ConfigMap)
			backupContainer := typed[batchv1.CronJob](t, c.BackupCronJob).Spec.JobTemplate.Spec.Template.Spec.Containers[0]
			exporter := containerNamed(g, pod.Containers, "exporter")
			production := tc.env == databasev1.Production
			switch tc.typ {
			case databasev1.PostgreSQL:
				conf := cm.Data["postgresql.conf"]
				g.Expect(conf).To(ContainSubstring("# TLS with the certificate of Secret " + wantSecret + ", mounted read-only.\n"))
				for _, l := range []string{"ssl = on", "ssl_cert_file = '" + tlsDir + "/tls.crt'", "ssl_key_file = '" + tlsDir + "/tls.key'",
					"ssl_ca_file = '" + tlsDir + "/ca.crt'", "ssl_min_protocol_version = 'TLSv1.2'"} {
					g.Expect(strings.Split(conf, "\n")).To(ContainElement(l))
				}
				hba := cm.Data["pg_hba.conf"]
				if production {
					g.Expect(hba).To(MatchRegexp(`(?m)^hostnossl +all +all +all +reject$`))
					g.Expect(hba).To(MatchRegexp(`(?m)^hostnossl +replication +all +all +reject$`))
					g.Expect(hba).To(MatchRegexp(`(?m)^hostssl +all +all +all +scram-sha-256$`))
					g.Expect(hba).To(MatchRegexp(`(?m)^hostssl +replication +replicator +all +scram-sha-256$`))
					g.Expect(hba).NotTo(MatchRegexp(`(?m)^host `), "no TCP line that admits plaintext")
				} else {
					g.Expect(hba).To(Equal(typed[corev1.ConfigMap](t, mustRender(t, newDatabase(tc.typ, "16", opts[:4]...)).ConfigMap).Data["pg_hba.conf"]),
						"outside production clients may choose")
				}
				// The agent's prepare step (copy, rewind, primary_conninfo)
				// runs in the database container.
				prepare := containerNamed(g, pod.Containers, "database")
				g.Expect(envByName(prepare)).To(HaveKeyWithValue("PGSSLMODE", HaveField("Value", "verify-full")))
				g.Expect(envByName(prepare)).To(HaveKeyWithValue("PRIMARY_HOST", HaveField("Value", "orders.shop.svc")))
				g.Expect(render.ServerDNSNames("orders", "shop")).To(ContainElement("orders.shop.svc"), "verify-full checks the name replicas connect to")
				g.Expect(envByName(prepare)).To(HaveKeyWithValue("PGSSLROOTCERT", HaveField("Value", tlsDir+"/ca.crt")))
				g.Expect(prepare.VolumeMounts).To(ContainElement(tlsMount))
				g.Expect(envByName(backupContainer)).To(HaveKeyWithValue("PGSSLMODE", HaveField("Value", "require")))
				g.Expect(envByName(exporter)).To(HaveKeyWithValue("DATA_SOURCE_URI", HaveField("Value", "127.0.0.1:5432/postgres?sslmode=require")))
			case databasev1.MySQL:
				conf := strings.Split(cm.Data["my.cnf"], "\n")
				for _, l := range []string{"ssl_ca = " + tlsDir + "/ca.crt", "ssl_cert = " + tlsDir + "/tls.crt",
					"ssl_key = " + tlsDir + "/tls.key", "tls_version = TLSv1.2,TLSv1.3"} {
					g.Expect(conf).To(ContainElement(l))
				}
				if production {
					g.Expect(conf).To(ContainElement("require_secure_transport = ON"))
				} else {
					g.Expect(conf).NotTo(ContainElement(ContainSubstring("require_secure_transport")))
				}
				initScript := cm.Data["initdb-replication.sh"]
				g.Expect(initScript).To(ContainSubstring("SOURCE_SSL=1, SOURCE_SSL_CA='" + tlsDir + "/ca.crt', SOURCE_SSL_VERIFY_SERVER_CERT=1;"))
				g.Expect(strings.Join(containerNamed(g, pod.Containers, "database").Command, " ")).To(ContainSubstring("SOURCE_SSL_VERIFY_SERVER_CERT=1"),
					"the re-pointed replication verifies the primary as the copied one does")
				g.Expect(initScript).To(ContainSubstring("--user=root --ssl-mode=VERIFY_IDENTITY --ssl-ca=" + tlsDir + "/ca.crt \\\n"))
				g.Expect(envByName(containerNamed(g, pod.Containers, "database"))).To(HaveKeyWithValue("PRIMARY_HOST", HaveField("Value", "orders.shop.svc")))
				g.Expect(envByName(containerNamed(g, pod.Containers, "database"))).To(HaveKeyWithValue("PRIMARY_TLS_CA", HaveField("Value", tlsDir+"/ca.crt")),
					"the agent's prepare step verifies the primary too")
				g.Expect(cm.Data["mysqld-exporter.cnf"]).To(ContainSubstring("[client]\nssl-ca = " + tlsDir + "/ca.crt\n"))
				g.Expect(exporter.Args).To(ContainElements("--config.my-cnf=/etc/mysqld-exporter/exporter.cnf", "--tls.insecure-skip-verify"))
				g.Expect(exporter.VolumeMounts).To(ContainElements(tlsMount,
					corev1.VolumeMount{Name: "exporter-config", MountPath: "/etc/mysqld-exporter", ReadOnly: true}))
				g.Expect(pod.Volumes).To(ContainElement(HaveField("Name", "exporter-config")))
			}
		})
	}
}

// TestTLSOffRendersNothing: spec.tls absent, empty or disabled renders the
// same objects as a Database that never had it.
func TestTLSOffRendersNothing(t *testing.T) {
	for _, typ := range []databasev1.DatabaseType{databasev1.PostgreSQL, databasev1.MySQL} {
		for name, off := range map[string]dbOption{
			"empty":    func(db *databasev1.Database) { db.Spec.TLS = &databasev1.TLSSpec{} },
			"disabled": func(db *databasev1.Database) { db.Spec.TLS = &databasev1.TLSSpec{Enabled: false} },
		} {
			t.Run(string(typ)+"/"+name, func(t *testing.T) {
				g := NewWithT(t)
				opts := []dbOption{environment(databasev1.Production), replicas(2), backup(true), metrics(true)}
				want := marshalChildren(t, mustRender(t, newDatabase(typ, facts[typ].version, opts...)))
				got := marshalChildren(t, mustRender(t, newDatabase(typ, facts[typ].version, append(opts, off)...)))
				g.Expect(string(got)).To(Equal(string(want)))
				g.Expect(render.TLSSecretFor(newDatabase(typ, facts[typ].version, off))).To(BeEmpty())
			})
		}
	}
}

// TestServerDNSNames: every Service under each of its names, and every pod
// through the headless Service.
func TestServerDNSNames(t *testing.T) {
	g := NewWithT(t)
	names := render.ServerDNSNames("orders", "shop")
	g.Expect(names[0]).To(Equal("orders.shop.svc"), "the usual name first: it becomes the common name")
	g.Expect(names).To(ConsistOf(
		"orders", "orders.shop", "orders.shop.svc", "orders.shop.svc.cluster.local",
		"orders-ro", "orders-ro.shop", "orders-ro.shop.svc", "orders-ro.shop.svc.cluster.local",
		"orders-headless", "orders-headless.shop", "orders-headless.shop.svc", "orders-headless.shop.svc.cluster.local",
		"*.orders-headless.shop.svc", "*.orders-headless.shop.svc.cluster.local"))
}

// TestPrimaryHostIsInTheCertificate: replicas of both engines reach the
// primary by the read-write Service's name, which the server certificate
// carries, so they can verify the host name (PostgreSQL sslmode=verify-full,
// MySQL VERIFY_IDENTITY and SOURCE_SSL_VERIFY_SERVER_CERT); the short name
// is not in the certificate.
func TestPrimaryHostIsInTheCertificate(t *testing.T) {
	g := NewWithT(t)
	g.Expect(render.PrimaryServiceHost("orders", "shop")).To(Equal("orders.shop.svc"))
	cert := &x509.Certificate{DNSNames: render.ServerDNSNames("orders", "shop")}
	g.Expect(cert.VerifyHostname(render.PrimaryServiceHost("orders", "shop"))).To(Succeed())
	g.Expect(cert.VerifyHostname("orders.shop")).To(Succeed())
	g.Expect(cert.VerifyHostname("orders.shop.svc.example")).NotTo(Succeed(), "a name outside the cluster's")
	other := &x509.Certificate{DNSNames: render.ServerDNSNames("orders", "other")}
	g.Expect(other.VerifyHostname(render.PrimaryServiceHost("orders", "shop"))).NotTo(Succeed(), "another namespace's certificate")
}
