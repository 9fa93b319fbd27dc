#!/bin/sh
# Runs the CWL Mandelbrot workflow with cwltool, each step in a vmwu VM: builds what
# it needs (the Debian base, the mandelbrot and ppm-gather units; cached after the
# first time), puts vmwu-docker on PATH as docker, and writes cwl-out/mandelbrot.png.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
vmwu="$top/bin/vmwu.js"
$vmwu base show debian:bookworm >/dev/null 2>&1 || $vmwu base build debian
$vmwu build "$top/examples/mandelbrot" --quiet
$vmwu build "$here/gather" --quiet
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
ln -s "$top/bin/vmwu-docker.js" "$bin/docker"
PATH="$bin:$PATH" cwltool --outdir cwl-out "$here/mandelbrot.cwl" "${1:-$here/mandelbrot-job.yml}"
