#!/usr/bin/env bash
# Function hashing throughput (issue #5 groundwork): every ELF file of the
# corpus debs, functions found from .eh_frame and symbols, normalised and
# hashed on one thread; MB of code per second per core (goal >= 50).
# DB size per package and scan overhead come with the function DB.
#
# usage: bash bench/functions.sh [CORPUS_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
CORPUS=${1:-../shared/corpus}
OUT=bench/out/functions
rm -rf "$OUT" && mkdir -p "$OUT/root"
cargo build --release -q -p kiln-fingerprint --example funchash
for d in "$CORPUS"/debian-bookworm/*.deb; do dpkg-deb -x "$d" "$OUT/root"; done
mapfile -d '' files < <(find "$OUT/root" -type f -size +1k -print0)
elfs=()
for f in "${files[@]}"; do
    [ "$(head -c4 "$f" | od -An -c | tr -d ' ')" = '177ELF' ] && elfs+=("$f")
done
echo "ELF files: ${#elfs[@]}"
target/release/examples/funchash "${elfs[@]}"
