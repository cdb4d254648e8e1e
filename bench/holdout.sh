#!/usr/bin/env bash
# Version holdout on the corpus: build a DB without the installed version of
# every multi-version package, scan the stripped image, and check that each
# held-out package is reported by name as "version not in DB" (even where its
# bytes are identical to a build still in the DB: that build is the nearest) and
# that no other package gets a wrong version.
#
#   bench/holdout.sh [CORPUS_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=${1:-../shared/corpus}
[ -d "$corpus/debian-bookworm" ] || { echo "bench: no corpus at $corpus" >&2; exit 2; }
cargo build --release -q
kiln=./target/release/kiln
out=bench/out/holdout
rm -rf "$out" && mkdir -p "$out/debs"
python3 bench/holdout_debs.py "$corpus" "$out/debs" "$out/held.txt"
"$kiln" db build -q --db "$out/holdout.db" --deb "$out/debs"
"$kiln" strip -q "oci-archive:$corpus/images/bookworm-curl.oci.tar" "oci-archive:$out/stripped.tar" --transforms delete-db,delete-docs
"$kiln" scan -q --db "$out/holdout.db" "oci-archive:$out/stripped.tar" -o json >"$out/scan.json"
python3 - "$corpus" "$out" <<'PY'
import json, sys
corpus, out = sys.argv[1], sys.argv[2]
truth = {}
for line in open(f"{corpus}/images/bookworm-curl.packages.tsv"):
    f = line.rstrip("\n").split("\t")
    truth[f[0]] = f[1]
held = set(open(f"{out}/held.txt").read().split())
doc = json.load(open(f"{out}/scan.json"))
by = {p["name"]: p for p in doc["packages"]}
not_in_db = [n for n in held if by.get(n, {}).get("evidence", {}).get("resolution") == "version-not-in-db"]
other = sorted(n for n in held if n in by and n not in not_in_db)
missing = sorted(held - set(by))
wrong = sorted(p["name"] for p in doc["packages"] if p["name"] not in held and p["version"] != truth.get(p["name"]))
print(f"held out: {len(held)} packages; reported as version-not-in-db: {len(not_in_db)}; missing: {missing}")
for n in other:
    ev = by[n]["evidence"]
    print(f"  {n}: reported {by[n]['version'] or '-'} ({ev['resolution']}, confidence {ev['confidence']}); true {truth[n]}")
print(f"wrong exact versions among the other packages: {wrong}")
PY
