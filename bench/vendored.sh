#!/usr/bin/env bash
# Vendored components in real wheels: kiln's per-wheel recall and precision
# beside syft's and cve-bin-tool's checkers, on the corpus wheels (truth from
# runtime version APIs), then on other PyPI wheels (truth made here the same
# way, by bench/wheel_truth.py).
#
# usage: bash bench/vendored.sh [CORPUS_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
CORPUS=${1:-../shared/corpus}
OUT=bench/out/vendored
mkdir -p "$OUT"
cargo build --release -q
KILN=target/release/kiln
SYFT=$(find_syft)
.venv/bin/python3 -c "import cve_bin_tool" 2>/dev/null || .venv/bin/python3 -m pip install -q cve-bin-tool

# The DB: Debian packages of the libraries wheels vendor (learning), the
# corpus packages, and the corpus wheels (their Python packages only: wheels
# never teach templates).
APT="libssl3 zlib1g libpng16-16 libjpeg62-turbo libtiff6 libwebp7 libwebpmux3
libwebpdemux2 libfreetype6 libharfbuzz0b liblcms2-2 libopenjp2-7 liblzma5
libbrotli1 libxcb1 libxau6 libavif15 libdav1d6 libaom3 libyuv0 libxml2
libxslt1.1 libraqm0 libfribidi0 libbz2-1.0 libpq5 libldap-2.5-0 libsasl2-2
libkeyutils1 libpcre3 libcom-err2 libgssapi-krb5-2 libk5crypto3 libkrb5-3
libkrb5support0 libselinux1"
DB=$OUT/kiln.db
rm -f "$DB" "$DB"-*
args=()
for p in $APT; do args+=(--apt "$p"); done
read -r wall rss < <(measure "$OUT/build" "$KILN" db build -q --db "$DB" "${args[@]}" --deb "$CORPUS/debian-bookworm")
echo "kiln db build (--apt ${APT//$'\n'/ } + corpus debs): ${wall} s, ${rss} MiB"
"$KILN" db build -q --db "$DB" --wheel "$CORPUS/wheels"
sqlite3 "$DB" "SELECT 'templates: ' || group_concat(kind || ' ' || n, ', ') FROM (SELECT kind, count(*) n FROM template GROUP BY kind)"
echo
echo "## Corpus wheels (truth: $CORPUS/wheels/truth)"
.venv/bin/python3 bench/vendored_score.py --kiln "$KILN" --db "$DB" \
    --truth "$CORPUS/wheels/truth" --wheels "$CORPUS/wheels" --work "$OUT/work" \
    --syft "$SYFT" --cve-bin-tool --json "$OUT/corpus-scores.json"

echo
echo "## Other PyPI wheels (truth: ctypes version functions, bench/wheel_truth.py; only the"
echo "## libraries that export one are scored, so precision counts only those files)"
OTHER=$OUT/other
mkdir -p "$OTHER/truth"
for spec in pillow==9.5.0 pillow==10.1.0 pillow==11.0.0 psycopg2-binary==2.9.10; do
    python3 -m pip download -q --no-deps --only-binary=:all: \
        --python-version 3.11 --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d "$OTHER" "$spec" >/dev/null
done
for w in "$OTHER"/*.whl; do
    stem=$(basename "$w" .whl)
    .venv/bin/python3 bench/wheel_truth.py "$w" >"$OTHER/truth/$stem.json" 2>/dev/null
done
.venv/bin/python3 bench/vendored_score.py --kiln "$KILN" --db "$DB" \
    --truth "$OTHER/truth" --wheels "$OTHER" --work "$OUT/work-other" --partial \
    --json "$OUT/other-scores.json"

echo
echo "## Generalisation set: ${GEN_WHEELS:-bench/generalise-wheels.txt} (none in the corpus),"
echo "## DB: kiln db build --apt-section libs (all of Debian's libraries), nothing wheel-specific."
echo "## Truth: bench/truth/*.json (bench/wheel_truth.py: each file's own version API through"
echo "## ctypes, the package's introspection, upstream build recipes for version-less parts)."
GEN=$OUT/gen
mkdir -p "$GEN/wheels"
LIBS_DB=${LIBS_DB:-$GEN/libs.db}
if [ ! -f "$LIBS_DB" ] || [ -n "${REBUILD:-}" ]; then
    rm -f "$LIBS_DB" "$LIBS_DB"-*
    read -r b_wall b_rss < <(measure "$GEN/build" "$KILN" db build --db "$LIBS_DB" --apt-section libs)
    echo "kiln db build --apt-section libs: ${b_wall} s, ${b_rss} MiB peak RSS"
    grep -E '^kiln: selected' "$GEN/build.time" || true
fi
"$KILN" db stats --db "$LIBS_DB" | grep -E '^(versions|unique|code|function|templates|size)'
# Bare decompression of the same archives, as the floor for ingest.
if [ -n "${FLOOR:-}" ]; then
    mkdir -p "$GEN/debs"
    sqlite3 "$LIBS_DB" "SELECT name || ':' || arch || '=' || version FROM package" |
        (cd "$GEN/debs" && xargs -r -n 64 -P 4 apt-get download -q >/dev/null 2>&1 || true)
    echo "archives: $(ls "$GEN/debs" | wc -l), $(du -sm "$GEN/debs" | cut -f1) MiB"
    floor() { ls "$GEN/debs"/*.deb | xargs -P "$(nproc)" -n 16 sh -c 'for d; do dpkg-deb --fsys-tarfile "$d" >/dev/null; done' _; }
    export -f floor
    export GEN
    read -r f_wall _ < <(measure "$GEN/floor" bash -c floor)
    echo "dpkg-deb --fsys-tarfile of the same archives ($(nproc) processes): ${f_wall} s"
    read -r l_wall l_rss < <(measure "$GEN/local" "$KILN" db build -q --db "$GEN/local.db" --deb "$GEN/debs")
    rm -f "$GEN/local.db" "$GEN/local.db"-*
    echo "kiln db build --deb of the same archives (no download): ${l_wall} s, ${l_rss} MiB"
fi
grep -v '^#' "${GEN_WHEELS:-bench/generalise-wheels.txt}" | while read -r spec; do
    [ -n "$spec" ] || continue
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d "$GEN/wheels" "$spec" >/dev/null
done
if [ -n "${TRUTH:-}" ]; then
    for w in "$GEN/wheels"/*.whl; do
        stem=$(basename "$w" .whl)
        python3 bench/wheel_truth.py "$w" --venv "$GEN/venvs/${stem%%-*}" >"bench/truth/$stem.json" 2>/dev/null
    done
fi
.venv/bin/python3 bench/vendored_score.py --kiln "$KILN" --db "$LIBS_DB" \
    --truth bench/truth --wheels "$GEN/wheels" --work "$GEN/work" \
    --syft "$SYFT" --cve-bin-tool --json "$OUT/gen-scores.json"
