#!/usr/bin/env bash
# hack/push-proxy.sh VERSION: GoReleaser's publisher. Pushes the sidecar
# image tarballs of the release as one multi-platform image, after checking
# that its digest is PROXY_IMAGE_DIGEST, the one the plugin was built to
# reference (hack/proxy-digest.sh): a plugin must never name an image that
# is not the one published.
set -euo pipefail

VERSION=$1
tarballs=(dist/images/intercept-proxy_linux_amd64.tar dist/images/intercept-proxy_linux_arm64.tar)
digest=$(bin/mkimage digest "${tarballs[@]}")
if [ "$digest" != "${PROXY_IMAGE_DIGEST:-}" ]; then
	echo "push-proxy: the sidecar image is $digest but the plugin was built for '${PROXY_IMAGE_DIGEST:-}'; run the release as PROXY_IMAGE_DIGEST=\$(hack/proxy-digest.sh $VERSION COMMIT) goreleaser release" >&2
	exit 1
fi
bin/mkimage push "ghcr.io/kubectl-intercept/intercept-proxy:v$VERSION" "${tarballs[@]}"
