#!/bin/sh
# The benchmarks (after scripts/setup.sh). They print figures and ratios; record
# them in BENCHMARKS.md with the machine and the date.
set -eu
cd "$(dirname "$0")/.."
export VMWU_HOME="${VMWU_HOME:-$PWD/.vmwu-bench}"
./bin/vmwu.js base show tiny >/dev/null 2>&1 || ./bin/vmwu.js base build tiny
echo "== orchestration overhead (vmwu run --cold vs bare QEMU)"
node dist/bench/overhead.js "${BENCH_RUNS:-7}"
echo "== what --network costs a run (passt + guest set-up)"
node dist/bench/network.js "${BENCH_RUNS:-7}"
echo "== instance prepare time vs base size"
node dist/bench/prepare.js 20
echo "== dataset prepare time: --data 2 GB vs 10 MB vs --input 2 GB"
node dist/bench/datasets.js 10
echo "== application overhead: HMMER and GROMACS in a unit vs native (builds both examples; needs the Debian mirror)"
node dist/bench/science.js "${BENCH_SCIENCE_RUNS:-3}" 500
echo "== sweep throughput vs GNU parallel (cold and fast start), planning 10,000 jobs"
node dist/bench/sweep.js 16 2
echo "== fast start vs cold boot, checkpoint save/restore of a 512 MB guest, memory of 8 clones vs 8 boots"
node dist/bench/snapshots.js "${BENCH_RUNS:-5}"
echo "== plan limits: the job cap on a 10^11-job plan, 100,000 jobs stored in batches"
node dist/bench/plans.js
echo "== builds (cold base, one package, cache hit, template reuse) — needs the Debian mirror"
node dist/bench/build.js
echo "== dashboard API latency (10,000-job experiment)"
node dist/bench/api.js 200
echo "== Slurm on a three-node cluster vs local, and the submitter's CPU per job of a 1,000-job sweep (as root; ~30 min)"
node dist/bench/slurm.js 12 "${BENCH_SLURM_JOBS:-1000}"
echo "== ingest of 10,000 batch result files"
node dist/bench/ingest.js 10000
echo "== SSH pool: bytes sent vs naive per-job transfer (as root: starts two netns hosts)"
node dist/bench/ssh.js
echo "== container images: pull vs skopeo+umoci, shared layers, compressed bundles and job time (needs the Debian mirror; ~20 min)"
node dist/bench/images.js "${BENCH_RUNS:-3}"
echo "== a CWL step through vmwu-docker vs cwltool --no-container; a result-cache hit"
node dist/bench/docker.js "${BENCH_RUNS:-7}"
echo "== the result cache: a 100-job sweep, re-run unchanged and with one value changed"
node dist/bench/result-cache.js 100
echo "== multi-VM MPI jobs: ping-pong latency and bandwidth between two VMs vs native; start of a 4-VM job vs 1 VM (builds the Debian base and a unit; needs the Debian mirror and openmpi on the host)"
node dist/bench/multi-vm.js "${BENCH_RUNS:-5}"
echo "== warm pools: vmwu run -- true with a pool, fast start and bare QEMU; where a short job's time goes"
node dist/bench/warm.js "${BENCH_RUNS:-7}"
echo "== checkpoints at memory speed: a 512 MB guest with 200 MB of RAM filled, by the migration stream and with its own RAM file"
node dist/bench/checkpoints.js "${BENCH_RUNS:-3}"
echo "== experiments of 100,000 jobs: status, listing, dashboard pages, events, store per job"
node dist/bench/experiments-100k.js
