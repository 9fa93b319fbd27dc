#!/bin/sh
# The demo (after scripts/setup.sh): build the tiny base if needed, then compute a
# Mandelbrot image inside a real VM and turn the guest's PPM into a PNG.
set -eu
cd "$(dirname "$0")/.."
vmwu=./bin/vmwu.js
$vmwu base show tiny >/dev/null 2>&1 || $vmwu base build tiny
rm -rf demo-out
$vmwu run --base tiny --app examples/mandelbrot \
  --param width=320 --param height=160 --param iters=64 \
  --out demo-out -- /app/mandelbrot.sh
node scripts/ppm-to-png.mjs demo-out/work/mandelbrot.ppm demo-out/mandelbrot.png
echo
echo "The picture computed in the guest: $(pwd)/demo-out/mandelbrot.png"
echo "Everything the job left: demo-out/ (stdout, stderr, exit_code, run.json, work/)"
