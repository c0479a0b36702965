#!/usr/bin/env bash
# build.sh OUTDIR: builds the real-pod cluster's container images as OCI
# archives for `ctr -n k8s.io images import`, with no registry and no Docker.
#
#   OUTDIR/pause.tar              registry.k8s.io/pause:3.10
#   OUTDIR/postgres-15.tar        docker.io/library/postgres:15   (Debian bookworm, postgresql-15)
#   OUTDIR/postgres-17.tar        docker.io/library/postgres:17   (Debian trixie,   postgresql-17)
#   OUTDIR/postgres-18.tar        docker.io/library/postgres:18   (Debian sid,      postgresql-18)
#   OUTDIR/postgres-exporter.tar  quay.io/prometheuscommunity/postgres-exporter:v0.17.1
#   OUTDIR/coredns.tar            registry.k8s.io/coredns/coredns:v1.15.0
#   OUTDIR/operator.tar           ghcr.io/example/database-operator:0.1.0
#
# Each archive has a key file beside it (NAME.tar.key): a hash of its inputs
# (this script, mkimage, the entrypoint, versions, and for the Go images the
# binary itself). An archive whose key is unchanged is skipped. Debian
# packages are not pinned: a rebuild takes whatever the suite has that day;
# delete the .key file to force one.
#
# Caches (IMAGE_CACHE, default OUTDIR/../rootfs): minbase/<suite> is a
# pristine `debootstrap --variant=minbase` tree, made once per suite and
# copied for each build; build/<image> is the last tree packed; bin/ holds
# the Go binaries (go build rewrites them only when their sources changed).
# Needs root (debootstrap, chroot, mount), GNU tar, go, and the Debian mirror
# (DEBIAN_MIRROR, default http://deb.debian.org/debian).
#
# The three postgres images build in parallel (network-bound) while the Go
# binaries build in the foreground. One line per image: built or skipped,
# with the seconds it took.
set -euo pipefail

if [ $# -ne 1 ] || [ "${1:0:1}" = - ]; then
	echo "usage: $0 OUTDIR" >&2
	exit 2
fi
[ "$(id -u)" = 0 ] || { echo "$0: must run as root (debootstrap, chroot, mount)" >&2; exit 1; }

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)" # the main module
mkdir -p "$1"
OUT="$(cd "$1" && pwd)"
CACHE="${IMAGE_CACHE:-$(dirname "$OUT")/rootfs}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
mkdir -p "$CACHE/minbase" "$CACHE/build" "$CACHE/bin" "$CACHE/logs"
CACHE="$(cd "$CACHE" && pwd)"
MKIMAGE="$CACHE/bin/mkimage"
# Archive and layer timestamps; rootfs files of the static images get it too.
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-0}"

# The images' versions (what the references promise).
readonly PAUSE_REF=registry.k8s.io/pause:3.10
readonly EXPORTER_VERSION=0.17.1
readonly EXPORTER_REF=quay.io/prometheuscommunity/postgres-exporter:v$EXPORTER_VERSION
readonly COREDNS_REF=registry.k8s.io/coredns/coredns:v1.15.0
readonly OPERATOR_REF=ghcr.io/example/database-operator:0.1.0

# inputs_key ITEM...: a hash of the items; an item naming an existing file
# stands for its content, anything else for itself.
inputs_key() {
	local item
	for item in "$@"; do
		if [ -f "$item" ]; then
			printf 'file %s %s\n' "${item#"$ROOT"/}" "$(sha256sum <"$item" | cut -d' ' -f1)"
		else
			printf 'value %s\n' "$item"
		fi
	done | sha256sum | cut -d' ' -f1
}

# fresh NAME KEY: true when OUTDIR/NAME.tar exists and was built from KEY.
fresh() {
	[ -f "$OUT/$1.tar" ] && [ -f "$OUT/$1.tar.key" ] && [ "$(cat "$OUT/$1.tar.key")" = "$2" ]
}

# report NAME WHAT START
report() {
	local size
	size=$(($(stat -c %s "$OUT/$1.tar") / 1048576))
	printf '%-18s %-7s in %3ds  (%d MiB)\n' "$1.tar" "$2" $((SECONDS - $3)) "$size"
}

# pack NAME KEY DIR MKIMAGE-ARGS...: archives DIR, then records KEY.
pack() {
	local name="$1" key="$2" dir="$3"
	shift 3
	rm -f "$OUT/$name.tar.key"
	"$MKIMAGE" -rootfs "$dir" -o "$OUT/$name.tar" "$@" >"$CACHE/logs/$name.mkimage.log"
	printf '%s\n' "$key" >"$OUT/$name.tar.key"
}

# safe_rm DIR: removes a build tree, never while something is mounted in it.
safe_rm() {
	local dir="$1"
	[ -e "$dir" ] || return 0
	if mountpoint -q "$dir/proc" 2>/dev/null; then umount "$dir/proc"; fi
	if grep -q " $dir/" /proc/mounts; then
		echo "$0: something is still mounted under $dir; not removing it" >&2
		return 1
	fi
	rm -rf "$dir"
}

# ---- Debian root filesystems -------------------------------------------

# ensure_minbase SUITE: the pristine minbase tree of SUITE, made once.
# debootstrap checks the suite's Release signature against the host's
# debian-archive-keyring (bookworm's carries the trixie keys, which sign
# trixie and sid too); a suite it cannot verify fails here, loudly.
ensure_minbase() {
	local suite="$1" dir="$CACHE/minbase/$1"
	[ -f "$dir.done" ] && [ -x "$dir/bin/sh" ] && return 0
	safe_rm "$dir.tmp"
	safe_rm "$dir"
	if ! debootstrap --variant=minbase "$suite" "$dir.tmp" "$MIRROR" >"$CACHE/logs/debootstrap-$suite.log" 2>&1; then
		echo "$0: debootstrap $suite failed; see $CACHE/logs/debootstrap-$suite.log" >&2
		return 1
	fi
	mv "$dir.tmp" "$dir"
	printf 'debootstrap --variant=minbase %s %s\n' "$suite" "$MIRROR" >"$dir.done"
}

# install_postgres DIR MAJOR SUITE PGDATA: postgresql-MAJOR and the image's layout in the
# tree DIR, inside a chroot with /proc mounted (and always unmounted).
install_postgres() {
	local dir="$1" major="$2" suite="$3" pgdata="$4" apt_opts=
	# The mirror's sid InRelease is past its Valid-Until date (a stale
	# snapshot: apt refuses it as "expired"). Only that date check is turned
	# off, for sid only; the signature is still verified by apt, as it was by
	# debootstrap.
	if [ "$suite" = sid ]; then
		apt_opts="-o Acquire::Check-Valid-Until=false"
	fi
	cp /etc/resolv.conf "$dir/etc/resolv.conf"
	# No service may start inside the chroot.
	printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
	chmod 755 "$dir/usr/sbin/policy-rc.d"
	# Documentation and translations are left out, as in Debian's slim images.
	cat >"$dir/etc/dpkg/dpkg.cfg.d/01-realcluster-nodoc" <<-'EOF'
		path-exclude /usr/share/doc/*
		path-include /usr/share/doc/*/copyright
		path-exclude /usr/share/man/*
		path-exclude /usr/share/info/*
		path-exclude /usr/share/locale/*/LC_MESSAGES/*.mo
	EOF
	mount -t proc proc "$dir/proc"
	# shellcheck disable=SC2064 # the path is fixed now
	trap "umount '$dir/proc' 2>/dev/null || :" EXIT
	chroot "$dir" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C \
		DEBIAN_FRONTEND=noninteractive /bin/bash -euo pipefail -c '
		major="$1" apt_opts="$2"
		# The official images: user and group postgres are 999, home /var/lib/postgresql.
		groupadd --system --gid 999 postgres
		useradd --system --uid 999 --gid 999 --home-dir /var/lib/postgresql --shell /bin/bash postgres
		mkdir -p /var/lib/postgresql
		chown 999:999 /var/lib/postgresql
		# postgresql-common must not create a "main" cluster while installing.
		mkdir -p /etc/postgresql-common
		echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
		apt-get $apt_opts update -q
		apt-get $apt_opts install -y -q --no-install-recommends -o Dpkg::Options::=--force-confold \
			"postgresql-$major" locales xz-utils zstd
		# LANG=en_US.utf8 must name a real locale, or initdb falls back to SQL_ASCII.
		# (sid no longer ships locale.alias; the alias is optional.)
		alias_opt=
		for f in /usr/share/locale/locale.alias /etc/locale.alias; do
			if [ -f "$f" ]; then alias_opt="-A $f"; break; fi
		done
		localedef -i en_US -c -f UTF-8 $alias_opt en_US.UTF-8
		apt-get clean
		rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt/* /var/log/dpkg.log
		dpkg-query -W -f="\${Version}" "postgresql-$major" >/.pg-version
	' _ "$major" "$apt_opts"
	umount "$dir/proc"
	trap - EXIT
	rm -f "$dir/usr/sbin/policy-rc.d"
	: >"$dir/etc/resolv.conf"
	echo localhost >"$dir/etc/hostname"
	# The official layout: socket directory 3777 owned by postgres (/var/run
	# is a link to /run), the data directory, the init script directory.
	mkdir -p "$dir/run/postgresql" "$dir$pgdata" "$dir/docker-entrypoint-initdb.d"
	chown 999:999 "$dir/run/postgresql" "$dir$pgdata"
	chmod 3777 "$dir/run/postgresql"
	chmod 0700 "$dir$pgdata"
	install -m 0755 "$HERE/postgres/docker-entrypoint.sh" "$dir/usr/local/bin/docker-entrypoint.sh"
}

# build_postgres MAJOR SUITE
build_postgres() {
	local major="$1" suite="$2" name="postgres-$1" start=$SECONDS
	# The official images' PGDATA: from 18 on it follows Debian's layout
	# (their VOLUME moved to /var/lib/postgresql as well).
	local pgdata=/var/lib/postgresql/data
	if [ "$major" -ge 18 ]; then
		pgdata="/var/lib/postgresql/$major/docker"
	fi
	local key
	key="$(inputs_key "$name" "$suite" "$MIRROR" "$HERE/build.sh" "$HERE/mkimage/main.go" \
		"$HERE/postgres/docker-entrypoint.sh")"
	if fresh "$name" "$key"; then
		report "$name" skipped "$start"
		return 0
	fi
	ensure_minbase "$suite"
	local dir="$CACHE/build/$name"
	safe_rm "$dir"
	cp -a "$CACHE/minbase/$suite" "$dir"
	# A job of its own, so that set -e holds inside it (it would not in a
	# condition), with its output in a log.
	install_postgres "$dir" "$major" "$suite" "$pgdata" >"$CACHE/logs/$name.install.log" 2>&1 &
	wait $! || { echo "$0: installing $name failed; see $CACHE/logs/$name.install.log" >&2; return 1; }
	local version
	version="$(cat "$dir/.pg-version")"
	rm -f "$dir/.pg-version"
	pack "$name" "$key" "$dir" -ref "docker.io/library/postgres:$major" \
		-entrypoint '["docker-entrypoint.sh"]' -cmd '["postgres"]' -stop-signal SIGINT \
		-env "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/lib/postgresql/$major/bin" \
		-env "PGDATA=$pgdata" -env LANG=en_US.utf8 \
		-env "PG_MAJOR=$major" -env "PG_VERSION=$version" \
		-label "org.opencontainers.image.description=stand-in for postgres:$major: Debian $suite postgresql-$major $version, built by e2e/realcluster/images/build.sh"
	report "$name" built "$start"
}

# ---- static Go images -----------------------------------------------------

# static_tree DIR PASSWD GROUP: an empty tree with /tmp and minimal account
# files, all owned by root with fixed timestamps.
static_tree() {
	local dir="$1"
	safe_rm "$dir"
	mkdir -p "$dir/etc" "$dir/tmp"
	chmod 1777 "$dir/tmp"
	printf '%s\n' "$2" >"$dir/etc/passwd"
	printf '%s\n' "$3" >"$dir/etc/group"
	chmod 0644 "$dir/etc/passwd" "$dir/etc/group"
}

finish_tree() {
	chown -R 0:0 "$1"
	find "$1" -exec touch -h -d "@$SOURCE_DATE_EPOCH" '{}' +
}

# gobuild DIR OUTPUT PACKAGE [LDFLAGS]: a static, trimmed binary.
gobuild() {
	(cd "$1" && CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w ${4:-}" -o "$2" "$3")
}

build_pause() {
	local name=pause start=$SECONDS bin="$CACHE/bin/pause"
	gobuild "$ROOT" "$bin" ./e2e/realcluster/images/pause
	local key
	key="$(inputs_key "$name" "$PAUSE_REF" "$HERE/build.sh" "$HERE/mkimage/main.go" "$bin")"
	if fresh "$name" "$key"; then report "$name" skipped "$start"; return 0; fi
	local dir="$CACHE/build/$name"
	safe_rm "$dir"
	mkdir -p "$dir"
	install -m 0755 "$bin" "$dir/pause"
	finish_tree "$dir"
	pack "$name" "$key" "$dir" -ref "$PAUSE_REF" -entrypoint '["/pause"]' -user 65535:65535
	report "$name" built "$start"
}

build_exporter() {
	local name=postgres-exporter start=$SECONDS bin="$CACHE/bin/postgres_exporter"
	gobuild "$ROOT/tools/postgres-exporter" "$bin" \
		github.com/prometheus-community/postgres_exporter/cmd/postgres_exporter \
		"-X github.com/prometheus/common/version.Version=$EXPORTER_VERSION"
	local key
	key="$(inputs_key "$name" "$EXPORTER_REF" "$HERE/build.sh" "$HERE/mkimage/main.go" "$bin")"
	if fresh "$name" "$key"; then report "$name" skipped "$start"; return 0; fi
	local dir="$CACHE/build/$name"
	static_tree "$dir" "root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/home:/sbin/nologin" "root:x:0:
nobody:x:65534:"
	mkdir -p "$dir/bin"
	install -m 0755 "$bin" "$dir/bin/postgres_exporter"
	finish_tree "$dir"
	pack "$name" "$key" "$dir" -ref "$EXPORTER_REF" -entrypoint '["/bin/postgres_exporter"]' \
		-user 65534 -label "org.opencontainers.image.description=stand-in for postgres-exporter v$EXPORTER_VERSION (static binary only)"
	report "$name" built "$start"
}

build_coredns() {
	local name=coredns start=$SECONDS bin="$CACHE/bin/coredns"
	gobuild "$ROOT/tools/coredns" "$bin" github.com/coredns/coredns
	local key
	key="$(inputs_key "$name" "$COREDNS_REF" "$HERE/build.sh" "$HERE/mkimage/main.go" "$bin")"
	if fresh "$name" "$key"; then report "$name" skipped "$start"; return 0; fi
	local dir="$CACHE/build/$name"
	static_tree "$dir" "root:x:0:0:root:/root:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin" "root:x:0:
nonroot:x:65532:"
	install -m 0755 "$bin" "$dir/coredns"
	finish_tree "$dir"
	# Runs as root (the official image runs as nonroot with a file capability
	# to bind :53); see README.md.
	pack "$name" "$key" "$dir" -ref "$COREDNS_REF" -entrypoint '["/coredns"]'
	report "$name" built "$start"
}

build_operator() {
	local name=operator start=$SECONDS bin="$CACHE/bin/database-operator" agent="$CACHE/bin/database-agent"
	# The Dockerfile's build commands: the operator, and the agent its
	# database pods copy in.
	gobuild "$ROOT" "$bin" ./cmd/database-operator
	gobuild "$ROOT" "$agent" ./cmd/database-agent
	local key
	key="$(inputs_key "$name" "$OPERATOR_REF" "$HERE/build.sh" "$HERE/mkimage/main.go" "$bin" "$agent")"
	if fresh "$name" "$key"; then report "$name" skipped "$start"; return 0; fi
	local dir="$CACHE/build/$name"
	# Like distroless static nonroot: root, nobody and nonroot (65532).
	static_tree "$dir" "root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin" "root:x:0:
nobody:x:65534:
nonroot:x:65532:"
	mkdir -p "$dir/home/nonroot"
	install -m 0755 "$bin" "$dir/database-operator"
	install -m 0755 "$agent" "$dir/database-agent"
	finish_tree "$dir"
	chown 65532:65532 "$dir/home/nonroot"
	chmod 0700 "$dir/home/nonroot"
	pack "$name" "$key" "$dir" -ref "$OPERATOR_REF" -entrypoint '["/database-operator"]' -user 65532:65532
	report "$name" built "$start"
}

# ---- main -------------------------------------------------------------------

(cd "$ROOT" && CGO_ENABLED=0 go build -o "$MKIMAGE" ./e2e/realcluster/images/mkimage)

# Every image is a job of its own (so set -e holds inside it, which it would
# not in a condition): the postgres ones in the background, the Go ones one
# after the other. A failed job fails the whole build, after the others.
pids=() names=()
for spec in 15:bookworm 17:trixie 18:sid; do
	build_postgres "${spec%%:*}" "${spec#*:}" &
	pids+=($!) names+=("postgres-${spec%%:*}")
done
failed=()
for step in build_pause build_exporter build_coredns build_operator; do
	"$step" &
	wait $! || failed+=("$step")
done
for i in "${!pids[@]}"; do
	wait "${pids[$i]}" || failed+=("${names[$i]}")
done
if [ ${#failed[@]} -gt 0 ]; then
	echo "$0: failed: ${failed[*]}" >&2
	exit 1
fi
