#!/usr/bin/env bash
# test-entrypoint.sh ARCHIVE: checks a postgres image archive made by
# ../build.sh without a cluster. It unpacks the archive's layer, then runs the
# image's entrypoint and command the way the operator's pods do (uid 999,
# PGDATA below a group-999 volume, `postgres -c config_file=...` with a
# pg_hba.conf that wants SCRAM on the socket too, a non-executable init
# script that calls docker_process_sql with -v options), in a chroot with its
# own mount, PID and network namespaces, so the server is PID 1 there and
# nothing listens on the host's network. Checks: the server comes up, the
# init script ran once, SIGINT stops it, a second start skips
# initialisation; an unset password is refused with a clear error; started
# as root, the entrypoint re-executes itself as 999.
# Needs root, unshare, chroot, python3. Leaves nothing running.
set -euo pipefail
ARCHIVE="$(realpath "$1")"
T="$(mktemp -d /tmp/pg-entrypoint-test.XXXXXX)"
R="$T/rootfs"
server_pid=

cleanup() {
	if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
		kill -KILL "$server_pid" 2>/dev/null || :
		wait "$server_pid" 2>/dev/null || :
	fi
	rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }

# Unpack the image's one layer, as containerd would.
mkdir -p "$T/oci" "$R"
tar -xf "$ARCHIVE" -C "$T/oci"
layer="$(python3 -c '
import json, sys
oci = sys.argv[1]
idx = json.load(open(oci + "/index.json"))
m = json.load(open(oci + "/blobs/sha256/" + idx["manifests"][0]["digest"][7:]))
print(oci + "/blobs/sha256/" + m["layers"][0]["digest"][7:])' "$T/oci")"
tar --numeric-owner --xattrs -xpf "$layer" -C "$R"
rm -rf "$T/oci"
# The image's environment, from its config.
mapfile -t image_env < <(tar -xOf "$ARCHIVE" index.json | python3 -c '
import json, subprocess, sys
blob = lambda d: json.loads(subprocess.check_output(["tar", "-xOf", sys.argv[1], "blobs/sha256/" + d[7:]]))
m = blob(json.load(sys.stdin)["manifests"][0]["digest"])
print("\n".join(blob(m["config"]["digest"])["config"]["Env"]))' "$ARCHIVE")
image_pgdata="$(printf '%s\n' "${image_env[@]}" | sed -n 's/^PGDATA=//p')"
[ -d "$R$image_pgdata" ] && [ "$(stat -c %u "$R$image_pgdata")" = 999 ] ||
	fail "the image's PGDATA $image_pgdata is not a directory of 999"

# What the operator mounts: its config (SCRAM everywhere), the init script
# (a ConfigMap file: mode 0644, so it is sourced), a volume writable by the
# fsGroup 999 at /var/lib/postgresql/data with PGDATA a subdirectory.
mkdir -p "$R/etc/postgresql"
cat >"$R/etc/postgresql/postgresql.conf" <<'EOF'
listen_addresses = '*'
port = 5432
hba_file = '/etc/postgresql/pg_hba.conf'
password_encryption = 'scram-sha-256'
logging_collector = off
EOF
cat >"$R/etc/postgresql/pg_hba.conf" <<'EOF'
local   all          all                  scram-sha-256
host    all          all         all      scram-sha-256
EOF
cat >"$R/docker-entrypoint-initdb.d/10-users.sh" <<'EOF'
echo "10-users.sh: run $((++INIT_RUNS))" >>"$PGDATA/init-runs"
docker_process_sql -v app_user="$APP_USER" -v app_password="$APP_PASSWORD" -v app_db="$POSTGRES_DB" <<'EOSQL'
CREATE ROLE :"app_user" LOGIN PASSWORD :'app_password';
ALTER DATABASE :"app_db" OWNER TO :"app_user";
CREATE TABLE marker (note text);
INSERT INTO marker VALUES ('from 10-users.sh');
EOSQL
EOF
chmod 0644 "$R/docker-entrypoint-initdb.d/10-users.sh"
printf 'CREATE TABLE from_sql_gz (x int);\n' | gzip >"$R/docker-entrypoint-initdb.d/20-table.sql.gz"
mkdir -p "$R/var/lib/postgresql/data"
chown 0:999 "$R/var/lib/postgresql/data"
chmod 2775 "$R/var/lib/postgresql/data"

# start USERSPEC ENV...: the entrypoint with the operator's command, as PID 1
# of new mount/PID/network namespaces, output in $T/server.log.
start() {
	local userspec="$1"
	shift
	unshare --mount --pid --net --fork --kill-child sh -c '
		ip link set lo up 2>/dev/null || :
		mount -t proc proc "$0/proc"
		mount -t tmpfs -o mode=1777,size=64m shm "$0/dev/shm"   # as a container runtime does
		userspec="$1"; shift
		exec chroot --userspec="$userspec" "$0" "$@"' "$R" "$userspec" \
		env -i "${image_env[@]}" "$@" \
		docker-entrypoint.sh postgres -c config_file=/etc/postgresql/postgresql.conf \
		>"$T/server.log" 2>&1 &
	server_pid=$!
}

# psql_as USER PASSWORD SQL: a query over the image's unix socket.
psql_as() {
	chroot --userspec=999:999 "$R" env -i "${image_env[@]}" PGPASSWORD="$2" \
		psql --no-psqlrc -h /var/run/postgresql -U "$1" -d app -Atc "$3"
}

# wait_ready: the final server accepts connections (the temporary one has
# stopped once either message is logged).
wait_ready() {
	local _
	for _ in $(seq 60); do
		if grep -Eq 'init process complete|skipping initialization' "$T/server.log" &&
			chroot --userspec=999:999 "$R" env -i "${image_env[@]}" pg_isready -q -h /var/run/postgresql; then
			return 0
		fi
		kill -0 "$server_pid" 2>/dev/null || { cat "$T/server.log"; fail "the container exited"; }
		sleep 0.5
	done
	cat "$T/server.log"
	fail "server not ready after 30 s"
}

stop_sigint() {
	# The signal goes to the entrypoint's process, which exec'd the server.
	local pid1
	pid1="$(pgrep -P "$server_pid" | head -n1)"
	[ -n "$pid1" ] || fail "no container process"
	[ "$(ps -o comm= -p "$pid1")" = postgres ] || fail "PID 1 of the container is $(ps -o comm= -p "$pid1"), not postgres"
	kill -INT "$pid1"
	wait "$server_pid" || :
	server_pid=
	grep -q 'database system is shut down' "$T/server.log" || { cat "$T/server.log"; fail "no clean shutdown after SIGINT"; }
}

secrets=(PGDATA=/var/lib/postgresql/data/pgdata POSTGRES_PASSWORD='s3cr3t pw' POSTGRES_DB=app
	APP_USER=appuser APP_PASSWORD="app'pw")

# 1. No password: refused with a clear message, nothing initialised.
start 999:999 PGDATA=/var/lib/postgresql/data/pgdata
wait "$server_pid" && fail "started without a password" || :
server_pid=
grep -q 'no superuser password is set' "$T/server.log" || { cat "$T/server.log"; fail "no clear error without a password"; }
[ ! -s "$R/var/lib/postgresql/data/pgdata/PG_VERSION" ] || fail "initialised without a password"
pass "no POSTGRES_PASSWORD: refused ($(grep -m1 'error' "$T/server.log"))"

# 2. First start as 999: initialised, init script ran once, server PID 1.
start_time=$SECONDS
start 999:999 "${secrets[@]}"
wait_ready
pass "first start: ready in $((SECONDS - start_time)) s"
[ "$(psql_as postgres 's3cr3t pw' 'SELECT note FROM marker')" = 'from 10-users.sh' ] || fail "init script's table missing"
[ "$(psql_as appuser "app'pw" 'SELECT current_user')" = appuser ] || fail "app user cannot log in"
[ "$(psql_as postgres 's3cr3t pw' "SELECT pg_catalog.pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'app'")" = appuser ] || fail "app db not owned by app user"
[ "$(psql_as postgres 's3cr3t pw' "SELECT count(*) FROM pg_tables WHERE tablename = 'from_sql_gz'")" = 1 ] || fail "*.sql.gz not loaded"
[ "$(psql_as postgres 's3cr3t pw' "SELECT pg_encoding_to_char(encoding) || ' ' || datcollate FROM pg_database WHERE datname = 'app'")" = "UTF8 en_US.utf8" ] || fail "not UTF8/en_US.utf8"
nsenter -t "$(pgrep -P "$server_pid" | head -n1)" -n chroot --userspec=999:999 "$R" env -i "${image_env[@]}" \
	pg_isready --quiet --host=127.0.0.1 --port=5432 --username=postgres || fail "pg_isready over TCP (the operator's probe) failed"
[ "$(grep -c 'sourcing /docker-entrypoint-initdb.d/10-users.sh' "$T/server.log")" = 1 ] || fail "10-users.sh not sourced once"
[ "$(stat -c '%u %a' "$R/var/lib/postgresql/data/pgdata")" = "999 700" ] || fail "PGDATA not 999/0700"
grep -q '^host all all all scram-sha-256$' "$R/var/lib/postgresql/data/pgdata/pg_hba.conf" || fail "pg_hba.conf line missing"
! grep -rq 's3cr3t' "$R/tmp" 2>/dev/null || fail "password file left in /tmp"
pass "init: database app owned by appuser, 10-users.sh sourced once, *.sql.gz loaded, UTF8, TCP probe ok, PGDATA 999 0700"
stop_sigint
pass "SIGINT: clean shutdown"

# 3. Second start: initialisation skipped, the script did not run again.
start 999:999 "${secrets[@]}"
wait_ready
grep -q 'skipping initialization' "$T/server.log" || { cat "$T/server.log"; fail "init not skipped"; }
[ "$(wc -l <"$R/var/lib/postgresql/data/pgdata/init-runs")" = 1 ] || fail "init script ran again"
[ "$(psql_as postgres 's3cr3t pw' 'SELECT count(*) FROM marker')" = 1 ] || fail "marker rows changed"
stop_sigint
pass "restart: initialisation skipped, init script ran once in all"

# 4. Started as root with an empty volume: directories handed to 999, the
# entrypoint re-executes itself as 999 (setpriv), the server runs as 999.
rm -rf "$R/var/lib/postgresql/data/"*
chown 0:0 "$R/var/lib/postgresql/data"
chmod 0755 "$R/var/lib/postgresql/data"
start 0:0 "${secrets[@]}"
wait_ready
pid1="$(pgrep -P "$server_pid" | head -n1)"
[ "$(ps -o uid= -p "$pid1" | tr -d ' ')" = 999 ] || fail "server not running as 999 when started as root"
[ "$(stat -c %u "$R/var/lib/postgresql/data/pgdata")" = 999 ] || fail "PGDATA not handed to 999"
stop_sigint
pass "as root: re-executed as 999, server uid 999"

# 5. Other commands are exec'd as they are.
out="$(chroot --userspec=999:999 "$R" env -i "${image_env[@]}" docker-entrypoint.sh bash -c 'echo "$(id -u) $PGDATA"')"
[ "$out" = "999 $image_pgdata" ] || fail "bash -c not exec'd directly: $out, want 999 $image_pgdata"
pass "other commands exec'd directly"
echo "all checks passed for $ARCHIVE"
