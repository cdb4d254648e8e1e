#!/usr/bin/env bash
# Two kiln builds on the same jobs, runs alternating so both see the same
# machine: `kiln sbom` of the corpus image and `kiln scan` of its stripped
# copy with a DB of the corpus debs. Prints best and median wall time and
# peak RSS of each, and the new build's change against the old.
#
#   bench/ab.sh OLD_KILN NEW_KILN [CORPUS] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
old=$(realpath "$1")
new=$(realpath "$2")
corpus=${3:-../shared/corpus}
runs=${4:-9}
image=$corpus/images/bookworm-curl.oci.tar
[ -f "$image" ] || { echo "bench: no corpus at $corpus" >&2; exit 2; }
out=bench/out/ab
rm -rf "$out" && mkdir -p "$out"
db=$out/kiln.db
"$new" db build -q --db "$db" --deb "$corpus/debian-bookworm" 2>/dev/null
"$new" strip -q "oci-archive:$image" "oci-archive:$out/stripped.tar" --transforms delete-db,delete-docs

job() { # job NAME KILN: one run of the named job
    case $1 in
        sbom) "$2" sbom -q "oci-archive:$image" -o json ;;
        scan) "$2" scan -q --db "$db" "oci-archive:$out/stripped.tar" -o json ;;
    esac
}
export -f job
export image db out

for name in sbom scan; do
    for i in $(seq "$runs"); do
        for which in old new; do
            bin=$old
            [ "$which" = new ] && bin=$new
            measure "$out/$name-$which-$i" bash -c "job $name $bin" >>"$out/$name-$which.txt"
        done
    done
done

python3 - "$out" "$runs" <<'PY'
import statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
print(f"{'job':6} {'build':5} {'best_s':>8} {'median_s':>9} {'rss_MiB':>8}   ({runs} alternating runs each)")
for name in ("sbom", "scan"):
    med = {}
    for which in ("old", "new"):
        rows = [tuple(map(float, l.split())) for l in open(f"{out}/{name}-{which}.txt")]
        walls = [r[0] for r in rows]
        med[which] = statistics.median(walls)
        print(f"{name:6} {which:5} {min(walls):8.3f} {med[which]:9.3f} {max(r[1] for r in rows):8.1f}")
    print(f"{name:6} new/old median: {med['new'] / med['old']:.3f}")
PY
