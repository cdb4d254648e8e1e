#!/usr/bin/env bash
# kiln sbom straight from a registry against syft scan registry:, same run:
# the corpus image is pushed to Debian's docker-registry on loopback (plain
# HTTP), then each tool reads it from there. Also shown: skopeo copying
# the image to disk first and kiln scanning the copy (the download-first
# approach), and kiln on the local archive.
#
#   bench/registry.sh [IMAGE] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

image=${1:-../shared/corpus/images/bookworm-curl.oci.tar}
runs=${2:-3}
[ -f "$image" ] || { echo "bench: no image at $image" >&2; exit 2; }
command -v docker-registry >/dev/null || { echo "bench: docker-registry is not installed (scripts/setup.sh)" >&2; exit 2; }
cargo build --release -q
syft=$(find_syft)
out=bench/out/registry
mkdir -p "$out"
export SYFT_CHECK_FOR_APP_UPDATE=false

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/config.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/data
http:
  addr: 127.0.0.1:$port
YML
docker-registry serve "$work/config.yml" >"$work/registry.log" 2>&1 &
reg_pid=$!
trap 'kill $reg_pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
ref="127.0.0.1:$port/corpus/image:v1"
skopeo copy -q --dest-tls-verify=false "oci-archive:$image" "docker://$ref"

count() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(len(d.get("packages", d.get("artifacts", []))))' "$1"; }
names() { python3 -c '
import json,sys
d=json.load(open(sys.argv[1]))
rows = d.get("packages") or [a for a in d.get("artifacts", []) if a.get("type") == "deb"]
print("\n".join(sorted(p["name"] + " " + p["version"] for p in rows)))' "$1"; }

read -r k_wall k_rss < <(best_of "$runs" "$out/kiln" ./target/release/kiln sbom -q "registry:$ref" --tls-verify=false -o json)
read -r l_wall l_rss < <(best_of "$runs" "$out/kiln-local" ./target/release/kiln sbom -q "oci-archive:$image" -o json)
fetch_then_scan() {
    rm -f "$work/copy.tar"
    skopeo copy -q --src-tls-verify=false "docker://$ref" "oci-archive:$work/copy.tar" &&
        ./target/release/kiln sbom -q "oci-archive:$work/copy.tar" -o json
}
export -f fetch_then_scan
export ref work
read -r d_wall d_rss < <(best_of "$runs" "$out/copy-then-kiln" bash -c fetch_then_scan)
read -r s_wall s_rss < <(SYFT_REGISTRY_INSECURE_USE_HTTP=true best_of "$runs" "$out/syft" "$syft" scan -q "registry:$ref" -o syft-json)

names "$out/kiln.out" >"$out/kiln.names"
names "$out/kiln-local.out" >"$out/kiln-local.names"
names "$out/syft.out" >"$out/syft.names"
same_local=$(cmp -s "$out/kiln.names" "$out/kiln-local.names" && echo yes || echo no)
same_syft=$(cmp -s "$out/kiln.names" "$out/syft.names" && echo yes || echo no)

printf '\nimage: %s pushed to %s (best of %s runs, %s cores)\n' "$image" "$ref" "$runs" "$(nproc)"
printf '%-34s %8s %14s %10s\n' what wall_s peak_rss_MiB packages
printf '%-34s %8s %14s %10s\n' "kiln sbom registry:" "$k_wall" "$k_rss" "$(count "$out/kiln.out")"
printf '%-34s %8s %14s %10s\n' "skopeo copy, then kiln sbom" "$d_wall" "$d_rss" "$(count "$out/copy-then-kiln.out")"
printf '%-34s %8s %14s %10s\n' "kiln sbom oci-archive: (local)" "$l_wall" "$l_rss" "$(count "$out/kiln-local.out")"
printf '%-34s %8s %14s %10s\n' "syft $("$syft" version 2>/dev/null | awk '/^Version:/ {print $2}') scan registry:" "$s_wall" "$s_rss" "$(count "$out/syft.out")"
echo "same (name, version) list as the local archive: $same_local; as syft's deb packages: $same_syft"
awk -v k="$k_wall" -v s="$s_wall" 'BEGIN { if (k > 0) printf "speed-up over syft: %.1fx\n", s / k }'
