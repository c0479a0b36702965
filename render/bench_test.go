package render_test

import (
	"testing"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/render"
)

// BenchmarkRender renders a typical Database per case: a production
// PostgreSQL with replicas, backups and monitoring (the most children) and
// a development MySQL (the fewest). bench/render.go runs the same cases
// for `make bench`'s table.
//
//	go test -run '^$' -bench . -benchmem ./render/
func BenchmarkRender(b *testing.B) {
	cases := []struct {
		name string
		db   *databasev1.Database
	}{
		{"postgresql-production", newDatabase(databasev1.PostgreSQL, "16",
			replicas(3), environment(databasev1.Production), backup(true), metrics(true), logging(true))},
		{"mysql-development", newDatabase(databasev1.MySQL, "8.0")},
	}
	opts := render.DefaultOptions()
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := render.Render(c.db, opts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
