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

CONTROLLER_GEN := $(BIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
KUBE_APISERVER := $(BIN)/k8s-$(KUBE_VERSION)/kube-apiserver
ETCD := $(BIN)/etcd-$(ETCD_VERSION)/etcd
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

.PHONY: verify-generate
verify-generate: $(CONTROLLER_GEN) ## Fail when checked-in generated files differ from a fresh generation.
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	cp -r go.mod go.sum apis render reconcile hack config "$$tmp"/; \
	rm -rf "$$tmp/apis/database/v1/applyconfiguration" "$$tmp/config/crd" "$$tmp/config/rbac"; \
	(cd "$$tmp" && $(CONTROLLER_GEN) $(GEN_API_ARGS) && $(CONTROLLER_GEN) $(GEN_RBAC_ARGS)); \
	if ! diff -ru apis "$$tmp/apis" || ! diff -ru config/crd "$$tmp/config/crd" || ! diff -ru config/rbac "$$tmp/config/rbac"; then \
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

.PHONY: verify-render-pure
verify-render-pure: ## Fail when render/ depends on a client package (see the script for the one upstream exception).
	hack/verify-render-pure.sh

##@ Test

.PHONY: test
test: verify-generate vet verify-render-pure envtest-assets ## Run every check and test (the CI entry point).
	KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) go test $(GO_TEST_FLAGS) ./...

.PHONY: golden
golden: ## Regenerate render/testdata golden files (review the diff).
	go test ./render/ -run Golden -update

.PHONY: envtest-assets
envtest-assets: $(ENVTEST_ASSETS)/kube-apiserver $(ENVTEST_ASSETS)/etcd ## Build kube-apiserver and etcd for envtest.

$(ENVTEST_ASSETS)/kube-apiserver: $(KUBE_APISERVER)
	mkdir -p $(@D) && ln -sf $< $@
$(ENVTEST_ASSETS)/etcd: $(ETCD)
	mkdir -p $(@D) && ln -sf $< $@

##@ Tools (built from the Go module proxy)

$(CONTROLLER_GEN):
	cd tools/controller-gen && go build -o $@ sigs.k8s.io/controller-tools/cmd/controller-gen

$(KUBE_APISERVER):
	cd tools/kube && go build -ldflags "$(KUBE_LDFLAGS)" -o $@ k8s.io/kubernetes/cmd/kube-apiserver

$(ETCD):
	cd tools/etcd && go build -o $@ go.etcd.io/etcd/server/v3
