package render

import (
	"fmt"
	"strconv"
	"strings"

	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	databasev1 "github.com/example/database-operator/apis/database/v1"
)

// mysql runs the official mysql image: data in /var/lib/mysql, extra
// configuration in /etc/mysql/conf.d, and scripts in
// /docker-entrypoint-initdb.d that the entrypoint sources once, while it
// initialises an empty data directory.
type mysql struct{}

const (
	mysqlPort         = 3306
	mysqlDataPath     = "/var/lib/mysql"
	mysqlExporterPort = 9104
)

func (mysql) defaultImage(version string) string { return "mysql:" + version }
func (mysql) port() int32                        { return mysqlPort }
func (mysql) portName() string                   { return "mysql" }
func (mysql) dataPath() string                   { return mysqlDataPath }
func (mysql) metricsPort() int32                 { return mysqlExporterPort }

// The shell tests and commands on a MySQL data directory that more than
// one script needs: the entrypoint considers it initialised when the
// system schema exists; emptying it keeps lost+found and the marker of an
// unfinished initialisation (initialise.go).
const (
	mysqlInitialised = `[ -d "$DATA_VOLUME/mysql" ]`
	mysqlEmpty       = `find "$DATA_VOLUME" -mindepth 1 -maxdepth 1 ! -name lost+found ! -name ` + initialisingMarker +
		` -exec rm -rf -- {} +`
	// mysqlSQLString is a bash function that quotes its argument as a
	// MySQL string literal (backslashes and quotes doubled).
	mysqlSQLString = `sql_string() {
  local s="${1//\\/\\\\}"
  printf "'%s'" "${s//\'/\'\'}"
}
`
	// mysqlSourceRetry is how a replica's I/O thread retries a lost
	// source: every second, for a day (MySQL 8.4's default gives up after
	// 10 tries, and a failover takes longer than that).
	mysqlSourceRetry = "SOURCE_CONNECT_RETRY=1, SOURCE_RETRY_COUNT=86400"
)

// mysqlStart gives each pod a distinct server id from its ordinal (0 is not
// allowed for replication) before handing over to the image's entrypoint.
//
// A server whose data directory exists starts read-only (super_read_only,
// on the command line, so that data directories made before it get it
// too): a primary accepts writes only once its agent has seen it answer
// in the role the operator gave the pod (agent.MySQL.ConfigurePrimary), so
// a former primary that restarts is fenced until it is told its role. An
// empty data directory is initialised by the image's entrypoint with a
// temporary server the same flags reach, which must write; a replica's
// initialisation persists read-only itself (mysqlInitReplication).
const mysqlStart = `ordinal="${POD_NAME##*-}"
fenced=()
if ` + mysqlInitialised + `; then
  fenced=(--read-only=ON --super-read-only=ON)
fi
exec docker-entrypoint.sh mysqld --server-id="$((ordinal + 1))" --report-host="${POD_NAME}.${HEADLESS_SERVICE}" "${fenced[@]}"`

// initialisation: the entrypoint initialises when $DATADIR/mysql is
// missing. The volume is the data directory (DATA_VOLUME), so emptying keeps
// lost+found and the marker.
func (mysql) initialisation(*spec) initialisation {
	return initialisation{
		marker:      `"$DATA_VOLUME/` + initialisingMarker + `"`,
		initialised: mysqlInitialised,
		empty:       mysqlEmpty,
		start:       mysqlStart,
	}
}

func (mysql) env(s *spec) []*corev1ac.EnvVarApplyConfiguration {
	return []*corev1ac.EnvVarApplyConfiguration{
		secretEnv(s, "MYSQL_ROOT_PASSWORD", SecretKeyRootPassword),
		secretEnv(s, "MYSQL_DATABASE", SecretKeyDatabase),
		secretEnv(s, "MYSQL_USER", SecretKeyUsername),
		secretEnv(s, "MYSQL_PASSWORD", SecretKeyPassword),
		secretEnv(s, "REPLICATION_PASSWORD", SecretKeyReplicationPassword),
		valueEnv("REPLICATION_USER", ReplicationUser),
		valueEnv("PRIMARY_HOST", PrimaryServiceHost(s.name, s.namespace)),
		valueEnv("PRIMARY_PORT", fmt.Sprint(mysqlPort)),
		valueEnv("HEADLESS_SERVICE", HeadlessServiceName(s.name)),
		valueEnv("DATA_VOLUME", mysqlDataPath),
		valueEnv("RESET_BINARY_LOGS", mysqlResetBinaryLogs(s.db.Spec.Version)),
		podNameEnv(),
	}
}

// mysqlResetBinaryLogs is the statement that clears a server's binary logs
// and GTID history: MySQL 8.2 renamed RESET MASTER and 8.4 removed the old
// name. A tag without a minor version is the newest release of its major
// version: "8" runs 8.4 (the last 8.x series), "9" the newest 9.x.
func mysqlResetBinaryLogs(version string) string {
	major, minor, hasMinor := leadingVersion(version)
	if major > 8 || (major == 8 && (!hasMinor || minor >= 2)) {
		return "RESET BINARY LOGS AND GTIDS"
	}
	return "RESET MASTER"
}

// leadingVersion parses the "<major>[.<minor>]" a version tag starts with;
// hasMinor says whether the tag names a minor version at all.
func leadingVersion(version string) (major, minor int, hasMinor bool) {
	parts := strings.SplitN(strings.SplitN(version, "-", 2)[0], ".", 3)
	major, _ = strconv.Atoi(strings.TrimRightFunc(parts[0], notDigit))
	if len(parts) > 1 {
		minor, _ = strconv.Atoi(parts[1])
		hasMinor = true
	}
	return major, minor, hasMinor
}

func notDigit(r rune) bool { return r < '0' || r > '9' }

func (mysql) configMounts() []configMount {
	return []configMount{
		{volume: "config", mountPath: "/etc/mysql/conf.d", items: map[string]string{
			"my.cnf": "database-operator.cnf",
		}},
		{volume: "initdb", mountPath: initdbMountPath, items: map[string]string{
			"initdb-replication.sh": "50-replication.sh",
		}},
	}
}

func (mysql) configFiles(s *spec) map[string]string {
	files := map[string]string{
		"my.cnf":                mysqlConf(s),
		"initdb-replication.sh": mysqlInitReplicationFor(s),
	}
	if s.tlsSecret != "" && s.metrics {
		files[mysqlExporterConfigKey] = mysqlExporterConfig
	}
	return files
}

// mysqlConf holds only options that MySQL 8.0 and 8.4 still have (no
// query_cache_*, no default_authentication_plugin, no expire_logs_days).
func mysqlConf(s *spec) string {
	var b strings.Builder
	line := func(k, v string) { fmt.Fprintf(&b, "%s = %s\n", k, v) }
	fmt.Fprintf(&b, "# Rendered by database-operator for %s/%s (%s). Changes roll the pods.\n", s.namespace, s.name, s.environment)
	b.WriteString("[mysqld]\n")
	line("port", fmt.Sprint(mysqlPort))
	line("skip_name_resolve", "ON")
	line("character_set_server", "utf8mb4")
	line("max_connections", fmt.Sprint(s.profile.maxConnections))
	line("innodb_buffer_pool_size", fmt.Sprintf("%dM", s.megabytes(1, 2, 128)))
	b.WriteString("# Replication: GTIDs on; the primary (status.currentPrimary) is the source, the others\n")
	b.WriteString("# replicate from it through the read-write Service, with GTID auto-positioning.\n")
	line("gtid_mode", "ON")
	line("enforce_gtid_consistency", "ON")
	line("log_bin", "binlog")
	line("log_replica_updates", "ON")
	line("binlog_expire_logs_seconds", "604800")
	if a := ArchivingOf(s.db); a != nil {
		fmt.Fprintf(&b, "# Continuous archiving to s3://%s/%s: the primary's agent ships each binary log file\n", a.Bucket, ArchiveFolder(a, s.name))
		fmt.Fprintf(&b, "# as it closes, and closes it after %s. Files rotate at 64M (a larger transaction\n", s.archiveTimeout())
		b.WriteString("# makes a larger file): a restore replays one at a time.\n")
		line("max_binlog_size", "64M")
	}
	b.WriteString("# A replica drops a source silent for 5s (heartbeats every 2.5s) and retries every second:\n")
	b.WriteString("# it notices a lost primary in seconds and follows the new one through the Service.\n")
	line("replica_net_timeout", "5")
	b.WriteString("# Semi-synchronous replication, on at the primary in sync mode (the agent's):\n")
	b.WriteString("# every replica acknowledges what it has received.\n")
	line("plugin_load_add", "semisync_source.so")
	line("plugin_load_add", "semisync_replica.so")
	line("loose_rpl_semi_sync_replica_enabled", "ON")
	line("loose_rpl_semi_sync_source_enabled", "OFF")
	b.WriteString("# Logs go to stderr, where the container runtime collects them.\n")
	line("log_error_verbosity", "2")
	if s.logging {
		line("slow_query_log", "ON")
		line("slow_query_log_file", "/dev/stderr")
		line("long_query_time", "0.25")
	} else {
		line("slow_query_log", "OFF")
	}
	if s.tlsSecret != "" {
		fmt.Fprintf(&b, "# TLS with the certificate of Secret %s, mounted read-only.\n", s.tlsSecret)
		line("ssl_ca", tlsFile(TLSCAKey))
		line("ssl_cert", tlsFile(TLSCertKey))
		line("ssl_key", tlsFile(TLSPrivateKeyKey))
		line("tls_version", "TLSv1.2,TLSv1.3")
		if s.environment == databasev1.Production {
			b.WriteString("# Production: TCP clients must use TLS (the local socket counts as secure).\n")
			line("require_secure_transport", "ON")
		}
	}
	return b.String()
}

// mysqlInitReplicationFor is mysqlInitReplication with its TLS marks filled
// in: nothing without TLS. With TLS the replica's copy of the source
// (mysqldump --ssl-mode=VERIFY_IDENTITY) and its replication connection
// (SOURCE_SSL_VERIFY_SERVER_CERT=1) are encrypted, check the source's
// certificate against the CA, and check that it names the host: the
// primary is reached by the read-write Service's name (PrimaryServiceHost),
// which the certificate carries. Without the host check any certificate
// from the same CA (a shared cert-manager issuer) would pass.
//
// These settings live in the replica's data directory; the agent's prepare
// step writes them again from the spec at every start of an initialised
// replica (mysqlPrepare). The API still refuses turning TLS on or off while
// a MySQL Database has replicas (see DatabaseSpec's rules): that path has
// not run against a MySQL server.
func mysqlInitReplicationFor(s *spec) string {
	dumpTLS, sourceTLS := "", ""
	if s.tlsSecret != "" {
		ca := tlsFile(TLSCAKey)
		dumpTLS = " --ssl-mode=VERIFY_IDENTITY --ssl-ca=" + ca
		sourceTLS = ",\n      SOURCE_SSL=1, SOURCE_SSL_CA='" + ca + "', SOURCE_SSL_VERIFY_SERVER_CERT=1"
	}
	return strings.NewReplacer(mysqlDumpTLSMark, dumpTLS, mysqlSourceTLSMark, sourceTLS).Replace(mysqlInitReplication)
}

// The places in mysqlInitReplication that take the TLS options: every
// rendering replaces them, with nothing when TLS is off.
const (
	mysqlDumpTLSMark   = "{{dump-tls}}"
	mysqlSourceTLSMark = "{{source-tls}}"
)

const (
	// mysqlExporterConfigKey is the ConfigMap key of the exporter's client
	// configuration, rendered with TLS and metrics on; the exporter reads
	// it as mysqlExporterConfigPath.
	mysqlExporterConfigKey    = "mysqld-exporter.cnf"
	mysqlExporterConfigVolume = "exporter-config"
	mysqlExporterConfigDir    = "/etc/mysqld-exporter"
	mysqlExporterConfigPath   = mysqlExporterConfigDir + "/exporter.cnf"
)

// mysqlExporterConfig makes mysqld_exporter use TLS: it only does when its
// client section names a CA. It does not verify the server with that CA:
// the exporter runs with --tls.insecure-skip-verify (see exporter), because
// it connects to 127.0.0.1, a name the certificate does not carry. The
// connection never leaves the pod; TLS is there because production's
// require_secure_transport refuses plain TCP. User and password still come
// from the command line and MYSQLD_EXPORTER_PASSWORD.
var mysqlExporterConfig = "# Rendered by database-operator: mysqld_exporter uses TLS over loopback, without verifying the server (127.0.0.1 is not in the certificate).\n[client]\nssl-ca = " + tlsFile(TLSCAKey) + "\n"

// mysqlInitReplication is sourced by the image's entrypoint once, while it
// initialises an empty data directory, with the temporary server running,
// and ROLE set by the agent to the pod's role. On the primary it creates
// the replication user. On a replica it loads a consistent copy of the
// current primary, reached through the read-write Service (mysqldump with
// the source's GTID set, so nothing is applied twice), points replication
// there with GTID auto-positioning, and makes the replica read-only for
// good (SET PERSIST: only a promotion's SET GLOBAL lifts it, until the next
// start).
const mysqlInitReplication = `# shellcheck shell=bash
# Rendered by database-operator: replication, set up once per data directory.
` + mysqlSQLString + `replication_password_sql="$(sql_string "$REPLICATION_PASSWORD")"
if [ "$ROLE" = primary ]; then
  mysql_note "database-operator: creating replication user ${REPLICATION_USER}"
  docker_process_sql --database=mysql <<EOSQL
    CREATE USER '${REPLICATION_USER}'@'%' IDENTIFIED BY ${replication_password_sql};
    GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '${REPLICATION_USER}'@'%';
EOSQL
else
  mysql_note "database-operator: copying ${PRIMARY_HOST} and replicating from it"
  until mysqladmin ping --host="$PRIMARY_HOST" --port="$PRIMARY_PORT" --silent; do
    mysql_note "waiting for ${PRIMARY_HOST}"
    sleep 2
  done
  docker_process_sql --database=mysql <<<"${RESET_BINARY_LOGS};"
  MYSQL_PWD="$MYSQL_ROOT_PASSWORD" mysqldump --host="$PRIMARY_HOST" --port="$PRIMARY_PORT" --user=root{{dump-tls}} \
    --all-databases --single-transaction --triggers --routines --events --set-gtid-purged=ON |
    docker_process_sql --database=mysql
  docker_process_sql --database=mysql <<EOSQL
    CHANGE REPLICATION SOURCE TO SOURCE_HOST='${PRIMARY_HOST}', SOURCE_PORT=${PRIMARY_PORT},
      SOURCE_USER='${REPLICATION_USER}', SOURCE_PASSWORD=${replication_password_sql},
      SOURCE_AUTO_POSITION=1, GET_SOURCE_PUBLIC_KEY=1, ` + mysqlSourceRetry + `{{source-tls}};
    SET PERSIST read_only = ON;
    SET PERSIST super_read_only = ON;
EOSQL
fi
`

func (mysql) probe() []string {
	// mysqladmin ping succeeds whenever the server answers, even with
	// "access denied", so the probe needs no password.
	return []string{"mysqladmin", "ping", "--host=127.0.0.1", fmt.Sprintf("--port=%d", mysqlPort), "--silent"}
}

// mysqlReadiness makes a replica Ready only while it replicates: its
// replication is configured, the SQL thread runs and the I/O thread runs or
// is reconnecting (the primary restarting, or a failover under way). A
// replica whose copy failed, or whose replication stopped with an error,
// then serves no reads from <db>-ro. A server with no replication
// configured is Ready only while it accepts writes: the primary once its
// agent has configured it, never a former primary fenced read-only until it
// is told its role. The client connects as root on the local socket (which
// require_secure_transport allows), with the password from the
// environment, never on a command line. SHOW REPLICA STATUS names its
// columns Replica_* in MySQL and Slave_* in MariaDB; read_only is ON
// whenever super_read_only is.
const mysqlReadiness = `set -uo pipefail
ask() { MYSQL_PWD="$MYSQL_ROOT_PASSWORD" mysql --protocol=socket --user=root --batch "$@"; }
status="$(ask --execute='SHOW REPLICA STATUS\G')" || exit 1
if [ -z "$status" ]; then
  read_only="$(ask --skip-column-names --execute='SELECT @@global.read_only')" || exit 1
  [ "$read_only" = 0 ] || { echo "not serving: no replication configured and read-only (waiting to be told its role)"; exit 1; }
  exit 0
fi
grep -Eq '^ *(Replica|Slave)_SQL_Running: Yes$' <<<"$status" || { echo "not replicating: the SQL thread is not running"; exit 1; }
grep -Eq '^ *(Replica|Slave)_IO_Running: (Yes|Connecting)$' <<<"$status" || { echo "not replicating: the I/O thread is stopped"; exit 1; }
`

func (mysql) readinessProbe() []string { return []string{"bash", "-c", mysqlReadiness} }

func (mysql) initContainers(*spec) []*corev1ac.ContainerApplyConfiguration { return nil }

// agent: the server stops cleanly on SIGTERM (the image has no
// STOPSIGNAL). In sync mode the agent turns semi-synchronous replication on
// at the primary. With TLS, the prepare script's questions to the primary
// and the replication connection verify the primary's certificate and its
// name (the read-write Service's, which the certificate carries).
func (mysql) agent(s *spec) *agentRun {
	env := []*corev1ac.EnvVarApplyConfiguration{}
	if s.tlsSecret != "" {
		env = append(env, valueEnv("PRIMARY_TLS_CA", tlsFile(TLSCAKey)))
	}
	run := &agentRun{engine: "mysql", stopSignal: "SIGTERM", prepare: mysqlPrepare, env: env,
		flags: []string{fmt.Sprintf("--semi-sync=%t", s.syncReplication)}}
	if ArchivingOf(s.db) != nil {
		run.flags = append(run.flags, "--archive-timeout="+s.archiveTimeout())
	}
	return run
}

// mysqlPrepare is run by the agent before every start of the server, with
// ROLE set to the pod's role. A primary starts as it is (fenced read-only
// until its agent configures it), and so does an empty data directory,
// which the image's entrypoint initialises (mysqlInitReplication copies the
// primary). A replica's existing data directory, which may be a former
// primary's, is made to follow the current primary, reached through the
// read-write Service, before the server starts, with a temporary server on
// a private socket and no network:
//
//   - when it holds transactions the primary lacks (its executed GTID set
//     is not a subset of the primary's: writes of a former primary that no
//     replica received), replication could never reconcile them, so the
//     data directory is emptied and the entrypoint copies the primary again;
//   - otherwise replication is pointed at the Service with GTID
//     auto-positioning, with the credentials and TLS settings of today's
//     spec, so a former primary rejoins without a copy, and a replica made
//     before the primary role could move (which named pod 0) follows the
//     role from now on.
//
// The I/O thread retries a lost source as a copied replica's does
// (mysqlSourceRetry). Passwords only pass through the
// environment (MYSQL_PWD) and the SQL sent on the client's standard input,
// never a command line.
const mysqlPrepare = `set -euo pipefail
if [ "$ROLE" = primary ]; then
  echo "database-operator: starting as the primary (read-only until the agent configures it)"
  exit 0
fi
if ! ` + mysqlInitialised + ` || [ -e "$DATA_VOLUME/` + initialisingMarker + `" ]; then
  echo "database-operator: no complete data directory; the entrypoint copies the primary"
  exit 0
fi
` + mysqlSQLString + `primary_tls=()
source_tls=""
if [ -n "${PRIMARY_TLS_CA:-}" ]; then
  primary_tls=(--ssl-mode=VERIFY_IDENTITY "--ssl-ca=$PRIMARY_TLS_CA")
  source_tls=", SOURCE_SSL=1, SOURCE_SSL_CA=$(sql_string "$PRIMARY_TLS_CA"), SOURCE_SSL_VERIFY_SERVER_CERT=1"
fi
ask_primary() {
  MYSQL_PWD="$MYSQL_ROOT_PASSWORD" mysql --no-defaults --host="$PRIMARY_HOST" --port="$PRIMARY_PORT" --user=root \
    --connect-timeout=5 "${primary_tls[@]}" --batch --raw --skip-column-names --execute="$1"
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
until mysqladmin --no-defaults ping --host="$PRIMARY_HOST" --port="$PRIMARY_PORT" --connect-timeout=2 --silent; do
  give_up_if_role_changed
  echo "database-operator: waiting for the primary at $PRIMARY_HOST:$PRIMARY_PORT"
  sleep 1
done
work="$(mktemp -d)"
socket="$work/mysqld.sock"
mysqld --server-id="$((${POD_NAME##*-} + 1))" --skip-networking --socket="$socket" --pid-file="$work/mysqld.pid" \
  --skip-replica-start --read-only=ON --super-read-only=ON &
temporary=$!
ask_local() {
  MYSQL_PWD="$MYSQL_ROOT_PASSWORD" mysql --no-defaults --protocol=socket --socket="$socket" --user=root \
    --batch --raw --skip-column-names "$@"
}
stop_temporary() {
  MYSQL_PWD="$MYSQL_ROOT_PASSWORD" mysqladmin --no-defaults --protocol=socket --socket="$socket" --user=root shutdown || kill "$temporary"
  wait "$temporary" || true
  rm -rf -- "$work"
}
trap stop_temporary EXIT
until MYSQL_PWD="$MYSQL_ROOT_PASSWORD" mysqladmin --no-defaults --protocol=socket --socket="$socket" --user=root ping --silent 2>/dev/null; do
  kill -0 "$temporary" 2>/dev/null || { echo "database-operator: the temporary server did not start" >&2; exit 1; }
  sleep 1
done
local_set="$(ask_local --execute='SELECT @@global.gtid_executed' | tr -d '\n')"
primary_set="$(ask_primary 'SELECT @@global.gtid_executed' | tr -d '\n')"
errant="$(ask_local --execute="SELECT GTID_SUBTRACT($(sql_string "$local_set"), $(sql_string "$primary_set"))" | tr -d '\n')"
if [ -n "$errant" ]; then
  echo "database-operator: this server holds transactions the primary lacks ($errant); copying the primary again" >&2
  stop_temporary
  trap - EXIT
  ` + mysqlEmpty + `
  exit 0
fi
ask_local <<EOSQL
STOP REPLICA;
CHANGE REPLICATION SOURCE TO SOURCE_HOST=$(sql_string "$PRIMARY_HOST"), SOURCE_PORT=$PRIMARY_PORT,
  SOURCE_USER=$(sql_string "$REPLICATION_USER"), SOURCE_PASSWORD=$(sql_string "$REPLICATION_PASSWORD"),
  SOURCE_AUTO_POSITION=1, GET_SOURCE_PUBLIC_KEY=1, ` + mysqlSourceRetry + `${source_tls};
SET PERSIST read_only = ON;
SET PERSIST super_read_only = ON;
EOSQL
echo "database-operator: starting as a replica of $PRIMARY_HOST"
`

// restore loads the dump into MYSQL_DATABASE: the entrypoint's
// docker_process_sql connects as root with --database="$MYSQL_DATABASE", and
// the dump names no database (see backupScript).
//
// The dump's views, triggers, routines and events name their definer, an
// account of the source (DEFINER=`app`@`%`); on a Database with another
// application user that account does not exist, and using the object fails
// (ERROR 1449). The restore makes the application user the definer of
// everything it loads. Rows are left alone: the rewrite skips every row
// statement, from its INSERT INTO line to the line that ends it with ";"
// (MySQL's mysqldump writes a statement on one line, MariaDB's a line per
// row; both escape line breaks inside values, so a row line never ends a
// statement early).
func (mysql) restore() restoreSteps {
	return restoreSteps{
		file:    "60-restore.sh",
		prepare: mysqlRestoreDefiner,
		load:    mysqlRestoreLoad,
	}
}

// mysqlRestoreDefiner quotes the application user as a definer
// (`user`@`%`, backticks doubled) for a sed replacement: \, & and the #
// delimiter escaped, a line break as \n.
const mysqlRestoreDefiner = `bt='` + "`" + `'
restore_definer="${bt}${MYSQL_USER//$bt/$bt$bt}${bt}@${bt}%${bt}"
  restore_definer="${restore_definer//\\/\\\\}"
  restore_definer="${restore_definer//&/\\&}"
  restore_definer="${restore_definer//#/\\#}"
  restore_definer="${restore_definer//$'\n'/\\n}"`

// mysqlRestoreLoad rewrites every definer outside row statements.
const mysqlRestoreLoad = `gunzip -c -- "$restore_file" |
    sed -E "/^INSERT INTO /{:row;/;\$/!{N;b row};b};s#DEFINER=${bt}([^${bt}]|${bt}${bt})+${bt}@${bt}([^${bt}]|${bt}${bt})+${bt}#DEFINER=${restore_definer}#g" |
    docker_process_sql`

// backupScript dumps the application database without a CREATE DATABASE or
// USE statement, so the dump loads into whichever database the client names
// (a restored Database's application database may have another name). With
// GTIDs on, mysqldump would record the source's GTID set, which a restore
// into another server must not adopt: --set-gtid-purged=OFF, when this
// mysqldump has the option (MySQL's has it, MariaDB's does not).
func (mysql) backupScript(*spec) string {
	return backupScript(`  gtid_option=()
  case "$(mysqldump --help 2>/dev/null)" in
    *--set-gtid-purged*) gtid_option=(--set-gtid-purged=OFF) ;;
  esac
  mysqldump --host="$DB_HOST" --port="$DB_PORT" --user="$DB_USER" \
    --single-transaction --routines --triggers --events "${gtid_option[@]}" "$DB_NAME"`)
}

func (mysql) backupEnv(s *spec) []*corev1ac.EnvVarApplyConfiguration {
	return []*corev1ac.EnvVarApplyConfiguration{
		valueEnv("DB_HOST", ServiceName(s.name)),
		valueEnv("DB_PORT", fmt.Sprint(mysqlPort)),
		valueEnv("DB_USER", "root"),
		secretEnv(s, "MYSQL_PWD", SecretKeyRootPassword),
		secretEnv(s, "DB_NAME", SecretKeyDatabase),
	}
}

// exporter connects over loopback. With TLS (which production's
// require_secure_transport demands) it reads a client configuration naming
// the CA, and skips verification: 127.0.0.1 is not a name the certificate
// carries.
func (mysql) exporter(s *spec) *corev1ac.ContainerApplyConfiguration {
	c := exporterContainer(s, s.opts.MySQLExporterImage, mysqlExporterPort).
		WithArgs(fmt.Sprintf("--mysqld.address=127.0.0.1:%d", mysqlPort), "--mysqld.username=root").
		WithEnv(secretEnv(s, "MYSQLD_EXPORTER_PASSWORD", SecretKeyRootPassword))
	if s.tlsSecret != "" {
		c.WithArgs("--config.my-cnf="+mysqlExporterConfigPath, "--tls.insecure-skip-verify").
			WithVolumeMounts(
				corev1ac.VolumeMount().WithName(mysqlExporterConfigVolume).WithMountPath(mysqlExporterConfigDir).WithReadOnly(true),
				tlsVolumeMount())
	}
	return c
}

func (mysql) exporterVolumes(s *spec) []*corev1ac.VolumeApplyConfiguration {
	if s.tlsSecret == "" {
		return nil
	}
	return []*corev1ac.VolumeApplyConfiguration{corev1ac.Volume().WithName(mysqlExporterConfigVolume).
		WithConfigMap(corev1ac.ConfigMapVolumeSource().
			WithName(ConfigMapName(s.name)).
			WithDefaultMode(configVolumeMode).
			WithItems(corev1ac.KeyToPath().WithKey(mysqlExporterConfigKey).WithPath("exporter.cnf")))}
}
