#!/usr/bin/env bash
# The rainbow table against syft on the stripped corpus image, in one run:
# packages found, exact versions, wall time and peak RSS; and the time of
# `kiln db build` over the corpus debs against bare decompression of the
# same data.tar members (dpkg-deb --fsys-tarfile > /dev/null).
#
#   bench/scan.sh [CORPUS_DIR] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

corpus=${1:-../shared/corpus}
runs=${2:-3}
image=$corpus/images/bookworm-curl.oci.tar
truth=$corpus/images/bookworm-curl.packages.tsv
debs=$corpus/debian-bookworm
[ -f "$image" ] || { echo "bench: no corpus at $corpus" >&2; exit 2; }
cargo build --release -q
kiln=./target/release/kiln
syft=$(find_syft)
export SYFT_CHECK_FOR_APP_UPDATE=false
out=bench/out
mkdir -p "$out"
db=$out/corpus.db

# --- DB build vs bare decompression -------------------------------------
build_db() { rm -f "$db" "$db-wal" "$db-shm"; "$kiln" db build -q --db "$db" --deb "$debs"; }
export -f build_db
export kiln db debs
read -r b_wall b_rss < <(best_of "$runs" "$out/db-build" bash -c build_db)
decompress_seq() { for d in "$debs"/*.deb; do dpkg-deb --fsys-tarfile "$d" >/dev/null; done; }
decompress_par() { ls "$debs"/*.deb | xargs -P "$(nproc)" -n 8 sh -c 'for d; do dpkg-deb --fsys-tarfile "$d" >/dev/null; done' _; }
export -f decompress_seq decompress_par
export debs
read -r d_wall _ < <(best_of "$runs" "$out/decompress-seq" bash -c decompress_seq)
read -r p_wall _ < <(best_of "$runs" "$out/decompress-par" bash -c decompress_par)
build_db
"$kiln" db stats --db "$db" >"$out/db-stats.txt"

# --- stripped image -------------------------------------------------------
stripped=$out/bookworm-curl.stripped.oci.tar
padded=$out/bookworm-curl.padded.oci.tar
"$kiln" strip -q "oci-archive:$image" "oci-archive:$stripped" --transforms delete-db,delete-docs
"$kiln" strip -q "oci-archive:$image" "oci-archive:$padded"

score() { # score FILE FORMAT -> "found exact reported"
    python3 - "$1" "$2" "$truth" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
truth = {}
for line in open(sys.argv[3]):
    f = line.rstrip("\n").split("\t")
    truth[f[0]] = f[1]
if sys.argv[2] == "kiln":
    pkgs = [(p["name"], p["version"]) for p in doc["packages"]]
else:
    pkgs = [(a["name"], a["version"]) for a in doc["artifacts"]]
found = {n for n, _ in pkgs if n in truth}
exact = {n for n, v in pkgs if truth.get(n) == v}
print(len(found), len(exact), len(pkgs))
PY
}

printf '\n%-34s %8s %14s %8s %8s %9s\n' "run (best of $runs)" wall_s peak_rss_MiB found exact reported
for img in stripped padded; do
    f=$out/bookworm-curl.$img.oci.tar
    read -r k_wall k_rss < <(best_of "$runs" "$out/kiln-scan-$img" "$kiln" scan -q --db "$db" "oci-archive:$f" -o json)
    read -r kf ke kr < <(score "$out/kiln-scan-$img.out" kiln)
    read -r s_wall s_rss < <(best_of "$runs" "$out/syft-scan-$img" "$syft" scan -q "oci-archive:$f" -o syft-json)
    read -r sf se sr < <(score "$out/syft-scan-$img.out" syft)
    printf '%-34s %8s %14s %8s %8s %9s\n' "kiln scan ($img)" "$k_wall" "$k_rss" "$kf/118" "$ke/118" "$kr"
    printf '%-34s %8s %14s %8s %8s %9s\n' "syft scan ($img)" "$s_wall" "$s_rss" "$sf/118" "$se/118" "$sr"
    awk -v k="$k_wall" -v s="$s_wall" -v n="$img" 'BEGIN { if (k > 0) printf "  speed-up on %s: %.1fx\n", n, s / k }'
done
printf '\n%-34s %8s %14s\n' "db build / decompression" wall_s peak_rss_MiB
printf '%-34s %8s %14s\n' "kiln db build (154 debs)" "$b_wall" "$b_rss"
printf '%-34s %8s\n' "dpkg-deb --fsys-tarfile, 1 process" "$d_wall"
printf '%-34s %8s\n' "dpkg-deb --fsys-tarfile, $(nproc) procs" "$p_wall"
awk -v b="$b_wall" -v d="$d_wall" -v p="$p_wall" 'BEGIN { printf "  db build / bare decompression: %.2fx (1 process), %.2fx (%s processes)\n", b / d, b / p, "parallel" }'
grep -E '^(versions|unique contents|size)' "$out/db-stats.txt" | sed 's/^/  /'
