#!/usr/bin/env bash
# seaweedfs.sh up|down|env — the S3 server the backup tests archive to: one
# SeaweedFS process (master, volume, filer and S3 gateway) on this machine,
# with one identity whose keys are made at first start.
#
#   WEED        the weed binary (the Makefile builds it)
#   S3_DIR      its state: data, config, pid, log and env file (.local/seaweedfs)
#   S3_IP       the address it listens on and advertises (127.0.0.1); "host"
#               is the address of the interface the default route uses,
#               which the real-pod cluster's pods reach without their
#               traffic leaving the machine
#   S3_PORT     the S3 port (18333); the other servers take ports next to it
#
# "env" prints S3_TEST_ENDPOINT, S3_TEST_ACCESS_KEY_ID and
# S3_TEST_SECRET_ACCESS_KEY as shell assignments. Telemetry is off: nothing
# leaves this machine.
set -euo pipefail

cmd="${1:-}"
dir="${S3_DIR:?S3_DIR is unset}"
ip="${S3_IP:-127.0.0.1}"
if [ "$ip" = host ]; then
	ip=$(ip -4 route get 192.0.2.255 2>/dev/null | awk '{for (i = 1; i < NF; i++) if ($i == "src") {print $(i + 1); exit}}')
	[ -n "$ip" ] || { echo "seaweedfs: no default route, so no host address" >&2; exit 1; }
fi
port="${S3_PORT:-18333}"
pidfile="$dir/weed.pid"
envfile="$dir/env"

running() {
	[ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

up() {
	: "${WEED:?WEED is unset}"
	mkdir -p "$dir/data"
	if running; then
		echo "seaweedfs: already running (pid $(cat "$pidfile"))"
		return 0
	fi
	if [ ! -f "$dir/s3.json" ]; then
		local key secret
		key="TEST$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n' | tr 'a-f' 'A-F')"
		secret="$(od -An -N20 -tx1 /dev/urandom | tr -d ' \n')"
		umask 077
		cat >"$dir/s3.json" <<EOF
{"identities": [{"name": "tests", "credentials": [{"accessKey": "$key", "secretKey": "$secret"}],
  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
EOF
		printf 'S3_TEST_ACCESS_KEY_ID=%s\nS3_TEST_SECRET_ACCESS_KEY=%s\n' "$key" "$secret" >"$dir/keys"
	fi
	{
		cat "$dir/keys"
		printf 'S3_TEST_ENDPOINT=http://%s:%s\n' "$ip" "$port"
	} >"$envfile"
	"$WEED" server -dir="$dir/data" -ip="$ip" -ip.bind="$ip" \
		-master.port=$((port + 1000)) -master.telemetry=false -master.volumeSizeLimitMB=256 \
		-volume.port=$((port + 1001)) -volume.max=0 \
		-filer -filer.port=$((port + 1002)) \
		-s3 -s3.port="$port" -s3.config="$dir/s3.json" -s3.port.iceberg=0 -s3.port.lance=0 \
		>"$dir/weed.log" 2>&1 &
	echo $! >"$pidfile"
	# Ready when an unauthenticated request gets S3's answer (403) rather
	# than a refused connection.
	for _ in $(seq 1 120); do
		if ! running; then
			echo "seaweedfs: exited; last lines of $dir/weed.log:" >&2
			tail -20 "$dir/weed.log" >&2
			return 1
		fi
		code="$(curl -s -o /dev/null -w '%{http_code}' "http://$ip:$port/" || true)"
		if [ "$code" = 403 ] || [ "$code" = 200 ]; then
			echo "seaweedfs: S3 on http://$ip:$port (pid $(cat "$pidfile"))"
			return 0
		fi
		sleep 0.5
	done
	echo "seaweedfs: S3 did not answer on http://$ip:$port within 60s; see $dir/weed.log" >&2
	return 1
}

down() {
	if running; then
		local pid
		pid="$(cat "$pidfile")"
		kill "$pid"
		for _ in $(seq 1 40); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.25
		done
		kill -9 "$pid" 2>/dev/null || true
		echo "seaweedfs: stopped"
	fi
	rm -f "$pidfile"
}

case "$cmd" in
up) up ;;
down) down ;;
env) cat "$envfile" ;;
*)
	echo "usage: $0 up|down|env" >&2
	exit 2
	;;
esac
