package enginetest

import (
	"fmt"
	"regexp"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	databasev1 "github.com/example/database-operator/apis/database/v1"
)

// TestPostgresRenderedConfigIsAccepted starts a real PostgreSQL 15 server with
// the rendered postgresql.conf of every environment, with logging on and off,
// the way the official image does (postgres -c config_file=<file>). Only what
// points into the container or the cluster is overridden, on the command
// line: hba_file (to the rendered pg_hba.conf written locally), port,
// listen_addresses (loopback) and unix_socket_directories; the data directory
// is PGDATA. The server must start, load the file (its settings show) and
// answer queries; pg_hba.conf must refuse a wrong password and accept the
// right one over TCP with SCRAM, and refuse passwordless local connections.
func TestPostgresRenderedConfigIsAccepted(t *testing.T) {
	p := requirePostgres(t)
	s := newSecret("orders", "app")

	// One data directory for every configuration: initdb once, then start
	// and stop the server with each rendered file.
	base := renderDB(t, newDatabase("orders", databasev1.PostgreSQL, "15"))
	data := newPGInstance(t, p, base, s, "orders-0")
	data.mustInit(t, nil)

	for _, env := range []databasev1.Environment{databasev1.Development, databasev1.Staging, databasev1.Production} {
		for _, logging := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/logging=%t", env, logging), func(t *testing.T) {
				g := NewWithT(t)
				r := renderDB(t, newDatabase("orders", databasev1.PostgreSQL, "15", withEnvironment(env), withLogging(logging)))
				in := newPGInstance(t, p, r, s, "orders-0")
				in.pgdata = data.pgdata
				in.start(t)
				defer in.stop()

				conf := r.config(t, "postgresql.conf")
				setting := func(name string) string {
					m := regexp.MustCompile(`(?m)^` + name + ` = '?([^'\n]*)'?$`).FindStringSubmatch(conf)
					g.Expect(m).NotTo(BeNil(), "postgresql.conf sets %s", name)
					return m[1]
				}
				show := func(name string) string {
					out, err := in.asSuperuser(t, "SHOW "+name)
					g.Expect(err).NotTo(HaveOccurred(), out)
					return out
				}
				// The rendered values are in force.
				g.Expect(show("max_connections")).To(Equal(setting("max_connections")))
				for _, size := range []string{"shared_buffers", "effective_cache_size", "maintenance_work_mem"} {
					out, err := in.asSuperuser(t, fmt.Sprintf("SELECT pg_size_bytes(current_setting('%s')) = pg_size_bytes('%s')", size, setting(size)))
					g.Expect(err).NotTo(HaveOccurred(), out)
					g.Expect(out).To(Equal("t"), "%s is %s", size, setting(size))
				}
				g.Expect(show("log_statement")).To(Equal(setting("log_statement")))
				g.Expect(show("wal_level")).To(Equal("replica"))
				g.Expect(show("password_encryption")).To(Equal("scram-sha-256"))
				g.Expect(show("config_file")).To(Equal(in.cfg.confFile))
				g.Expect(show("hba_file")).To(Equal(in.cfg.hbaFile))
				if logging {
					g.Expect(show("log_min_duration_statement")).To(Equal("250ms"))
					g.Expect(show("log_connections")).To(Equal("on"))
				} else {
					g.Expect(show("log_min_duration_statement")).To(Equal("-1"))
				}
				out, err := in.asSuperuser(t, "SELECT count(*) FROM pg_settings WHERE sourcefile = current_setting('config_file')")
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(out).NotTo(Equal("0"))

				// pg_hba.conf: SCRAM over TCP.
				out, err = in.query(t, "postgres", "wrong password", "postgres", "SELECT 1")
				g.Expect(err).To(HaveOccurred())
				g.Expect(out).To(ContainSubstring(`password authentication failed for user "postgres"`))
				out, err = in.query(t, "postgres", s["root-password"], "postgres", "SELECT 1")
				g.Expect(err).NotTo(HaveOccurred(), out)
				g.Expect(out).To(Equal("1"))
				out, err = in.asSuperuser(t, "SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = 'postgres'")
				g.Expect(err).NotTo(HaveOccurred(), out)
				g.Expect(out).To(Equal("t"))
				out, err = in.asSuperuser(t, "SELECT DISTINCT auth_method FROM pg_hba_file_rules ORDER BY 1")
				g.Expect(err).NotTo(HaveOccurred(), out)
				g.Expect(out).To(Equal("scram-sha-256"), "every pg_hba.conf line asks for SCRAM")

				// Local socket connections need the password too.
				out, err = run(t, 10*time.Second, rootUser, nil, "", p.bin+"/psql", "-X", "-w", "--host="+in.cfg.socketDir,
					fmt.Sprintf("--port=%d", in.port), "--username=postgres", "--dbname=postgres", "--command=SELECT 1")
				g.Expect(err).To(HaveOccurred())
				g.Expect(out).To(ContainSubstring("no password supplied"))
			})
		}
	}
}
