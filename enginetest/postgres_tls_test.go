package enginetest

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/internal/pki"
	"github.com/example/database-operator/render"
)

func withTLS(secretName string) dbOption {
	return func(db *databasev1.Database) {
		db.Spec.TLS = &databasev1.TLSSpec{Enabled: true, SecretName: secretName}
	}
}

// writeTLSSecret lays out the TLS Secret as the kubelet mounts it into the
// database container: the rendered volume's items, with its defaultMode,
// owned by root with the pod's fsGroup (the database user's group) as
// group. It returns the rendered postgresql.conf's ssl_*_file settings
// mapped to the local files, as -c overrides (the container paths are
// checked to be the mounted files), and the local ca.crt.
func writeTLSSecret(t *testing.T, r *rendered, dir string, owner osUser, bundle *pki.Bundle) (overrides []string, caFile string) {
	t.Helper()
	var vol *corev1.Volume
	for i, v := range r.sts.Spec.Template.Spec.Volumes {
		if v.Name == "tls" {
			vol = &r.sts.Spec.Template.Spec.Volumes[i]
		}
	}
	if vol == nil || vol.Secret == nil || vol.Secret.DefaultMode == nil {
		t.Fatalf("the StatefulSet has no tls Secret volume with a defaultMode: %+v", r.sts.Spec.Template.Spec.Volumes)
	}
	var mountPath string
	for _, m := range r.database(t).VolumeMounts {
		if m.Name == vol.Name {
			mountPath = m.MountPath
		}
	}
	if mountPath == "" {
		t.Fatal("the database container does not mount the tls volume")
	}
	data := map[string][]byte{render.TLSCertKey: bundle.CertPEM, render.TLSPrivateKeyKey: bundle.KeyPEM, render.TLSCAKey: bundle.CAPEM}
	local := map[string]string{}
	for _, item := range vol.Secret.Items {
		path := filepath.Join(dir, item.Path)
		writeFile(t, path, string(data[item.Key]), os.FileMode(*vol.Secret.DefaultMode))
		chown(t, path, osUser{name: "root", uid: 0, gid: owner.gid})
		local[mountPath+"/"+item.Path] = path
	}
	conf := r.config(t, "postgresql.conf")
	for _, name := range []string{"ssl_cert_file", "ssl_key_file", "ssl_ca_file"} {
		m := regexp.MustCompile(`(?m)^` + name + ` = '([^']+)'$`).FindStringSubmatch(conf)
		if m == nil || local[m[1]] == "" {
			t.Fatalf("postgresql.conf: %s does not name a mounted Secret file (mounted: %v)", name, local)
		}
		overrides = append(overrides, "-c", name+"="+local[m[1]])
	}
	return overrides, local[mountPath+"/"+render.TLSCAKey]
}

// TestPostgresTLS runs real PostgreSQL 15 with the rendered TLS
// configuration and pg_hba.conf, a certificate from internal/pki for the
// Database's names, and the Secret's files laid out with the rendered mode
// (PostgreSQL refuses a key others may read). A client that verifies the
// full chain and host name (sslmode=verify-full, ca.crt, host
// orders.shop.svc or a pod's name, reached at 127.0.0.1 with hostaddr)
// connects over TLS; a host name the certificate does not carry fails; a
// plaintext client is refused in production and admitted elsewhere.
func TestPostgresTLS(t *testing.T) {
	p := requirePostgres(t)
	s := newSecret("orders", "app")
	bundle, err := pki.Issue(pki.Request{CAName: "orders.shop database CA", DNSNames: render.ServerDNSNames("orders", "shop"),
		Now: time.Now(), Rand: rand.Reader})
	if err != nil {
		t.Fatal(err)
	}

	for _, env := range []databasev1.Environment{databasev1.Production, databasev1.Staging} {
		t.Run(string(env), func(t *testing.T) {
			g := NewWithT(t)
			r := renderDB(t, newDatabase("orders", databasev1.PostgreSQL, "15", withEnvironment(env), withReplicas(2), withTLS("")))
			in := newPGInstance(t, p, r, s, "orders-0")
			overrides, caFile := writeTLSSecret(t, r, mkdir(t, filepath.Join(in.dir, "tls"), rootUser, 0o755), p.user, bundle)
			in.cfg.containerArgs = append(in.cfg.containerArgs, overrides...)
			in.mustInit(t, nil)
			in.start(t)
			defer in.stop()

			connect := func(conninfo string) (string, error) {
				return run(t, 30*time.Second, rootUser, map[string]string{"PGPASSWORD": s["root-password"], "PGCONNECT_TIMEOUT": "5"}, "",
					filepath.Join(p.bin, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
					"--dbname="+fmt.Sprintf("%s hostaddr=127.0.0.1 port=%d user=postgres dbname=orders", conninfo, in.port),
					"--command=SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
			}
			out, err := in.asSuperuser(t, "SHOW ssl")
			g.Expect(err).NotTo(HaveOccurred(), out)
			g.Expect(out).To(Equal("on"))

			for _, host := range []string{"orders.shop.svc", "orders", "orders-ro.shop.svc.cluster.local", "orders-1.orders-headless.shop.svc"} {
				out, err := connect("host=" + host + " sslmode=verify-full sslrootcert=" + caFile)
				g.Expect(err).NotTo(HaveOccurred(), "verify-full as %s: %s", host, out)
				g.Expect(strings.TrimSpace(out)).To(Equal("t"), "the connection to %s is encrypted", host)
			}

			out, err = connect("host=other.shop.svc sslmode=verify-full sslrootcert=" + caFile)
			g.Expect(err).To(HaveOccurred(), "a host name the certificate does not carry")
			g.Expect(out).To(ContainSubstring(`does not match host name "other.shop.svc"`))

			out, err = connect("host=orders.shop.svc sslmode=disable")
			if env == databasev1.Production {
				g.Expect(err).To(HaveOccurred(), "plaintext in production")
				g.Expect(out).To(ContainSubstring("pg_hba.conf rejects connection"))
				g.Expect(out).To(ContainSubstring("no encryption"))
			} else {
				g.Expect(err).NotTo(HaveOccurred(), out)
				g.Expect(strings.TrimSpace(out)).To(Equal("f"), "outside production plaintext is allowed")
			}
		})
	}
}
