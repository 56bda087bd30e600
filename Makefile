# Parley: kubebuilder-style targets. `make help` lists them.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo v0.0.0-dev)
IMG ?= parley:$(VERSION)
LDFLAGS := -X github.com/parleychat/parley/internal/version.Version=$(VERSION)
GO ?= go
KUBECTL ?= kubectl
HELM_VERSION ?= v3.22.0
STATICCHECK_VERSION ?= v0.8.2

.DEFAULT_GOAL := help

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: run
run: ## Build the web client (when Node.js is there), then start every role in one process (parley dev) and print the URL.
	hack/web.sh build-if-possible
	$(GO) run -ldflags "$(LDFLAGS)" . dev

.PHONY: web
web: ## Build the web client into runtime/web/dist/app (npm ci first when the lockfile changed).
	hack/web.sh build

.PHONY: web-test
web-test: ## Vitest: the web client's state logic.
	hack/web.sh test

.PHONY: test
test: envtest ## Run every test suite: Vitest, then Go unit, contract, integration, browser, envtest and simulated cluster.
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh --with-sim)" hack/test.sh

.PHONY: fmt
fmt: ## Run gofmt on the tree.
	gofmt -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## Run go vet.
	$(GO) vet ./...

.PHONY: lint
lint: vet ## gofmt check, go vet and staticcheck.
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

.PHONY: manifests
manifests: ## Generate CRD, RBAC and webhook manifests from the API markers.
	@if [ -d api ]; then $(GO) tool controller-gen rbac:roleName=parley-operator crd paths="./api/...;./controllers/..." output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac; else echo "no api/ yet"; fi
	@# The chart ships the same CRD and ClusterRole rules; its test fails if they drift.
	@if [ -d charts/parley-operator ]; then \
	  cp config/crd/bases/chat.parley.dev_chatclusters.yaml charts/parley-operator/crds/; \
	  sed -n '/^rules:/,$$p' config/rbac/role.yaml | tail -n +2 > charts/parley-operator/files/role-rules.yaml; \
	fi

.PHONY: generate
generate: ## Generate DeepCopy methods from the API types.
	@if [ -d api ]; then $(GO) tool controller-gen object paths="./api/..."; else echo "no api/ yet"; fi

.PHONY: envtest
envtest: ## Provide kube-apiserver, etcd (and the simulated-cluster binaries); builds them from Go modules once.
	@hack/envtest-assets.sh --with-sim >/dev/null

.PHONY: bench
bench: ## Run the benchmark suite (~15 min, quiet machine) and rewrite docs/benchmarks.md's generated section; QUICK=1: 2-3 min smoke run into a temp file.
	hack/bench.sh $(if $(filter 1,$(QUICK)),--quick,)

.PHONY: bench-operator
bench-operator: envtest ## Benchmark the operator: 100 ChatClusters to Ready on a simulated cluster, default workers vs one (docs/benchmarks.md).
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh --with-sim)" $(GO) test ./controllers/ -run '^$$' -bench '^BenchmarkOperatorHundredClusters$$' -benchtime 1x -count=1 -v -timeout 40m

##@ Build

.PHONY: build
build: web ## Build bin/parley with the web client embedded.
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/parley .

.PHONY: docker-build
docker-build: ## Build the container image (needs a Docker engine).
	docker build --build-arg VERSION=$(VERSION) -t $(IMG) .

.PHONY: image
image: web ## Build the image without a Docker engine (same as the Dockerfile, reproducible): OCI layout bin/image/oci, `docker load` tarball bin/image/parley.tar.
	arch=$${IMAGE_ARCH:-amd64}; \
	CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags "-s -w $(LDFLAGS)" -o bin/image/parley . && \
	SOURCE_DATE_EPOCH="$${SOURCE_DATE_EPOCH:-$$(git log -1 --format=%ct 2>/dev/null || echo 0)}" \
	$(GO) run ./hack/image --binary bin/image/parley --arch $$arch --version '$(VERSION)' \
	  --revision "$$(git rev-parse --short=12 HEAD 2>/dev/null || true)" \
	  --layout bin/image/oci --tarball bin/image/parley.tar --tag '$(IMG)'

.PHONY: helm-lint
helm-lint: ## Lint the operator's Helm chart.
	@if [ -d charts/parley-operator ]; then $(GO) run helm.sh/helm/v3/cmd/helm@$(HELM_VERSION) lint charts/parley-operator; else echo "no chart yet"; fi

##@ Deployment

.PHONY: install
install: manifests ## Install the CRDs into the cluster of the current kubeconfig.
	$(KUBECTL) apply --server-side -k config/crd

.PHONY: uninstall
uninstall: manifests ## Remove the CRDs (and every ChatCluster) from the cluster.
	$(KUBECTL) delete --ignore-not-found -k config/crd

.PHONY: deploy
deploy: manifests ## Deploy the operator with kustomize (IMG sets the image, also the workloads' default).
	@overlay=$$(mktemp -d config/.deploy.XXXXXX); trap 'rm -rf "$$overlay"' EXIT; \
	img='$(IMG)'; name=$${img%:*}; tag=$${img##*:}; \
	if [[ "$$img" != *:* || "$$tag" == */* ]]; then name=$$img; tag=latest; fi; \
	printf '%s\n' 'apiVersion: kustomize.config.k8s.io/v1beta1' 'kind: Kustomization' \
	  'resources: [../default]' \
	  "images: [{name: parley, newName: \"$$name\", newTag: \"$$tag\"}]" \
	  'patches: [{path: default-image.yaml}]' > "$$overlay/kustomization.yaml"; \
	printf '%s\n' 'apiVersion: apps/v1' 'kind: Deployment' 'metadata: {name: parley-operator, namespace: parley-system}' \
	  "spec: {template: {spec: {containers: [{name: manager, env: [{name: PARLEY_DEFAULT_IMAGE, value: \"$$img\"}]}]}}}" \
	  > "$$overlay/default-image.yaml"; \
	$(KUBECTL) kustomize "$$overlay" | $(KUBECTL) apply --server-side -f -

.PHONY: undeploy
undeploy: ## Remove the operator.
	$(KUBECTL) delete --ignore-not-found -k config/default
