# backup-operator — see README.md. `make help` lists the targets.
SHELL := /usr/bin/env bash
GO ?= go
BIN := _output/bin
export CGO_ENABLED ?= 0

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build backup-apiserver and backup-mover into _output/bin
	$(GO) build -o $(BIN)/ ./cmd/...

# kubectl runs a program named kubectl-NAME on the PATH as `kubectl NAME`.
# The directory is $(GOBIN) when set (`go env GOBIN`), else /usr/local/bin;
# PLUGIN_DIR=... chooses another.
PLUGIN_DIR ?= $(or $(GOBIN),$(shell $(GO) env GOBIN),/usr/local/bin)

.PHONY: install-plugin
install-plugin: ## Install the kubectl plugin kubectl-backup (`kubectl backup`) into $GOBIN, else /usr/local/bin
	$(GO) build -o $(PLUGIN_DIR)/kubectl-backup ./cmd/kubectl-backup
	@echo "installed $(PLUGIN_DIR)/kubectl-backup: kubectl backup --help"

# -count=1: the integration tests run binaries they build, which Go's test
# cache cannot see, so a cached pass could be stale. The Kubernetes binaries,
# CoreDNS and MinIO are built first, once (cluster-tools): a cold build takes
# many minutes, which must neither count against the tests' timeout nor run
# once per test package. The alerting rules' tests
# (artifacts/monitoring) need promtool: hack/promtool.sh unpacks Debian's once;
# without it those tests fail, saying so, and the others still run.
.PHONY: test
test: cluster-tools ## Unit and integration tests (integration starts etcd + a real kube-apiserver), alerting rules with promtool
	PROMTOOL="$$(hack/promtool.sh)" $(GO) test -count=1 -timeout 30m ./...

.PHONY: test-unit
test-unit: ## Unit tests only (no Kubernetes components)
	$(GO) test -short ./...

.PHONY: generate
generate: ## Regenerate deepcopy, conversion, defaults, OpenAPI, clientset, listers, informers
	hack/update-codegen.sh

.PHONY: verify
verify: ## Fail when generated code is stale, go.mod is not tidy, code is not gofmt'ed, or go vet complains
	hack/verify-codegen.sh
	@$(GO) mod tidy -diff >/dev/null || { $(GO) mod tidy -diff; echo "run go mod tidy"; exit 1; }
	@test -z "$$(gofmt -l cmd pkg hack)" || { gofmt -l cmd pkg hack; echo "run gofmt -w on the files above"; exit 1; }
	$(GO) vet ./...

.PHONY: run
run: ## A local single-node cluster with the operator deployed (DETACH=1 returns once ready)
	$(GO) build -o $(BIN)/local-cluster ./hack/local-cluster
	$(BIN)/local-cluster $(if $(DETACH),--detach)

.PHONY: reload
reload: ## Rebuild the operator's image from the work tree and restart the operator in the cluster of `make run DETACH=1`
	$(GO) build -o $(BIN)/local-cluster ./hack/local-cluster
	$(BIN)/local-cluster --reload

.PHONY: down
down: ## Tear down a cluster left running by `make run DETACH=1`
	$(GO) build -o $(BIN)/local-cluster ./hack/local-cluster
	$(BIN)/local-cluster --down

# The binaries are built before the suite, so a cold build (minutes) does not
# count against the suite's timeout.
.PHONY: test-e2e
test-e2e: cluster-tools ## End-to-end tests on a fresh local cluster (started and stopped by the suite)
	$(GO) test -tags e2e -timeout 40m -v -count=1 ./hack/e2e/

# Not part of .ci/run (about 15 minutes a round); CHAOS_ROUNDS and
# CHAOS_SEED choose the rounds and the random points.
.PHONY: test-chaos
test-chaos: cluster-tools ## Fault injection on a fresh local cluster: mover, operator, kube-apiserver and kubelet killed, full repositories; 3 rounds
	$(GO) test -tags 'e2e chaos' -timeout 120m -v -count=1 -run TestChaos ./hack/e2e/

.PHONY: kube-binaries
kube-binaries: ## Build kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy (cached outside the tree)
	hack/build-kube.sh

.PHONY: cluster-tools
cluster-tools: kube-binaries ## Build all the local cluster runs: the Kubernetes binaries, CoreDNS and MinIO (cached outside the tree)
	hack/build-tool.sh coredns
	hack/build-tool.sh minio

.PHONY: bench-api
bench-api: ## Benchmark our API group against the same objects served as a CRD
	$(GO) run ./hack/bench/api

.PHONY: image
image: ## Build the container image with Docker (for kind users)
	docker build -t backup-operator:dev .

.PHONY: deploy
deploy: ## Apply artifacts/deploy to the cluster KUBECONFIG points at (kind)
	kubectl apply -k artifacts/deploy
	kubectl -n backup-system rollout status statefulset/backup-apiserver --timeout=180s
	kubectl wait --for=condition=Available apiservice/v1alpha1.backup.example.com --timeout=120s

.PHONY: clean
clean: ## Remove build output
	rm -rf _output

.PHONY: bench-controller
bench-controller: cluster-tools ## 1,000 BackupPolicies vs. 1,000 CronJobs firing in the same minute on a fresh local cluster (N=…, STORED=…)
	$(GO) run ./hack/bench/controller -n $(or $(N),1000) -stored $(or $(STORED),10000)

# Memory only: etcd, kube-apiserver and backup-apiserver on free ports, no
# kubelet; the Backups fail at once, as bench-controller's stored ones do.
# ARGS=... passes backup-apiserver flags, GOMEMLIMIT_SERVER=... its GOMEMLIMIT.
.PHONY: bench-apiserver-memory
bench-apiserver-memory: kube-binaries ## backup-apiserver's RSS, Go heap, CPU while filling and a heap profile with STORED Backups (default 3000,10000: each a checkpoint)
	$(GO) run ./hack/bench/memory $(if $(STORED),-stored $(STORED)) $(if $(ARGS),-args "$(ARGS)") $(if $(GOMEMLIMIT_SERVER),-gomemlimit $(GOMEMLIMIT_SERVER))

.PHONY: bench-mover
bench-mover: ## Benchmark backup-mover against restic and tar|zstd on a ~2 GiB dataset
	$(GO) run ./hack/bench/mover

.PHONY: bench-mover-scale
bench-mover-scale: ## backup-mover vs. restic on 1,000,000 small files and one 20 GiB file, with peak memory against files, directory width and repository size
	$(GO) run ./hack/bench/mover -million -huge-gib 20
