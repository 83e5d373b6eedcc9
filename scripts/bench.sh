#!/usr/bin/env bash
# Gateway benchmark (benchmarks/README.md): set-up and build, then every row side by side on loopback: the
# demo model server direct, Envoy alone, Envoy + extproc (core policy, then with quotas and PII), and the
# peers LiteLLM and Envoy AI Gateway when scripts/install-peers.sh has installed them. Flags pass through,
# e.g. `npm run bench -- --quick` (or BENCH_QUICK=1). Set-up output goes to stderr so that
# `bash scripts/bench.sh --json > result.json` yields clean JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >&2
exec node dist/benchmarks/gateway.js "$@"
