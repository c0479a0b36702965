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

// mysqlStart gives each pod a distinct server id from its ordinal (0 is not
// allowed for replication) before handing over to the image's entrypoint.
const mysqlStart = `ordinal="${POD_NAME##*-}"
exec docker-entrypoint.sh mysqld --server-id="$((ordinal + 1))" --report-host="${POD_NAME}.${HEADLESS_SERVICE}"`

// initialisation: the entrypoint initialises when $DATADIR/mysql is
// missing. The volume is the data directory (DATA_VOLUME), so emptying keeps
// lost+found and the marker.
func (mysql) initialisation(*spec) initialisation {
	return initialisation{
		marker:      `"$DATA_VOLUME/` + initialisingMarker + `"`,
		initialised: `[ -d "$DATA_VOLUME/mysql" ]`,
		empty: `find "$DATA_VOLUME" -mindepth 1 -maxdepth 1 ! -name lost+found ! -name ` + initialisingMarker +
			` -exec rm -rf -- {} +`,
		start: mysqlStart,
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
		valueEnv("PRIMARY_HOST", PrimaryHost(s.name, s.namespace)),
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
	b.WriteString("# Replication: GTIDs on; pod 0 is the source, the others replicate from it.\n")
	line("gtid_mode", "ON")
	line("enforce_gtid_consistency", "ON")
	line("log_bin", "binlog")
	line("binlog_expire_logs_seconds", "604800")
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
// certificate against the CA, and check that it names the host: the source is reached by its fully qualified pod name
// (PrimaryHost), which the certificate carries. Without the host check any
// certificate from the same CA (a shared cert-manager issuer) would pass.
//
// These settings live in the replica's data directory and are written once,
// when it is initialised; the API refuses turning TLS on or off while a
// MySQL Database has replicas (see DatabaseSpec's rules).
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
// initialises an empty data directory, with the temporary server running.
// On pod 0 it creates the replication user. On a replica it loads a
// consistent copy of pod 0 (mysqldump with the source's GTID set, so nothing
// is applied twice), points replication at pod 0 with GTID auto-positioning,
// and makes the replica read-only.
const mysqlInitReplication = `# shellcheck shell=bash
# Rendered by database-operator: replication, set up once per data directory.
sql_string() {
  local s="${1//\\/\\\\}"
  printf "'%s'" "${s//\'/\'\'}"
}
replication_password_sql="$(sql_string "$REPLICATION_PASSWORD")"
if [ "${POD_NAME##*-}" = "0" ]; then
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
      SOURCE_AUTO_POSITION=1, GET_SOURCE_PUBLIC_KEY=1{{source-tls}};
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
// is reconnecting (the source restarting). A replica whose copy failed, or
// whose replication stopped with an error, then serves no reads from
// <db>-ro. Pod 0, the source, is Ready when it answers. The client connects
// as root on the local socket (which require_secure_transport allows), with
// the password from the environment, never on a command line. SHOW REPLICA
// STATUS names its columns Replica_* in MySQL and Slave_* in MariaDB.
const mysqlReadiness = `set -uo pipefail
if [ "${POD_NAME##*-}" = "0" ]; then
  exec mysqladmin ping --host=127.0.0.1 --port=3306 --silent
fi
status="$(MYSQL_PWD="$MYSQL_ROOT_PASSWORD" mysql --protocol=socket --user=root --batch --execute='SHOW REPLICA STATUS\G')" || exit 1
grep -Eq '^ *(Replica|Slave)_SQL_Running: Yes$' <<<"$status" || { echo "not replicating: the SQL thread is not running"; exit 1; }
grep -Eq '^ *(Replica|Slave)_IO_Running: (Yes|Connecting)$' <<<"$status" || { echo "not replicating: the I/O thread is stopped"; exit 1; }
`

func (mysql) readinessProbe() []string { return []string{"bash", "-c", mysqlReadiness} }

func (mysql) initContainers(*spec) []*corev1ac.ContainerApplyConfiguration { return nil }

// agent: MySQL servers do not run under the agent yet; pod 0 stays the
// primary.
func (mysql) agent(*spec) *agentRun { return nil }

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
