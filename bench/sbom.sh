#!/usr/bin/env bash
# kiln sbom against syft on the same image, in the same run: wall time,
# peak RSS (GNU time -v) and package count, best of N runs each.
#
#   bench/sbom.sh [IMAGE] [RUNS]
#
# IMAGE defaults to the shared corpus image (oci-archive).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

image=${1:-../shared/corpus/images/bookworm-curl.oci.tar}
runs=${2:-3}
[ -f "$image" ] || { echo "bench: no image at $image" >&2; exit 2; }
cargo build --release -q
syft=$(find_syft)
out=bench/out
mkdir -p "$out"
export SYFT_CHECK_FOR_APP_UPDATE=false

read -r k_wall k_rss < <(best_of "$runs" "$out/kiln-sbom" ./target/release/kiln sbom "oci-archive:$image" -o json -q)
k_pkgs=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["packages"]))' "$out/kiln-sbom.out")

read -r s_wall s_rss < <(best_of "$runs" "$out/syft-sbom" "$syft" scan -q "oci-archive:$image" -o syft-json)
s_pkgs=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["artifacts"]))' "$out/syft-sbom.out")

printf '\nimage: %s (best of %s runs, %s cores)\n' "$image" "$runs" "$(nproc)"
printf '%-14s %8s %14s %10s\n' tool wall_s peak_rss_MiB packages
printf '%-14s %8s %14s %10s\n' kiln "$k_wall" "$k_rss" "$k_pkgs"
printf '%-14s %8s %14s %10s\n' "syft $("$syft" version 2>/dev/null | awk '/^Version:/ {print $2}')" "$s_wall" "$s_rss" "$s_pkgs"
awk -v k="$k_wall" -v s="$s_wall" 'BEGIN { if (k > 0) printf "speed-up: %.1fx\n", s / k }'
