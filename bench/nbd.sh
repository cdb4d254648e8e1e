#!/usr/bin/env bash
# kiln-vm's NBD server against QEMU's own (qemu-nbd), serving the same
# 1 GiB raw file over a unix socket, measured in the same run with QEMU's
# own load generator (`qemu-img bench`, its NBD client): 64 KiB and 4 KiB
# requests, reads and writes, 8 in flight.
#
#   bench/nbd.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
runs=${1:-3}
cargo build --release -q -p kiln-vm --example nbd_serve
serve=./target/release/examples/nbd_serve
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
qemu-img create -q -f raw "$work/disk.raw" 1G
# Real data, so reads are not of a hole.
head -c 1G /dev/urandom >"$work/disk.raw"

# bench_one LABEL SOCKET: ops/s of each pattern, best of $runs.
bench_one() {
    local label=$1 sock=$2 mode size count best line
    for mode in read write; do
        for size in 65536 4096; do
            count=$((size == 65536 ? 16384 : 65536))
            best=0
            for _ in $(seq "$runs"); do
                local w=""
                [ "$mode" = write ] && w="-w"
                line=$(qemu-img bench -f raw $w -c "$count" -d 8 -s "$size" -S "$size" \
                    "nbd+unix:///$3?socket=$sock" 2>&1 | awk '/Run completed/ { print $(NF - 1) }')
                best=$(awk -v a="$line" -v b="$best" 'BEGIN { print (a < b || b == 0) ? a : b }')
            done
            awk -v l="$label" -v m="$mode" -v s="$size" -v c="$count" -v t="$best" \
                'BEGIN { printf "%-12s %-6s %6d B %12.0f ops/s %9.1f MiB/s\n", l, m, s, c / t, c * s / t / 1048576 }'
        done
    done
}

"$serve" "$work/disk.raw" "$work/kiln.sock" &
qemu-nbd -f raw -t -x disk -k "$work/qemu.sock" "$work/disk.raw" &
for s in kiln.sock qemu.sock; do
    for _ in $(seq 100); do [ -S "$work/$s" ] && break; sleep 0.05; done
done
echo "## nbd: 1 GiB raw file, qemu-img bench -d 8, best of $runs"
bench_one kiln "$work/kiln.sock" disk
bench_one qemu-nbd "$work/qemu.sock" disk
