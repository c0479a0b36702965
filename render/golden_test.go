package render_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/render"
)

var update = flag.Bool("update", false, "rewrite render/testdata/*.golden.yaml from the current output")

// goldenSamples are the Databases whose full output is checked in. The first
// is the original tutorial's sample.
var goldenSamples = map[string]*databasev1.Database{
	"mysql-tutorial": newDatabase(databasev1.MySQL, "8.0", storageClass("standard")),
	"postgres-production": newDatabase(databasev1.PostgreSQL, "16", environment(databasev1.Production), replicas(3),
		backup(true), metrics(true), logging(true)),
	"mysql-staging-backup": newDatabase(databasev1.MySQL, "8.4", environment(databasev1.Staging), replicas(2),
		backup(true), logging(true), func(db *databasev1.Database) {
			db.Spec.Backup.Schedule = "30 3 * * *"
			db.Spec.Backup.Retention = "14d"
			db.Spec.Backup.Size = ptr(resource.MustParse("50Gi"))
		}),
	"postgres-custom-resources": newDatabase(databasev1.PostgreSQL, "14", func(db *databasev1.Database) {
		db.Spec.Image = "registry.example.com/mirror/postgres:14.12"
		db.Spec.Resources = &corev1ResourceRequirements
	}, metrics(true)),
	"postgres-restore-named": newDatabase(databasev1.PostgreSQL, "16", replicas(2), backup(true),
		restore("orders-old", "orders-old-20250102T020000Z.sql.gz")),
	"mysql-restore-latest": newDatabase(databasev1.MySQL, "8.4", restore("orders-old", "")),
	"postgres-autoscaling-networkpolicy": newDatabase(databasev1.PostgreSQL, "16", environment(databasev1.Staging), replicas(2),
		backup(true), metrics(true), autoscaling(2, 6, ptr(int32(70)), ptr(int32(80)), ptr(int32(600))),
		networkPolicy(ptr(true), "observability", appPeer("shop-api"), teamNamespacePeer("analytics"))),
	"postgres-tls-production": newDatabase(databasev1.PostgreSQL, "16", environment(databasev1.Production), replicas(2),
		backup(true), metrics(true), tls("")),
	"postgres-archive-s3": newDatabase(databasev1.PostgreSQL, "17", environment(databasev1.Production), replicas(3),
		s3Backup, func(db *databasev1.Database) {
			db.Spec.Backup.ArchiveTimeout = "1m"
			db.Spec.Backup.RestoreCheck = &databasev1.RestoreCheckSpec{Schedule: "0 6 * * *", Query: "SELECT count(*) FROM orders"}
		}),
	"postgres-point-in-time": newDatabase(databasev1.PostgreSQL, "17", replicas(2), s3Backup,
		pointInTime("orders", "2026-12-02T23:15:00Z"), func(db *databasev1.Database) {
			// The source's archive is in team-a/prod/orders/; this Database
			// archives to team-a/restored/orders-restored/.
			db.Name = "orders-restored"
			source := *db.Spec.Backup.S3
			db.Spec.Restore.PointInTime.S3 = &source
			db.Spec.Backup.S3.Path = "team-a/restored"
		}),
	"mysql-tls-secret": newDatabase(databasev1.MySQL, "8.4", environment(databasev1.Production), replicas(2),
		metrics(true), tls("orders-cert")),
	"mysql-archive-s3": newDatabase(databasev1.MySQL, "8.4", replicas(2), metrics(true), s3Backup, func(db *databasev1.Database) {
		db.Spec.Backup.RestoreCheck = &databasev1.RestoreCheckSpec{Schedule: "0 6 * * *"}
	}),
	"mysql-point-in-time": newDatabase(databasev1.MySQL, "8.4", replicas(2), s3Backup,
		pointInTime("orders", "2026-12-02T23:15:00Z"), func(db *databasev1.Database) {
			db.Name = "orders-restored"
			source := *db.Spec.Backup.S3
			source.CASecret = "s3-ca"
			db.Spec.Restore.PointInTime.S3 = &source
			db.Spec.Backup.S3.Path = "team-a/restored"
		}),
}

// goldenObserved is what the golden samples are rendered with, as if the
// reconciler had read it: with TLS on the pod template carries the
// certificate's fingerprint; with TLS off it must change nothing, so the
// other golden files are also those of a plain Render.
var goldenObserved = render.Observed{TLSCertificate: render.TLSFingerprint(map[string][]byte{
	render.TLSCertKey: []byte("golden tls.crt"), render.TLSCAKey: []byte("golden ca.crt"),
})}

// marshalChildren writes every child as one YAML stream in a fixed order.
func marshalChildren(t testing.TB, c *render.Children) []byte {
	t.Helper()
	var out bytes.Buffer
	for _, obj := range []any{c.StatefulSet, c.HeadlessService, c.Service, c.ReadService, c.ConfigMap,
		c.PodDisruptionBudget, c.BackupCronJob, c.RestoreCheckCronJob, c.BackupPVC, c.ServiceMonitor, c.PrometheusRule, c.HorizontalPodAutoscaler, c.NetworkPolicy} {
		if isNil(obj) {
			continue
		}
		b, err := yaml.Marshal(obj)
		if err != nil {
			t.Fatalf("marshal %T: %v", obj, err)
		}
		out.WriteString("---\n")
		out.Write(b)
	}
	return out.Bytes()
}

func TestGolden(t *testing.T) {
	for name, db := range goldenSamples {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			c, err := render.RenderObserved(db, render.DefaultOptions(), goldenObserved)
			g.Expect(err).NotTo(HaveOccurred())
			got := marshalChildren(t, c)
			path := filepath.Join("testdata", name+".golden.yaml")
			if *update {
				g.Expect(os.WriteFile(path, got, 0o644)).To(Succeed())
			}
			want, err := os.ReadFile(path)
			g.Expect(err).NotTo(HaveOccurred(), "run 'make golden' to create %s", path)
			g.Expect(string(got)).To(Equal(string(want)), "output differs from %s; if intended, run 'make golden' and review the diff", path)
		})
	}
}

// TestDeterministic renders the same Databases many times: the bytes must not
// change (no map-order, clock or randomness leaks).
func TestDeterministic(t *testing.T) {
	g := NewWithT(t)
	for name, db := range goldenSamples {
		first, err := render.RenderObserved(db, render.DefaultOptions(), goldenObserved)
		g.Expect(err).NotTo(HaveOccurred())
		want := marshalChildren(t, first)
		for i := 0; i < 20; i++ {
			again, err := render.RenderObserved(db.DeepCopy(), render.DefaultOptions(), goldenObserved)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(marshalChildren(t, again)).To(Equal(want), name)
		}
	}
}
