# kubectl-intercept: build, local cluster, images, tests.
#
#   make build          the plugin and the sidecar into bin/ (release builds: no test hooks)
#   make build-e2e      the plugin with the e2e suite's hooks, bin/kubectl-intercept-e2e
#   make cluster-up     a local single-node cluster (root; see hack/cluster.sh)
#   make images         sidecar + demo images into dist/images/, loaded into the cluster if up
#   make demo           cluster, demo service, an intercept with traffic flowing
#   make test           everything: vet, unit, cross-build, cluster e2e
#   make snapshot       release archives for every platform into dist/ (GoReleaser, offline)
#   make release-test   snapshot + the krew manifest checks against its archives
#   make krew-install-test  install the snapshot with krew, run it through kubectl
#   make cluster-down   stop the cluster and undo every host change

SHELL := /usr/bin/env bash
GO ?= go
# go.mod's toolchain line: ngrok's agent wants a Go that distrusts the
# revoked eMudhra roots. The go command fetches it from the module proxy.
GOTOOLCHAIN ?= $(shell sed -n 's/^toolchain //p' go.mod)
export GOTOOLCHAIN
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
CACHE_DIR ?= /var/tmp/kubectl-intercept
CLUSTER_DIR ?= $(CACHE_DIR)/cluster
KUBECONFIG_E2E ?= $(CLUSTER_DIR)/kubeconfig
IMAGE_TAG ?= 0.1.0
PROXY_IMAGE ?= localhost/kubectl-intercept/intercept-proxy:$(IMAGE_TAG)
DEMO_IMAGE ?= localhost/kubectl-intercept/demo:$(IMAGE_TAG)
PKG := github.com/kubectl-intercept/kubectl-intercept
LDFLAGS := -s -w -X $(PKG)/pkg/version.Version=$(VERSION) -X $(PKG)/pkg/version.Commit=$(COMMIT)
export CACHE_DIR CLUSTER_DIR VERSION PROXY_IMAGE DEMO_IMAGE

# The modules besides the plugin's (go.mod at the top: the plugin and the
# sidecar, and what they ship): the demo app, the image tool, and the tests
# that need a browser, a cluster, gRPC or a WebSocket library. `go test ./...`
# at the top covers the plugin's module alone; the targets below name these.
DEMO_MODULES := pkg/demo cmd/intercept-demo
OTHER_MODULES := $(DEMO_MODULES) hack/mkimage test
# What none of the plugin's go.mod may require: the demo's, mkimage's and
# the tests' heavy modules.
NOT_SHIPPED := github.com/chromedp/ github.com/google/go-containerregistry google.golang.org/grpc github.com/coder/websocket

# Release tooling, pinned in hack/tools/*/go.mod, built once into the cache.
TOOLS_DIR := $(CACHE_DIR)/tools
GORELEASER_VERSION := $(shell sed -n 's|^\tgithub.com/goreleaser/goreleaser/v2 \(v[^ ]*\).*|\1|p' hack/tools/goreleaser/go.mod)
KREW_VERSION := $(shell sed -n 's|^\tsigs.k8s.io/krew \(v[^ ]*\).*|\1|p' hack/tools/krew/go.mod)
GORELEASER := $(TOOLS_DIR)/goreleaser-$(GORELEASER_VERSION)
KREW := $(TOOLS_DIR)/krew-$(KREW_VERSION)
KREW_VALIDATE := $(TOOLS_DIR)/validate-krew-manifest-$(KREW_VERSION)
# The linter, pinned the same way (hack/tools/golangci-lint/go.mod).
GOLANGCI_LINT_VERSION := $(shell sed -n 's|^\tgithub.com/golangci/golangci-lint/v2 \(v[^ ]*\).*|\1|p' hack/tools/golangci-lint/go.mod)
GOLANGCI_LINT := $(TOOLS_DIR)/golangci-lint-$(GOLANGCI_LINT_VERSION)
KUBECTL := $(CACHE_DIR)/bin/kubectl

.PHONY: build build-e2e no-test-hooks vet unit fuzz cross cluster-up cluster-down images demo e2e test clean bench bench-tunnel bench-local chromium shellcheck \
	tools snapshot krew-manifest release-test krew-install-test

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/kubectl-intercept ./cmd/kubectl-intercept
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/intercept-proxy ./cmd/intercept-proxy

# The plugin the e2e suite runs: the release build plus the hooks only
# tests use (build tag e2ehooks): KUBECTL_INTERCEPT_FAULT_AFTER, which the
# crash tests stop the plugin with, and the hidden --ngrok-connect-url, which
# points its ngrok agent at the ngrok test's stand-in. The sidecar has none.
build-e2e:
	CGO_ENABLED=0 $(GO) build -tags e2ehooks -trimpath -ldflags '$(LDFLAGS)' -o bin/kubectl-intercept-e2e ./cmd/kubectl-intercept

# make build's plugin carries neither hook: no trace of them in the binary,
# and --ngrok-connect-url is an unknown flag.
no-test-hooks: build
	@! grep -q -a -e KUBECTL_INTERCEPT_FAULT_AFTER -e ngrok-connect-url bin/kubectl-intercept || \
		{ echo "bin/kubectl-intercept holds a test hook (KUBECTL_INTERCEPT_FAULT_AFTER or --ngrok-connect-url): they belong behind the e2ehooks build tag" >&2; exit 1; }
	@out=$$(bin/kubectl-intercept --ngrok-connect-url 127.0.0.1:1 --help 2>&1); [[ $$out == *"unknown flag: --ngrok-connect-url"* ]] || \
		{ echo "bin/kubectl-intercept accepts --ngrok-connect-url: it belongs behind the e2ehooks build tag" >&2; exit 1; }
	@echo "no-test-hooks: bin/kubectl-intercept has no test hook"

# gofmt, go vet, golangci-lint (.golangci.yml) and shellcheck over the
# scripts in hack/ and bench/.
vet: $(GOLANGCI_LINT) shellcheck
	@test -z "$$(gofmt -l cmd pkg hack test)" || { gofmt -l cmd pkg hack test; echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags e2ehooks ./pkg/cmd/...
	$(GOLANGCI_LINT) run ./...
	set -e; for m in $(OTHER_MODULES); do (cd $$m && $(GO) vet -tags e2e ./... && $(GOLANGCI_LINT) run ./...); done
	@# Each go.mod tidy, and the plugin's free of what only the others need.
	set -e; for m in . $(OTHER_MODULES); do (cd $$m && $(GO) mod tidy -diff); done
	@! grep -n $(addprefix -e ,$(NOT_SHIPPED)) go.mod || { echo "go.mod requires a module only the demo, mkimage or the tests need: import it from their module" >&2; exit 1; }
	shellcheck -x $$(find hack bench -name '*.sh' | sort)

$(GOLANGCI_LINT):
	@mkdir -p $(TOOLS_DIR)
	cd hack/tools/golangci-lint && $(GO) build -o $@.tmp github.com/golangci/golangci-lint/v2/cmd/golangci-lint && mv $@.tmp $@

# Debian's shellcheck, for make vet.
shellcheck:
	@command -v shellcheck >/dev/null 2>&1 || { \
		test "$$(id -u)" = 0 || { echo "make vet needs shellcheck: apt-get install shellcheck (as root)" >&2; exit 1; }; \
		echo "installing shellcheck (apt-get)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null; }

unit: $(KREW_VALIDATE) chromium
	KREW_VALIDATE=$(KREW_VALIDATE) $(GO) test -race -count=1 ./pkg/... ./cmd/... ./hack/krewmanifest/... ./hack/clusterdns/...
	$(GO) test -race -count=1 -tags e2ehooks ./pkg/cmd/factory ./pkg/cmd/intercept
	set -e; for m in $(DEMO_MODULES) hack/mkimage; do (cd $$m && $(GO) test -race -count=1 ./...); done
	cd test && KUBECTL_INTERCEPT_BROWSER=required $(GO) test -race -count=1 ./inspect/...

# One target besides the host's, so a platform-specific slip shows early.
cross:
	GOOS=darwin GOARCH=arm64 CGO_ENABLED=0 $(GO) build -o /dev/null ./cmd/kubectl-intercept

# KUBE_VERSION: the cluster's Kubernetes release, hack/cluster.sh's default
# when empty (make cluster-up KUBE_VERSION=v1.37.2; docs/development.md).
cluster-up:
	KUBE_VERSION=$(KUBE_VERSION) hack/cluster.sh up

cluster-down:
	hack/cluster.sh down

images:
	hack/images.sh

# test/e2e (build tag e2e) on the local cluster, started and given the
# images; or, when KUBECONFIG names another cluster's kubeconfig, on that
# cluster as it is: no cluster-up, no images, so its nodes must already have
# PROXY_IMAGE and DEMO_IMAGE or pull them (docs/development.md).
# The run's `go test -json` events are kept in E2E_JSON; the end of the
# output lists the slowest tests and the counts (hack/e2ereport, which
# reads a kept file again: go run ./hack/e2ereport -quiet < FILE). The
# tests that own their namespace run E2E_PARALLEL at a time, after the
# serial ones (test/e2e/main_test.go says which stay serial and why). On
# 2 cores, 6 at a time was faster than 4, and every test still passed.
E2E_JSON ?= $(CACHE_DIR)/e2e/last-run.json
E2E_PARALLEL ?= 6
e2e: E2E_OTHER_CLUSTER = $(filter-out $(abspath $(KUBECONFIG_E2E)),$(abspath $(KUBECONFIG)))
e2e: build-e2e $(if $(filter-out $(abspath $(KUBECONFIG_E2E)),$(abspath $(KUBECONFIG))),,cluster-up images chromium)
	$(GO) build -o bin/e2ereport ./hack/e2ereport
	@mkdir -p $(dir $(E2E_JSON))
	KUBECONFIG=$(or $(E2E_OTHER_CLUSTER),$(KUBECONFIG_E2E)) PROXY_IMAGE=$(PROXY_IMAGE) DEMO_IMAGE=$(DEMO_IMAGE) \
	E2E_PLUGIN=$(CURDIR)/bin/kubectl-intercept-e2e \
	E2E_KUBECTL=$(or $(E2E_KUBECTL),$(if $(E2E_OTHER_CLUSTER),kubectl,$(CACHE_DIR)/bin/kubectl)) \
		$(GO) -C test test -json -tags e2e -count=1 -timeout 50m -parallel $(E2E_PARALLEL) ./e2e/... 2>&1 \
		| tee $(E2E_JSON) | bin/e2ereport; status=$${PIPESTATUS[0]}; \
		echo "go test -json events kept in $(E2E_JSON)"; exit $$status

demo: build cluster-up images
	KUBECONFIG=$(KUBECONFIG_E2E) PROXY_IMAGE=$(PROXY_IMAGE) DEMO_IMAGE=$(DEMO_IMAGE) \
		PLUGIN=$(CURDIR)/bin/kubectl-intercept KUBECTL=$(CACHE_DIR)/bin/kubectl hack/demo.sh

# The fuzz targets of the sidecar's parsers and of the HTTP/2 relay, each
# for a bounded time (go test -fuzz takes one target a run); their corpora
# also run as plain tests in make unit.
fuzz:
	$(GO) test ./pkg/sidecar/proxy -run '^$$' -fuzz '^FuzzH2Frames$$' -fuzztime 30s
	$(GO) test ./pkg/sidecar/proxy -run '^$$' -fuzz '^FuzzParseRequestHead$$' -fuzztime 15s
	$(GO) test ./pkg/sidecar/proxy -run '^$$' -fuzz '^FuzzCopyChunked$$' -fuzztime 15s
	$(GO) test ./pkg/sidecar/proxy -run '^$$' -fuzz '^FuzzParseResponseHead$$' -fuzztime 10s
	$(GO) test ./pkg/local/sandbox -run '^$$' -fuzz '^FuzzDNSAnswer$$' -fuzztime 10s

test: vet unit fuzz cross no-test-hooks e2e

# The inspector's page is tested in headless Chromium (Debian's package).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		test "$$(id -u)" = 0 || { echo "the inspector's browser tests need Chromium: apt-get install chromium (as root)" >&2; exit 1; }; \
		echo "installing chromium (apt-get)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

tools: $(GORELEASER) $(KREW) $(KREW_VALIDATE)

$(GORELEASER):
	@mkdir -p $(TOOLS_DIR)
	cd hack/tools/goreleaser && $(GO) build -o $@.tmp github.com/goreleaser/goreleaser/v2 && mv $@.tmp $@

$(KREW):
	@mkdir -p $(TOOLS_DIR)
	cd hack/tools/krew && $(GO) build -o $@.tmp sigs.k8s.io/krew/cmd/krew && mv $@.tmp $@

$(KREW_VALIDATE):
	@mkdir -p $(TOOLS_DIR)
	cd hack/tools/krew && $(GO) build -o $@.tmp sigs.k8s.io/krew/cmd/validate-krew-manifest && mv $@.tmp $@

# Every platform's archive, checksums and the sidecar image tarballs, as a
# release would make them, without publishing anything.
snapshot: $(GORELEASER)
	$(GORELEASER) check
	SNAPSHOT_COMMIT=$(COMMIT) $(GORELEASER) release --snapshot --clean

# Refresh plugins/intercept.yaml (the krew-index manifest) for a release:
# make krew-manifest TAG=v0.1.0 (krew-release-bot does the same from the
# published archives).
krew-manifest: $(GORELEASER)
	@test -n "$(TAG)" || { echo "usage: make krew-manifest TAG=vX.Y.Z" >&2; exit 2; }
	SNAPSHOT_VERSION=$(patsubst v%,%,$(TAG)) $(GORELEASER) release --snapshot --clean
	$(GO) run ./hack/krewmanifest -tag $(TAG) -dist dist -o plugins/intercept.yaml

release-test: snapshot $(KREW_VALIDATE)
	RELEASE_DIST=$(CURDIR)/dist KREW_VALIDATE=$(KREW_VALIDATE) KREW_MANIFEST_OUT=$(CURDIR)/dist/intercept.yaml \
		$(GO) test -count=1 -run 'Manifest' -v ./hack/krewmanifest/
	@# The digest computed before a release is the digest of the images the
	@# release builds: the plugin references its sidecar by it.
	test "$$(hack/proxy-digest.sh $$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' dist/metadata.json) $(COMMIT))" = \
		"$$(bin/mkimage digest dist/images/intercept-proxy_linux_amd64.tar dist/images/intercept-proxy_linux_arm64.tar)"
	@echo "release-test: hack/proxy-digest.sh reproduces the snapshot's sidecar image"

krew-install-test: release-test $(KREW)
	@test -x $(KUBECTL) || hack/cluster.sh build
	KREW=$(KREW) KUBECTL=$(KUBECTL) KREW_MANIFEST=$(CURDIR)/dist/intercept.yaml DIST=$(CURDIR)/dist \
		hack/krew-install-test.sh

clean:
	rm -rf bin dist

# Data-plane benchmark, intercept-proxy vs nginx and HAProxy on loopback
# (about 25 minutes; writes bench/results.md). See bench/run.sh.
bench:
	bash bench/run.sh

# The matching path on the local cluster: the built-in tunnel vs a plain
# kubectl port-forward to the same pod (about 3 minutes; writes
# bench/tunnel-results.md). See bench/tunnel.sh.
# The local side's proxy and --forward into the cluster against kubectl
# port-forward svc/... (about 2 minutes; writes bench/local-results.md).
bench-local: build cluster-up images
	KUBECONFIG=$(KUBECONFIG_E2E) PROXY_IMAGE=$(PROXY_IMAGE) DEMO_IMAGE=$(DEMO_IMAGE) \
		PLUGIN=$(CURDIR)/bin/kubectl-intercept KUBECTL=$(CACHE_DIR)/bin/kubectl bash bench/local.sh

bench-tunnel: build cluster-up images
	KUBECONFIG=$(KUBECONFIG_E2E) PROXY_IMAGE=$(PROXY_IMAGE) DEMO_IMAGE=$(DEMO_IMAGE) \
		PLUGIN=$(CURDIR)/bin/kubectl-intercept KUBECTL=$(CACHE_DIR)/bin/kubectl bash bench/tunnel.sh
