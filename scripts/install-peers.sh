#!/usr/bin/env bash
# Installs the benchmark's optional peers (benchmarks/README.md, "Peers") under .peers/, which git ignores:
#   - LiteLLM's proxy (litellm, pinned, with its `proxy` extra) in its own virtualenv, .peers/litellm;
#   - Envoy AI Gateway's ext_proc (Go), built from a pinned tag of its source into .peers/ai-gateway/extproc.
# `bash scripts/install-peers.sh [litellm] [ai-gateway]` (both by default). Not part of set-up or CI: `npm run bench` skips a peer that is not installed and says so. Run it again to
# reinstall; each peer is rebuilt only when its pinned version changed.
#
# The AI Gateway source is read from a local git repository (a clone or bare mirror of
# envoyproxy/ai-gateway): AI_GATEWAY_GIT, by default the mirror this machine keeps. Go modules come through
# the Go toolchain's own module download.
set -euo pipefail
cd "$(dirname "$0")/.."

LITELLM_VERSION=1.108.14
AI_GATEWAY_TAG=v1.1.0
AI_GATEWAY_GIT="${AI_GATEWAY_GIT:-/work/.mirror/envoyproxy+ai-gateway/repo}"
PEERS="$PWD/.peers"
PYTHON="${PYTHON:-python3}"

install_litellm() {
  local venv="$PEERS/litellm"
  if [[ -x "$venv/bin/litellm" && "$(cat "$venv/.version" 2>/dev/null)" == "$LITELLM_VERSION" ]]; then
    echo "litellm $LITELLM_VERSION: already installed in $venv"
    return
  fi
  echo "litellm $LITELLM_VERSION: installing into $venv ..."
  rm -rf "$venv"
  "$PYTHON" -m venv "$venv"
  local pip=("$venv/bin/pip" install --quiet --disable-pip-version-check)
  "${pip[@]}" "litellm==$LITELLM_VERSION"
  # The `proxy` extra pins exact releases of litellm's companion packages (litellm-enterprise,
  # litellm-proxy-extras), and the package index reachable here lacks some of those exact releases: install
  # the extra's requirements with each exact pin of a companion turned into "the newest release not newer
  # than the pin".
  "$venv/bin/python" - >"$venv/proxy-requirements.txt" <<'PY'
from importlib.metadata import requires
from packaging.requirements import Requirement

for line in requires("litellm") or []:
    req = Requirement(line)
    if req.marker is None or not req.marker.evaluate({"extra": "proxy"}):
        continue
    if req.marker.evaluate({"extra": ""}):
        continue  # a core requirement, already installed
    spec = str(req.specifier)
    if req.name.startswith("litellm-") and spec.startswith("=="):
        spec = "<=" + spec[2:]
    print(f"{req.name}{'[' + ','.join(sorted(req.extras)) + ']' if req.extras else ''}{spec}")
PY
  "${pip[@]}" -r "$venv/proxy-requirements.txt"
  echo "$LITELLM_VERSION" >"$venv/.version"
}

install_ai_gateway() {
  local dir="$PEERS/ai-gateway"
  if [[ -x "$dir/extproc" && "$(cat "$dir/.version" 2>/dev/null)" == "$AI_GATEWAY_TAG" ]]; then
    echo "ai-gateway $AI_GATEWAY_TAG: already built in $dir"
    return
  fi
  if ! git --git-dir="$AI_GATEWAY_GIT" rev-parse --verify --quiet "$AI_GATEWAY_TAG^{commit}" >/dev/null; then
    echo "ai-gateway: no $AI_GATEWAY_TAG in $AI_GATEWAY_GIT; set AI_GATEWAY_GIT to a clone of envoyproxy/ai-gateway" >&2
    return 1
  fi
  command -v go >/dev/null || {
    echo "ai-gateway: needs the Go toolchain (go) on PATH" >&2
    return 1
  }
  echo "ai-gateway $AI_GATEWAY_TAG: building cmd/extproc into $dir ..."
  rm -rf "$dir"
  mkdir -p "$dir/src"
  git --git-dir="$AI_GATEWAY_GIT" archive "$AI_GATEWAY_TAG" | tar -x -C "$dir/src"
  (cd "$dir/src" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -o "$dir/extproc" ./cmd/extproc)
  echo "$AI_GATEWAY_TAG" >"$dir/.version"
}

mkdir -p "$PEERS"
status=0
peers=("$@")
[[ ${#peers[@]} -gt 0 ]] || peers=(litellm ai-gateway)
for peer in "${peers[@]}"; do
  case "$peer" in
    litellm) install_litellm || status=1 ;;
    ai-gateway) install_ai_gateway || status=1 ;;
    *)
      echo "unknown peer $peer (litellm, ai-gateway)" >&2
      status=1
      ;;
  esac
done
exit "$status"
