package render

import (
	"fmt"
	"strings"
	"time"

	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	databasev1 "github.com/example/database-operator/apis/database/v1"
)

// postgres runs the official postgres image. The image's conventions decide
// the layout: the data directory is a subdirectory of the volume (the volume
// root may hold lost+found, which initdb refuses), the configuration file is
// passed with -c config_file, and scripts in /docker-entrypoint-initdb.d run
// once, when the data directory is initialised.
type postgres struct{}

const (
	postgresPort         = 5432
	postgresDataPath     = "/var/lib/postgresql/data"
	postgresPGDATA       = postgresDataPath + "/pgdata"
	postgresConfigDir    = "/etc/postgresql"
	postgresSuperuser    = "postgres"
	postgresExporterPort = 9187
)

func (postgres) defaultImage(version string) string { return "postgres:" + version }
func (postgres) port() int32                        { return postgresPort }
func (postgres) portName() string                   { return "postgresql" }
func (postgres) dataPath() string                   { return postgresDataPath }
func (postgres) metricsPort() int32                 { return postgresExporterPort }

// initialisation: the entrypoint initialises when $PGDATA/PG_VERSION is
// missing or empty; PGDATA is a subdirectory of the volume, so the marker
// sits on the volume beside it and emptying removes PGDATA whole.
func (postgres) initialisation(*spec) initialisation {
	return initialisation{
		marker:      `"${PGDATA%/*}/` + initialisingMarker + `"`,
		initialised: `[ -s "$PGDATA/PG_VERSION" ]`,
		empty:       `rm -rf -- "$PGDATA"`,
		start:       "exec docker-entrypoint.sh postgres -c config_file=" + postgresConfigDir + "/postgresql.conf",
	}
}

func (postgres) env(s *spec) []*corev1ac.EnvVarApplyConfiguration {
	return []*corev1ac.EnvVarApplyConfiguration{
		valueEnv("PGDATA", postgresPGDATA),
		secretEnv(s, "POSTGRES_PASSWORD", SecretKeyRootPassword),
		secretEnv(s, "POSTGRES_DB", SecretKeyDatabase),
		secretEnv(s, "APP_USER", SecretKeyUsername),
		secretEnv(s, "APP_PASSWORD", SecretKeyPassword),
		secretEnv(s, "REPLICATION_PASSWORD", SecretKeyReplicationPassword),
		podNameEnv(),
	}
}

func (postgres) configMounts() []configMount {
	return []configMount{
		{volume: "config", mountPath: postgresConfigDir, items: map[string]string{
			"postgresql.conf": "postgresql.conf",
			"pg_hba.conf":     "pg_hba.conf",
		}},
		{volume: "initdb", mountPath: initdbMountPath, items: map[string]string{
			"initdb-users.sh": "10-users.sh",
		}},
	}
}

func (postgres) configFiles(s *spec) map[string]string {
	files := map[string]string{
		"postgresql.conf": postgresConf(s),
		"pg_hba.conf":     postgresHBAFor(s),
		"initdb-users.sh": postgresInitUsers,
	}
	if ArchivingOf(s.db) != nil {
		files[postgresExporterQueriesKey] = postgresExporterQueries
	}
	return files
}

const (
	// postgresExporterQueriesKey is the ConfigMap key of the exporter's
	// extra queries, mounted only when the Database archives.
	postgresExporterQueriesKey    = "postgres-exporter-queries.yaml"
	postgresExporterQueriesVolume = "exporter-queries"
	postgresExporterQueriesDir    = "/etc/postgres-exporter"
	postgresExporterQueriesPath   = postgresExporterQueriesDir + "/queries.yaml"
)

// postgresExporterQueries adds what the exporter's default metrics lack for
// the archiving alerts: how many complete WAL files wait to be archived
// (pg_archive_ready_wal_files). pg_stat_archiver only says when the last
// file was archived, which on an idle server is long ago without anything
// being wrong; files waiting are behind whatever the traffic.
const postgresExporterQueries = `# Rendered by database-operator: extra postgres_exporter queries (PG_EXPORTER_EXTEND_QUERY_PATH).
pg_archive:
  query: "SELECT count(*) AS ready_wal_files FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'"
  metrics:
    - ready_wal_files:
        usage: "GAUGE"
        description: "WAL files complete and waiting for archive_command"
`

// walBudget is the WAL a PostgreSQL server keeps, in MB, scaled to the
// data volume: wal_keep_size (what a replica or a rewind may still need)
// an eighth of it and max_wal_size (the WAL between checkpoints) a
// quarter, up to 1 GB each, and min_wal_size half of max_wal_size, up to
// the server's 80 MB. A fixed 1 GB of kept WAL, with the server's default
// 1 GB between checkpoints, filled a 1 GiB volume by WAL alone.
func (s *spec) walBudget() (keep, maxWAL, minWAL int64) {
	mib := s.db.Spec.Storage.Size.Value() >> 20
	clamp := func(v, lo, hi int64) int64 { return min(max(v, lo), hi) }
	keep = clamp(mib/8, 16, 1024)
	maxWAL = clamp(mib/4, 64, 1024)
	minWAL = clamp(maxWAL/2, 32, 80)
	return keep, maxWAL, minWAL
}

func postgresConf(s *spec) string {
	var b strings.Builder
	line := func(k, v string) { fmt.Fprintf(&b, "%s = %s\n", k, v) }
	fmt.Fprintf(&b, "# Rendered by database-operator for %s/%s (%s). Changes roll the pods.\n", s.namespace, s.name, s.environment)
	line("listen_addresses", "'*'")
	line("port", fmt.Sprint(postgresPort))
	line("hba_file", "'"+postgresConfigDir+"/pg_hba.conf'")
	line("password_encryption", "'scram-sha-256'")
	line("max_connections", fmt.Sprint(s.profile.maxConnections))
	line("shared_buffers", fmt.Sprintf("%dMB", s.megabytes(1, 4, 32)))
	line("effective_cache_size", fmt.Sprintf("%dMB", s.megabytes(3, 4, 64)))
	line("maintenance_work_mem", fmt.Sprintf("%dMB", s.megabytes(1, 16, 16)))
	b.WriteString("# Streaming replication: one primary (status.currentPrimary), the others hot standbys.\n")
	line("wal_level", "replica")
	line("max_wal_senders", "10")
	line("max_replication_slots", "10")
	keep, maxWAL, minWAL := s.walBudget()
	line("wal_keep_size", fmt.Sprintf("'%dMB'", keep))
	b.WriteString("# WAL sized to the data volume (spec.storage.size), which it must not fill.\n")
	line("max_wal_size", fmt.Sprintf("'%dMB'", maxWAL))
	line("min_wal_size", fmt.Sprintf("'%dMB'", minWAL))
	line("hot_standby", "on")
	b.WriteString("# A former primary rejoins with pg_rewind, which needs hint-bit changes in the WAL.\n")
	line("wal_log_hints", "on")
	b.WriteString("# A replica retries its primary, or the new one after a failover, every second.\n")
	line("wal_retrieve_retry_interval", "'1s'")
	b.WriteString("# Either end drops a replication connection silent for 5s: a replica notices a lost\n")
	b.WriteString("# primary (or its node) in seconds, reports it, and the failover can start.\n")
	line("wal_receiver_timeout", "'5s'")
	line("wal_sender_timeout", "'5s'")
	b.WriteString("# synchronous_standby_names is the agent's: ANY 1 (*) on the primary in sync mode.\n")
	b.WriteString("# Logs go to stderr, where the container runtime collects them.\n")
	line("logging_collector", "off")
	line("log_destination", "'stderr'")
	line("log_line_prefix", "'%m [%p] %q%u@%d '")
	if s.logging {
		line("log_min_duration_statement", "'250ms'")
		line("log_statement", "'ddl'")
		line("log_connections", "on")
		line("log_disconnections", "on")
		line("log_lock_waits", "on")
	} else {
		line("log_min_duration_statement", "-1")
		line("log_statement", "'none'")
	}
	if ArchivingOf(s.db) != nil {
		b.WriteString(postgresArchiveConf(s))
	}
	if s.tlsSecret != "" {
		fmt.Fprintf(&b, "# TLS with the certificate of Secret %s, mounted read-only.\n", s.tlsSecret)
		line("ssl", "on")
		line("ssl_cert_file", "'"+tlsFile(TLSCertKey)+"'")
		line("ssl_key_file", "'"+tlsFile(TLSPrivateKeyKey)+"'")
		line("ssl_ca_file", "'"+tlsFile(TLSCAKey)+"'")
		line("ssl_min_protocol_version", "'TLSv1.2'")
	}
	return b.String()
}

// postgresHBAFor is the pg_hba.conf for the spec. With TLS in production,
// TCP connections must be encrypted: unencrypted ones are rejected by name
// (hostnossl), encrypted ones (hostssl) need SCRAM; local socket
// connections are unchanged. With TLS in other environments clients may
// choose, as without TLS.
func postgresHBAFor(s *spec) string {
	if s.tlsSecret == "" || s.environment != databasev1.Production {
		return postgresHBA
	}
	return postgresHBATLSOnly
}

// postgresHBATLSOnly refuses unencrypted TCP connections. ("all" in the
// DATABASE column does not match replication connections, hence the
// separate replication lines.)
const postgresHBATLSOnly = `# Rendered by database-operator: TLS required for TCP connections (production).
# TYPE     DATABASE     USER        ADDRESS  METHOD
local      all          all                  scram-sha-256
hostnossl  all          all         all      reject
hostnossl  replication  all         all      reject
hostssl    all          all         all      scram-sha-256
hostssl    replication  ` + ReplicationUser + `  all      scram-sha-256
`

// postgresHBA requires a password (SCRAM) for every connection, local ones
// included; replication connections only for the replication user.
const postgresHBA = `# Rendered by database-operator.
# TYPE  DATABASE     USER        ADDRESS  METHOD
local   all          all                  scram-sha-256
host    all          all         all      scram-sha-256
host    replication  ` + ReplicationUser + `  all      scram-sha-256
`

// postgresInitUsers is sourced by the image's entrypoint once, while it
// initialises an empty data directory (on pod 0; replicas are copied from
// it). It creates the application user as owner of the application database
// and the replication user. Values go through psql variables, so no password
// is ever interpolated into SQL text; and the session logs no statement, so
// the CREATE ROLE statements, passwords in them, never reach the server's
// log where a profile logs DDL (production: log_statement = 'ddl').
const postgresInitUsers = `# Rendered by database-operator: application and replication users.
docker_process_sql \
  -v app_user="$APP_USER" \
  -v app_password="$APP_PASSWORD" \
  -v app_db="$POSTGRES_DB" \
  -v replication_password="$REPLICATION_PASSWORD" <<'EOSQL'
SET log_statement = 'none';
SET log_min_duration_statement = -1;
CREATE ROLE :"app_user" LOGIN PASSWORD :'app_password';
ALTER DATABASE :"app_db" OWNER TO :"app_user";
CREATE ROLE ` + ReplicationUser + ` WITH REPLICATION LOGIN PASSWORD :'replication_password';
EOSQL
`

func (e postgres) readinessProbe() []string { return e.probe() }

// probe asks the server over loopback TCP (the image's temporary server
// listens on the socket only, and must not pass for a serving one). The
// sslmode overrides the container's PGSSLMODE: with TLS that is
// verify-full for the Service's name, which no certificate has for
// 127.0.0.1, and every probe would fail.
func (postgres) probe() []string {
	return []string{"pg_isready", "--quiet", "--host=127.0.0.1", fmt.Sprintf("--port=%d", postgresPort), "--username=" + postgresSuperuser,
		"--dbname=sslmode=prefer"}
}

// postgresPrepare is run by the agent before every start of the server,
// with ROLE set to the role the pod has. A primary starts as it is (an
// empty data directory is initialised by the image's entrypoint). A
// replica's data directory is made to follow the current primary, reached
// through the read-write Service, which selects whichever pod holds the
// role:
//
//   - an empty one is copied from the primary: pg_basebackup into a side
//     directory first, so an interrupted copy never looks like a data
//     directory, with standby.signal added;
//   - a former primary's (no standby.signal) may hold WAL the new primary
//     never had: pg_rewind winds it back to the point where their histories
//     forked (after the crash recovery of a killed server), and when that
//     fails the directory is copied again. A marker
//     beside the data directory makes a start after an interrupted rewind,
//     which leaves the directory unusable, copy it again too.
//
// Then the primary_conninfo line of $PGDATA/postgresql.auto.conf is written
// again from the environment: host (the Service's address as resolved now,
// then its name), port, user, password, application_name
// (the pod's name, as pg_stat_replication shows it) and the TLS settings of
// the current spec (sslmode and sslrootcert from PGSSLMODE and
// PGSSLROOTCERT; sslmode=prefer without TLS). Written once (as pg_basebackup
// -R would), the settings of the day the replica was copied would stay, and
// turning TLS on or off would leave existing replicas with stale ones; -R
// also writes a password with a line break raw, which the server refuses to
// parse. Values are quoted twice, as the conninfo syntax wants ('...' with \
// escapes) and as postgresql.auto.conf's syntax wants ('...' with quotes
// doubled); passwords only pass through bash expansions, printf and the
// environment, never a command line or a sed expression.
//
// The replication connection gives up on an unreachable primary within
// seconds (connect_timeout, and tcp_user_timeout for unacknowledged data),
// so a replica notices a lost primary, reports it, and reconnects through
// the Service to the new one; keepalives find a silent peer the same way
// while nothing is sent.
const postgresPrepare = `set -euo pipefail
if [ "$ROLE" = primary ]; then
  echo "database-operator: starting as the primary"
  exit 0
fi
# conninfo_value quotes a libpq connection-string value: '...' with
# backslashes and single quotes escaped by a backslash.
conninfo_value() {
  local v="${1//\\/\\\\}"
  printf "'%s'" "${v//\'/\\\'}"
}
# conf_string quotes a configuration-file string: '...' with backslashes and
# single quotes doubled, and line breaks as \n and \r escapes (a raw line
# break inside a quoted value is a syntax error that stops the server).
conf_string() {
  local v="${1//\\/\\\\}"
  v="${v//$'\n'/\\n}"
  v="${v//$'\r'/\\r}"
  printf "'%s'" "${v//\'/\'\'}"
}
sslmode="${PGSSLMODE:-prefer}"
# The primary's address, resolved now, is tried first, and its name, resolved
# at each connection, second: after a node loss the cluster's DNS times out
# for as long as a DNS server on the lost node stays in its endpoints (until
# the node is declared NotReady, 40 s), and a standby that must resolve the
# name to reach the new primary waits that long (in sync mode no commit is
# acknowledged meanwhile). The name covers an address that changed (a
# re-created Service); TLS verifies the name either way.
hosts="$PRIMARY_HOST"
hostaddrs=""
address="$(getent ahosts "$PRIMARY_HOST" 2>/dev/null | awk 'NR == 1 { print $1 }')" || address=""
if [ -n "$address" ] && [ "$address" != "$PRIMARY_HOST" ]; then
  hosts="$PRIMARY_HOST,$PRIMARY_HOST"
  hostaddrs="$address,"
fi
primary="host=$(conninfo_value "$hosts")"
if [ -n "$hostaddrs" ]; then
  primary+=" hostaddr=$(conninfo_value "$hostaddrs")"
fi
primary+=" port=$(conninfo_value "$PRIMARY_PORT") sslmode=$(conninfo_value "$sslmode")"
primary+=" connect_timeout=5 tcp_user_timeout=5000 keepalives=1 keepalives_idle=5 keepalives_interval=2 keepalives_count=3"
if [ -n "${PGSSLROOTCERT:-}" ]; then
  primary+=" sslrootcert=$(conninfo_value "$PGSSLROOTCERT")"
fi
# set_auto_conf sets a parameter in $PGDATA/postgresql.auto.conf, which the
# server reads after its configuration file; the value comes quoted.
set_auto_conf() {
  local auto_conf="$PGDATA/postgresql.auto.conf"
  touch "$auto_conf"
  (
    umask 077
    awk -v key="$1" 'tolower($0) !~ "^[[:space:]]*" key "[[:space:]]*="' "$auto_conf" >"$auto_conf.tmp"
    printf '%s = %s\n' "$1" "$2" >>"$auto_conf.tmp"
  )
  # Flushed before the rename, so a node crash cannot leave an empty file.
  sync "$auto_conf.tmp"
  mv "$auto_conf.tmp" "$auto_conf"
}
# give_up_if_role_changed ends the script with status 75 once the pod's role
# is no longer $ROLE (the agent keeps it in $ROLE_FILE, and prepares again):
# a pod given the primary role while it waits here would wait for itself.
give_up_if_role_changed() {
  if [ -n "${ROLE_FILE:-}" ] && [ -s "$ROLE_FILE" ] && [ "$(<"$ROLE_FILE")" != "$ROLE" ]; then
    echo "database-operator: the pod's role is now $(<"$ROLE_FILE"); no longer waiting for a primary"
    exit 75
  fi
}
wait_for_primary() {
  until pg_isready --quiet --host="$PRIMARY_HOST" --port="$PRIMARY_PORT"; do
    give_up_if_role_changed
    echo "database-operator: waiting for the primary at $PRIMARY_HOST:$PRIMARY_PORT"
    sleep 1
  done
}
rewinding="${PGDATA%/*}/.database-operator-rewinding"
if [ -e "$rewinding" ]; then
  echo "database-operator: the last rewind did not finish; copying the primary again" >&2
  rm -rf -- "$PGDATA"
  rm -f -- "$rewinding"
fi
if [ -s "$PGDATA/PG_VERSION" ] && [ ! -e "$PGDATA/standby.signal" ]; then
  wait_for_primary
  echo "database-operator: this data directory was a primary's; rewinding it to follow $PRIMARY_HOST"
  : >"$rewinding"
  sync -- "$rewinding" "${rewinding%/*}"
  # A killed server's crash recovery is completed first, with the pod's
  # configuration: pg_rewind would run it with the data directory's own
  # postgresql.conf, whose checkpoint recycles the WAL the rewind needs
  # (no wal_keep_size) and records wal_log_hints off, which pg_rewind then
  # refuses.
  if ! LC_ALL=C pg_controldata "$PGDATA" | grep -q '^Database cluster state: *shut down$'; then
    echo "database-operator: completing the crash recovery of the former primary"
    postgres --single -D "$PGDATA" -c config_file="$POSTGRES_CONFIG_FILE" template1 </dev/null
  fi
  # A primary promoted a moment ago records its new timeline in its control
  # file only at its next checkpoint; before it, pg_rewind would see one
  # timeline and find nothing to rewind.
  PGPASSWORD="$POSTGRES_PASSWORD" psql --no-psqlrc --quiet --dbname="$primary user=postgres dbname=postgres" --command=CHECKPOINT
  if PGPASSWORD="$POSTGRES_PASSWORD" pg_rewind --target-pgdata="$PGDATA" --progress \
    --source-server="$primary user=postgres dbname=postgres"; then
    touch "$PGDATA/standby.signal"
    sync -- "$PGDATA/standby.signal" "$PGDATA"
  else
    echo "database-operator: pg_rewind failed; copying the primary again" >&2
    rm -rf -- "$PGDATA"
  fi
  rm -f -- "$rewinding"
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  wait_for_primary
  partial="$PGDATA.partial"
  rm -rf -- "$partial"
  PGPASSWORD="$REPLICATION_PASSWORD" pg_basebackup \
    --dbname="$primary" --username="$REPLICATION_USER" --no-password \
    --pgdata="$partial" --wal-method=stream --checkpoint=fast
  touch "$partial/standby.signal"
  chmod 0700 "$partial"
  rm -rf -- "$PGDATA"
  mv -- "$partial" "$PGDATA"
  echo "database-operator: copied the primary from $PRIMARY_HOST"
fi
conninfo="$primary user=$(conninfo_value "$REPLICATION_USER") password=$(conninfo_value "$REPLICATION_PASSWORD")"
conninfo+=" application_name=$(conninfo_value "$POD_NAME")"
set_auto_conf primary_conninfo "$(conf_string "$conninfo")"
echo "database-operator: starting as a replica of $PRIMARY_HOST (sslmode=$sslmode${PGSSLROOTCERT:+ sslrootcert=$PGSSLROOTCERT})"
`

// agent: with TLS, the copy from the primary, the rewind and the
// replication connection use TLS, verify the primary's certificate against
// the CA and check that it names the host (verify-full: the Service's name
// is one the certificate carries). The prepare script writes both into
// primary_conninfo on every start, so turning TLS on or off reaches the
// existing replicas too.
func (postgres) agent(s *spec) *agentRun {
	env := []*corev1ac.EnvVarApplyConfiguration{
		valueEnv("PRIMARY_HOST", PrimaryServiceHost(s.name, s.namespace)),
		valueEnv("PRIMARY_PORT", fmt.Sprint(postgresPort)),
		valueEnv("REPLICATION_USER", ReplicationUser),
		valueEnv("POSTGRES_CONFIG_FILE", postgresConfigDir+"/postgresql.conf"),
	}
	if s.tlsSecret != "" {
		env = append(env, valueEnv("PGSSLMODE", "verify-full"), valueEnv("PGSSLROOTCERT", tlsFile(TLSCAKey)))
	}
	syncNames := ""
	if s.syncReplication {
		// Any one standby's flush acknowledges a commit, whichever pods
		// exist: no list of names to keep in step with scaling.
		syncNames = postgresSyncStandbys
	}
	run := &agentRun{engine: "postgresql", stopSignal: "SIGINT", prepare: postgresPrepare, env: env,
		flags: []string{"--synchronous-standby-names=" + syncNames, "--isolation-timeout=" + postgresIsolationTimeout.String()}}
	if ArchivingOf(s.db) != nil {
		run.flags = append(run.flags, "--archive-timeout="+s.archiveTimeout())
	}
	return run
}

func (postgres) initContainers(*spec) []*corev1ac.ContainerApplyConfiguration { return nil }

// postgresIsolationTimeout is how long a primary that had replicas may be
// without any streaming from it and without the API server before its
// agent stops it (agent.Config.IsolationTimeout). The primary sees its
// replicas go after wal_sender_timeout (5s), so it is fenced about 7-9s
// into a partition; the replicas see it go after as long, and the operator
// promotes one a failover delay after that: with the default 5s, the old
// primary stops before the new one starts. A constant, not derived from
// the delay: a change of the delay must not restart every pod.
const postgresIsolationTimeout = 2 * time.Second

// postgresSyncStandbys is synchronous_standby_names in sync mode.
const postgresSyncStandbys = "ANY 1 (*)"

// restore loads the dump as the application user, so the restored objects
// belong to it (the dump carries no owners); the entrypoint's
// docker_process_sql connects as the superuser to POSTGRES_DB.
func (postgres) restore() restoreSteps {
	return restoreSteps{
		file: "20-restore.sh",
		load: `{ printf 'SET ROLE "%s";\n' "${APP_USER//\"/\"\"}"; gunzip -c -- "$restore_file"; } | docker_process_sql`,
	}
}

// backupScript dumps the application database without owners and
// privileges: roles are not part of a database dump, so a dump that names
// them only loads where the same roles exist. The restore makes the
// application user own what it loads.
func (postgres) backupScript(*spec) string {
	return backupScript(`  pg_dump --host="$DB_HOST" --port="$DB_PORT" --username="$DB_USER" --no-password --dbname="$DB_NAME" \
    --clean --if-exists --no-owner --no-privileges`)
}

// backupEnv: with TLS the dump travels encrypted (sslmode=require; the
// backup Job does not mount the CA, so it does not verify the server).
func (postgres) backupEnv(s *spec) []*corev1ac.EnvVarApplyConfiguration {
	env := []*corev1ac.EnvVarApplyConfiguration{
		valueEnv("DB_HOST", ServiceName(s.name)),
		valueEnv("DB_PORT", fmt.Sprint(postgresPort)),
		valueEnv("DB_USER", postgresSuperuser),
		secretEnv(s, "PGPASSWORD", SecretKeyRootPassword),
		secretEnv(s, "DB_NAME", SecretKeyDatabase),
	}
	if s.tlsSecret != "" {
		env = append(env, valueEnv("PGSSLMODE", "require"))
	}
	return env
}

// exporter connects over loopback; with TLS it encrypts without verifying
// (127.0.0.1 is not a name the certificate carries), which production's
// pg_hba.conf requires.
func (postgres) exporter(s *spec) *corev1ac.ContainerApplyConfiguration {
	sslmode := "disable"
	if s.tlsSecret != "" {
		sslmode = "require"
	}
	c := exporterContainer(s, s.opts.PostgresExporterImage, postgresExporterPort).
		WithEnv(
			valueEnv("DATA_SOURCE_URI", fmt.Sprintf("127.0.0.1:%d/postgres?sslmode=%s", postgresPort, sslmode)),
			valueEnv("DATA_SOURCE_USER", postgresSuperuser),
			secretEnv(s, "DATA_SOURCE_PASS", SecretKeyRootPassword),
		)
	if ArchivingOf(s.db) != nil {
		c.WithEnv(valueEnv("PG_EXPORTER_EXTEND_QUERY_PATH", postgresExporterQueriesPath)).
			WithVolumeMounts(corev1ac.VolumeMount().WithName(postgresExporterQueriesVolume).WithMountPath(postgresExporterQueriesDir).WithReadOnly(true))
	}
	return c
}

func (postgres) exporterVolumes(s *spec) []*corev1ac.VolumeApplyConfiguration {
	if ArchivingOf(s.db) == nil {
		return nil
	}
	return []*corev1ac.VolumeApplyConfiguration{corev1ac.Volume().WithName(postgresExporterQueriesVolume).
		WithConfigMap(corev1ac.ConfigMapVolumeSource().
			WithName(ConfigMapName(s.name)).
			WithDefaultMode(configVolumeMode).
			WithItems(corev1ac.KeyToPath().WithKey(postgresExporterQueriesKey).WithPath("queries.yaml")))}
}
