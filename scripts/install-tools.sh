#!/usr/bin/env bash
# Idempotent install of the deployment tools an infra team runs, into .tools/bin/ (gitignored): kustomize and
# helm, built from their pinned Go modules with the Go toolchain on the machine (`go install module@version`).
# The module and build caches are Go's own (GOMODCACHE, GOCACHE), so a second install of the same versions
# is a no-op and a version bump rebuilds only what changed. Called by the deployment tests' before-hook and by
# scripts/setup.sh. Prints the path of the bin directory.
set -euo pipefail
cd "$(dirname "$0")/.."

KUSTOMIZE_MODULE=sigs.k8s.io/kustomize/kustomize/v5
# The newest releases whose go.mod the machine's Go (1.26) satisfies; GOTOOLCHAIN stays local (no download).
KUSTOMIZE_VERSION=v5.8.2
HELM_MODULE=helm.sh/helm/v4
HELM_VERSION=v4.3.2

bin="$PWD/.tools/bin"
mkdir -p "$bin"

# The module version Go embedded in a binary it built, or nothing when the binary is missing.
built_version() {
  [ -x "$bin/$1" ] || return 0
  go version -m "$bin/$1" 2>/dev/null | awk '$1 == "mod" { print $3; exit }'
}

# install NAME PACKAGE VERSION [LDFLAGS]
install() {
  local name="$1" package="$2" version="$3" ldflags="${4:-}"
  if [ "$(built_version "$name")" = "$version" ]; then
    return 0
  fi
  if ! command -v go >/dev/null 2>&1; then
    echo "install-tools: go is needed to build $name $version" >&2
    exit 1
  fi
  echo "install-tools: building $name $version" >&2
  local started=$SECONDS
  GOBIN="$bin" CGO_ENABLED=0 GOFLAGS=-buildvcs=false go install -trimpath -ldflags "$ldflags" "$package@$version"
  echo "install-tools: built $name $version in $((SECONDS - started)) s" >&2
}

install kustomize "$KUSTOMIZE_MODULE" "$KUSTOMIZE_VERSION"
# Helm prints the version its ldflags set; without them `helm version` says a development build.
install helm "$HELM_MODULE/cmd/helm" "$HELM_VERSION" "-X helm.sh/helm/v4/internal/version.version=$HELM_VERSION"

echo "$bin"
