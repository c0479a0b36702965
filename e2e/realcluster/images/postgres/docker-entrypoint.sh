#!/usr/bin/env bash
# docker-entrypoint.sh of the real-pod cluster's postgres images
# (docker.io/library/postgres:<major>, built by ../build.sh from Debian's
# postgresql-<major>).
#
# Written for this project from the documented contract of the official
# image's entrypoint (docker-library/postgres, Debian variants; GUIDE §7):
#   - only a `postgres` command (or one starting with "-", which gets
#     `postgres` prepended) initialises; anything else is exec'd as it is;
#   - PGDATA (default /var/lib/postgresql/data) is initialised when
#     $PGDATA/PG_VERSION is missing or empty, and never again after that,
#     even when initialisation failed half-way;
#   - POSTGRES_PASSWORD (required unless POSTGRES_HOST_AUTH_METHOD=trust),
#     POSTGRES_USER (default postgres), POSTGRES_DB (default POSTGRES_USER),
#     POSTGRES_INITDB_ARGS, POSTGRES_INITDB_WALDIR, POSTGRES_HOST_AUTH_METHOD
#     (default scram-sha-256); the first four also as *_FILE;
#   - /docker-entrypoint-initdb.d/* run once, in sorted order, against a
#     temporary server that listens on the unix socket only and gets the same
#     server arguments as the real one: *.sh executable are run, others are
#     sourced (so they can call docker_process_sql and the other functions
#     below), *.sql go to psql, *.sql.gz/.xz/.zst are decompressed into it;
#   - started as root, it prepares the directories and re-executes itself as
#     postgres (uid 999); the server ends up as PID 1 (exec).
# Like the official one, the file can be sourced to get the functions only.
set -Eeo pipefail

readonly PG_UID=999 PG_GID=999
readonly INITDB_DIR=/docker-entrypoint-initdb.d

log() { printf '%s: %s\n' "${0##*/}" "$*"; }
die() { printf '%s: error: %s\n' "${0##*/}" "$*" >&2; exit 1; }

# file_env NAME [DEFAULT]: exports NAME from $NAME, else from the file named
# by $NAME_FILE (trailing line breaks dropped), else DEFAULT. Setting both is
# an error.
file_env() {
	local name="$1" fallback="${2:-}"
	local file_name="${name}_FILE"
	local value="$fallback"
	if [ -n "${!name:-}" ] && [ -n "${!file_name:-}" ]; then
		die "both $name and $file_name are set; they are exclusive"
	fi
	if [ -n "${!name:-}" ]; then
		value="${!name}"
	elif [ -n "${!file_name:-}" ]; then
		[ -r "${!file_name}" ] || die "$file_name=${!file_name}: not a readable file"
		value="$(<"${!file_name}")"
	fi
	export "$name=$value"
	unset "$file_name"
}

# docker_setup_env: the variables the other functions use. Sets
# DATABASE_ALREADY_EXISTS when PGDATA holds a non-empty PG_VERSION.
docker_setup_env() {
	: "${PGDATA:=/var/lib/postgresql/data}"
	export PGDATA
	file_env POSTGRES_PASSWORD
	file_env POSTGRES_USER postgres
	file_env POSTGRES_DB "$POSTGRES_USER"
	file_env POSTGRES_INITDB_ARGS
	: "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"
	export POSTGRES_HOST_AUTH_METHOD
	declare -g DATABASE_ALREADY_EXISTS=
	if [ -s "$PGDATA/PG_VERSION" ]; then
		DATABASE_ALREADY_EXISTS=true
	fi
}

# docker_create_db_directories: PGDATA (0700), the socket directory and the
# WAL directory; as root also hands them to postgres. Mode changes may fail
# on directories someone else owns; initdb then says what is wrong.
docker_create_db_directories() {
	local as_root=
	[ "$(id -u)" = 0 ] && as_root=1
	mkdir -p "$PGDATA"
	chmod 0700 "$PGDATA" 2>/dev/null || :
	mkdir -p /var/run/postgresql
	chmod 03775 /var/run/postgresql 2>/dev/null || :
	if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
		mkdir -p "$POSTGRES_INITDB_WALDIR"
		if [ -n "$as_root" ]; then
			find "$POSTGRES_INITDB_WALDIR" \! -user "$PG_UID" -exec chown "$PG_UID:$PG_GID" '{}' +
		fi
		chmod 0700 "$POSTGRES_INITDB_WALDIR" 2>/dev/null || :
	fi
	if [ -n "$as_root" ]; then
		find "$PGDATA" /var/run/postgresql/ \! -user "$PG_UID" -exec chown "$PG_UID:$PG_GID" '{}' +
	fi
}

# docker_verify_minimum_env: a password unless authentication is off.
docker_verify_minimum_env() {
	if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
		cat >&2 <<-'EOM'
			docker-entrypoint.sh: error: the database is uninitialized and no superuser password is set.
			  Set POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE) to a non-empty value, or set
			  POSTGRES_HOST_AUTH_METHOD=trust to allow every connection without a password
			  (not recommended).
		EOM
		exit 1
	fi
	if [ "$POSTGRES_HOST_AUTH_METHOD" = trust ]; then
		log "warning: POSTGRES_HOST_AUTH_METHOD=trust: every host may connect as any user without a password"
	fi
}

# docker_init_database_dir [INITDB ARGS...]: initdb as POSTGRES_USER. The
# password goes through a private temporary file, never a command line.
# POSTGRES_INITDB_ARGS is split like a shell command line (quotes work).
docker_init_database_dir() {
	local pwfile=
	if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
		set -- --waldir "$POSTGRES_INITDB_WALDIR" "$@"
	fi
	if [ -n "$POSTGRES_PASSWORD" ]; then
		pwfile="$(umask 077 && mktemp "${TMPDIR:-/tmp}/pgpass.XXXXXX")"
		# shellcheck disable=SC2064 # the name is fixed now
		trap "rm -f -- '$pwfile'" EXIT
		printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
		set -- --pwfile="$pwfile" "$@"
	fi
	eval 'initdb --username="$POSTGRES_USER" "$@" '"$POSTGRES_INITDB_ARGS"
	if [ -n "$pwfile" ]; then
		rm -f -- "$pwfile"
		trap - EXIT
	fi
}

# pg_setup_hba_conf: lets every host connect with POSTGRES_HOST_AUTH_METHOD
# (the data directory's pg_hba.conf; a server started with its own hba_file
# does not read it).
pg_setup_hba_conf() {
	{
		printf '\n'
		if [ "$POSTGRES_HOST_AUTH_METHOD" = trust ]; then
			printf '# warning: trust lets anyone connect as any user without a password\n'
		fi
		printf 'host all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD"
	} >>"$PGDATA/pg_hba.conf"
}

# docker_temp_server_start [postgres] [SERVER ARGS...]: starts the server
# with the container's own arguments plus a unix socket only, and waits
# until it accepts connections.
docker_temp_server_start() {
	if [ "${1:-}" = postgres ]; then
		shift
	fi
	set -- "$@" -c listen_addresses= -p "${PGPORT:-5432}"
	PGUSER="${PGUSER:-$POSTGRES_USER}" pg_ctl -D "$PGDATA" -o "$(printf '%q ' "$@")" -w start
}

# docker_temp_server_stop: a fast shutdown, waiting for it.
docker_temp_server_stop() {
	PGUSER="${PGUSER:-$POSTGRES_USER}" pg_ctl -D "$PGDATA" -m fast -w stop
}

# docker_process_sql [PSQL ARGS...]: psql as POSTGRES_USER to POSTGRES_DB
# over the unix socket, stopping at the first error, SQL on stdin unless the
# arguments say otherwise (-f FILE, -c ...). Later arguments win, so
# --dbname=other works.
docker_process_sql() {
	local psql=(psql --no-psqlrc --no-password -v ON_ERROR_STOP=1 --username="$POSTGRES_USER")
	if [ -n "${POSTGRES_DB:-}" ]; then
		psql+=(--dbname="$POSTGRES_DB")
	fi
	PGHOST='' PGHOSTADDR='' "${psql[@]}" "$@"
}

# docker_setup_db: creates POSTGRES_DB unless it is postgres or exists.
docker_setup_db() {
	[ "$POSTGRES_DB" = postgres ] && return 0
	local found
	# POSTGRES_DB is emptied for the function (it would connect to the database
	# being created) and passed, unemptied, as the variable db.
	# shellcheck disable=SC2097,SC2098
	found="$(POSTGRES_DB='' docker_process_sql --dbname=postgres --tuples-only --no-align \
		-v db="$POSTGRES_DB" <<<"SELECT 1 FROM pg_database WHERE datname = :'db';")"
	if [ -z "$found" ]; then
		# shellcheck disable=SC2097,SC2098
		POSTGRES_DB='' docker_process_sql --dbname=postgres -v db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
		log "created database $POSTGRES_DB"
	fi
}

# docker_process_init_files FILE...: runs, sources or loads each file.
docker_process_init_files() {
	local f
	for f; do
		[ -e "$f" ] || continue
		case "$f" in
		*.sh)
			if [ -x "$f" ]; then
				log "running $f"
				"$f"
			else
				log "sourcing $f"
				# shellcheck disable=SC1090
				. "$f"
			fi
			;;
		*.sql) log "loading $f" && docker_process_sql -f "$f" ;;
		*.sql.gz) log "loading $f" && gunzip -c -- "$f" | docker_process_sql ;;
		*.sql.xz) log "loading $f" && xz -dc -- "$f" | docker_process_sql ;;
		*.sql.zst) log "loading $f" && zstd -dc -- "$f" | docker_process_sql ;;
		*) log "ignoring $f" ;;
		esac
	done
}

# _pg_want_help ARGS...: true when the server is only asked for information
# (--help, --version, -C ...), which needs no initialisation.
_pg_want_help() {
	local arg
	for arg; do
		case "$arg" in
		-'?' | --help | --describe-config | -V | --version | -C | -C*) return 0 ;;
		esac
	done
	return 1
}

_main() {
	if [ "${1:0:1}" = - ]; then
		set -- postgres "$@"
	fi
	if [ "${1:-}" = postgres ] && ! _pg_want_help "$@"; then
		docker_setup_env
		docker_create_db_directories
		if [ "$(id -u)" = 0 ]; then
			# Again as postgres: setpriv sets uid, gid and the supplementary
			# groups of uid 999's passwd entry and drops every capability.
			HOME=/var/lib/postgresql exec setpriv --reuid="$PG_UID" --regid="$PG_GID" --init-groups \
				"${BASH_SOURCE[0]}" "$@"
		fi
		if [ -z "$DATABASE_ALREADY_EXISTS" ]; then
			docker_verify_minimum_env
			ls "$INITDB_DIR"/ >/dev/null # fails early on an unreadable directory
			docker_init_database_dir
			pg_setup_hba_conf "$@"
			# The server's own hba_file may ask for a password on the socket too.
			export PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
			docker_temp_server_start "$@"
			docker_setup_db
			docker_process_init_files "$INITDB_DIR"/*
			docker_temp_server_stop
			unset PGPASSWORD
			log "PostgreSQL init process complete; ready for start up."
		else
			log "PostgreSQL data directory $PGDATA already contains a database; skipping initialization"
		fi
	fi
	exec "$@"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	trap 'printf "%s: error: line %s: %s failed (status %s)\n" "${0##*/}" "$LINENO" "$BASH_COMMAND" "$?" >&2' ERR
	_main "$@"
fi
