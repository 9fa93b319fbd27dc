#!/bin/sh
# native.sh HMM DB OUTDIR: the same search run natively on this host (Debian's
# hmmer), for comparison with the unit's hits.tsv / domhits.tsv.
set -eu
name=$1 db=$2 out=$3
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
cd "$out"
sh "$here/app/search.sh" "$name" "$db" >/dev/null
