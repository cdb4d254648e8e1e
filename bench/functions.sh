#!/usr/bin/env bash
# Function hashing throughput (issue #5 groundwork): every ELF file of the
# corpus debs, functions found from .eh_frame and symbols, normalised and
# hashed on one thread; MB of code per second per core (goal >= 50).
# Then the size of the function signatures in the DB, per indexed package.
# Scan overhead: none on the corpus image (no ELF file is unexplained);
# the stripped-ELF corpus comes with distro-package resolution.
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

# DB size: function signatures of the same debs, per indexed package.
DB=$OUT/kiln.db
rm -f "$DB" "$DB"-*
cargo build --release -q
target/release/kiln db build -q --db "$DB" --deb "$CORPUS/debian-bookworm" 2>/dev/null
sqlite3 "$DB" "
SELECT 'packages indexed: ' || (SELECT count(*) FROM package);
SELECT 'function postings: ' || (SELECT count(*) FROM func_seen) || ', distinct hashes: ' || (SELECT count(DISTINCT hash) FROM func_seen) || ', common (set aside): ' || (SELECT count(*) FROM func_common);
SELECT 'function tables: ' || printf('%.2f', sum(pgsize) / 1048576.0) || ' MiB, ' || printf('%.1f', sum(pgsize) / 1024.0 / (SELECT count(*) FROM package)) || ' KiB per package; whole DB ' || printf('%.2f', (SELECT page_count * page_size FROM pragma_page_count, pragma_page_size) / 1048576.0) || ' MiB'
FROM dbstat WHERE name LIKE 'func%' OR name LIKE 'sqlite_autoindex_func%';
"
