package enginetest

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	databasev1 "github.com/example/database-operator/apis/database/v1"
)

// mysqlMarker is the file the MySQL start wrapper leaves in the data
// directory while an initialisation is unfinished.
const mysqlMarker = ".database-operator-initialising"

// recordingEntrypoint stands in for the image's docker-entrypoint.sh: it
// records its arguments, whether the marker existed when it started, and the
// data directory's listing, then exits.
const recordingEntrypoint = `#!/bin/bash
set -eu
printf '%s\n' "$@" >"$RECORD_DIR/args"
if [ -e "$DATA_VOLUME/` + mysqlMarker + `" ]; then echo present; else echo absent; fi >"$RECORD_DIR/marker"
ls -A "$DATA_VOLUME" >"$RECORD_DIR/listing"
`

// readRecord reads a file the stand-in entrypoint wrote, as lines.
func readRecord(t testing.TB, dir, name string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatalf("the entrypoint did not record %s: %v", name, err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// TestMySQLInitialisationIsAllOrNothing_MariaDBStandIn runs the rendered
// MySQL database container's command (the start wrapper, bash -c) with
// DATA_VOLUME pointing at a test directory, and proves that initialisation
// is all or nothing:
//
//   - the wrapper writes the marker before the entrypoint initialises an
//     empty data directory, and removes nothing;
//   - a start that finds the marker (an initialisation that did not finish)
//     empties the data directory except lost+found and the marker, dot files
//     and the mysql system schema included, before the entrypoint runs;
//   - an initialised data directory without the marker is left untouched;
//   - the entrypoint runs with the server id and report host of the pod,
//     and an initialised data directory's server starts read-only (fenced
//     until its agent configures it as the primary);
//   - with MariaDB doing the initialisation the image does (system tables,
//     then the rendered init scripts sourced in name order), a failing init
//     script leaves the marker beside a data directory the image would take
//     for initialised; the next start throws it away and initialises again,
//     and the rendered last init script (99-initialised.sh) removes the
//     marker once every script before it succeeded, so the start after that
//     keeps the data.
func TestMySQLInitialisationIsAllOrNothing_MariaDBStandIn(t *testing.T) {
	m := requireMariaDB(t)
	s := newSecret("orders", "app")
	r := renderDB(t, newDatabase("orders", databasev1.MySQL, "8.4", withReplicas(3)))
	c := r.database(t)
	wrapper := bashScript(t, c)
	headless := containerEnv(t, c, s, "orders-0", nil)["HEADLESS_SERVICE"]

	// start runs the wrapper for pod as the container's user would, with
	// the entrypoint stand-in in bin first on PATH.
	start := func(t *testing.T, pod, volume, bin, record string, extra map[string]string) (string, error) {
		overrides := map[string]string{"DATA_VOLUME": volume, "RECORD_DIR": record, "PATH": bin + ":/usr/sbin:/usr/bin:/bin"}
		for k, v := range extra {
			overrides[k] = v
		}
		return run(t, 3*time.Minute, m.user, containerEnv(t, c, s, pod, overrides), "", "bash", "-c", wrapper)
	}

	cases := []struct {
		name string
		pod  string
		// files are created in the volume (a trailing / makes a directory).
		files []string
		// wantMarker is whether the entrypoint finds the marker.
		wantMarker bool
		// wantListing is the volume's listing when the entrypoint starts.
		wantListing []string
		wantArgs    []string
		wantOutput  string
	}{
		{
			name:        "an empty volume gets the marker before the entrypoint initialises it",
			pod:         "orders-0",
			files:       []string{"lost+found/", "lost+found/#1234"},
			wantMarker:  true,
			wantListing: []string{mysqlMarker, "lost+found"},
			wantArgs:    []string{"mysqld", "--server-id=1", "--report-host=orders-0." + headless},
			wantOutput:  "initialising an empty data directory",
		},
		{
			name:        "a volume without the system schema keeps its files and gets the marker",
			pod:         "orders-1",
			files:       []string{"lost+found/", "ibdata1", "orders/", "orders/items.ibd"},
			wantMarker:  true,
			wantListing: []string{mysqlMarker, "ibdata1", "lost+found", "orders"},
			wantArgs:    []string{"mysqld", "--server-id=2", "--report-host=orders-1." + headless},
			wantOutput:  "initialising an empty data directory",
		},
		{
			name: "an interrupted initialisation is emptied except lost+found and the marker",
			pod:  "orders-2",
			files: []string{"lost+found/", "lost+found/#1234", mysqlMarker, "mysql/", "mysql/user.MAD", "ibdata1",
				"orders/", "orders/items.ibd", ".hidden", "binlog.000001", "auto.cnf"},
			wantMarker:  true,
			wantListing: []string{mysqlMarker, "lost+found"},
			wantArgs:    []string{"mysqld", "--server-id=3", "--report-host=orders-2." + headless},
			wantOutput:  "the last initialisation of this data directory did not finish",
		},
		{
			name:        "an initialised volume without the marker is untouched",
			pod:         "orders-0",
			files:       []string{"lost+found/", "mysql/", "mysql/user.MAD", "ibdata1", "orders/", "orders/items.ibd", ".hidden"},
			wantMarker:  false,
			wantListing: []string{".hidden", "ibdata1", "lost+found", "mysql", "orders"},
			// Fenced: read-only until the agent has configured the primary.
			wantArgs: []string{"mysqld", "--server-id=1", "--report-host=orders-0." + headless, "--read-only=ON", "--super-read-only=ON"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			dir := workDir(t, m.user)
			volume := mkdir(t, filepath.Join(dir, "volume"), m.user, 0o750)
			for _, f := range tc.files {
				if d, ok := strings.CutSuffix(f, "/"); ok {
					mkdir(t, filepath.Join(volume, d), m.user, 0o750)
				} else {
					writeFile(t, filepath.Join(volume, f), "data of "+f, 0o640)
					chown(t, filepath.Join(volume, f), m.user)
				}
			}
			bin := mkdir(t, filepath.Join(dir, "bin"), m.user, 0o755)
			writeFile(t, filepath.Join(bin, "docker-entrypoint.sh"), recordingEntrypoint, 0o755)
			record := mkdir(t, filepath.Join(dir, "record"), m.user, 0o755)

			out, err := start(t, tc.pod, volume, bin, record, nil)
			g.Expect(err).NotTo(HaveOccurred(), "%s", out)
			g.Expect(readRecord(t, record, "marker")).To(Equal([]string{map[bool]string{true: "present", false: "absent"}[tc.wantMarker]}))
			g.Expect(readRecord(t, record, "listing")).To(Equal(tc.wantListing))
			g.Expect(readRecord(t, record, "args")).To(Equal(tc.wantArgs))
			if tc.wantOutput != "" {
				g.Expect(out).To(ContainSubstring(tc.wantOutput))
			} else {
				g.Expect(strings.TrimSpace(out)).To(BeEmpty())
			}
			// What stays, stays with its contents.
			for _, f := range tc.files {
				if strings.HasPrefix(f, "lost+found") || slices.Contains(tc.wantListing, strings.SplitN(strings.TrimSuffix(f, "/"), "/", 2)[0]) {
					g.Expect(exists(filepath.Join(volume, f))).To(BeTrue(), "%s was removed", f)
				}
			}
		})
	}

	t.Run("the last init script removes the marker and nothing else", func(t *testing.T) {
		g := NewWithT(t)
		dir := workDir(t, m.user)
		volume := mkdir(t, filepath.Join(dir, "volume"), m.user, 0o750)
		for _, f := range []string{mysqlMarker, "ibdata1"} {
			writeFile(t, filepath.Join(volume, f), "", 0o640)
			chown(t, filepath.Join(volume, f), m.user)
		}
		script := filepath.Join(dir, "99-initialised.sh")
		writeFile(t, script, r.config(t, "initdb-initialised.sh"), 0o444)
		env := containerEnv(t, c, s, "orders-0", map[string]string{"DATA_VOLUME": volume})
		out := bash(t, m.user, env, "set -Eeo pipefail; . "+script)
		g.Expect(out).To(ContainSubstring("data directory initialised"))
		g.Expect(listDir(t, volume)).To(Equal([]string{"ibdata1"}))
	})

	t.Run("a failed initialisation with MariaDB starts again from scratch", func(t *testing.T) {
		g := NewWithT(t)
		dir := workDir(t, m.user)
		volume := mkdir(t, filepath.Join(dir, "volume"), m.user, 0o750)
		mkdir(t, filepath.Join(volume, "lost+found"), m.user, 0o700)
		bin := mkdir(t, filepath.Join(dir, "bin"), m.user, 0o755)
		writeFile(t, filepath.Join(bin, "docker-entrypoint.sh"), mariaDBEntrypoint, 0o755)
		initdb := mkdir(t, filepath.Join(dir, "initdb"), m.user, 0o755)
		g.Expect(r.writeInitScripts(t, initdb)).To(Equal([]string{"50-replication.sh", "99-initialised.sh"}))
		failing := filepath.Join(initdb, "55-fail.sh")
		writeFile(t, failing, "echo 'init script failing on purpose' >&2\nexit 1\n", 0o444)
		extra := map[string]string{
			"INITDB_DIR": initdb, "SOCKET": filepath.Join(dir, "mysqld.sock"), "RUN_DIR": dir,
			"ROOT_PASSWORD_SQL": "ALTER USER 'root'@'localhost' IDENTIFIED BY " + sqlString(s["root-password"]),
			"ENTRYPOINT_INIT":   mysqlEntrypointInit,
		}
		marker := filepath.Join(volume, mysqlMarker)

		// The first start initialises, and an init script fails: the
		// system schema exists, so the image would consider the data
		// directory initialised on its next start, but the marker remains.
		record := mkdir(t, filepath.Join(dir, "record1"), m.user, 0o755)
		out, err := start(t, "orders-0", volume, bin, record, extra)
		g.Expect(err).To(HaveOccurred(), "%s", out)
		g.Expect(out).To(ContainSubstring("init script failing on purpose"))
		g.Expect(out).To(ContainSubstring("entrypoint: initialised the system tables"), "the initialisation got as far as the init scripts")
		g.Expect(readRecord(t, record, "marker")).To(Equal([]string{"present"}))
		g.Expect(exists(filepath.Join(volume, "mysql"))).To(BeTrue(), "%s", out)
		g.Expect(exists(marker)).To(BeTrue(), "a failed initialisation must leave the marker")
		// What a half-copied replica leaves beside the system schema.
		writeFile(t, filepath.Join(volume, "half-copied.ibd"), "junk", 0o640)

		// The next start finds the marker: it empties the volume (the
		// entrypoint finds no system schema), initialises again, and
		// this time every init script succeeds.
		g.Expect(os.Remove(failing)).To(Succeed())
		record = mkdir(t, filepath.Join(dir, "record2"), m.user, 0o755)
		out, err = start(t, "orders-0", volume, bin, record, extra)
		g.Expect(err).NotTo(HaveOccurred(), "%s", out)
		g.Expect(out).To(ContainSubstring("did not finish; emptying it"))
		g.Expect(readRecord(t, record, "listing")).To(Equal([]string{mysqlMarker, "lost+found"}))
		g.Expect(out).To(ContainSubstring("entrypoint: init process done"))
		g.Expect(exists(marker)).To(BeFalse(), "99-initialised.sh removes the marker: %s", out)
		g.Expect(exists(filepath.Join(volume, "half-copied.ibd"))).To(BeFalse())
		g.Expect(exists(filepath.Join(volume, "mysql"))).To(BeTrue())

		// The start after that keeps the data directory.
		record = mkdir(t, filepath.Join(dir, "record3"), m.user, 0o755)
		before := listDir(t, volume)
		out, err = start(t, "orders-0", volume, bin, record, extra)
		g.Expect(err).NotTo(HaveOccurred(), "%s", out)
		g.Expect(out).To(ContainSubstring("entrypoint: already initialised"))
		g.Expect(out).NotTo(ContainSubstring("database-operator:"))
		g.Expect(readRecord(t, record, "marker")).To(Equal([]string{"absent"}))
		g.Expect(listDir(t, volume)).To(Equal(before))
	})
}

// mariaDBEntrypoint stands in for the mysql image's docker-entrypoint.sh
// with MariaDB: it records what it finds (as recordingEntrypoint), and when
// the data directory has no mysql system schema it initialises one
// (mariadb-install-db), starts a temporary server on the local socket only,
// sets root's password and runs mysqlEntrypointInit (ENTRYPOINT_INIT), which
// sources the init scripts; a failing script fails the entrypoint. Instead
// of then serving, it stops the temporary server and exits.
const mariaDBEntrypoint = `#!/bin/bash
set -Eeo pipefail
if [ -e "$DATA_VOLUME/` + mysqlMarker + `" ]; then echo present; else echo absent; fi >"$RECORD_DIR/marker"
ls -A "$DATA_VOLUME" >"$RECORD_DIR/listing"
if [ -d "$DATA_VOLUME/mysql" ]; then
  echo "entrypoint: already initialised"
  exit 0
fi
mariadb-install-db --no-defaults --datadir="$DATA_VOLUME" --auth-root-authentication-method=normal --skip-test-db >"$RUN_DIR/install.log" 2>&1
echo "entrypoint: initialised the system tables"
mariadbd --no-defaults --datadir="$DATA_VOLUME" --socket="$SOCKET" --skip-networking \
  --pid-file="$RUN_DIR/mariadbd.pid" --log-error="$RUN_DIR/mariadbd.log" &
server=$!
trap 'kill "$server"; wait "$server" || true' EXIT
for _ in $(seq 600); do
  mysqladmin --no-defaults --socket="$SOCKET" -uroot ping --silent >/dev/null 2>&1 && break
  sleep 0.1
done
mariadb --no-defaults --socket="$SOCKET" -uroot --execute="$ROOT_PASSWORD_SQL"
bash -c "$ENTRYPOINT_INIT"
`
