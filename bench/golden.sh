#!/usr/bin/env bash
# Every output of kiln on the corpus, normalised so two builds can be
# compared byte for byte: `kiln sbom` (all formats), `kiln scan` of the
# original, stripped and padded images and of the unpacked corpus wheels,
# `kiln vuln` (all formats) with a synthesised OSV export, `kiln strip`
# (the written layouts) and, as root, `kiln slim` (report and layout).
# Timestamps, serial numbers, document namespaces and per-run temporary
# paths are removed; nothing else is.
#
#   bench/golden.sh KILN_BINARY OUT_DIR [CORPUS_DIR]
#   diff -r OUT_A OUT_B      # what changed between two builds
set -euo pipefail
cd "$(dirname "$0")/.."
kiln=$(realpath "$1")
out=$2
corpus=${3:-../shared/corpus}
image=$corpus/images/bookworm-curl.oci.tar
[ -f "$image" ] || { echo "bench: no corpus at $corpus" >&2; exit 2; }
rm -rf "$out" && mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export SOURCE_DATE_EPOCH=1700000000

norm() { # norm FILE: drop what differs from run to run
    python3 - "$1" "$work/ids" <<'PY'
import json, re, sys
path = sys.argv[1]
text = open(path).read()
try:
    doc = json.loads(text)
except ValueError:
    sys.exit()
VARY = {"serialNumber", "documentNamespace", "timestamp", "created", "seconds_static", "seconds_dynamic"}
# Digests of images kiln wrote in this run carry their write time.
ids = set()
def find(v):
    if isinstance(v, dict):
        for k, x in v.items():
            if k in ("imageId", "manifestDigest") and isinstance(x, str):
                ids.add(x)
            find(x)
    elif isinstance(v, list):
        for x in v:
            find(x)
find(doc)
try:
    ids.update(open(sys.argv[2]).read().split())
except OSError:
    pass
def clean(v):
    if isinstance(v, dict):
        return {k: clean(x) for k, x in v.items() if k not in VARY}
    if isinstance(v, list):
        return [clean(x) for x in v]
    if isinstance(v, str) and v in ids:
        return "IMAGE-DIGEST"
    if isinstance(v, str):
        return re.sub(r"/tmp/tmp\.[A-Za-z0-9]+", "/tmp/WORK", v)
    return v
json.dump(clean(doc), open(path, "w"), indent=1, sort_keys=True)
PY
}

run() { # run NAME ARGS...: stdout to OUT/NAME, exit status to OUT/NAME.rc
    local name=$1
    shift
    set +e
    "$kiln" "$@" >"$out/$name" 2>"$work/$name.err"
    echo $? >"$out/$name.rc"
    set -e
    sed -e "s#$work#WORK#g" "$work/$name.err" >"$out/$name.stderr"
    norm "$out/$name"
}

layout() { # layout NAME ARCHIVE: the written image's layers and config
    mkdir -p "$work/$1"
    tar -xf "$2" -C "$work/$1"
    python3 - "$work/$1" "$work/ids" >"$out/$1.layout" <<'PY'
import json, sys
root = sys.argv[1]
blob = lambda d: open(f"{root}/blobs/{d.replace(':', '/')}", "rb").read()
ids = open(sys.argv[2], "a")
for m in json.load(open(f"{root}/index.json"))["manifests"]:
    man = json.loads(blob(m["digest"]))
    print(m["digest"], man["config"]["digest"], file=ids)
    for l in man["layers"]:
        print(l["mediaType"], l["digest"], l["size"])
    cfg = json.loads(blob(man["config"]["digest"]))
    cfg.pop("created", None)
    for h in cfg.get("history", []):
        h.pop("created", None)
    print(json.dumps(cfg, indent=1, sort_keys=True))
PY
}

for f in json cyclonedx-json spdx-json table; do
    run "sbom.$f" sbom -q "oci-archive:$image" -o "$f"
done

db=$work/kiln.db
"$kiln" db build -q --db "$db" --deb "$corpus/debian-bookworm"
"$kiln" db build -q --db "$db" --wheel "$corpus/wheels"
"$kiln" db stats --db "$db" | grep -v -E '^(database|size) ' >"$out/db-stats"

"$kiln" strip -q "oci-archive:$image" "oci-archive:$work/stripped.tar" --transforms delete-db,delete-docs
"$kiln" strip -q "oci-archive:$image" "oci-archive:$work/padded.tar"
layout strip-stripped "$work/stripped.tar"
layout strip-padded "$work/padded.tar"

for img in original stripped padded; do
    src=$image
    [ "$img" = original ] || src=$work/$img.tar
    for f in json cyclonedx-json spdx-json table; do
        run "scan.$img.$f" scan -q --db "$db" "oci-archive:$src" -o "$f"
    done
done
mkdir -p "$work/wheels"
for w in "$corpus"/wheels/*.whl; do
    python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$w" "$work/wheels"
done
run scan.wheels.json scan -q --db "$db" "dir:$work/wheels" -o json
run scan.wheels.cyclonedx-json scan -q --db "$db" "dir:$work/wheels" -o cyclonedx-json

python3 - "$corpus" "$work/osv.zip" <<'PY'
import json, random, sys, zipfile
corpus, path = sys.argv[1], sys.argv[2]
rows = [l.rstrip("\n").split("\t") for l in open(f"{corpus}/images/bookworm-curl.packages.tsv")][1:]
random.seed(11)
with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
    for i, (name, ver, arch, src, srcver) in enumerate(rows):
        fixed = srcver if i % 3 else srcver + "+deb12u99"
        sev = random.choice(["CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
                             "CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N"])
        rec = {"schema_version": "1.6.0", "id": f"DEBIAN-CVE-2099-{i:04d}",
               "upstream": [f"CVE-2099-{i:04d}"], "modified": "2026-11-26T00:00:00Z",
               "summary": f"golden advisory {i}",
               "severity": [{"type": "CVSS_V3", "score": sev}],
               "affected": [{"package": {"ecosystem": "Debian:12", "name": src},
                             "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}]}]}
        z.writestr(f"{rec['id']}.json", json.dumps(rec))
PY
"$kiln" db vuln import -q --db "$db" --osv "$work/osv.zip" >/dev/null
for f in json sarif cyclonedx-json table; do
    run "vuln.original.$f" vuln -q --db "$db" "oci-archive:$image" -o "$f"
    run "vuln.stripped.$f" vuln -q --db "$db" "oci-archive:$work/stripped.tar" -o "$f"
done
run vuln.fail-on vuln -q --db "$db" "oci-archive:$image" -o json --fail-on high
run vuln.bad-format vuln -q --db "$db" "oci-archive:$image" -o xml
run scan.bad-source scan -q --db "$db" "oci-archive:$work/missing.tar" -o json

if [ "$(id -u)" = 0 ] && command -v runc >/dev/null; then
    run slim.both slim -q "oci-archive:$image" "oci-archive:$work/slim.tar" \
        --probe-cmd 'curl --version' --probe-cmd 'openssl version' --verify --report json
    layout slim-both "$work/slim.tar"
fi
echo "golden outputs in $out"
