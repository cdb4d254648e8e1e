#!/usr/bin/env bash
# kiln sbom against syft on the every-ecosystem image tests/ecosystems.rs
# builds (rpm, npm, Java, gems, Composer, .NET, Go), in the same run:
# per-ecosystem counts of distinct name@version — the truth's, each
# tool's true finds, and each tool's finds outside the truth — with wall
# time and peak RSS (best of N runs).
#
#   bench/ecosystems.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

runs=${1:-5}
out=bench/out/ecosystems
mkdir -p "$out"
export SYFT_CHECK_FOR_APP_UPDATE=false
cargo build --release -q
syft=$(find_syft)
# Build the image and its truth with the test's own fixture.
KILN_ECO_EXPORT="$PWD/$out/fixture" cargo test --release -q --test ecosystems sbom_lists >/dev/null
image="oci-dir:$out/fixture/layout"

read -r k_wall k_rss < <(best_of "$runs" "$out/kiln" ./target/release/kiln sbom "$image" -o json -q)
read -r s_wall s_rss < <(best_of "$runs" "$out/syft" "$syft" scan -q "$image" -o syft-json)

python3 - "$out/fixture/truth.json" "$out/kiln.out" "$out/syft.out" <<'PY'
import json, sys
truth = {k: set(v) for k, v in json.load(open(sys.argv[1])).items()}
kiln_types = {"rpm": "rpm", "npm": "npm", "java": "java-archive", "gem": "gem",
              "composer": "php-composer", "dotnet": "dotnet", "go": "go-module"}
def norm(eco, name, version):
    if eco == "java-archive" and ":" not in name:
        return None
    return f"{name} {version}"
k = {}
for p in json.load(open(sys.argv[2]))["packages"]:
    t = kiln_types.get(p["type"])
    if t and not (t == "npm" and p.get("found_by") == "javascript-lock-cataloger"):
        k.setdefault(t, set()).add(f'{p["name"]} {p["version"]}')
s = {}
for a in json.load(open(sys.argv[3]))["artifacts"]:
    t, name, ver = a["type"], a["name"], a["version"]
    if t == "go-module" and name == "stdlib":
        ver = ver.removeprefix("go")
    if t == "java-archive":
        g = ((a.get("metadata") or {}).get("pomProperties") or {}).get("groupId")
        name = f"{g}:{name}" if g else name
    if t == "npm" and any("package-lock.json" in l.get("path", "") for l in a.get("locations", [])):
        continue
    s.setdefault(t, set()).add(f"{name} {ver}")
print(f'{"ecosystem":<14}{"truth":>6}{"kiln":>6}{"kiln+":>6}{"syft":>6}{"syft+":>6}{"syft-only":>10}')
for eco in sorted(truth):
    t = truth[eco]; kk = k.get(eco, set()); ss = s.get(eco, set())
    print(f"{eco:<14}{len(t):>6}{len(kk & t):>6}{len(kk - t):>6}{len(ss & t):>6}{len(ss - t):>6}{len((ss & t) - kk):>10}")
print("kiln+/syft+: distinct name@version outside the truth; syft-only: true packages syft finds and kiln misses")
PY
printf '\nimage: %s (best of %s runs, %s cores)\n' "$image" "$runs" "$(nproc)"
printf '%-14s %8s %14s\n' tool wall_s peak_rss_MiB
printf '%-14s %8s %14s\n' kiln "$k_wall" "$k_rss"
printf '%-14s %8s %14s\n' "syft $("$syft" version 2>/dev/null | awk '/^Version:/ {print $2}')" "$s_wall" "$s_rss"
awk -v k="$k_wall" -v s="$s_wall" 'BEGIN { if (k > 0) printf "speed-up: %.1fx\n", s / k }'
