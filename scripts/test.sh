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
# Rebuild the shared tiny base when what goes into it changed (a kept test store
# would otherwise test an old agent).
stamp=$(cat guest/init guest/agent guest/clone-helper.c guest/run-as.c guest/protocol.ts src/base/tiny.ts src/base/guest-helpers.ts | sha256sum | cut -c1-16)
if [ "$(cat "$VMWU_TEST_HOME/.tiny-stamp" 2>/dev/null)" != "$stamp" ] || ! VMWU_HOME="$VMWU_TEST_HOME" ./bin/vmwu.js base show tiny >/dev/null 2>&1; then
  VMWU_HOME="$VMWU_TEST_HOME" ./bin/vmwu.js base build tiny
  echo "$stamp" > "$VMWU_TEST_HOME/.tiny-stamp"
fi
# Tests count real runs of jobs whose plans other tests (and earlier runs of the suite
# on this store) also run: the result cache is off, except where a test turns it on.
export VMWU_RESULT_CACHE=off
status=0
node --test --test-concurrency=2 dist/test/unit/ dist/test/integration/ || status=$?
# The templates of the stores the tests removed leave this user's node cache.
node dist/test/support/tidy-cache.js || true
exit $status
