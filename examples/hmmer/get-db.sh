#!/bin/sh
# Fetches the protein database: 20,000 UniProt sequences (9,055,569 residues)
# shipped in Debian bookworm's mmseqs2-examples, checked by its sha256, and
# registers it as the dataset protdb:1 (vmwu data add). Nothing is installed.
#   sh examples/hmmer/get-db.sh [DIR]        (DIR: where DB.fasta is kept; default ./protdb)
set -eu
dir=${1:-protdb}
mkdir -p "$dir"
cd "$dir"
if ! echo "55d48bb7b86a6d275694e2f482307f772cc7ee0c9a6dacdbf4014a3443ac9809  DB.fasta" | sha256sum -c --status - 2>/dev/null; then
  apt-get download mmseqs2-examples=14-7e284+ds-1 >/dev/null
  dpkg-deb --fsys-tarfile mmseqs2-examples_14-7e284+ds-1_all.deb | tar -xOf - ./usr/share/doc/mmseqs2/example-data/DB.fasta.gz | gzip -dc > DB.fasta
  rm -f mmseqs2-examples_*.deb
  echo "55d48bb7b86a6d275694e2f482307f772cc7ee0c9a6dacdbf4014a3443ac9809  DB.fasta" | sha256sum -c -
fi
vmwu="${VMWU:-$(dirname "$0")/../../bin/vmwu.js}"
cd - >/dev/null
"$vmwu" data add "$dir/DB.fasta" --name protdb:1
