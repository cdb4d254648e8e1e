#!/usr/bin/env bash
# Scale, in one run against its peers:
#   ingest  Debian 12's whole `libs` section (plus the corpus debs) into
#           SQLite and into PostgreSQL, against bare `dpkg-deb
#           --fsys-tarfile`; DB size per package; identification of the
#           stripped corpus image with that DB and scan time against the
#           corpus-only DB; a projection to the whole `main` archive.
#   scans   only the identification part of ingest, with its DBs.
#   floor   `kiln scan` and `kiln sbom` of a single-layer image of at least
#           300 MB uncompressed against `igzip -dc` of its layer and syft.
#   many    images per minute for `kiln scan` over 20 images in one run.
#   builders  two `kiln db build` processes at once into one PostgreSQL DB,
#           overlapping two-thirds of the libs debs each: wall time, and
#           `db stats` and scans checked against the one-builder DB of
#           `ingest` (run that first).
#
#   bench/scale.sh [ingest|scans|floor|many|builders|all] [RUNS]
#
# The libs debs (about 4 GB) are downloaded once through the machine's apt
# sources into $SCALE/debs (default bench/out/scale).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

what=${1:-all}
runs=${2:-3}
corpus=${CORPUS:-../shared/corpus}
scale=${SCALE:-bench/out/scale}
debs=$scale/debs
out=bench/out/scale-run
mkdir -p "$scale" "$out"
cargo build --release -q
kiln=./target/release/kiln
export SYFT_CHECK_FOR_APP_UPDATE=false

fetch_debs() {
    [ -f "$scale/debs.done" ] && return
    mkdir -p "$debs"
    bash bench/libs_specs.sh >"$scale/specs.txt"
    (cd "$debs" && xargs -a ../specs.txt -n 64 -P 4 apt-get download -qq)
    touch "$scale/debs.done"
}

# stat_of FILE KEY: a number from `kiln db stats -o json` output.
stat_of() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

# score FILE: "exact reported outside" of a kiln scan against the corpus truth.
score() {
    python3 - "$1" "$corpus/images/bookworm-curl.packages.tsv" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
truth = dict(l.rstrip("\n").split("\t")[:2] for l in open(sys.argv[2]))
pkgs = [(p["name"], p["version"]) for p in doc["packages"] if p.get("type") == "deb"]
exact = sum(1 for n, v in pkgs if truth.get(n) == v)
outside = sum(1 for n, _ in pkgs if n not in truth)
print(exact, len(pkgs), outside)
PY
}

ingest() {
    fetch_debs
    local n gb
    n=$(find "$debs" -name '*.deb' | wc -l)
    gb=$(du -sb "$debs" | awk '{ printf "%.2f", $1 / 1e9 }')
    echo "## ingest: $n libs debs ($gb GB) + the corpus debs, $(nproc) cores"
    bare() { find "$1" -name '*.deb' -print0 | xargs -0 -P "$(nproc)" -n 16 sh -c 'for d; do dpkg-deb --fsys-tarfile "$d" >/dev/null; done' _; }
    export -f bare
    read -r bare_wall _ < <(measure "$out/bare" bash -c 'bare "$0"' "$debs")
    rm -f "$scale/libs.db" "$scale/libs.db-wal" "$scale/libs.db-shm"
    read -r s_wall s_rss < <(measure "$out/build-sqlite" "$kiln" db build -q --db "$scale/libs.db" --deb "$debs" --deb "$corpus/debian-bookworm")
    "$kiln" db stats --db "$scale/libs.db" -o json >"$out/stats-sqlite.json"
    pg_start "$scale/pg"
    trap 'pg_stop "$scale/pg"' EXIT
    local url
    url=$(pg_createdb libs)
    read -r p_wall p_rss < <(measure "$out/build-pg" "$kiln" db build -q --db "$url" --deb "$debs" --deb "$corpus/debian-bookworm")
    "$kiln" db stats --db "$url" -o json >"$out/stats-pg.json"
    local versions s_size p_size
    versions=$(stat_of "$out/stats-sqlite.json" versions)
    s_size=$(stat_of "$out/stats-sqlite.json" size_bytes)
    p_size=$(stat_of "$out/stats-pg.json" size_bytes)
    printf '\n%-40s %9s %9s %12s %14s\n' "build (one run)" wall_s rss_MiB "x bare" "KiB/package"
    printf '%-40s %9s %9s\n' "dpkg-deb --fsys-tarfile, $(nproc) procs" "$bare_wall" -
    for e in sqlite pg; do
        local w r sz
        if [ $e = sqlite ]; then w=$s_wall r=$s_rss sz=$s_size; else w=$p_wall r=$p_rss sz=$p_size; fi
        awk -v e="$e" -v w="$w" -v r="$r" -v b="$bare_wall" -v s="$sz" -v v="$versions" \
            'BEGIN { printf "%-40s %9s %9s %12.2f %14.1f\n", "kiln db build (" e ")", w, r, w / b, s / v / 1024 }'
    done
    awk -v v="$versions" -v sw="$s_wall" -v pw="$p_wall" -v ss="$s_size" -v ps="$p_size" -v gb="$gb" 'BEGIN {
        printf "\nprojection to main (63,440 packages, ~95 GB) from %d packages (%s GB):\n", v, gb
        printf "  by packages: SQLite %.1f h, %.1f GiB; PostgreSQL %.1f h, %.1f GiB\n", sw / v * 63440 / 3600, ss / v * 63440 / 2^30, pw / v * 63440 / 3600, ps / v * 63440 / 2^30
        printf "  by bytes:    SQLite %.1f h; PostgreSQL %.1f h\n", sw / gb * 95 / 3600, pw / gb * 95 / 3600 }'

    pg_stop "$scale/pg"
    trap - EXIT
    scans
}

# Identification of the stripped corpus image with the libs DBs that
# `ingest` built (SQLite, and PostgreSQL in $SCALE/pg), against the
# corpus-only DB.
scans() {
    [ -f "$scale/libs.db" ] && [ -d "$scale/pg/data" ] || { echo "bench: run '$0 ingest' first (the libs DBs)" >&2; exit 2; }
    pg_resume "$scale/pg"
    trap 'pg_stop "$scale/pg"' EXIT
    local url=postgres://kiln@127.0.0.1:$PG_PORT/libs
    local stripped=$out/bookworm-curl.stripped.oci.tar small=$out/corpus.db
    "$kiln" strip -q "oci-archive:$corpus/images/bookworm-curl.oci.tar" "oci-archive:$stripped" --transforms delete-db,delete-docs
    rm -f "$small" "$small-wal" "$small-shm"
    "$kiln" db build -q --db "$small" --deb "$corpus/debian-bookworm"
    # The corpus-only DB in PostgreSQL too, so each engine is compared
    # with itself.
    "$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U kiln -d postgres -c "DROP DATABASE IF EXISTS corpus" >/dev/null
    local small_pg
    small_pg=$(pg_createdb corpus)
    "$kiln" db export -q --db "$small" | "$kiln" db import -q --db "$small_pg" -
    # Rounds interleave the DBs, so a burst of noise from a neighbour hits
    # them all alike; best and median of the rounds per DB.
    local labels=("corpus-only DB (SQLite)|$small" "libs+corpus DB (SQLite)|$scale/libs.db"
        "corpus-only DB (PostgreSQL)|$small_pg" "libs+corpus DB (PostgreSQL)|$url")
    local i round db w r
    for round in $(seq "$runs"); do
        for i in "${!labels[@]}"; do
            db=${labels[$i]#*|}
            read -r w r < <(measure "$out/scan$i" "$kiln" scan -q --db "$db" "oci-archive:$stripped" -o json)
            echo "$w $r" >>"$out/scan$i.runs"
        done
    done
    printf '\n%-40s %7s %8s %8s %8s %9s %8s\n' "scan of the stripped corpus image ($runs rounds)" best_s median_s rss_MiB exact reported outside
    for i in "${!labels[@]}"; do
        read -r e t o < <(score "$out/scan$i.out")
        sort -n "$out/scan$i.runs" | awk -v l="${labels[$i]%|*}" -v e="$e" -v t="$t" -v o="$o" \
            '{ w[NR] = $1; r = $2 > r ? $2 : r } END { printf "%-40s %7.3f %8.3f %8.1f %8s %9s %8s\n", l, w[1], w[int((NR + 1) / 2)], r, e "/118", t, o }' |
            tee "$out/scan$i.row"
        rm -f "$out/scan$i.runs"
    done
    ratio() { awk -v c="$1" 'NR == FNR { a = $c; next } { printf "%.2f", a / $c }' "$out/scan$2.row" "$out/scan$3.row"; }
    for col in best:2 median:3; do
        local c=${col#*:}
        c=$((c + 2)) # the label is three words
        echo "  large/small DB, ${col%:*}: SQLite $(ratio $c 1 0)x, PostgreSQL $(ratio $c 3 2)x, PostgreSQL large/SQLite small $(ratio $c 3 0)x"
    done
    pg_stop "$scale/pg"
    trap - EXIT
}


# A single-layer image of libs packages, at least 300 MB uncompressed.
big_image() {
    local img=$scale/big.oci
    [ -f "$scale/big.done" ] && return
    rm -rf "$img" "$scale/big-bundle"
    umoci init --layout "$img"
    umoci new --image "$img:latest"
    umoci unpack --rootless --image "$img:latest" "$scale/big-bundle" >/dev/null
    local root=$scale/big-bundle/rootfs
    for d in $(find "$debs" -name '*.deb' | sort | awk 'NR % 3 == 0'); do
        dpkg-deb -x "$d" "$root"
        [ "$(du -sm "$root" | cut -f1)" -ge 420 ] && break
    done
    umoci repack --image "$img:latest" "$scale/big-bundle" >/dev/null
    touch "$scale/big.done"
}

floor() {
    fetch_debs
    big_image
    [ -f "$scale/libs.db" ] || { echo "bench: run '$0 ingest' first (the libs DB)" >&2; exit 2; }
    local img=$scale/big.oci layer size
    layer=$(find "$img/blobs/sha256" -type f -size +10M | head -1)
    size=$(igzip -dc "$layer" | wc -c)
    echo "## floor: one layer, $(du -m "$layer" | cut -f1) MiB gzip, $((size / 1048576)) MiB uncompressed"
    local syft
    syft=$(find_syft)
    printf '\n%-40s %9s %9s %10s\n' "run (best of $runs)" wall_s rss_MiB "x igzip"
    read -r i_wall _ < <(best_of "$runs" "$out/igzip" bash -c 'igzip -dc "$0" >/dev/null' "$layer")
    printf '%-40s %9s %9s %10s\n' "igzip -dc >/dev/null (the floor)" "$i_wall" - 1.00
    local label w r
    for label in "kiln scan (libs+corpus DB)|scan -q --db $scale/libs.db" "kiln sbom|sbom -q"; do
        # shellcheck disable=SC2086
        read -r w r < <(best_of "$runs" "$out/floor" "$kiln" ${label#*|} "oci-dir:$img:latest" -o json)
        awk -v l="${label%|*}" -v w="$w" -v r="$r" -v i="$i_wall" 'BEGIN { printf "%-40s %9s %9s %10.2f\n", l, w, r, w / i }'
        echo "$w" >"$out/floor-${label%%|*}.wall"
    done
    read -r w r < <(best_of 1 "$out/floor-syft" "$syft" scan -q "oci-dir:$img" -o syft-json)
    awk -v w="$w" -v r="$r" -v i="$i_wall" 'BEGIN { printf "%-40s %9s %9s %10.2f\n", "syft scan", w, r, w / i }'
    awk -v s="$w" -v k="$(cat "$out/floor-kiln scan (libs+corpus DB).wall")" 'BEGIN { printf "  kiln scan is %.1fx faster than syft\n", s / k }'
}

many() {
    fetch_debs
    local dir=$scale/many
    if [ ! -f "$dir/done" ]; then
        rm -rf "$dir" && mkdir -p "$dir"
        mapfile -t all < <(find "$debs" -name '*.deb' | sort | awk 'NR % 7 == 1' | head -400)
        for i in $(seq 0 19); do
            umoci init --layout "$dir/img$i"
            umoci new --image "$dir/img$i:latest"
            umoci unpack --rootless --image "$dir/img$i:latest" "$dir/b$i" >/dev/null
            for d in "${all[@]:$((i * 20)):20}"; do dpkg-deb -x "$d" "$dir/b$i/rootfs"; done
            umoci repack --image "$dir/img$i:latest" "$dir/b$i" >/dev/null
            rm -rf "$dir/b$i"
        done
        touch "$dir/done"
    fi
    [ -f "$scale/libs.db" ] || { echo "bench: run '$0 ingest' first (the libs DB)" >&2; exit 2; }
    local sources=()
    for i in $(seq 0 19); do sources+=("oci-dir:$dir/img$i:latest"); done
    echo "## many: 20 single-layer images of 20 libs packages each, $(du -sm "$dir" | cut -f1) MiB"
    printf '\n%-44s %9s %9s %12s\n' "run (best of $runs)" wall_s rss_MiB images/min
    read -r w r < <(best_of "$runs" "$out/many" "$kiln" scan -q --db "$scale/libs.db" "${sources[@]}")
    awk -v w="$w" -v r="$r" 'BEGIN { printf "%-44s %9s %9s %12.1f\n", "kiln scan SOURCE x20 (one run)", w, r, 20 / w * 60 }'
    one_by_one() { for s in "$@"; do "$kiln" scan -q --db "$scale/libs.db" "$s" -o json >/dev/null; done; }
    export -f one_by_one
    export kiln scale
    read -r w r < <(best_of "$runs" "$out/many-seq" bash -c 'one_by_one "$@"' _ "${sources[@]}")
    awk -v w="$w" -v r="$r" 'BEGIN { printf "%-44s %9s %9s %12.1f\n", "kiln scan, 20 separate runs", w, r, 20 / w * 60 }'
    test "$(wc -l <"$out/many.out")" -eq 20
}

builders() {
    fetch_debs
    [ -f "$out/stats-pg.json" ] || { echo "bench: run '$0 ingest' first (the one-builder figures)" >&2; exit 2; }
    local a=$scale/halves/a b=$scale/halves/b n
    rm -rf "$scale/halves" && mkdir -p "$a" "$b"
    find "$(cd "$debs" && pwd)" -name '*.deb' | sort >"$scale/all.txt"
    n=$(wc -l <"$scale/all.txt")
    head -n $((n * 2 / 3)) "$scale/all.txt" | xargs -I{} ln -s {} "$a/"
    tail -n +$((n / 3 + 1)) "$scale/all.txt" | xargs -I{} ln -s {} "$b/"
    pg_start "$scale/pg-builders"
    trap 'pg_stop "$scale/pg-builders"' EXIT
    local url
    url=$(pg_createdb shared)
    echo "## builders: two at once into one PostgreSQL DB, $(find "$a" -name '*.deb' | wc -l) debs each ($((n - n / 3 - n / 3)) in both)"
    two() {
        "$kiln" db build -q --db "$url" --deb "$a" --deb "$corpus/debian-bookworm" &
        "$kiln" db build -q --db "$url" --deb "$b" &
        wait
    }
    export -f two
    export kiln url a b corpus
    read -r w r < <(measure "$out/builders" bash -c two)
    "$kiln" db stats --db "$url" -o json >"$out/stats-builders.json"
    printf '\n%-44s %9s %9s\n' "run (one)" wall_s rss_MiB
    printf '%-44s %9s %9s\n' "one builder (from ingest)" "$(time_summary "$out/build-pg.time" | cut -d' ' -f1)" -
    printf '%-44s %9s %9s\n' "two builders at once" "$w" "$r"
    python3 - "$out/stats-builders.json" "$out/stats-pg.json" <<'PY'
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
diff = [k for k in a if k not in ("path", "size_bytes") and a[k] != b.get(k)]
print("  db stats equal to one build's:", "yes" if not diff else "NO, differ in " + ", ".join(diff))
PY
    local stripped=$out/bookworm-curl.stripped.oci.tar
    "$kiln" scan -q --db "$url" "oci-archive:$stripped" -o json >"$out/builders-scan.json"
    "$kiln" scan -q --db "$scale/libs.db" "oci-archive:$stripped" -o json >"$out/one-scan.json"
    if cmp -s "$out/builders-scan.json" "$out/one-scan.json"; then
        echo "  stripped corpus image: scan byte-identical to the one-builder SQLite DB's"
    else
        echo "  stripped corpus image: scans DIFFER"
    fi
    pg_stop "$scale/pg-builders"
    trap - EXIT
}

case $what in
ingest) ingest ;;
scans) scans ;;
floor) floor ;;
many) many ;;
builders) builders ;;
all) ingest && floor && many && builders ;;
*) echo "usage: $0 [ingest|scans|floor|many|builders|all] [RUNS]" >&2; exit 2 ;;
esac
