#!/usr/bin/env bash
# Gateway benchmark (benchmarks/README.md): set-up and build, then direct vs Envoy alone vs Envoy + extproc
# (the core gateway, then feature rows: quota checks in memory and in Redis, PII scanning with every
# built-in detector) on loopback. Flags pass through, e.g.
# `npm run bench -- --quick`. Set-up output goes to stderr so that `bash scripts/bench.sh --json > result.json`
# yields clean JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >&2
exec node dist/benchmarks/gateway.js "$@"
