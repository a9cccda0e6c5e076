# kubectl-intercept: build, local cluster, images, tests.
#
#   make build          the plugin and the sidecar into bin/
#   make cluster-up     a local single-node cluster (root; see hack/cluster.sh)
#   make images         sidecar + demo images into dist/images/, loaded into the cluster if up
#   make demo           cluster, demo service, an intercept with traffic flowing
#   make test           everything: vet, unit, cross-build, cluster e2e
#   make cluster-down   stop the cluster and undo every host change

SHELL := /usr/bin/env bash
GO ?= go
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

.PHONY: build vet unit cross cluster-up cluster-down images demo e2e test clean bench

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/kubectl-intercept ./cmd/kubectl-intercept
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/intercept-proxy ./cmd/intercept-proxy

vet:
	@test -z "$$(gofmt -l cmd pkg hack/mkimage test)" || { gofmt -l cmd pkg hack/mkimage test; echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 ./pkg/... ./cmd/...

# One target besides the host's, so a platform-specific slip shows early.
cross:
	GOOS=darwin GOARCH=arm64 CGO_ENABLED=0 $(GO) build -o /dev/null ./cmd/kubectl-intercept

cluster-up:
	hack/cluster.sh up

cluster-down:
	hack/cluster.sh down

images:
	hack/images.sh

e2e: build cluster-up images
	KUBECONFIG=$(KUBECONFIG_E2E) KUBECTL_INTERCEPT_PROXY_IMAGE=$(PROXY_IMAGE) E2E_DEMO_IMAGE=$(DEMO_IMAGE) \
	E2E_PLUGIN=$(CURDIR)/bin/kubectl-intercept E2E_KUBECTL=$(CACHE_DIR)/bin/kubectl \
		$(GO) test -count=1 -timeout 30m -parallel 4 -v ./test/e2e/...

demo: build cluster-up images
	KUBECONFIG=$(KUBECONFIG_E2E) PROXY_IMAGE=$(PROXY_IMAGE) DEMO_IMAGE=$(DEMO_IMAGE) \
		PLUGIN=$(CURDIR)/bin/kubectl-intercept KUBECTL=$(CACHE_DIR)/bin/kubectl hack/demo.sh

test: vet unit cross e2e

clean:
	rm -rf bin dist

# Data-plane benchmark, intercept-proxy vs nginx and HAProxy on loopback
# (about 7 minutes; writes bench/results.md). See bench/run.sh.
bench:
	bash bench/run.sh
