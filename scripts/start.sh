#!/usr/bin/env bash
# Starts the whole gateway (Envoy + extproc + three demo model servers) on the default ports until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node dist/test/harness/demo.js
