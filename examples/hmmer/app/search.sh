#!/bin/sh
# search.sh HMM [DB]: builds the profile HMM from /app/hmms/HMM.sto and searches
# DB (default: the protdb dataset) with it. Writes hits.tbl and domhits.tbl
# (HMMER's tables), hits.tsv and domhits.tsv (their rows without the '#' comment
# lines, which carry paths and dates) and summary.txt.
# One thread, a fixed seed and a fixed search space (-Z, --domZ): the tables are
# the same wherever it runs, which is what examples/hmmer/native.sh checks.
set -eu
NAME=${1:?usage: search.sh HMM [DB]}
DB=${2:-/data/protdb/DB.fasta}
HERE=$(cd "$(dirname "$0")" && pwd)
Z=20000
hmmbuild --amino --cpu 1 --seed 42 -o hmmbuild.log "$NAME.hmm" "$HERE/hmms/$NAME.sto"
hmmsearch --cpu 1 --seed 42 -Z "$Z" --domZ "$Z" --noali -o hmmsearch.out \
  --tblout hits.tbl --domtblout domhits.tbl "$NAME.hmm" "$DB"
grep -v '^#' hits.tbl > hits.tsv || true
grep -v '^#' domhits.tbl > domhits.tsv || true
awk -v q="$NAME" '{ n++; if ($5 <= 0.01) inc++; if (n == 1) { top = $1; e = $5 } }
  END { printf "query %s\nhits %d\nincluded %d\ntop %s %s\n", q, n, inc + 0, top, e }' hits.tsv > summary.txt
cat summary.txt
