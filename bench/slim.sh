#!/usr/bin/env bash
# kiln slim on the corpus image with the issue's probe set: time and size
# ratio for static, dynamic and both modes (each verified under runc), then
# how many packages `kiln scan` still identifies in the slimmed image.
# SlimToolkit, the peer, needs a Docker engine, which this machine does not
# have; its figure cannot be measured here.
#
# usage: sudo bash bench/slim.sh [CORPUS_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
CORPUS=${1:-../shared/corpus}
IMAGE=$CORPUS/images/bookworm-curl.oci.tar
OUT=bench/out/slim
mkdir -p "$OUT"
cargo build --release -q
KILN=target/release/kiln
PROBES=(--probe-cmd 'curl --version'
        --probe-cmd "python3 -c 'import ssl,json; print(ssl.OPENSSL_VERSION)'"
        --probe-cmd 'openssl version -a')

echo "| mode | wall s | peak RSS MiB | files before | MiB before | files after | MiB after | ratio | probes same |"
echo "|---|---|---|---|---|---|---|---|---|"
for mode in static dynamic both; do
    dest="$OUT/slim-$mode.tar"
    rm -f "$dest"
    # --verify in static mode fails when a probe needs what only tracing
    # finds; the image is written either way, and the report says so.
    read -r wall rss code < <(measure_any "$OUT/$mode" "$KILN" slim -q "oci-archive:$IMAGE" \
        "oci-archive:$dest" --mode "$mode" "${PROBES[@]}" --verify --report json)
    python3 - "$OUT/$mode.out" "$mode" "$wall" "$rss" "$code" <<'PY'
import json, sys
path, mode, wall, rss, code = sys.argv[1:]
try:
    r = json.load(open(path))
except ValueError:
    print(f"| {mode} | {wall} | {rss} | (failed: see bench/out/slim/{mode}.time) |")
    sys.exit()
same = sum(1 for p in r["probes"] if p.get("same"))
mib = lambda b: b / 1048576
print(f"| {mode} | {wall} | {rss} | {r['files_before']} | {mib(r['bytes_before']):.1f} | "
      f"{r['files_after']} | {mib(r['bytes_after']):.1f} | {r['ratio']:.1f}x | {same}/{len(r['probes'])}"
      f"{'' if code == '0' else ' (verify failed)'} |")
PY
done
echo
for mode in static dynamic both; do
    skopeo inspect "oci-archive:$OUT/slim-$mode.tar" >/dev/null && echo "skopeo inspect slim-$mode: ok"
    rm -rf "$OUT/layout-$mode" "$OUT/bundle-$mode"
    skopeo copy -q "oci-archive:$OUT/slim-$mode.tar" "oci:$OUT/layout-$mode:slim"
    umoci unpack --image "$OUT/layout-$mode:slim" "$OUT/bundle-$mode" >/dev/null && echo "umoci unpack slim-$mode: ok"
done

echo
echo "## kiln scan of the slimmed image (mode both), DB from the corpus debs"
DB=$OUT/kiln.db
rm -f "$DB" "$DB"-*
"$KILN" db build -q --db "$DB" --deb "$CORPUS/debian-bookworm"
"$KILN" scan -q --db "$DB" "oci-archive:$OUT/slim-both.tar" -o json >"$OUT/scan.json"
python3 - "$OUT" "$DB" "$CORPUS" <<'PY'
import json, os, sqlite3, sys
out, db, corpus = sys.argv[1:]
scan = json.load(open(f"{out}/scan.json"))
found = {(p["name"], p["version"]): p["evidence"]["resolution"] for p in scan["packages"] if p["type"] == "deb"}
root = f"{out}/bundle-both/rootfs"
left = set()
for d, _, files in os.walk(root):
    for f in files:
        p = os.path.join(d, f)
        if not os.path.islink(p):
            left.add(p[len(root):])
con = sqlite3.connect(db)
truth = [l.split("\t") for l in open(f"{corpus}/images/bookworm-curl.packages.tsv").read().split("\n")[1:] if l]
with_files = []
for name, ver, *_ in truth:
    rows = con.execute("SELECT path.path FROM file JOIN path ON path.id = file.path_id JOIN package ON package.id = file.package_id "
                       "WHERE package.name = ? AND package.version = ? AND file.kind = 'f'", (name, ver)).fetchall()
    if any(r[0] in left or ("/usr" + r[0]) in left for r in rows):
        with_files.append((name, ver))
exact = [w for w in with_files if w in found]
print(f"packages with files left: {len(with_files)}; identified at the exact version: {len(exact)}")
for w in with_files:
    if w not in found:
        others = [f"{n} {v} ({r})" for (n, v), r in found.items() if n == w[0]]
        print(f"  not exact: {w[0]} {w[1]} -> {', '.join(others) or 'not reported'}")
names = {w[0] for w in with_files}
phantom = [k for k in found if k[0] not in names]
print(f"reported packages without files left: {len(phantom)}")
PY
