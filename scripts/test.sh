#!/usr/bin/env bash
# Every test: type check (the build), lint, format check, unit tests beside the code, then the end-to-end
# tests under test/ that drive a real Envoy + extproc with the openai SDK (one file at a time).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

echo "== lint"
npx --no-install eslint .
echo "== format"
npx --no-install prettier --check . --log-level warn

echo "== unit tests"
mapfile -t unit < <(find dist/extproc -name '*.test.js' | sort)
node --test --test-reporter=spec "${unit[@]}"

echo "== end-to-end tests (real Envoy)"
mapfile -t e2e < <(find dist/test -name '*.test.js' | sort)
node --test --test-concurrency=1 --test-reporter=spec "${e2e[@]}"
