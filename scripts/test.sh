#!/bin/sh
# The test command's body (after scripts/setup.sh): type check + lint, then unit
# and integration tests. Integration tests boot real QEMU guests under TCG; they
# share one store, with the tiny base built once here.
set -eu
cd "$(dirname "$0")/.."
npx tsc -p tsconfig.json --noEmit
npx eslint .
export VMWU_TEST_HOME="${VMWU_TEST_HOME:-$PWD/.vmwu-test/store}"
mkdir -p "$VMWU_TEST_HOME"
if ! VMWU_HOME="$VMWU_TEST_HOME" ./bin/vmwu.js base show tiny >/dev/null 2>&1; then
  VMWU_HOME="$VMWU_TEST_HOME" ./bin/vmwu.js base build tiny
fi
node --test --test-concurrency=2 dist/test/unit/ dist/test/integration/
