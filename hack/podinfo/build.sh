#!/usr/bin/env bash
# hack/podinfo/build.sh: build the image of podinfo, a web app of others
# (github.com/stefanprodan/podinfo, Apache-2.0) at the version pinned in
# hack/podinfo/go.mod, as a docker-archive tarball made by hack/mkimage,
# and import it into the local cluster when it is up. test/e2e's podinfo
# test runs it as a frontend and a backend.
#
# The tarball is kept under $CACHE_DIR/images/, named by a hash of what
# makes it (go.mod, go.sum, this script, the architecture): an unchanged pin
# is built once and only imported again.
#
# Environment: CACHE_DIR (/var/tmp/kubectl-intercept), GOARCH (the host's),
# PODINFO_IMAGE (default localhost/kubectl-intercept/podinfo:<the pin>).
# Prints the tarball's path.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
MOD=hack/podinfo
CACHE_DIR=${CACHE_DIR:-/var/tmp/kubectl-intercept}
ARCH=${GOARCH:-$(go env GOARCH)}
PIN=$(sed -n 's|^\tgithub.com/stefanprodan/podinfo \(v[^ ]*\).*|\1|p' "$MOD/go.mod")
[[ -n $PIN ]] || {
	echo "[podinfo] $MOD/go.mod pins no github.com/stefanprodan/podinfo version" >&2
	exit 1
}
PODINFO_IMAGE=${PODINFO_IMAGE:-localhost/kubectl-intercept/podinfo:$PIN}

sum=$( (cat "$MOD/go.mod" "$MOD/go.sum" "$MOD/build.sh" && echo "$ARCH $PODINFO_IMAGE") | sha256sum | cut -c1-12)
tar=$CACHE_DIR/images/podinfo-$sum.tar
if [[ ! -s $tar ]]; then
	echo "[podinfo] building $PODINFO_IMAGE" >&2
	mkdir -p "$CACHE_DIR/images"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	CGO_ENABLED=0 GOOS=linux GOARCH=$ARCH go -C "$MOD" build -trimpath -ldflags "-s -w" \
		-o "$tmp/podinfo" github.com/stefanprodan/podinfo/cmd/podinfo
	go -C hack/mkimage build -o "$tmp/mkimage" .
	"$tmp/mkimage" -o "$tmp/podinfo.tar" -t "$PODINFO_IMAGE" -platform "linux/$ARCH" \
		-entrypoint /podinfo "/podinfo=$tmp/podinfo"
	rm -f "$CACHE_DIR"/images/podinfo-*.tar
	mv "$tmp/podinfo.tar" "$tar"
fi
echo "[podinfo] $tar ($PODINFO_IMAGE)" >&2

if [ "$(id -u)" = 0 ] && hack/cluster.sh status >/dev/null 2>&1; then
	hack/cluster.sh import "$tar"
fi
echo "$tar"
