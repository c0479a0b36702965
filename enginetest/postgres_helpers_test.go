package enginetest

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	databasev1 "github.com/example/database-operator/apis/database/v1"
)

// pgBinDir holds Debian's PostgreSQL 15 server and client binaries; PG_BINDIR
// overrides it.
func pgBinDir() string {
	if d := os.Getenv("PG_BINDIR"); d != "" {
		return d
	}
	return "/usr/lib/postgresql/15/bin"
}

var rootUser = osUser{name: "root", home: "/root"}

// pg is a PostgreSQL installation the tests use.
type pg struct {
	bin  string
	user osUser
}

func requirePostgres(t testing.TB) pg {
	t.Helper()
	p := pg{bin: pgBinDir()}
	for _, b := range []string{"postgres", "initdb", "pg_ctl", "psql", "pg_isready", "pg_basebackup", "pg_dump"} {
		requireBinary(t, filepath.Join(p.bin, b))
	}
	p.user = lookupUser(t, "postgres")
	return p
}

func (p pg) path() string { return p.bin + ":/usr/sbin:/usr/bin:/sbin:/bin" }

// pgConfig is the rendered configuration laid out on disk.
type pgConfig struct {
	// containerArgs is the database container's command line with the
	// config_file path mapped to the local file.
	containerArgs []string
	confFile      string
	hbaFile       string
	socketDir     string
}

// writePostgresConfig writes the ConfigMap files mounted in the database
// container (as the StatefulSet's volume items name them) under dir. The
// container's own command line names the configuration file; the only
// container paths in it, config_file on the command line and hba_file inside
// the file, are mapped to dir: config_file by rewriting the argument, hba_file
// by a -c hba_file=... override on the command line (the rendered file itself
// is used byte for byte).
func writePostgresConfig(t testing.TB, r *rendered, dir string, owner osUser) pgConfig {
	t.Helper()
	main := r.database(t)
	local := map[string]string{} // container path -> local path
	for _, m := range main.VolumeMounts {
		for _, v := range r.sts.Spec.Template.Spec.Volumes {
			if v.Name != m.Name || v.ConfigMap == nil || m.MountPath == "/docker-entrypoint-initdb.d" {
				continue
			}
			for _, item := range v.ConfigMap.Items {
				path := filepath.Join(dir, item.Path)
				writeFile(t, path, r.config(t, item.Key), 0o444)
				local[m.MountPath+"/"+item.Path] = path
			}
		}
	}
	cfg := pgConfig{socketDir: mkdir(t, filepath.Join(dir, "socket"), owner, 0o700)}
	// The container starts the image's entrypoint through the
	// initialisation wrapper (bash -c), whose last line execs it with the
	// server's command line.
	// Under the agent, the server's command follows "--".
	lines := strings.Split(strings.TrimSpace(bashScript(t, main)), "\n")
	args, ok := strings.CutPrefix(lines[len(lines)-1], "exec docker-entrypoint.sh ")
	if !ok || !strings.HasPrefix(args, "postgres ") {
		t.Fatalf("the database container does not run postgres: %q", lines[len(lines)-1])
	}
	fields := strings.Fields(args)
	cfg.containerArgs = []string{fields[0]}
	for _, a := range fields[1:] {
		if path, ok := strings.CutPrefix(a, "config_file="); ok {
			cfg.confFile = local[path]
			if cfg.confFile == "" {
				t.Fatalf("config_file %s is not a mounted ConfigMap file (mounted: %v)", path, local)
			}
			a = "config_file=" + cfg.confFile
		}
		cfg.containerArgs = append(cfg.containerArgs, a)
	}
	m := regexp.MustCompile(`(?m)^hba_file = '([^']+)'$`).FindStringSubmatch(r.config(t, "postgresql.conf"))
	if m == nil || local[m[1]] == "" {
		t.Fatalf("postgresql.conf names no mounted hba_file (mounted: %v)", local)
	}
	cfg.hbaFile = local[m[1]]
	return cfg
}

// serverArgs are the arguments of the postgres server: the container's, then
// the local overrides.
func (c pgConfig) serverArgs(port int) []string {
	return append(append([]string{}, c.containerArgs...),
		"-c", "hba_file="+c.hbaFile,
		"-c", fmt.Sprintf("port=%d", port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories="+c.socketDir)
}

// entrypointInit emulates the initialisation half of the official postgres
// image's docker-entrypoint.sh, in the steps the rendered files depend on:
// on an empty PGDATA it runs initdb with the superuser's password, starts a
// temporary server that listens on the socket only, with the container's
// configuration, exports PGPASSWORD, creates POSTGRES_DB, sources or runs the
// files of the init directory in name order (*.sh sourced unless executable,
// *.sql and *.sql.gz fed to docker_process_sql), and stops the server. A data
// directory that holds PG_VERSION is left alone. docker_process_sql is the
// image's: psql -v ON_ERROR_STOP=1 as the superuser without a password
// prompt, on POSTGRES_DB, through the local socket. The image also appends a
// host line to $PGDATA/pg_hba.conf, which the rendered configuration never
// reads (hba_file points at the ConfigMap's), so that step is left out.
const entrypointInit = `set -Eeo pipefail
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
docker_process_sql() {
  local query_runner=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
  if [ -n "$POSTGRES_DB" ]; then
    query_runner+=(--dbname "$POSTGRES_DB")
  fi
  PGHOST="$SOCKET_DIR" PGHOSTADDR= "${query_runner[@]}" "$@"
}
docker_temp_server_stop() {
  PGUSER="${PGUSER:-postgres}" pg_ctl -D "$PGDATA" -m fast -w stop
}
docker_process_init_files() {
  local f
  for f; do
    case "$f" in
      *.sh)
        if [ -x "$f" ]; then
          echo "entrypoint: running $f"; "$f"
        else
          echo "entrypoint: sourcing $f"; . "$f"
        fi ;;
      *.sql) echo "entrypoint: running $f"; docker_process_sql -f "$f" ;;
      *.sql.gz) echo "entrypoint: running $f"; gunzip -c "$f" | docker_process_sql ;;
      *) echo "entrypoint: ignoring $f" ;;
    esac
  done
}
if [ -s "$PGDATA/PG_VERSION" ]; then
  echo "PostgreSQL Database directory appears to contain a database; Skipping initialization"
  exit 0
fi
mkdir -p "$PGDATA"
chmod 00700 "$PGDATA"
initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") --encoding=UTF8 --locale=C.UTF-8
export PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
PGUSER="${PGUSER:-$POSTGRES_USER}" pg_ctl -D "$PGDATA" -o "$(printf '%q ' "$@" -c listen_addresses='' -p "$PGPORT")" -w start
exists="$(POSTGRES_DB= docker_process_sql --dbname postgres --set db="$POSTGRES_DB" --tuples-only <<<"SELECT 1 FROM pg_database WHERE datname = :'db';")"
if [ -z "$exists" ]; then
  POSTGRES_DB= docker_process_sql --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
fi
docker_process_init_files "$INITDB_DIR"/*
docker_temp_server_stop
unset PGPASSWORD
echo "PostgreSQL init process complete; ready for start up."
`

// pgInstance is one PostgreSQL "pod": its data directory, configuration
// and, once started, its server.
type pgInstance struct {
	p       pg
	r       *rendered
	secret  secret
	pod     string
	dir     string
	pgdata  string
	initdb  string
	cfg     pgConfig
	port    int
	srv     *server
	initLog string
	// serverEnv is added to the server's environment (e.g. PGHOSTADDR, which
	// the walreceiver's libpq honours like any libpq client).
	serverEnv map[string]string
}

// newPGInstance lays out pod podName of r in a fresh directory: the rendered
// configuration and init scripts; PGDATA is not created.
func newPGInstance(t testing.TB, p pg, r *rendered, s secret, podName string) *pgInstance {
	t.Helper()
	dir := workDir(t, p.user)
	in := &pgInstance{p: p, r: r, secret: s, pod: podName, dir: dir, port: freePort(t)}
	in.cfg = writePostgresConfig(t, r, mkdir(t, filepath.Join(dir, "config"), p.user, 0o755), p.user)
	in.initdb = mkdir(t, filepath.Join(dir, "initdb"), p.user, 0o755)
	r.writeInitScripts(t, in.initdb)
	// The volume is mounted at /var/lib/postgresql/data and PGDATA is a
	// directory inside it, as in the pod.
	mkdir(t, filepath.Join(dir, "volume"), p.user, 0o700)
	in.pgdata = filepath.Join(dir, "volume", "pgdata")
	return in
}

// rerendered is the same pod (data directory, port, server environment)
// with the configuration of another rendering of its Database, as after a
// spec change rolls the pod. The server must be stopped.
func (in *pgInstance) rerendered(t testing.TB, r *rendered) *pgInstance {
	t.Helper()
	n := newPGInstance(t, in.p, r, in.secret, in.pod)
	n.pgdata, n.port, n.serverEnv = in.pgdata, in.port, in.serverEnv
	return n
}

// env is the database container's environment for this pod, with PGDATA
// and what points into the cluster mapped to local paths.
func (in *pgInstance) env(t testing.TB, overrides map[string]string) map[string]string {
	t.Helper()
	o := map[string]string{"PGDATA": in.pgdata, "PATH": in.p.path(), "SOCKET_DIR": in.cfg.socketDir,
		"PGPORT": fmt.Sprint(in.port), "INITDB_DIR": in.initdb}
	for k, v := range overrides {
		o[k] = v
	}
	return containerEnv(t, in.r.database(t), in.secret, in.pod, o)
}

// init starts the database container's command as the pod does: the
// rendered initialisation wrapper, which execs docker-entrypoint.sh. That is
// the emulated entrypoint (entrypointInit), first on PATH, with the local
// server arguments in place of the container's. It returns the output and
// error of the initialisation.
func (in *pgInstance) init(t testing.TB, overrides map[string]string) (string, error) {
	t.Helper()
	bin := filepath.Join(in.dir, "entrypoint-bin")
	if _, err := os.Stat(bin); err != nil {
		mkdir(t, bin, in.p.user, 0o755)
		var quoted []string
		for _, a := range in.cfg.serverArgs(in.port)[1:] {
			quoted = append(quoted, "'"+strings.ReplaceAll(a, "'", `'\''`)+"'")
		}
		writeFile(t, filepath.Join(bin, "docker-entrypoint.sh"),
			"#!/bin/bash\nset -- "+strings.Join(quoted, " ")+"\n"+entrypointInit, 0o755)
	}
	env := in.env(t, overrides)
	env["PATH"] = bin + ":" + env["PATH"]
	return run(t, 2*time.Minute, in.p.user, env, "", "bash", "-c", bashScript(t, in.r.database(t)))
}

// marker is the path of the initialisation marker beside PGDATA.
func (in *pgInstance) marker() string {
	return filepath.Join(filepath.Dir(in.pgdata), ".database-operator-initialising")
}

func (in *pgInstance) mustInit(t testing.TB, overrides map[string]string) {
	t.Helper()
	out, err := in.init(t, overrides)
	if err != nil {
		t.Fatalf("entrypoint initialisation of %s failed: %v\n%s", in.pod, err, out)
	}
	in.initLog = out
}

// start runs the server as the container does (postgres -c config_file=...)
// with the local overrides, and waits until it accepts connections.
func (in *pgInstance) start(t testing.TB) {
	t.Helper()
	args := in.cfg.serverArgs(in.port)
	env := map[string]string{"PGDATA": in.pgdata}
	for k, v := range in.serverEnv {
		env[k] = v
	}
	in.srv = startServer(t, "postgres "+in.pod, in.p.user, env,
		filepath.Join(in.dir, "postgres.log"), filepath.Join(in.p.bin, args[0]), args[1:]...)
	in.srv.waitReady(t, 60*time.Second, func() error {
		out, err := run(t, 5*time.Second, rootUser, nil, "", filepath.Join(in.p.bin, "pg_isready"),
			"--quiet", "--host=127.0.0.1", fmt.Sprintf("--port=%d", in.port))
		if err != nil {
			return fmt.Errorf("pg_isready: %v %s", err, out)
		}
		return nil
	})
}

func (in *pgInstance) stop() {
	if in.srv != nil {
		in.srv.stop()
	}
}

// query runs SQL over TCP as a user with a password and returns the
// unaligned, tuples-only output.
func (in *pgInstance) query(t testing.TB, user, password, dbname, sql string) (string, error) {
	t.Helper()
	out, err := run(t, 30*time.Second, rootUser, map[string]string{"PGPASSWORD": password, "PGCONNECT_TIMEOUT": "5"}, "",
		filepath.Join(in.p.bin, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
		"--host=127.0.0.1", fmt.Sprintf("--port=%d", in.port), "--username="+user, "--dbname="+dbname, "--command="+sql)
	return strings.TrimSpace(out), err
}

// asApp and asSuperuser query the application database with the Secret's
// credentials.
func (in *pgInstance) asApp(t testing.TB, sql string) (string, error) {
	return in.query(t, in.secret["username"], in.secret["password"], in.secret["database"], sql)
}

func (in *pgInstance) asSuperuser(t testing.TB, sql string) (string, error) {
	return in.query(t, "postgres", in.secret["root-password"], in.secret["database"], sql)
}

func (in *pgInstance) mustApp(t testing.TB, sql string) string {
	t.Helper()
	out, err := in.asApp(t, sql)
	if err != nil {
		t.Fatalf("as %s: %s: %v\n%s", in.secret["username"], sql, err, out)
	}
	return out
}

// newPrimary initialises and starts pod 0 of a PostgreSQL Database with the
// rendered configuration and init scripts.
func newPrimary(t testing.TB, p pg, db *databasev1.Database, s secret) *pgInstance {
	t.Helper()
	r := renderDB(t, db)
	in := newPGInstance(t, p, r, s, db.Name+"-0")
	in.mustInit(t, nil)
	in.start(t)
	return in
}
