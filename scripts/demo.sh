#!/bin/sh
# The demo (after scripts/setup.sh): GVA's Mandelbrot demonstration as a sweep.
# Builds the Debian base and the mandelbrot unit (cached after the first time),
# computes a 1600 x 800 picture in 8 strips, each by a separate work-unit VM, and
# assembles the strips into one PNG.
set -eu
cd "$(dirname "$0")/.."
vmwu=./bin/vmwu.js
$vmwu base show debian:bookworm >/dev/null 2>&1 || $vmwu base build debian
$vmwu build examples/mandelbrot --quiet
name="mandelbrot-$(date +%Y%m%d-%H%M%S)"
$vmwu sweep examples/mandelbrot/mandelbrot.pln --unit mandelbrot --name "$name"
results=$($vmwu status "$name" --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).resultsDir))')
rm -rf demo-out && mkdir -p demo-out
node scripts/assemble-strips.mjs "$results" demo-out/mandelbrot.png
echo
echo "The picture, computed in 8 strips by 8 work-unit VMs: $(pwd)/demo-out/mandelbrot.png"
echo "Per job: ./bin/vmwu.js results $name"
