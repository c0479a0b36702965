package enginetest

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/example/database-operator/agent"
	"github.com/example/database-operator/archive"
)

// BenchmarkMySQLRecoveryPoint_MariaDBStandIn is BenchmarkRecoveryPoint for
// MySQL's binary-log archiving, on MariaDB standing in for MySQL: a fresh
// server per run with its own archive and base dump, the agent's shipper
// every second with the default archive timeout (30 s), a row every
// 100 ms; after a warm-up of one timeout the server is killed (SIGKILL:
// nothing more shipped) at a moment uniform over the next 30 s, the
// archive is restored to its end into a new server, and the recovery point
// is the time from the loss back to the newest restored row's insert.
func BenchmarkMySQLRecoveryPoint_MariaDBStandIn(b *testing.B) {
	runs := 10
	if v := os.Getenv("RECOVERY_POINT_RUNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("RECOVERY_POINT_RUNS=%q: want a positive number", v)
		}
		runs = n
	}
	m := requireMariaDB(b)
	agentBin := agentBinary(b, rootUser)
	var points []time.Duration
	for run := 1; run <= runs; run++ {
		env := s3Env(b, "orders")
		a, _, err := archive.FromEnv("", func(k string) string { return env[k] })
		if err != nil {
			b.Fatal(err)
		}
		src := startMariaDBOn(b, m, "source root password", freePort(b), "--server-id=1", "--log-bin=binlog", "--binlog-format=ROW", "--max-binlog-size=64M")
		src.mustRoot(b, "mysql", "CREATE DATABASE orders")
		src.mustRoot(b, "orders", "CREATE TABLE items (id int PRIMARY KEY, at datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))")
		shipper := &agent.BinlogShipper{Archive: a, Timeout: 30 * time.Second,
			Owner: archive.Owner{UID: env[archive.EnvUID], Namespace: "enginetest", Name: "orders", Engine: "mysql", AppUser: "app", AppDatabase: "orders"}}
		stopShipping := shipEvery(b, src, shipper, time.Second)
		dump := exec.Command(agentBin, "base-backup", "--engine=mysql", "--retention=7d")
		dump.Env = agentEnv(env, map[string]string{"DB_HOST": "127.0.0.1", "DB_PORT": strconv.Itoa(src.port), "MYSQL_PWD": src.rootPassword,
			"MYSQL_DATABASE": "orders", "MYSQL_USER": "app", "MYSQLDUMP": "/usr/bin/mariadb-dump", "MYSQL_CLIENT": "/usr/bin/mariadb"})
		if out, err := dump.CombinedOutput(); err != nil {
			b.Fatalf("run %d: base dump: %v\n%s", run, err, out)
		}
		w := startMySQLWriter(b, src, "orders", 100*time.Millisecond)
		time.Sleep(35*time.Second + rand.N(30*time.Second))
		report := shipper.Report()
		lossAt := time.Now()
		src.srv.stopSignal = syscall.SIGKILL
		src.srv.stop()
		stopShipping()
		acked := w.stop()

		in := startMariaDB(b, m, "restored root password")
		in.mustRoot(b, "mysql", "CREATE DATABASE orders")
		out, err := restoreInto(b, agentBin, env, in, "orders", "")
		if err != nil {
			b.Fatalf("run %d: restore: %v\n%s", run, err, out)
		}
		// Epoch seconds with microseconds, in whatever zone the servers run.
		newest := in.mustRoot(b, "orders", "SELECT UNIX_TIMESTAMP(max(at)) FROM items")
		in.srv.stop()
		secs, err := strconv.ParseFloat(newest, 64)
		if err != nil {
			b.Fatalf("run %d: newest row %q: %v", run, newest, err)
		}
		at := time.Unix(0, int64(secs*1e9))
		rp := lossAt.Sub(at)
		points = append(points, rp)
		b.Logf("run %d: lost %s after the newest restorable row (%d rows acknowledged; shipper at the loss: last %s at %s)",
			run, rp.Round(100*time.Millisecond), len(acked), report.LastArchivedWAL, report.LastArchivedTime.Format(time.TimeOnly))
	}
	p50, p95 := durationPercentiles(points)
	b.ReportMetric(p50.Seconds(), "rp-p50-s")
	b.ReportMetric(p95.Seconds(), "rp-p95-s")
	b.Logf("MySQL (MariaDB) recovery point over %d losses, archive timeout 30s (the default): p50 %s, p95 %s, max %s (target p95 <= 60s)",
		len(points), p50.Round(100*time.Millisecond), p95.Round(100*time.Millisecond), points[len(points)-1].Round(100*time.Millisecond))
	if p95 > time.Minute {
		b.Errorf("recovery point p95 %s is above the 60 s target", p95)
	}
}
