package enginetest

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	databasev1 "github.com/example/database-operator/apis/database/v1"
)

const shellcheckBin = "/usr/bin/shellcheck"

// shellcheck runs Debian's shellcheck on a script as bash, at its strictest
// default (every severity, style included).
func shellcheck(t *testing.T, name, script string) {
	t.Helper()
	requireBinary(t, shellcheckBin)
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, time.Minute, rootUser, nil, "", shellcheckBin, "--shell=bash", "--severity=style", "--external-sources", path)
	if err != nil {
		t.Errorf("shellcheck %s: %v\n%s\n--- script ---\n%s", name, err, out, script)
	}
}

// TestRenderedScriptsAreShellcheckClean runs shellcheck on every script
// render produces, taken from the rendered objects: for MySQL the backup
// CronJob's script, the replica set-up init script (initdb-replication.sh),
// the database container's start wrapper, the agent's prepare script and
// the restore script; for PostgreSQL the same; with TLS too
// where TLS changes a script.
func TestRenderedScriptsAreShellcheckClean(t *testing.T) {
	for _, version := range []string{"8.0", "8.4"} {
		r := renderDB(t, newDatabase("orders", databasev1.MySQL, version, withReplicas(3), withBackup("7d"), withRestore("orders-old", "")))
		t.Run("mysql-"+version+"/backup", func(t *testing.T) { shellcheck(t, "backup.sh", bashScript(t, r.backupContainer(t))) })
		t.Run("mysql-"+version+"/initdb-replication.sh", func(t *testing.T) {
			shellcheck(t, "initdb-replication.sh", r.config(t, "initdb-replication.sh"))
		})
		t.Run("mysql-"+version+"/start", func(t *testing.T) { shellcheck(t, "start.sh", bashScript(t, r.database(t))) })
		t.Run("mysql-"+version+"/readiness", func(t *testing.T) {
			shellcheck(t, "readiness.sh", r.database(t).ReadinessProbe.Exec.Command[2])
		})
		t.Run("mysql-"+version+"/initdb-initialised.sh", func(t *testing.T) {
			shellcheck(t, "initdb-initialised.sh", r.config(t, "initdb-initialised.sh"))
		})
		t.Run("mysql-"+version+"/initdb-restore.sh", func(t *testing.T) {
			shellcheck(t, "initdb-restore.sh", r.config(t, "initdb-restore.sh"))
		})
		t.Run("mysql-"+version+"/prepare", func(t *testing.T) { shellcheck(t, "prepare.sh", prepareScript(t, r.database(t))) })
		rPITR := renderDB(t, newDatabase("orders", databasev1.MySQL, version, withReplicas(3),
			withS3Archive(map[string]string{"ARCHIVE_S3_ENDPOINT": "http://127.0.0.1:1", "ARCHIVE_S3_BUCKET": "b"}, "30s"),
			func(db *databasev1.Database) {
				db.Spec.Restore = &databasev1.RestoreSpec{FromDatabase: "orders-old", PointInTime: &databasev1.PointInTimeSpec{}}
			}))
		t.Run("mysql-"+version+"/point-in-time/initdb-restore.sh", func(t *testing.T) {
			shellcheck(t, "initdb-restore.sh", rPITR.config(t, "initdb-restore.sh"))
		})
		rTLS := renderDB(t, newDatabase("orders", databasev1.MySQL, version, withReplicas(3), withTLS("")))
		t.Run("mysql-"+version+"/tls/initdb-replication.sh", func(t *testing.T) {
			shellcheck(t, "initdb-replication.sh", rTLS.config(t, "initdb-replication.sh"))
		})
		t.Run("mysql-"+version+"/tls/prepare", func(t *testing.T) { shellcheck(t, "prepare.sh", prepareScript(t, rTLS.database(t))) })
	}
	r := renderDB(t, newDatabase("orders", databasev1.PostgreSQL, "16", withReplicas(3), withBackup("7d"), withRestore("orders-old", "")))
	t.Run("postgresql/backup", func(t *testing.T) { shellcheck(t, "backup.sh", bashScript(t, r.backupContainer(t))) })
	t.Run("postgresql/prepare", func(t *testing.T) {
		shellcheck(t, "prepare.sh", prepareScript(t, r.database(t)))
	})
	t.Run("postgresql/tls/prepare", func(t *testing.T) {
		rTLS := renderDB(t, newDatabase("orders", databasev1.PostgreSQL, "16", withReplicas(3), withTLS("")))
		shellcheck(t, "prepare.sh", prepareScript(t, rTLS.database(t)))
	})
	t.Run("postgresql/start", func(t *testing.T) { shellcheck(t, "start.sh", bashScript(t, r.database(t))) })
	t.Run("postgresql/initdb-initialised.sh", func(t *testing.T) {
		shellcheck(t, "initdb-initialised.sh", r.config(t, "initdb-initialised.sh"))
	})
	t.Run("postgresql/initdb-users.sh", func(t *testing.T) { shellcheck(t, "initdb-users.sh", r.config(t, "initdb-users.sh")) })
	t.Run("postgresql/initdb-restore.sh", func(t *testing.T) {
		shellcheck(t, "initdb-restore.sh", r.config(t, "initdb-restore.sh"))
	})
	NewWithT(t).Expect(r.config(t, "initdb-restore.sh")).To(ContainSubstring("shellcheck shell=bash"))
}
