#!/usr/bin/env bash
# hack/krew-install-test.sh: install the plugin the way users do, with krew,
# from a snapshot build's archive, into a throwaway KREW_ROOT, then run it
# through kubectl's plugin discovery (`kubectl intercept version`).
#
# Environment: KREW (the krew binary), KUBECTL, DIST (GoReleaser's dist/,
# after `make snapshot`), KREW_MANIFEST (.krew.yaml rendered for the
# snapshot's tag; written by `make release-test`).
set -euo pipefail

: "${KREW:?}" "${KUBECTL:?}" "${KREW_MANIFEST:?}"
DIST=${DIST:-dist}
os=$(go env GOOS) arch=$(go env GOARCH)
version=$(sed -n 's/.*"version":"\([^"]*\)".*/\1/p' "$DIST/metadata.json")
archive=$DIST/kubectl-intercept_v${version}_${os}_${arch}.tar.gz
[ -f "$archive" ] || { echo "no $archive: run make snapshot first" >&2; exit 1; }

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
export KREW_ROOT=$root/krew HOME=$root/home
mkdir -p "$HOME"

# krew's list and uninstall read the local copy of the index (a git clone of
# krew-index); here it is a local repository holding only our manifest.
index=$KREW_ROOT/index/default
mkdir -p "$index/plugins"
cp "$KREW_MANIFEST" "$index/plugins/intercept.yaml"
git -C "$index" init -q
git -C "$index" -c user.name=krew-install-test -c user.email=krew-install-test@localhost add plugins
git -C "$index" -c user.name=krew-install-test -c user.email=krew-install-test@localhost commit -qm "index with intercept"

echo "[krew] install --manifest=$KREW_MANIFEST --archive=$archive (KREW_ROOT=$KREW_ROOT)"
"$KREW" install --manifest="$KREW_MANIFEST" --archive="$archive"
"$KREW" list | grep -qx '.*intercept' || { echo "krew list does not show intercept" >&2; exit 1; }

# kubectl finds kubectl-intercept on PATH, as it does after a real install.
out=$(PATH="$KREW_ROOT/bin:$(dirname "$KUBECTL"):/usr/bin:/bin" kubectl intercept version)
echo "$out"
grep -q "^kubectl-intercept v${version} " <<<"$out" || { echo "kubectl intercept version did not report v$version" >&2; exit 1; }
grep -q "^proxy image: ghcr.io/kubectl-intercept/intercept-proxy:v${version}$" <<<"$out" || { echo "kubectl intercept version did not name the proxy image of v$version" >&2; exit 1; }

"$KREW" uninstall intercept
[ ! -e "$KREW_ROOT/bin/kubectl-intercept" ] || { echo "krew uninstall left kubectl-intercept behind" >&2; exit 1; }
echo "[krew] installed, discovered by kubectl, uninstalled: ok"
