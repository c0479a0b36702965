#!/usr/bin/env bash
# Starts (or reuses) and removes the local kwok cluster: a real kube-apiserver,
# etcd, kube-controller-manager and kube-scheduler, fake nodes played by kwok,
# and e2e/local-provisioner to bind volume claims of any storage class.
#
#   cluster.sh up     start the cluster, or reuse it when it answers
#   cluster.sh down   stop and remove it
#
# The Makefile passes the binaries it built (KWOKCTL, KUBECTL, KUBE_APISERVER,
# KUBE_CONTROLLER_MANAGER, KUBE_SCHEDULER, KWOK, ETCD, PROVISIONER).
# CLUSTER_NAME (default database-operator) and CLUSTER_KUBECONFIG (default
# .local/kubeconfig) let the e2e suite use a cluster of its own.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
name=${CLUSTER_NAME:-database-operator}
kubeconfig=${CLUSTER_KUBECONFIG:-$root/.local/kubeconfig}
state="$root/.local/$name"
export KWOK_WORKDIR="$root/.local/kwok"

kubectl() { "$KUBECTL" --kubeconfig "$kubeconfig" "$@"; }

answers() {
	[ -f "$kubeconfig" ] && kubectl --request-timeout=5s version >/dev/null 2>&1
}

start_provisioner() {
	local pidfile="$state/provisioner.pid"
	if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
		return
	fi
	nohup "$PROVISIONER" --kubeconfig "$kubeconfig" >"$state/provisioner.log" 2>&1 &
	echo $! >"$pidfile"
}

stop_provisioner() {
	local pidfile="$state/provisioner.pid"
	if [ -f "$pidfile" ]; then
		kill "$(cat "$pidfile")" 2>/dev/null || true
		rm -f "$pidfile"
	fi
}

up() {
	mkdir -p "$state" "$(dirname "$kubeconfig")"
	if answers; then
		echo "cluster $name: reusing the running cluster ($kubeconfig)"
	else
		echo "cluster $name: starting"
		stop_provisioner
		"$KWOKCTL" delete cluster --name "$name" >/dev/null 2>&1 || true
		rm -f "$kubeconfig"
		"$KWOKCTL" create cluster --name "$name" --runtime binary --kubeconfig "$kubeconfig" \
			--kube-apiserver-binary "$KUBE_APISERVER" \
			--kube-controller-manager-binary "$KUBE_CONTROLLER_MANAGER" \
			--kube-scheduler-binary "$KUBE_SCHEDULER" \
			--kwok-controller-binary "$KWOK" \
			--etcd-binary "$ETCD" \
			--wait 120s >"$state/kwokctl.log" 2>&1 || {
			cat "$state/kwokctl.log" >&2
			exit 1
		}
	fi
	kubectl apply --server-side --field-manager=cluster-up -f "$root/e2e/cluster/nodes.yaml" >/dev/null
	kubectl apply --server-side --field-manager=cluster-up -f "$root/e2e/cluster/storageclass.yaml" >/dev/null
	start_provisioner
	kubectl wait node --all --for=condition=Ready --timeout=120s >/dev/null
	echo "cluster $name: ready; export KUBECONFIG=$kubeconfig"
	kubectl version 2>/dev/null | grep -i server || true
}

down() {
	stop_provisioner
	"$KWOKCTL" delete cluster --name "$name" >/dev/null 2>&1 || true
	rm -rf "$kubeconfig" "$state"
	echo "cluster $name: removed"
}

case "${1:-}" in
up) up ;;
down) down ;;
*)
	echo "usage: $0 up|down" >&2
	exit 2
	;;
esac
