#!/bin/sh
# Longer coverage-guided fuzzing runs than the test's ten seconds a target: each target
# (plan, spec, collect, manifest, bundle) for SECONDS (default 300), one after the other,
# printing executions per target. Inputs that reach new code are kept in .vmwu-fuzz/<target>/
# and replayed by the next run; a finding's input is saved under test-output/fuzz/<target>/
# with the command that replays it, and the script exits 1.
# Usage: scripts/fuzz.sh [SECONDS] [--target NAME]... [--seed N] [--timeout MS]
set -eu
cd "$(dirname "$0")/.."
seconds="${1:-300}"
[ $# -gt 0 ] && shift
npx tsc -p tsconfig.json
exec node dist/test/fuzz/cli.js --seconds "$seconds" --corpus-out .vmwu-fuzz "$@"
