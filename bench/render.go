package bench

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/render"
)

// RenderCase is one Database the render micro-benchmark renders. The
// same two cases are render/bench_test.go's BenchmarkRender, for
// `go test -bench . -benchmem ./render/`.
type RenderCase struct {
	Name string
	DB   *databasev1.Database
}

// RenderCases are a production PostgreSQL with replicas, backups and
// monitoring (the most children) and a development MySQL (the fewest), as
// the API server returns them (CRD defaults filled in).
func RenderCases() []RenderCase {
	meta := metav1.ObjectMeta{Namespace: "shop", UID: "0b1e6f1c-3c1d-4c38-9d7a-6a3b0f0f0001", Generation: 1}
	pg := &databasev1.Database{ObjectMeta: meta, Spec: databasev1.DatabaseSpec{
		Type: databasev1.PostgreSQL, Version: "16", Replicas: ptr.To[int32](3),
		Storage:     databasev1.StorageSpec{Size: resource.MustParse("10Gi")},
		Environment: databasev1.Production,
		Backup:      &databasev1.BackupSpec{Enabled: true, Schedule: "0 2 * * *", Retention: "7d"},
		Monitoring:  &databasev1.MonitoringSpec{Enabled: true, Metrics: true, Logging: true},
	}}
	pg.Name = "orders"
	my := &databasev1.Database{ObjectMeta: meta, Spec: databasev1.DatabaseSpec{
		Type: databasev1.MySQL, Version: "8.0", Replicas: ptr.To[int32](1),
		Storage:     databasev1.StorageSpec{Size: resource.MustParse("10Gi")},
		Environment: databasev1.Development,
		Backup:      &databasev1.BackupSpec{Schedule: "0 2 * * *", Retention: "7d"},
		Monitoring:  &databasev1.MonitoringSpec{},
	}}
	my.Name = "mysql-dev"
	return []RenderCase{{"postgresql-production", pg}, {"mysql-development", my}}
}

// RenderResult is one case's benchmark result.
type RenderResult struct {
	Name        string
	NsPerOp     int64
	AllocsPerOp int64
	BytesPerOp  int64
}

// BenchmarkRender renders db b.N times.
func BenchmarkRender(b *testing.B, db *databasev1.Database) {
	opts := render.DefaultOptions()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := render.Render(db, opts); err != nil {
			b.Fatal(err)
		}
	}
}

// RunRenderBenchmarks runs BenchmarkRender for every case with
// testing.Benchmark (about a second each).
func RunRenderBenchmarks() []RenderResult {
	var out []RenderResult
	for _, c := range RenderCases() {
		r := testing.Benchmark(func(b *testing.B) { BenchmarkRender(b, c.DB) })
		out = append(out, RenderResult{Name: c.Name, NsPerOp: r.NsPerOp(), AllocsPerOp: r.AllocsPerOp(), BytesPerOp: r.AllocedBytesPerOp()})
	}
	return out
}
