#!/usr/bin/env bash
# Advisory import and matching at scale: synthesise a large OSV export in
# the real schema (Debian:12 records for every source package of the corpus
# plus unrelated ones, as a zip like OSV publishes), time `kiln db vuln
# import`, and compare `kiln scan` with `kiln vuln` on the corpus image.
#
#   bench/vuln.sh [CORPUS_DIR] [RECORDS] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
corpus=${1:-../shared/corpus}
records=${2:-60000}
runs=${3:-3}
image=$corpus/images/bookworm-curl.oci.tar
[ -f "$image" ] || { echo "bench: no corpus at $corpus" >&2; exit 2; }
cargo build --release -q
kiln=./target/release/kiln
out=bench/out/vuln
rm -rf "$out" && mkdir -p "$out"
python3 - "$corpus" "$out/debian12.zip" "$records" <<'PY'
import json, random, sys, zipfile
corpus, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
sources = sorted({l.split("\t")[3] for l in open(f"{corpus}/images/bookworm-curl.packages.tsv")})
random.seed(7)
names = sources + [f"synthetic-src-{i}" for i in range(4000)]
with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
    for i in range(n):
        name = random.choice(names)
        fixed = f"{random.randint(0, 9)}.{random.randint(0, 30)}-{random.randint(1, 9)}+deb12u{random.randint(1, 20)}"
        rec = {
            "schema_version": "1.6.0",
            "id": f"DEBIAN-CVE-2099-{i:06d}",
            "upstream": [f"CVE-2099-{i:06d}"],
            "modified": "2026-11-26T00:00:00Z",
            "summary": f"synthetic advisory {i} for benchmarking",
            "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}],
            "affected": [{
                "package": {"ecosystem": "Debian:12", "name": name},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}],
            }],
        }
        z.writestr(f"DEBIAN-CVE-2099-{i:06d}.json", json.dumps(rec))
PY
db=$out/kiln.db
"$kiln" db build -q --db "$db" --deb "$corpus/debian-bookworm" 2>/dev/null
import_db() { "$kiln" db vuln import --db "$db" --osv "$out/debian12.zip"; }
export -f import_db
export kiln db out
read -r i_wall i_rss < <(best_of "$runs" "$out/import" bash -c import_db)
read -r s_wall s_rss < <(best_of "$runs" "$out/scan" "$kiln" scan -q --db "$db" "oci-archive:$image" -o json)
read -r v_wall v_rss < <(best_of "$runs" "$out/vuln" "$kiln" vuln -q --db "$db" "oci-archive:$image" -o json)
found=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["findings"]))' "$out/vuln.out")
printf '\n%s synthetic OSV records (%s MiB zip), best of %s\n' "$records" "$(du -m "$out/debian12.zip" | cut -f1)" "$runs"
printf '%-28s %8s %14s\n' step wall_s peak_rss_MiB
printf '%-28s %8s %14s\n' "kiln db vuln import" "$i_wall" "$i_rss"
printf '%-28s %8s %14s\n' "kiln scan (no matching)" "$s_wall" "$s_rss"
printf '%-28s %8s %14s   %s findings\n' "kiln vuln (scan + match)" "$v_wall" "$v_rss" "$found"
awk -v s="$s_wall" -v v="$v_wall" 'BEGIN { printf "matching adds %.0f%% to scan time\n", (v - s) / s * 100 }'
