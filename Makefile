# database-operator — every build and test step, from a fresh clone.
#
# Tools and test binaries are built from the Go module proxy into bin/ (git-ignored),
# keyed by version, so only the first run is slow.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

BIN := $(CURDIR)/bin

CONTROLLER_TOOLS_VERSION := v0.23.0
KUBE_VERSION := v1.37.2
ETCD_VERSION := v3.6.16

KWOK_VERSION := v0.8.0
HELM3_VERSION := v3.22.0
HELM4_VERSION := v4.3.1
PROMTOOL_VERSION := v0.316.0
CRICTL_VERSION := v1.37.0
SEAWEEDFS_VERSION := $(shell awk '$$1 == "github.com/seaweedfs/seaweedfs" {print $$2}' tools/seaweedfs/go.mod)

CONTROLLER_GEN := $(BIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
KUBE_APISERVER := $(BIN)/k8s-$(KUBE_VERSION)/kube-apiserver
KUBE_CONTROLLER_MANAGER := $(BIN)/k8s-$(KUBE_VERSION)/kube-controller-manager
KUBE_SCHEDULER := $(BIN)/k8s-$(KUBE_VERSION)/kube-scheduler
KUBECTL := $(BIN)/k8s-$(KUBE_VERSION)/kubectl
KUBELET := $(BIN)/k8s-$(KUBE_VERSION)/kubelet
KUBE_PROXY := $(BIN)/k8s-$(KUBE_VERSION)/kube-proxy
CRICTL := $(BIN)/crictl-$(CRICTL_VERSION)/crictl
ETCD := $(BIN)/etcd-$(ETCD_VERSION)/etcd
KWOK := $(BIN)/kwok-$(KWOK_VERSION)/kwok
KWOKCTL := $(BIN)/kwok-$(KWOK_VERSION)/kwokctl
HELM3 := $(BIN)/helm-$(HELM3_VERSION)/helm
HELM4 := $(BIN)/helm-$(HELM4_VERSION)/helm
PROMTOOL := $(BIN)/promtool-$(PROMTOOL_VERSION)/promtool
WEED := $(BIN)/seaweedfs-$(SEAWEEDFS_VERSION)/weed
# The golden Prometheus rule files render writes, and their promtool unit tests.
RULES_DIR := render/testdata/rules
CHART := charts/database-operator
# Built from this repository on every use (go build's cache makes it quick).
OPERATOR := $(BIN)/database-operator
PROVISIONER := $(BIN)/local-provisioner

LOCAL := $(CURDIR)/.local
# The demo cluster; the e2e suite runs a cluster of its own next to it.
LOCAL_KUBECONFIG := $(LOCAL)/kubeconfig
E2E_CLUSTER := database-operator-e2e
E2E_KUBECONFIG := $(LOCAL)/$(E2E_CLUSTER).kubeconfig
# The real-pod cluster (one per machine): its state, kubeconfig and the
# image archives its nodes import.
REAL_STATE := $(LOCAL)/real
REAL_KUBECONFIG := $(LOCAL)/real.kubeconfig
REAL_IMAGES := $(BIN)/realcluster/images
# The S3 server of the backup tests (hack/seaweedfs.sh).
S3_ENV := WEED=$(WEED) S3_DIR=$(LOCAL)/seaweedfs
# The one the real-pod suite's pods archive to: on the host's address.
S3_REAL_ENV := WEED=$(WEED) S3_DIR=$(LOCAL)/seaweedfs-real S3_IP=host S3_PORT=18433
# with_s3 runs $(1) with SeaweedFS up and its S3_TEST_* in the environment,
# and stops it afterwards whatever $(1) did.
define with_s3
	export $(S3_ENV); trap 'hack/seaweedfs.sh down' EXIT; hack/seaweedfs.sh up; \
	set -a; . $(LOCAL)/seaweedfs/env; set +a; $(1)
endef
# envtest wants kube-apiserver and etcd side by side in one folder.
ENVTEST_ASSETS := $(BIN)/envtest-$(KUBE_VERSION)-etcd-$(ETCD_VERSION)

# The server reports its real version (kubectl and Helm refuse v0.0.0-master).
KUBE_LDFLAGS := -X k8s.io/component-base/version.gitVersion=$(KUBE_VERSION) \
	-X k8s.io/component-base/version.gitMajor=$(word 2,$(subst ., ,$(subst v,v ,$(KUBE_VERSION)))) \
	-X k8s.io/component-base/version.gitMinor=$(word 2,$(subst ., ,$(KUBE_VERSION))) \
	-X k8s.io/component-base/version.gitTreeState=clean

GO_TEST_FLAGS ?=

.PHONY: help
help: ## Show the targets.
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

##@ Development

# controller-gen arguments, shared by generate and verify-generate. The API
# runs first: the reconciler imports its apply configurations, and its RBAC
# markers can only be read once they exist.
GEN_API_ARGS := object:headerFile=hack/boilerplate.go.txt \
	applyconfiguration:headerFile=hack/boilerplate.go.txt,externalApplyConfigurations=k8s.io/api/core/v1.ResourceRequirements@k8s.io/client-go/applyconfigurations/core/v1 \
	crd:generateEmbeddedObjectMeta=false \
	paths=./apis/... \
	output:crd:artifacts:config=config/crd
GEN_RBAC_ARGS := rbac:roleName=database-operator paths=./reconcile/... output:rbac:artifacts:config=config/rbac

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Regenerate deepcopy, apply configurations, the CRD and the ClusterRole.
	rm -rf apis/database/v1/applyconfiguration
	$(CONTROLLER_GEN) $(GEN_API_ARGS)
	$(CONTROLLER_GEN) $(GEN_RBAC_ARGS)
	cp config/crd/database.example.com_databases.yaml $(CHART)/files/crd.yaml
	cp config/rbac/role.yaml $(CHART)/files/clusterrole.yaml

.PHONY: verify-generate
verify-generate: $(CONTROLLER_GEN) ## Fail when checked-in generated files differ from a fresh generation.
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	cp -r go.mod go.sum apis instance internal render reconcile hack config "$$tmp"/; \
	rm -rf "$$tmp/apis/database/v1/applyconfiguration" "$$tmp/config/crd" "$$tmp/config/rbac"; \
	(cd "$$tmp" && $(CONTROLLER_GEN) $(GEN_API_ARGS) && $(CONTROLLER_GEN) $(GEN_RBAC_ARGS)); \
	if ! diff -ru apis "$$tmp/apis" || ! diff -ru config/crd "$$tmp/config/crd" || ! diff -ru config/rbac "$$tmp/config/rbac" || \
		! diff -u "$$tmp/config/crd/database.example.com_databases.yaml" $(CHART)/files/crd.yaml || \
		! diff -u "$$tmp/config/rbac/role.yaml" $(CHART)/files/clusterrole.yaml; then \
		echo "generated files are stale: run 'make generate' and commit the result" >&2; exit 1; \
	fi

.PHONY: fmt
fmt: ## gofmt the code.
	gofmt -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## go vet, and fail on unformatted files.
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted" >&2; exit 1; fi
	go vet ./...

.PHONY: verify-chart
verify-chart: $(HELM3) $(HELM4) ## helm lint --strict (Helm 3 and 4); the chart renders identically twice.
	$(HELM3) lint --strict $(CHART)
	$(HELM4) lint --strict $(CHART)
	$(HELM3) lint --strict $(CHART) --set dashboards.enabled=true,dashboards.namespace=monitoring
	$(HELM4) lint --strict $(CHART) --set dashboards.enabled=true,dashboards.namespace=monitoring
	out=$$($(HELM3) template ci $(CHART) -n ci --kube-version $(KUBE_VERSION) --set rbac.namespaced=true,watchNamespaces={a}); \
	if grep -q 'kind: ClusterRole$$' <<<"$$out"; then echo "rbac.namespaced renders a ClusterRole" >&2; exit 1; fi; \
	if $(HELM3) template ci $(CHART) -n ci --kube-version $(KUBE_VERSION) --set rbac.namespaced=true >/dev/null 2>&1; then \
		echo "rbac.namespaced without watchNamespaces must fail" >&2; exit 1; fi
	$(HELM3) template ci $(CHART) -n ci --kube-version $(KUBE_VERSION) --set dashboards.enabled=true \
		--show-only templates/dashboards.yaml | grep -q 'grafana_dashboard: "1"'
	a=$$($(HELM3) template ci $(CHART) -n ci --kube-version $(KUBE_VERSION) --set replicaCount=2,metrics.serviceMonitor.enabled=true,dashboards.enabled=true | sha256sum); \
	b=$$($(HELM3) template ci $(CHART) -n ci --kube-version $(KUBE_VERSION) --set replicaCount=2,metrics.serviceMonitor.enabled=true,dashboards.enabled=true | sha256sum); \
	if [ "$$a" != "$$b" ]; then echo "the chart renders differently twice (random values or timestamps in templates?)" >&2; exit 1; fi

.PHONY: verify-scripts
verify-scripts: engines ## shellcheck the repository's shell scripts (the clusters', the images', hack/).
	shellcheck -S warning $$(git ls-files '*.sh')

.PHONY: verify-render-pure
verify-render-pure: ## Fail when render/ depends on a client package (see the script for the one upstream exception).
	hack/verify-render-pure.sh

##@ Test

.PHONY: test
test: verify-generate vet verify-render-pure verify-scripts verify-chart test-rules envtest-assets test-e2e-deps $(WEED) ## Run every check and test: unit, envtest and e2e (the CI entry point).
	$(call with_s3,KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) go test $(GO_TEST_FLAGS) $$(go list ./... | grep -v -e '/e2e$$' -e /e2e/realpods -e /enginetest))
	cd test/dockerfile && go vet ./... && go test $(GO_TEST_FLAGS) ./...
	$(MAKE) test-fuzz
	$(MAKE) test-engines
	$(MAKE) test-e2e
	$(MAKE) test-e2e-real

# FUZZTIME bounds the fuzzing run of make test; make fuzz runs FUZZ_LONG.
# Both are counts of inputs, not durations: go1.26's fuzz coordinator can
# report a spurious "context deadline exceeded" when a -fuzztime duration
# ends while a worker is busy (golang/go#75804, fixed in go1.27), and on a
# loaded machine our inputs (several API calls each) often are. FUZZMINIMIZE
# bounds the minimisation of each new input as a count too: with a duration,
# a cold fuzz cache spent most of a run minimising inputs that only add
# coverage. FUZZ_DEADLINE ends a run whose workers stall.
FUZZTIME ?= 1500x
FUZZMINIMIZE ?= 5x
FUZZ_DEADLINE ?= 5m
FUZZ_LONG ?= 20000x
FUZZ_LONG_DEADLINE ?= 30m

.PHONY: test-fuzz
test-fuzz: envtest-assets ## Fuzz Database specs (FUZZTIME=1500x inputs, about 50 s) on envtest: render never panics, admitted specs render children the API server accepts, pods pass restricted Pod Security, no spec value is pasted into a script. Crashers land in fuzz/testdata.
	KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) timeout --kill-after=30s $(FUZZ_DEADLINE) \
		go test -count=1 -timeout 0 -run '^$$' -fuzz '^FuzzDatabaseSpec$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZE) -parallel 2 ./fuzz/

.PHONY: fuzz
fuzz: ## Fuzz Database specs for FUZZ_LONG inputs (20000x, about 10 min; make fuzz FUZZ_LONG=200000x FUZZ_LONG_DEADLINE=3h for longer).
	$(MAKE) --no-print-directory test-fuzz FUZZTIME=$(FUZZ_LONG) FUZZ_DEADLINE=$(FUZZ_LONG_DEADLINE)

ENGINE_PACKAGES := postgresql-15 mariadb-server mariadb-client shellcheck

# apt_install installs the Debian packages $(1) that are missing, with apt-get
# options $(2); fails if apt cannot.
define apt_install
	@missing=$$(for p in $(1); do \
		dpkg-query -W -f='$${Status}\n' "$$p" 2>/dev/null | grep -q '^install ok installed$$' || echo "$$p"; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $(2) $$missing; \
	fi
endef

.PHONY: engines
engines: ## Install the engines the engine tests run (Debian packages) when missing; fails if apt cannot.
	$(call apt_install,$(ENGINE_PACKAGES))

.PHONY: test-engines
test-engines: engines build $(WEED) ## Run render's configs and scripts, and the agent's archiving, against real PostgreSQL 15, MariaDB (the MySQL stand-in) and SeaweedFS.
	$(call with_s3,ENGINETEST_AGENT=$(BIN)/database-agent go test $(GO_TEST_FLAGS) -count=1 -timeout 20m ./enginetest/)

.PHONY: s3-up s3-down
s3-up: $(WEED) ## Start the tests' S3 server (SeaweedFS) on 127.0.0.1:18333, or reuse it; its keys: hack/seaweedfs.sh env.
	$(S3_ENV) hack/seaweedfs.sh up
	@echo "for go test: set -a; . $(LOCAL)/seaweedfs/env; set +a"

s3-down: ## Stop the tests' S3 server.
	$(S3_ENV) hack/seaweedfs.sh down

$(WEED):
	cd tools/seaweedfs && go build -o $@ github.com/seaweedfs/seaweedfs/weed

.PHONY: test-e2e
test-e2e: test-e2e-deps ## Run the end-to-end suite on a local cluster of its own (started, then removed).
	export $(CLUSTER_ENV) CLUSTER_NAME=$(E2E_CLUSTER) CLUSTER_KUBECONFIG=$(E2E_KUBECONFIG); \
	trap 'e2e/cluster.sh down' EXIT; \
	e2e/cluster.sh up && \
	E2E_KUBECONFIG=$(E2E_KUBECONFIG) E2E_OPERATOR=$(OPERATOR) E2E_KUBECTL=$(KUBECTL) E2E_HELM3=$(HELM3) E2E_HELM4=$(HELM4) \
		go test $(GO_TEST_FLAGS) -count=1 -timeout 30m ./e2e/

.PHONY: test-e2e-real
REAL_TEST_TIMEOUT ?= 40m
test-e2e-real: real-deps $(WEED) ## Run the real-pod suite (e2e/realpods) on the real-pod cluster (started and removed, or reused when already up), with an S3 server the pods reach.
	mkdir -p $(LOCAL); export $(REAL_ENV); \
	cleanup='$(S3_REAL_ENV) hack/seaweedfs.sh down'; \
	if e2e/realcluster/cluster.sh status >/dev/null 2>&1; then echo "reusing the running real-pod cluster (left running)"; \
	else cleanup="$$cleanup; e2e/realcluster/cluster.sh down"; fi; \
	trap "$$cleanup" EXIT; \
	$(S3_REAL_ENV) hack/seaweedfs.sh up; set -a; . $(LOCAL)/seaweedfs-real/env; set +a; \
	e2e/realcluster/cluster.sh up; \
	E2E_KUBECONFIG=$(REAL_KUBECONFIG) E2E_KUBECTL=$(KUBECTL) E2E_HELM4=$(HELM4) \
	E2E_OPERATOR_IMAGE_KEY=$$(cat $(REAL_IMAGES)/operator.tar.key) \
		go test $(GO_TEST_FLAGS) -count=1 -timeout $(REAL_TEST_TIMEOUT) -v ./e2e/realpods/ 2>&1 | tee $(LOCAL)/realpods.log

.PHONY: bench-failover
bench-failover: ## Failover benchmark on the real-pod cluster: 10 runs of each fault per replication mode; prints one table (~55 min).
	$(MAKE) --no-print-directory test-e2e-real GO_TEST_FLAGS="-run TestPostgresFailover" REAL_TEST_TIMEOUT=120m FAILOVER_RUNS=$${FAILOVER_RUNS:-10}
	@awk '/failover results/{p=1} p{sub(/^ *(failover_test.go:[0-9]+: )?/, ""); print} /^ *sync +acknowledged rows lost/{p=0}' $(LOCAL)/realpods.log

.PHONY: test-faults
test-faults: ## Fault matrix on the real-pod cluster: 20 Databases under churn and 2 with writers; operator leader SIGKILL (20 rounds) and SIGSTOP, API server and etcd restarts, a field conflict, partitions of a primary's node (5 each), a full data volume (1); prints one table (make test runs a short version).
	$(MAKE) --no-print-directory test-e2e-real GO_TEST_FLAGS="-run TestFaultMatrix" REAL_TEST_TIMEOUT=150m \
		FAULT_DATABASES=$${FAULT_DATABASES:-20} FAULT_ROUNDS=$${FAULT_ROUNDS:-20}
	@awk '/fault matrix \(/{p=1} p{sub(/^ *(faults_test.go:[0-9]+: )?/, ""); print} /^ *partition of/{p=0}' $(LOCAL)/realpods.log

.PHONY: bench-archive
bench-archive: engines build $(WEED) ## Archive benchmarks on PostgreSQL 15, MariaDB and SeaweedFS: recovery point over 10 losses per engine, base backup and restore throughput against pg_basebackup and tar (~20 min).
	mkdir -p $(LOCAL)
	$(call with_s3,ENGINETEST_AGENT=$(BIN)/database-agent go test -count=1 -timeout 60m -run '^$$' -bench 'BenchmarkRecoveryPoint|BenchmarkBaseBackupThroughput|BenchmarkMySQLRecoveryPoint' -benchtime 1x -v ./enginetest/ 2>&1 | tee $(LOCAL)/bench-archive.log)

.PHONY: test-e2e-deps
test-e2e-deps: cluster-binaries operator $(HELM3) $(HELM4)

.PHONY: bench
bench: envtest-assets ## Scale benchmark: 1,000 Databases on envtest with the chart's default flags; prints one table (~15 min).
	KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) go run ./bench/cmd/dbbench -n 1000 -qps 50 -burst 100 -workers 4

.PHONY: test-rules
test-rules: $(PROMTOOL) ## promtool check rules on every golden rule file, promtool test rules on every rule unit test.
	$(PROMTOOL) check rules $(RULES_DIR)/*.rules.yaml
	cd $(RULES_DIR) && $(PROMTOOL) test rules *_test.yaml

.PHONY: golden
golden: ## Regenerate render/testdata golden files, rule files included (review the diff).
	go test ./render/ -run Golden -update

.PHONY: envtest-assets
envtest-assets: $(ENVTEST_ASSETS)/kube-apiserver $(ENVTEST_ASSETS)/etcd ## Build kube-apiserver and etcd for envtest.

$(ENVTEST_ASSETS)/kube-apiserver: $(KUBE_APISERVER)
	mkdir -p $(@D) && ln -sf $< $@
$(ENVTEST_ASSETS)/etcd: $(ETCD)
	mkdir -p $(@D) && ln -sf $< $@

##@ Local cluster

# What e2e/cluster.sh needs to know.
CLUSTER_ENV := KWOKCTL=$(KWOKCTL) KUBECTL=$(KUBECTL) KUBE_APISERVER=$(KUBE_APISERVER) \
	KUBE_CONTROLLER_MANAGER=$(KUBE_CONTROLLER_MANAGER) KUBE_SCHEDULER=$(KUBE_SCHEDULER) \
	KWOK=$(KWOK) ETCD=$(ETCD) PROVISIONER=$(PROVISIONER)

.PHONY: cluster-binaries
cluster-binaries: $(KUBE_APISERVER) $(KUBE_CONTROLLER_MANAGER) $(KUBE_SCHEDULER) $(KUBECTL) $(ETCD) $(KWOK) $(KWOKCTL) provisioner

.PHONY: cluster-up
cluster-up: cluster-binaries ## Start the local cluster (or reuse it); kubeconfig in .local/kubeconfig.
	$(CLUSTER_ENV) e2e/cluster.sh up

.PHONY: cluster-down
cluster-down: ## Stop the demo operator and remove the local cluster.
	-@[ -f $(LOCAL)/operator.pid ] && kill $$(cat $(LOCAL)/operator.pid) 2>/dev/null; rm -f $(LOCAL)/operator.pid
	$(CLUSTER_ENV) e2e/cluster.sh down

.PHONY: install-crd
install-crd: $(KUBECTL) ## Install or update the CRD in $$KUBECONFIG's cluster.
	$(KUBECTL) apply --server-side --force-conflicts --field-manager=database-operator-install -f config/crd
	$(KUBECTL) wait --for=condition=Established crd/databases.database.example.com --timeout=60s

.PHONY: run
run: $(KUBECTL) ## Run the operator in the foreground against $$KUBECONFIG, or the local cluster when unset.
	@if [ -z "$${KUBECONFIG:-}" ]; then $(MAKE) --no-print-directory cluster-up; fi
	export KUBECONFIG=$${KUBECONFIG:-$(LOCAL_KUBECONFIG)}; \
	$(MAKE) --no-print-directory install-crd && \
	go run ./cmd/database-operator --log-format console --metrics-bind-address :8080 --health-probe-bind-address :8081

.PHONY: demo
demo: cluster-up operator ## Local cluster + operator in the background + both samples; waits for Ready.
	export KUBECONFIG=$(LOCAL_KUBECONFIG); \
	$(MAKE) --no-print-directory install-crd && \
	if [ -f $(LOCAL)/operator.pid ] && kill -0 $$(cat $(LOCAL)/operator.pid) 2>/dev/null; then kill $$(cat $(LOCAL)/operator.pid); sleep 1; fi; \
	nohup $(OPERATOR) --kubeconfig $(LOCAL_KUBECONFIG) --log-format console --metrics-bind-address 0 --health-probe-bind-address 0 \
		>$(LOCAL)/operator.log 2>&1 & echo $$! >$(LOCAL)/operator.pid; \
	$(KUBECTL) create namespace demo --dry-run=client -o yaml | $(KUBECTL) apply -f - >/dev/null && \
	$(KUBECTL) -n demo apply --server-side --field-manager=demo -f config/samples/ && \
	echo "waiting for the Databases to become Ready (the operator logs to .local/operator.log)..." && \
	$(KUBECTL) -n demo wait db --all --for=condition=Ready --timeout=300s >/dev/null && \
	$(KUBECTL) -n demo get db -o wide && \
	echo && echo "export KUBECONFIG=$(LOCAL_KUBECONFIG); kubectl -n demo get db,sts,svc,pvc,cronjob,secret   # look around" && \
	echo "make cluster-down   # stop the operator and remove the cluster"

.PHONY: build
build: ## Build the operator and its agent into bin/ (the Dockerfile runs the same go build).
	CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o $(BIN)/ ./cmd/database-operator ./cmd/database-agent

.PHONY: operator
operator: build

.PHONY: provisioner
provisioner:
	go build -o $(PROVISIONER) ./e2e/local-provisioner

##@ Real-pod cluster

# Debian packages the real-pod cluster's nodes run, and debootstrap for the images.
REAL_PACKAGES := containerd runc containernetworking-plugins iptables conntrack debootstrap xfsprogs
# What e2e/realcluster/cluster.sh needs to know.
REAL_ENV := KUBE_BIN=$(BIN)/k8s-$(KUBE_VERSION) ETCD=$(ETCD) CRICTL=$(CRICTL) PROVISIONER=$(PROVISIONER) \
	IMAGES=$(REAL_IMAGES) STATE=$(REAL_STATE) KUBECONFIG_OUT=$(REAL_KUBECONFIG)

.PHONY: real-packages
real-packages:
	$(call apt_install,$(REAL_PACKAGES),--no-install-recommends)

.PHONY: real-images
real-images: real-packages ## Build the real-pod cluster's image archives into bin/realcluster/images (each rebuilt only when its inputs change).
	e2e/realcluster/images/build.sh $(REAL_IMAGES)

.PHONY: real-deps
real-deps: real-packages real-images $(KUBE_APISERVER) $(KUBE_CONTROLLER_MANAGER) $(KUBE_SCHEDULER) $(KUBECTL) \
	$(KUBELET) $(KUBE_PROXY) $(ETCD) $(CRICTL) $(HELM4) provisioner

.PHONY: real-up
real-up: real-deps ## Start the real-pod cluster (3 nodes whose pods really run), or reuse it; kubeconfig in .local/real.kubeconfig.
	$(REAL_ENV) e2e/realcluster/cluster.sh up

.PHONY: real-down
real-down: ## Stop the real-pod cluster and undo its changes to the host.
	$(REAL_ENV) e2e/realcluster/cluster.sh down

##@ Tools (built from the Go module proxy)

$(CONTROLLER_GEN):
	cd tools/controller-gen && go build -o $@ sigs.k8s.io/controller-tools/cmd/controller-gen

$(KUBE_APISERVER):
	cd tools/kube && go build -ldflags "$(KUBE_LDFLAGS)" -o $@ k8s.io/kubernetes/cmd/kube-apiserver

$(ETCD):
	cd tools/etcd && go build -o $@ go.etcd.io/etcd/server/v3

$(KUBE_CONTROLLER_MANAGER) $(KUBE_SCHEDULER) $(KUBECTL) $(KUBELET) $(KUBE_PROXY):
	cd tools/kube && go build -ldflags "$(KUBE_LDFLAGS)" -o $@ k8s.io/kubernetes/cmd/$(@F)

$(HELM3):
	cd tools/helm3 && go build -o $@ helm.sh/helm/v3/cmd/helm

$(HELM4):
	cd tools/helm4 && go build -o $@ helm.sh/helm/v4/cmd/helm

$(PROMTOOL):
	cd tools/promtool && go build -o $@ github.com/prometheus/prometheus/cmd/promtool

$(CRICTL):
	cd tools/crictl && go build -o $@ sigs.k8s.io/cri-tools/cmd/crictl

$(KWOK) $(KWOKCTL):
	cd tools/kwok && go build -o $@ sigs.k8s.io/kwok/cmd/$(@F)
