#!/usr/bin/env bash
# The real-pod cluster: a Kubernetes v1.37 control plane and NODES nodes on
# this machine whose pods really run (containerd + runc, bridge CNI,
# kube-proxy in iptables mode, CoreDNS), with images imported from local
# archives (there is no registry). See README.md next to this file.
#
#   cluster.sh up             start it, or reuse it when it answers with every node Ready
#   cluster.sh down           stop it and undo every change it made to the host
#   cluster.sh status         exit 0 when it answers with every node Ready
#   cluster.sh node-stop N    lose node N: kubelet, containers and containerd killed at once
#   cluster.sh node-start N   bring node N back
#   cluster.sh partition N    cut node N's pods and kubelet off from the rest (iptables)
#   cluster.sh heal           remove every partition
#
# The Makefile passes the binaries and archives it built: KUBE_BIN (a folder
# with kube-apiserver, kube-controller-manager, kube-scheduler, kubectl,
# kubelet, kube-proxy), ETCD, CRICTL, PROVISIONER, IMAGES (a folder of OCI
# archives, each imported into every node) and STATE (where everything
# lives; removed by down), KUBECONFIG_OUT (the admin kubeconfig).
#
# Every node runs in the host's network namespace: each has its own kubelet
# (own port), containerd (own socket, root and state), cgroup subtree and
# bridge with its own pod subnet (10.244.N.0/24), so pods on different nodes
# reach each other through the host's routing table. Because the network
# namespace is shared, one kube-proxy programs Services for all of them.
set -euo pipefail

: "${KUBE_BIN:?}" "${ETCD:?}" "${CRICTL:?}" "${PROVISIONER:?}" "${IMAGES:?}" "${STATE:?}" "${KUBECONFIG_OUT:?}"
NODES=${NODES:-3}
here=$(cd "$(dirname "$0")" && pwd)

# Addresses. Ports avoid the kwok clusters' (random) and the defaults of
# anything else that might run here.
POD_CIDR=10.244.0.0/16
SERVICE_CIDR=10.96.0.0/16
DNS_IP=10.96.0.10
ETCD_PORT=17379
APISERVER_PORT=17443
KCM_PORT=17357
SCHEDULER_PORT=17359
KUBELET_PORT_BASE=17250 # node N serves on 17250+N
EGRESS_CHAIN=DBOP-REAL-EGRESS
# Host folders the nodes write to outside STATE (fixed paths in containerd's
# shims, the CNI plugins and the kubelet).
HOST_FOLDERS="/run/containerd /run/netns /var/lib/cni /var/log/containers"
# Kernel settings the kubelets and kube-proxy change (kubelet: what it
# expects of a node's kernel; kube-proxy: route_localnet, conntrack).
HOST_SYSCTLS="net.ipv4.ip_forward vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.conf.all.route_localnet
net.netfilter.nf_conntrack_max net.netfilter.nf_conntrack_tcp_timeout_established
net.netfilter.nf_conntrack_tcp_timeout_close_wait net.bridge.bridge-nf-call-iptables"

log() { echo "[$(date +%T)] real cluster: $*"; }
kubectl() { "$KUBE_BIN/kubectl" --kubeconfig "$KUBECONFIG_OUT" "$@"; }

# host_ip is the address of the interface the default route uses: the
# nodes' InternalIP, and the API server's advertised address.
host_ip() { ip -4 route get 192.0.2.255 2>/dev/null | awk '{for (i = 1; i < NF; i++) if ($i == "src") {print $(i + 1); exit}}'; }

# PID files are only trusted within the boot that wrote them (after a
# reboot their numbers name other processes).
boot_id() { cat /proc/sys/kernel/random/boot_id; }
forget_old_boot() {
	if [ -d "$STATE/run" ] && [ "$(cat "$STATE/run/boot_id" 2>/dev/null)" != "$(boot_id)" ]; then
		rm -f "$STATE/run/"*.pid
	fi
	mkdir -p "$STATE/run"
	boot_id >"$STATE/run/boot_id"
}

# start NAME CMD...: runs CMD in the background, detached, logging to
# STATE/logs/NAME.log, with its PID in STATE/run/NAME.pid.
start() {
	local name=$1
	shift
	mkdir -p "$STATE/logs" "$STATE/run"
	setsid "$@" >"$STATE/logs/$name.log" 2>&1 </dev/null &
	echo $! >"$STATE/run/$name.pid"
}

# stop NAME [SIGNAL]: stops what start NAME started (by PID, never by name),
# SIGTERM first, SIGKILL after 10 s.
stop() {
	local pidfile="$STATE/run/$1.pid" sig=${2:-TERM} pid
	[ -f "$pidfile" ] || return 0
	pid=$(cat "$pidfile")
	if kill -0 "$pid" 2>/dev/null; then
		kill -s "$sig" "$pid" 2>/dev/null || true
		for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -f "$pidfile"
}

running() { [ -f "$STATE/run/$1.pid" ] && kill -0 "$(cat "$STATE/run/$1.pid")" 2>/dev/null; }

wait_for() { # what timeout-seconds command...
	local what=$1 timeout=$2
	shift 2
	for _ in $(seq $((timeout * 2))); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.5
	done
	echo "real cluster: timed out after ${timeout}s waiting for $what" >&2
	return 1
}

# nodes_ready: every node is registered and Ready.
nodes_ready() { [ "$(kubectl get nodes --no-headers 2>/dev/null | grep -c ' Ready ')" = "$NODES" ]; }

answers() {
	[ -f "$KUBECONFIG_OUT" ] && kubectl --request-timeout=5s get --raw /readyz >/dev/null 2>&1 && nodes_ready
}

# --- certificates ------------------------------------------------------------

# sign NAME SUBJECT USAGE [SANS]: a key and a certificate signed by the CA.
sign() {
	local name=$1 subject=$2 usage=$3 sans=${4:-} ext
	ext="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=$usage"
	[ -n "$sans" ] && ext+=$'\n'"subjectAltName=$sans"
	openssl req -new -newkey rsa:2048 -nodes -keyout "$name.key" -subj "$subject" -out "$name.csr" 2>/dev/null
	openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 \
		-extfile <(echo "$ext") -out "$name.crt" 2>/dev/null
	rm -f "$name.csr"
}

# kubeconfig NAME [ADDRESS]: a kubeconfig for the client certificate
# NAME.crt, reaching the API server at ADDRESS (a loopback address, 127.0.0.1
# unless given; the certificate is checked for the name localhost).
kubeconfig() {
	cat >"$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: real
  cluster: {server: "https://${2:-127.0.0.1}:$APISERVER_PORT", tls-server-name: localhost, certificate-authority: "$PWD/ca.crt"}
users:
- name: $1
  user: {client-certificate: "$PWD/$1.crt", client-key: "$PWD/$1.key"}
contexts:
- name: real
  context: {cluster: real, user: $1}
current-context: real
EOF
}

# kubelet_api_address N: the loopback address node N's kubelet reaches the
# API server at (127.0.0.2 for node 0, ...): its own, so that a partition
# can cut that one kubelet off (partition N).
kubelet_api_address() { echo "127.0.0.$(($1 + 2))"; }

pki() {
	local dir="$STATE/pki" ip
	[ -f "$dir/complete" ] && return 0
	ip=$(host_ip)
	mkdir -p "$dir"
	(
		cd "$dir"
		umask 077
		openssl req -x509 -new -newkey rsa:2048 -nodes -keyout ca.key -subj "/CN=database-operator-real-ca" -days 365 -out ca.crt 2>/dev/null
		sign apiserver "/CN=kube-apiserver" serverAuth \
			"DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.96.0.1,IP:$ip"
		sign apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
		sign admin "/O=system:masters/CN=admin" clientAuth
		sign kube-proxy "/CN=system:kube-proxy" clientAuth
		sign kcm "/CN=system:kube-controller-manager" clientAuth
		sign scheduler "/CN=system:kube-scheduler" clientAuth
		for n in $(seq 0 $((NODES - 1))); do
			sign "node-$n" "/O=system:nodes/CN=system:node:node-$n" clientAuth
			sign "node-$n-serving" "/CN=node-$n" serverAuth "DNS:node-$n,IP:127.0.0.1,IP:$ip"
			kubeconfig "node-$n" "$(kubelet_api_address "$n")"
		done
		openssl genrsa -out sa.key 2048 2>/dev/null
		openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
		for who in admin kube-proxy kcm scheduler; do kubeconfig "$who"; done
		chmod 0644 ./*.crt
		touch complete
	)
}

# --- control plane -----------------------------------------------------------

# audit_policy records who changed what (metadata only: no object bodies,
# so no Secret value) for the ServiceAccounts' requests: the fault matrix
# reads it to prove that an operator replica that lost its Lease wrote
# nothing after (the replicas share one ServiceAccount; each names its
# process in its User-Agent).
audit_policy() {
	cat >"$STATE/audit-policy.yaml" <<-EOF
		apiVersion: audit.k8s.io/v1
		kind: Policy
		omitStages: ["RequestReceived"]
		rules:
		- level: Metadata
		  userGroups: ["system:serviceaccounts"]
		  verbs: ["create", "update", "patch", "delete", "deletecollection"]
		- level: None
	EOF
}

control_plane() {
	local p="$STATE/pki"
	audit_policy
	running etcd || start etcd "$ETCD" --name real --data-dir "$STATE/etcd" \
		--listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
		--listen-peer-urls http://127.0.0.1:17380 --initial-advertise-peer-urls http://127.0.0.1:17380 \
		--initial-cluster real=http://127.0.0.1:17380 --listen-metrics-urls http://127.0.0.1:17381 \
		--unsafe-no-fsync
	running kube-apiserver || start kube-apiserver "$KUBE_BIN/kube-apiserver" \
		--etcd-servers "http://127.0.0.1:$ETCD_PORT" --secure-port "$APISERVER_PORT" --advertise-address "$(host_ip)" \
		--tls-cert-file "$p/apiserver.crt" --tls-private-key-file "$p/apiserver.key" --client-ca-file "$p/ca.crt" \
		--service-account-key-file "$p/sa.pub" --service-account-signing-key-file "$p/sa.key" \
		--service-account-issuer https://kubernetes.default.svc.cluster.local \
		--kubelet-client-certificate "$p/apiserver-kubelet-client.crt" --kubelet-client-key "$p/apiserver-kubelet-client.key" \
		--kubelet-certificate-authority "$p/ca.crt" --kubelet-preferred-address-types InternalIP \
		--authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
		--service-cluster-ip-range "$SERVICE_CIDR" --endpoint-reconciler-type lease \
		--audit-policy-file "$STATE/audit-policy.yaml" --audit-log-path "$STATE/audit.log" --audit-log-format json \
		--audit-log-maxsize 500 --audit-log-maxbackup 1
	cp "$p/admin.kubeconfig" "$KUBECONFIG_OUT"
	wait_for "the API server" 90 kubectl get --raw /readyz
	# Node loss is noticed after 20 s without a heartbeat (the default is 50 s).
	running kube-controller-manager || start kube-controller-manager "$KUBE_BIN/kube-controller-manager" \
		--kubeconfig "$p/kcm.kubeconfig" --authentication-kubeconfig "$p/kcm.kubeconfig" --authorization-kubeconfig "$p/kcm.kubeconfig" \
		--secure-port "$KCM_PORT" --bind-address 127.0.0.1 --use-service-account-credentials \
		--service-account-private-key-file "$p/sa.key" --root-ca-file "$p/ca.crt" \
		--cluster-signing-cert-file "$p/ca.crt" --cluster-signing-key-file "$p/ca.key" \
		--service-cluster-ip-range "$SERVICE_CIDR" --node-monitor-grace-period 20s
	running kube-scheduler || start kube-scheduler "$KUBE_BIN/kube-scheduler" \
		--kubeconfig "$p/scheduler.kubeconfig" --authentication-kubeconfig "$p/scheduler.kubeconfig" \
		--authorization-kubeconfig "$p/scheduler.kubeconfig" --secure-port "$SCHEDULER_PORT" --bind-address 127.0.0.1
}

# --- nodes -------------------------------------------------------------------

node_dir() { echo "$STATE/node-$1"; }
node_sock() { echo "$(node_dir "$1")/containerd/containerd.sock"; }
# The node's cgroup subtree, under every cgroup v1 hierarchy (and v2's, if mounted).
node_cgroup() { echo "dbop-real-node-$1"; }
cgroup_hierarchies() { awk '$3 == "cgroup" || $3 == "cgroup2" {print $2}' /proc/mounts; }

node_cgroups() {
	local name h
	name=$(node_cgroup "$1")
	for h in $(cgroup_hierarchies); do
		mkdir -p "$h/$name"
		# A new cpuset is empty; tasks can only join one with CPUs and memory nodes.
		if [ -f "$h/cpuset.cpus" ]; then
			[ -s "$h/$name/cpuset.cpus" ] || cat "$h/cpuset.cpus" >"$h/$name/cpuset.cpus"
			[ -s "$h/$name/cpuset.mems" ] || cat "$h/cpuset.mems" >"$h/$name/cpuset.mems"
		fi
	done
}

node_config() {
	local n=$1 d
	d=$(node_dir "$n")
	mkdir -p "$d"/{containerd,cni/net.d,kubelet,pod-logs}
	cat >"$d/containerd.toml" <<EOF
# containerd for node-$n of the real-pod cluster (generated by cluster.sh).
version = 2
root = "$d/containerd/root"
state = "$d/containerd/state"
[grpc]
  address = "$(node_sock "$n")"
[plugins."io.containerd.internal.v1.opt"]
  path = "$d/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10"
  # root in this VM lacks CAP_SYS_RESOURCE: runc fails every sandbox asking
  # for oom_score_adj -998 unless containerd keeps it at or above its own.
  restrict_oom_score_adj = true
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  enable_unprivileged_ports = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$d/containerd/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$d/cni/net.d"
    max_conf_num = 1
EOF
	cat >"$d/cni/net.d/10-node-$n.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "node-$n", "plugins": [
  {"type": "bridge", "bridge": "dbr$n", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.$n.0/24", "gateway": "10.244.$n.1"}]],
            "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$d/cni/ipam"}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
EOF
	cat >"$d/kubelet.yaml" <<EOF
# kubelet for node-$n of the real-pod cluster (generated by cluster.sh).
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://$(node_sock "$n")
# No systemd here, and the VM mounts cgroup v1 (kubelet 1.37 still runs on it).
cgroupDriver: cgroupfs
failCgroupV1: false
cgroupRoot: /$(node_cgroup "$n")
failSwapOn: false
address: 0.0.0.0
port: $((KUBELET_PORT_BASE + n))
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $((KUBELET_PORT_BASE + 100 + n))
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $STATE/pki/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $STATE/pki/node-$n-serving.crt
tlsPrivateKeyFile: $STATE/pki/node-$n-serving.key
podLogsDir: $d/pod-logs
# Pods get CoreDNS only: no upstream resolver, so no name lookup leaves the machine.
resolvConf: ""
clusterDNS: [$DNS_IP]
clusterDomain: cluster.local
serializeImagePulls: false
# The three nodes share one disk: no eviction or image GC by disk pressure.
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
maxPods: 60
nodeStatusUpdateFrequency: 4s
EOF
}

start_containerd() {
	local n=$1
	running "containerd-$n" && return 0
	start "containerd-$n" containerd --config "$(node_dir "$n")/containerd.toml"
	wait_for "containerd of node-$n" 30 ctr -a "$(node_sock "$n")" version
}

# import_images N: every archive in IMAGES that the node does not hold yet.
import_images() {
	local n=$1 sock stamp tar
	sock=$(node_sock "$n")
	for tar in "$IMAGES"/*.tar; do
		stamp="$(node_dir "$n")/containerd/imported-$(basename "$tar" .tar)"
		if [ -f "$stamp" ] && [ "$stamp" -nt "$tar" ]; then continue; fi
		ctr -a "$sock" -n k8s.io images import "$tar" >/dev/null
		touch "$stamp"
	done
}

start_kubelet() {
	local n=$1 d
	d=$(node_dir "$n")
	running "kubelet-$n" && return 0
	node_cgroups "$n"
	start "kubelet-$n" "$KUBE_BIN/kubelet" --config "$d/kubelet.yaml" --kubeconfig "$STATE/pki/node-$n.kubeconfig" \
		--root-dir "$d/kubelet" --hostname-override "node-$n" --node-ip "$(host_ip)" \
		--node-labels "topology.kubernetes.io/zone=zone-$n"
}

node_up() {
	node_config "$1"
	start_containerd "$1"
	import_images "$1"
	start_kubelet "$1"
}

# node_stop N: the node is lost, not drained: its kubelet, every process of
# its pods and its containerd are killed at once (SIGKILL), as a power cut
# would. Its pods stay in the API as they were until Kubernetes notices.
node_stop() {
	local n=$1 name h
	name=$(node_cgroup "$n")
	stop "kubelet-$n" KILL
	for h in $(cgroup_hierarchies); do
		[ -d "$h/$name" ] || continue
		# shellcheck disable=SC2038 # cgroup.procs files hold PIDs only
		find "$h/$name" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -9 2>/dev/null || true
		break
	done
	shims "$n" | xargs -r kill -9 2>/dev/null || true
	stop "containerd-$n" KILL
}

# shims N: the PIDs of node N's containerd shims (they outlive containerd).
shims() {
	local sock
	sock=$(node_sock "$1")
	ps -eo pid=,args= | awk -v s="$sock" 'index($0, "containerd-shim") && index($0, "-address " s) {print $1}'
}

# --- networking ----------------------------------------------------------------

egress_guard() {
	# Nothing a pod sends may leave the machine: packets from the pod network
	# leaving by any interface but a node bridge or loopback are dropped
	# (mangle POSTROUTING sees them before any masquerading).
	iptables -t mangle -N "$EGRESS_CHAIN" 2>/dev/null || iptables -t mangle -F "$EGRESS_CHAIN"
	iptables -t mangle -A "$EGRESS_CHAIN" -o lo -j RETURN
	iptables -t mangle -A "$EGRESS_CHAIN" -o dbr+ -j RETURN
	iptables -t mangle -A "$EGRESS_CHAIN" -m comment --comment "database-operator real-pod cluster: no egress" -j DROP
	iptables -t mangle -C POSTROUTING -s "$POD_CIDR" -j "$EGRESS_CHAIN" 2>/dev/null ||
		iptables -t mangle -I POSTROUTING 1 -s "$POD_CIDR" -j "$EGRESS_CHAIN"
}

# partition N cuts node N off from the rest of the cluster: its pods from
# the other nodes' pods (both ways) and from the API server, and its kubelet
# from the API server. Its pods stay reachable from the host itself (the
# tests' clients, which play a client on the node's side of the split).
# heal removes every partition.
PARTITION_CHAINS="DBOP-REAL-PART-FWD:FORWARD DBOP-REAL-PART-IN:INPUT DBOP-REAL-PART-OUT:OUTPUT"
partition_chains() {
	local pair
	for pair in $PARTITION_CHAINS; do
		iptables -N "${pair%%:*}" 2>/dev/null || true
		iptables -C "${pair#*:}" -j "${pair%%:*}" 2>/dev/null || iptables -I "${pair#*:}" 1 -j "${pair%%:*}"
	done
}

partition() {
	local n=$1 c
	partition_chains
	c=(-m comment --comment "database-operator real-pod cluster: node-$n partitioned")
	iptables -A DBOP-REAL-PART-FWD -i "dbr$n" ! -o "dbr$n" "${c[@]}" -j DROP
	iptables -A DBOP-REAL-PART-FWD -o "dbr$n" ! -i "dbr$n" "${c[@]}" -j DROP
	# Connections already open to the API server go too, both ways: a
	# watch's events flow from the API server without the client sending
	# anything (an agent on a node cut off one way only still learned of
	# its new role). The reply tuple's source port is the API server's,
	# whether the pod dialled it or the kubernetes Service's address.
	iptables -A DBOP-REAL-PART-IN -i "dbr$n" -p tcp --dport "$APISERVER_PORT" "${c[@]}" -j DROP
	iptables -A DBOP-REAL-PART-OUT -o "dbr$n" -p tcp -m conntrack --ctreplsrcport "$APISERVER_PORT" "${c[@]}" -j DROP
	iptables -A DBOP-REAL-PART-IN -i "dbr$n" -m conntrack --ctstate NEW "${c[@]}" -j DROP
	local kubelet
	kubelet=$(kubelet_api_address "$n")
	iptables -A DBOP-REAL-PART-OUT -d "$kubelet" -p tcp --dport "$APISERVER_PORT" "${c[@]}" -j DROP
	iptables -A DBOP-REAL-PART-OUT -s "$kubelet" -p tcp --sport "$APISERVER_PORT" "${c[@]}" -j DROP
}

heal() {
	local pair
	for pair in $PARTITION_CHAINS; do
		iptables -D "${pair#*:}" -j "${pair%%:*}" 2>/dev/null || true
		iptables -F "${pair%%:*}" 2>/dev/null || true
		iptables -X "${pair%%:*}" 2>/dev/null || true
	done
}

kube_proxy() {
	running kube-proxy && return 0
	cat >"$STATE/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: $STATE/pki/kube-proxy.kubeconfig}
hostnameOverride: node-0
clusterCIDR: $POD_CIDR
bindAddress: 0.0.0.0
metricsBindAddress: 127.0.0.1:17249
healthzBindAddress: 127.0.0.1:17256
# Leave the host's conntrack settings and route_localnet alone.
conntrack: {maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
iptables: {localhostNodePorts: false}
EOF
	start kube-proxy "$KUBE_BIN/kube-proxy" --config "$STATE/kube-proxy.yaml"
}

# --- up / down -------------------------------------------------------------------

# record_host prints what the host had before the cluster: kernel settings,
# folders, KUBE-/CNI- chains (IPv4 and IPv6) and CNI network namespaces.
record_host() {
	local k f ipt table chain
	for k in $HOST_SYSCTLS; do
		if v=$(sysctl -n "$k" 2>/dev/null); then echo "sysctl $k $v"; fi
	done
	for f in $HOST_FOLDERS; do if [ -e "$f" ]; then echo "folder $f"; fi; done
	for ipt in iptables ip6tables; do
		for table in filter nat mangle; do
			for chain in $("$ipt" -t "$table" -S 2>/dev/null | awk '/^-N (KUBE-|CNI-)/ {print $2}'); do
				echo "chain $ipt/$table/$chain"
			done
		done
	done
	for f in /run/netns/cni-*; do if [ -e "$f" ]; then echo "netns $f"; fi; done
}

# was_there KIND NAME: whether record_host saw NAME before the cluster (when
# nothing was recorded, everything counts as the cluster's own).
was_there() { [ -f "$STATE/host.orig" ] && grep -qxF "$1 $2" "$STATE/host.orig"; }

up() {
	local t0=$SECONDS n
	mkdir -p "$STATE" "$(dirname "$KUBECONFIG_OUT")"
	if answers && running kube-proxy && running provisioner; then
		for n in $(seq 0 $((NODES - 1))); do import_images "$n"; done
		log "reusing the running cluster ($KUBECONFIG_OUT); images current"
		return 0
	fi
	log "starting ($NODES nodes)"
	forget_old_boot
	# Recorded once, restored by down: the kernel settings, which host folders,
	# firewall chains and network namespaces existed before (down removes only
	# the others).
	if [ ! -f "$STATE/host.orig" ]; then
		record_host >"$STATE/host.orig.tmp"
		mv "$STATE/host.orig.tmp" "$STATE/host.orig"
	fi
	echo 1 >/proc/sys/net/ipv4/ip_forward
	pki
	egress_guard
	control_plane
	log "control plane up ($((SECONDS - t0)) s)"
	# In parallel; `wait` names them, as the daemons are children too.
	local pids=()
	for n in $(seq 0 $((NODES - 1))); do
		node_up "$n" &
		pids+=($!)
	done
	# Every one is waited for, so none is still starting when a failure's
	# teardown runs.
	local rc=0
	for n in "${pids[@]}"; do wait "$n" || rc=1; done
	[ "$rc" = 0 ] || { echo "real cluster: a node failed to start (see $STATE/logs)" >&2; return 1; }
	log "containerd and images on $NODES nodes ($((SECONDS - t0)) s)"
	kubectl create clusterrolebinding dbop-real-kube-proxy --clusterrole system:node-proxier --user system:kube-proxy \
		--dry-run=client -o yaml | kubectl apply --server-side --field-manager=real-up -f - >/dev/null
	kube_proxy
	wait_for "$NODES Ready nodes" 120 nodes_ready
	running provisioner || start provisioner "$PROVISIONER" --kubeconfig "$KUBECONFIG_OUT" --node-volumes "$STATE/volumes"
	wait_for "the default ServiceAccount" 60 kubectl -n default get serviceaccount default
	kubectl apply --server-side --field-manager=real-up -f "$here/storageclass.yaml" -f "$here/coredns.yaml" >/dev/null
	kubectl -n kube-system rollout status deployment/coredns --timeout=120s >/dev/null
	log "ready in $((SECONDS - t0)) s; export KUBECONFIG=$KUBECONFIG_OUT"
	kubectl get nodes -o wide
}

down() {
	local n h name m
	[ -d "$STATE" ] || {
		log "not running"
		return 0
	}
	forget_old_boot
	stop provisioner
	stop kube-proxy
	for n in $(seq 0 $((NODES - 1))); do
		stop "kubelet-$n"
		if [ -S "$(node_sock "$n")" ] && running "containerd-$n"; then
			# Pods stopped properly first, so the CNI plugins release their addresses and veths.
			"$CRICTL" -r "unix://$(node_sock "$n")" rmp -a -f >/dev/null 2>&1 || true
		fi
		node_stop "$n"
	done
	stop kube-scheduler
	stop kube-controller-manager
	stop kube-apiserver
	stop etcd
	# kube-proxy's rules (unless the host had kube-proxy chains of its own
	# before), then the chains left by the kubelets, the CNI plugins and ours.
	if ! grep -q '^chain .*/KUBE-' "$STATE/host.orig" 2>/dev/null && [ -x "$KUBE_BIN/kube-proxy" ]; then
		"$KUBE_BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true
	fi
	iptables -t mangle -D POSTROUTING -s "$POD_CIDR" -j "$EGRESS_CHAIN" 2>/dev/null || true
	iptables -t mangle -F "$EGRESS_CHAIN" 2>/dev/null || true
	iptables -t mangle -X "$EGRESS_CHAIN" 2>/dev/null || true
	heal
	remove_chains
	for n in $(seq 0 $((NODES - 1))); do ip link del "dbr$n" 2>/dev/null || true; done
	# Network namespaces the CNI plugins left behind (their pods are gone).
	for m in $(awk '$5 ~ "^/run/netns/cni-" {print $5}' /proc/self/mountinfo); do
		was_there netns "$m" && continue
		umount -l "$m" 2>/dev/null || true
		rm -f "$m" 2>/dev/null || true
	done
	# Mounts under the state folder (volumes, secrets, overlay snapshots), deepest first.
	for m in $(awk -v s="$STATE/" 'index($5, s) == 1 {print $5}' /proc/self/mountinfo | sort -r); do umount -l "$m" 2>/dev/null || true; done
	# Loop devices of the sized volumes' images (detached once released).
	losetup -n -l -O NAME,BACK-FILE 2>/dev/null | awk -v s="$STATE/" 'index($2, s) == 1 {print $1}' | while read -r dev; do
		losetup -d "$dev" 2>/dev/null || true
	done
	for n in $(seq 0 $((NODES - 1))); do
		name=$(node_cgroup "$n")
		for h in $(cgroup_hierarchies); do
			[ -d "$h/$name" ] && find "$h/$name" -depth -type d -exec rmdir {} \; 2>/dev/null || true
		done
	done
	# Kernel settings back as they were.
	if [ -f "$STATE/host.orig" ]; then
		awk '$1 == "sysctl" {print $2 "=" $3}' "$STATE/host.orig" | while read -r kv; do sysctl -q -w "$kv" >/dev/null 2>&1 || true; done
	fi
	# The kubelet's log links point into STATE; folders that were not there before go.
	find /var/log/containers -maxdepth 1 -type l -lname "$STATE/*" -delete 2>/dev/null || true
	for f in $HOST_FOLDERS; do
		was_there folder "$f" || { mountpoint -q "$f" && umount "$f"; rm -rf "$f"; } 2>/dev/null || true
	done
	rm -rf "$STATE" "$KUBECONFIG_OUT"
	log "removed"
}

# remove_chains deletes the KUBE-* and CNI-* chains the cluster made (IPv4
# and IPv6, every table), with the rules that jump to them; chains that were
# there before are left alone.
remove_chains() {
	local ipt table chain rule chains
	for ipt in iptables ip6tables; do
		for table in filter nat mangle; do
			chains=()
			for chain in $("$ipt" -t "$table" -S 2>/dev/null | awk '/^-N (KUBE-|CNI-)/ {print $2}'); do
				was_there chain "$ipt/$table/$chain" || chains+=("$chain")
			done
			for chain in "${chains[@]}"; do
				{ "$ipt" -t "$table" -S | grep -E -- "-j $chain( |\$)" || true; } | sed 's/^-A /-D /' | while read -r rule; do
					eval "$ipt" -t "$table" "$rule" 2>/dev/null || true
				done
			done
			for chain in "${chains[@]}"; do "$ipt" -t "$table" -F "$chain" 2>/dev/null || true; done
			for chain in "${chains[@]}"; do "$ipt" -t "$table" -X "$chain" 2>/dev/null || true; done
		done
	done
}

case "${1:-}" in
up) up ;;
status) answers ;;
down) down ;;
node-stop)
	node_stop "${2:?node number}"
	log "node-$2 stopped"
	;;
node-start)
	node_up "${2:?node number}"
	log "node-$2 started"
	;;
partition)
	partition "${2:?node number}"
	log "node-$2 partitioned"
	;;
heal)
	heal
	log "partitions healed"
	;;
restart)
	# A control-plane process stopped (SIGKILL, as a crash would) and
	# started again; returns once the API server answers /readyz.
	case "${2:-}" in
	etcd | kube-apiserver) ;;
	*)
		echo "usage: $0 restart etcd|kube-apiserver" >&2
		exit 2
		;;
	esac
	stop "$2" KILL
	control_plane
	log "$2 restarted"
	;;
*)
	echo "usage: $0 up|down|node-stop N|node-start N|partition N|heal|restart etcd|kube-apiserver" >&2
	exit 2
	;;
esac
