#!/usr/bin/env bash
# Function-level fingerprints (issue #5), on the corpus:
#
#  1. hashing throughput: every ELF file of the corpus debs, functions found
#     from .eh_frame and symbols, normalised and hashed on one thread; MB of
#     code per second per core (goal >= 50);
#  2. size of the code tables in the DB, per indexed package;
#  3. identification of stripped distro files: the stripped corpus image
#     (kiln strip: no dpkg metadata, no docs) = S; S with every ELF file
#     `strip --strip-all`ed = A (acceptance 2); A with the build-id notes
#     removed too = B (nothing but code and data left to match). Packages
#     that contain ELF code: identified, exact, wrong; components claimed
#     from function matches (the corpus has no vendored code: any is a false
#     positive). syft on the same images beside it;
#  4. version holdout: a DB without the installed version of every
#     multi-version package, scanned on A and B: every held-out package
#     must be "version not in DB" with a nearest version, never a wrong
#     exact version (acceptance 3);
#  5. scan-time overhead against file-hash-only scanning: the same scans
#     with a DB whose code tables are emptied (best of RUNS).
#
# usage: bash bench/functions.sh [CORPUS_DIR] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
CORPUS=${1:-../shared/corpus}
RUNS=${2:-5}
OUT=bench/out/functions
image=$CORPUS/images/bookworm-curl.oci.tar
truth=$CORPUS/images/bookworm-curl.packages.tsv
[ -f "$image" ] || { echo "bench: no corpus at $CORPUS" >&2; exit 2; }
for t in umoci skopeo strip objcopy sqlite3; do
    command -v "$t" >/dev/null || { echo "bench: needs $t (bash scripts/setup.sh)" >&2; exit 2; }
done
rm -rf "$OUT" && mkdir -p "$OUT/root"
cargo build --release -q
cargo build --release -q -p kiln-fingerprint --example funchash
kiln=./target/release/kiln
syft=$(find_syft)
export SYFT_CHECK_FOR_APP_UPDATE=false

is_elf() { [ "$(head -c4 "$1" 2>/dev/null | od -An -c | tr -d ' ')" = '177ELF' ]; }

echo "== 1. hashing throughput (one thread)"
for d in "$CORPUS"/debian-bookworm/*.deb; do dpkg-deb -x "$d" "$OUT/root"; done
mapfile -d '' files < <(find "$OUT/root" -type f -size +1k -print0)
elfs=()
for f in "${files[@]}"; do is_elf "$f" && elfs+=("$f"); done
echo "ELF files: ${#elfs[@]}"
target/release/examples/funchash "${elfs[@]}"
rm -rf "$OUT/root"
# AArch64: Debian's cross glibc and runtime libraries (gcc-aarch64-linux-gnu).
if [ -d /usr/aarch64-linux-gnu/lib ]; then
    a64=()
    while IFS= read -r -d '' f; do is_elf "$f" && a64+=("$f"); done \
        < <(find /usr/aarch64-linux-gnu/lib -name '*.so*' -type f -size +1k -print0)
    echo "AArch64 ELF files (/usr/aarch64-linux-gnu/lib): ${#a64[@]}"
    target/release/examples/funchash "${a64[@]}"
fi

echo
echo "== 2. code tables in the DB"
DB=$OUT/kiln.db
"$kiln" db build -q --db "$DB" --deb "$CORPUS/debian-bookworm" 2>/dev/null
sqlite3 "$DB" "
SELECT 'packages indexed: ' || (SELECT count(*) FROM package);
SELECT 'function hashes (each once): ' || (SELECT count(*) FROM func_hash) || ', common to several projects (set aside): ' || (SELECT sum(common) FROM func_hash) || '; (project, version)s: ' || (SELECT count(*) FROM func_version) || '; posting lists: ' || (SELECT sum(length(versions)) FROM func_hash) || ' bytes';
SELECT 'per-file code identities (elf_functions): ' || (SELECT count(*) FROM elf_functions) || ' ELF contents, ' || (SELECT sum(length(hashes)) / 8 FROM elf_functions) || ' function hashes';
SELECT 'code tables: ' || printf('%.2f', sum(pgsize) / 1048576.0) || ' MiB, ' || printf('%.1f', sum(pgsize) / 1024.0 / (SELECT count(*) FROM package)) || ' KiB per package; whole DB ' || printf('%.2f', (SELECT page_count * page_size FROM pragma_page_count, pragma_page_size) / 1048576.0) || ' MiB'
FROM dbstat WHERE name LIKE 'func%' OR name LIKE 'sqlite_autoindex_func%' OR name = 'elf_functions';
"
# File-hash-only baseline: the same DB without its code tables.
BASE=$OUT/filehash-only.db
cp "$DB" "$BASE"
sqlite3 "$BASE" "DELETE FROM elf_functions; DELETE FROM func_hash; DELETE FROM func_version; VACUUM;"

echo
echo "== 3. stripped distro files"
"$kiln" strip -q "oci-archive:$image" "oci-archive:$OUT/S.tar" --transforms delete-db,delete-docs
mkdir -p "$OUT/layout"
tar -xf "$OUT/S.tar" -C "$OUT/layout"
rootless=()
[ "$(id -u)" -eq 0 ] || rootless=(--rootless)
umoci unpack "${rootless[@]}" --image "$OUT/layout:latest" "$OUT/bundle" >/dev/null
mapfile -d '' all < <(find "$OUT/bundle/rootfs" -type f -print0)
n=0
for f in "${all[@]}"; do
    if is_elf "$f"; then strip --strip-all "$f" 2>/dev/null && n=$((n + 1)); fi
done
echo "strip --strip-all on $n ELF files"
umoci repack --image "$OUT/layout:A" "$OUT/bundle" >/dev/null
n=0
for f in "${all[@]}"; do
    if is_elf "$f"; then objcopy --remove-section=.note.gnu.build-id "$f" 2>/dev/null && n=$((n + 1)); fi
done
echo "build-id note removed from $n ELF files"
umoci repack --image "$OUT/layout:B" "$OUT/bundle" >/dev/null
# One single-image archive per variant, so every tool reads the same file.
for v in A B; do skopeo copy -q "oci:$OUT/layout:$v" "oci-archive:$OUT/$v.tar"; done

# Packages of the image whose .deb has ELF code.
python3 - "$CORPUS" "$truth" >"$OUT/elf-packages.txt" <<'PY'
import subprocess, sys, tarfile, io
corpus, truth_path = sys.argv[1], sys.argv[2]
truth = dict(l.rstrip("\n").split("\t")[:2] for l in open(truth_path))
rows = [l.rstrip("\n").split("\t") for l in open(f"{corpus}/debian-bookworm/MANIFEST.tsv")][1:]
for r in rows:
    if truth.get(r[1]) != r[2]:
        continue
    data = subprocess.run(["dpkg-deb", "--fsys-tarfile", f"{corpus}/debian-bookworm/{r[0]}"], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        for m in t:
            if m.isfile() and m.size > 4 and t.extractfile(m).read(4) == b"\x7fELF":
                print(r[1])
                break
PY
score() { # score JSON kiln|syft [HELD] -> found exact wrong components (of ELF packages)
    python3 - "$1" "$2" "$truth" "$OUT/elf-packages.txt" "${3:-}" <<'PY'
import json, re, sys
doc = json.load(open(sys.argv[1]))
truth = dict(l.rstrip("\n").split("\t")[:2] for l in open(sys.argv[3]))
elf = set(open(sys.argv[4]).read().split())
held = set(open(sys.argv[5]).read().split()) if sys.argv[5] else set()
if sys.argv[2] == "kiln":
    debs = [p for p in doc["packages"] if p["type"] == "deb"]
    comps = [p for p in doc["packages"] if p["type"] == "generic"]
    rows = [(p["name"], p["version"], p["evidence"]["resolution"] if p.get("evidence") else "") for p in debs]
else:
    comps = []
    rows = [(a["name"], a["version"], "") for a in doc["artifacts"]]
def upstream(v):
    return re.sub(r"^[0-9]+:", "", v).rsplit("-", 1)[0]
found = {n for n, _, _ in rows if n in elf}
exact = {n for n, v, _ in rows if n in elf and truth.get(n) == v and n not in held}
# Wrong: a package of the image with a version that is neither its Debian
# version nor (for peers' binary classifiers) its upstream version.
# A version set that holds the true version is not wrong, only unresolved.
wrong = sorted({n for n, v, r in rows if v and n in truth and truth[n] != v
                and upstream(truth[n]) != v and (n not in held or r != "version-not-in-db")
                and not (r == "version-set" and n not in held and truth[n] in v.split(" | "))})
nearest = {n for n, v, r in rows if n in held and n in elf and r == "version-not-in-db"}
print(len(found), len(exact), len(wrong), len(comps), len(nearest), ",".join(wrong) or "-")
PY
}
E=$(wc -l <"$OUT/elf-packages.txt")
printf '%-28s %8s %8s %10s %10s %7s %11s  %s\n' image "wall_s" "RSS_MiB" identified exact wrong components "wrong names"
for v in S A B; do
    read -r w r < <(best_of "$RUNS" "$OUT/kiln-$v" "$kiln" scan -q --db "$DB" "oci-archive:$OUT/$v.tar" -o json)
    read -r f e x c _ names < <(score "$OUT/kiln-$v.out" kiln)
    printf '%-28s %8s %8s %10s %10s %7s %11s  %s\n' "kiln $v" "$w" "$r" "$f/$E" "$e/$E" "$x" "$c" "$names"
    awk -v f="$f" -v e="$e" -v n="$E" 'BEGIN { printf "%-28s identified %.1f%%, exact %.1f%%\n", "", 100 * f / n, 100 * e / n }'
    read -r sw sr < <(measure "$OUT/syft-$v" "$syft" scan -q "oci-archive:$OUT/$v.tar" -o syft-json)
    read -r f e x _ _ names < <(score "$OUT/syft-$v.out" syft)
    printf '%-28s %8s %8s %10s %10s %7s %11s  %s\n' "syft $v" "$sw" "$sr" "$f/$E" "$e/$E" "$x" "-" "$names"
done

echo
echo "== 4. version holdout (installed version of every multi-version package left out)"
python3 bench/holdout_debs.py "$CORPUS" "$OUT/holdout-debs" "$OUT/held.txt"
"$kiln" db build -q --db "$OUT/holdout.db" --deb "$OUT/holdout-debs"
H=$(grep -cxf "$OUT/elf-packages.txt" "$OUT/held.txt" || true)
echo "held out: $(wc -l <"$OUT/held.txt") packages, $H of them with ELF code"
printf '%-28s %22s %14s %11s  %s\n' image "held: not-in-db+nearest" "wrong exact" components "wrong names"
for v in A B; do
    "$kiln" scan -q --db "$OUT/holdout.db" "oci-archive:$OUT/$v.tar" -o json >"$OUT/holdout-$v.json"
    read -r _ _ x c nearest names < <(score "$OUT/holdout-$v.json" kiln "$OUT/held.txt")
    printf '%-28s %22s %14s %11s  %s\n' "kiln $v, holdout DB" "$nearest/$H" "$x" "$c" "$names"
done
python3 - "$OUT/holdout-B.json" "$OUT/held.txt" <<'PY'
import json, sys
held = set(open(sys.argv[2]).read().split())
for p in json.load(open(sys.argv[1]))["packages"]:
    ev = p.get("evidence") or {}
    if p["type"] == "deb" and p["name"] in held and ev.get("version_range"):
        print(f"  {p['name']}: nearest {ev.get('nearest_version')}, evidence allows {ev['version_range']}")
PY

echo
echo "== 5. scan-time overhead against file-hash-only scanning (best of $RUNS)"
printf '%-28s %14s %16s %10s\n' image "code tables" "file-hash only" overhead
for v in S A B; do
    read -r w _ < <(best_of "$RUNS" "$OUT/base-$v" "$kiln" scan -q --db "$BASE" "oci-archive:$OUT/$v.tar" -o json)
    read -r wf _ < <(best_of "$RUNS" "$OUT/kiln-$v" "$kiln" scan -q --db "$DB" "oci-archive:$OUT/$v.tar" -o json)
    read -r f e _ < <(score "$OUT/base-$v.out" kiln)
    awk -v a="$wf" -v b="$w" -v n="$v" -v f="$f" -v e="$e" -v E="$E" 'BEGIN { printf "%-28s %13.3fs %15.3fs %9.0f%%   (file-hash only: %d/%d identified, %d exact)\n", "kiln " n, a, b, 100 * (a - b) / b, f, E, e }'
done
