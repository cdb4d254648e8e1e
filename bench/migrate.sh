#!/usr/bin/env bash
# Live migration of PostgreSQL under pgbench between two hosts (network
# namespaces joined at layer 2, as tests/migrate.rs builds them), in the
# same run for three paths:
#   - kiln migrate (post-copy auto, the default);
#   - kiln migrate --postcopy off (stop-and-copy);
#   - QEMU's built-in path: drive-mirror to an NBD export on B, then
#     migrate (bench/migrate_qemu.py), the guest booted from the same
#     kernel, initramfs and disk kiln built.
# Per path: the largest gap between two commits, pgbench's p50/p99/max
# latency and failed transactions, the migration's wall time and the
# guest's pause as QEMU measured it. Without KVM the guests run under
# TCG; the table says which.
#
#   sudo [RUNS=3] [PATHS="auto off qemu"] bench/migrate.sh [SECONDS_OF_PGBENCH]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
secs=${1:-40}
[ -z "${PCAP:-}" ] || command -v tcpdump >/dev/null ||
    { echo "bench: PCAP needs tcpdump (apt-get install tcpdump)" >&2; exit 2; }
warm=8
cargo build --release -q --bins
kiln=$PWD/target/release/kiln
work=$(mktemp -d /tmp/kiln-migrate-bench.XXXXXX)
id=$$
net=10.$((100 + id % 100)).$((id / 100 % 250))
ns_sw=kbsw$id ns_a=kba$id ns_b=kbb$id ns_c=kbc$id
vm=$net.10

cleanup() {
    pkill -f "$work" 2>/dev/null || true
    for n in $ns_sw $ns_a $ns_b $ns_c; do ip netns del "$n" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

net_up() {
    local i=1 n
    for n in $ns_sw $ns_a $ns_b $ns_c; do ip netns add "$n"; ip -n "$n" link set lo up; done
    ip -n $ns_sw link add br0 type bridge && ip -n $ns_sw link set br0 up
    for n in $ns_a $ns_b $ns_c; do
        ip link add "v$i$id" type veth peer name "p$i$id"
        ip link set "v$i$id" netns "$n" && ip -n "$n" link set "v$i$id" name uplink
        ip link set "p$i$id" netns $ns_sw && ip -n $ns_sw link set "p$i$id" master br0 up
        if [ "$n" = $ns_c ]; then
            ip -n "$n" addr add "$net.$i/24" dev uplink
        else
            # A fixed MAC: a bridge otherwise takes its lowest port's,
            # and taps coming and going would change the host's address.
            ip -n "$n" link add br0 address "02:00:00:00:00:0$i" type bridge
            ip -n "$n" link set uplink master br0
            ip -n "$n" addr add "$net.$i/24" dev br0
            ip -n "$n" link set br0 up
        fi
        ip -n "$n" link set uplink up
        i=$((i + 1))
    done
}

# The PostgreSQL image tests/migrate.rs builds (same recipe, same cache).
pg_image() {
    local dir=target/tmp/pg-image mirror
    if [ ! -e $dir/done ]; then
        rm -rf $dir && mkdir -p $dir
        mirror=$(apt-get indextargets --format '$(SITE) $(RELEASE)' | awk '$2 == "bookworm" { print $1; exit }')
        mmdebstrap --quiet --variant=minbase --include=postgresql-15 \
            --customize-hook='echo "host all all 0.0.0.0/0 trust" >> "$1"/etc/postgresql/15/main/pg_hba.conf' \
            bookworm $dir/rootfs.tar "deb $mirror bookworm main"
        umoci init --layout $dir/layout && umoci new --image $dir/layout:pg
        umoci unpack --image $dir/layout:pg $dir/bundle >/dev/null
        tar -xpf $dir/rootfs.tar -C $dir/bundle/rootfs --numeric-owner
        umoci repack --image $dir/layout:pg $dir/bundle
        umoci config --image $dir/layout:pg --config.user postgres \
            --config.env PATH=/usr/lib/postgresql/15/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            --config.entrypoint /usr/lib/postgresql/15/bin/postgres \
            --config.cmd -D --config.cmd /var/lib/postgresql/15/main \
            --config.cmd -c --config.cmd config_file=/etc/postgresql/15/main/postgresql.conf \
            --config.cmd -c --config.cmd 'listen_addresses=*' --config.cmd -c --config.cmd ssl=off \
            --config.cmd -c --config.cmd unix_socket_directories=/tmp
        rm -rf $dir/rootfs.tar $dir/bundle && touch $dir/done
    fi
    echo "oci-dir:$PWD/$dir/layout:pg"
}

agent() { # NS HOST_INDEX STATE
    ip netns exec "$1" "$kiln" host serve --listen "$net.$2:7100" --bridge br0 \
        --state "$3" --kernel-cache "$PWD/target/tmp/guest-kernel" >"$3.log" 2>&1 &
}

client() { ip netns exec $ns_c "$@"; }

wait_ready() {
    local t=0
    until client psql -h "$vm" -U postgres -qAtc 'select 1' >/dev/null 2>&1; do
        sleep 0.5; t=$((t + 1))
        [ $t -lt 480 ] || { echo "bench: PostgreSQL never answered" >&2; exit 1; }
    done
    client pgbench -i -q -s 2 -h "$vm" -U postgres postgres >/dev/null 2>&1
}

start_load() { # DIR
    mkdir -p "$1"
    # PCAP=DIR keeps the client's PostgreSQL traffic of each path and
    # round, to see where a gap went (losses, retransmissions).
    if [ -n "${PCAP:-}" ]; then
        mkdir -p "$PCAP"
        client tcpdump -i uplink -s 128 -w "$PCAP/$(basename "$1")-$(date +%s).pcap" tcp port 5432 2>/dev/null &
        sleep 0.5
    fi
    (cd "$1" && client pgbench -h "$vm" -U postgres -c 4 -j 2 -T "$secs" -n -l postgres >pgbench.out 2>pgbench.err) &
    load=$!
    sleep $warm
}

# finish_load DIR LABEL MIGRATE_TIME_FILE: a row of the table, from the
# pgbench logs and the migration's report (DIR/report.json); the row is
# also kept in $work/rows for the medians.
finish_load() {
    wait $load || true
    [ -z "${PCAP:-}" ] || pkill -INT -f "tcpdump -i uplink -s 128 -w $PCAP" || true
    local stats wall downtime paused row
    wall=$(time_summary "$3" | cut -d' ' -f1)
    read -r downtime paused < <(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["downtime_ms"], r["paused_at_unix_ms"])' "$1/report.json")
    stats=$(python3 bench/pgbench_gaps.py "$paused" "$1"/pgbench_log.*)
    row=$(printf '%-34s %7s %7s %6s %6s %7s %6s %6s %10s %12s' "$2" $stats "$wall" "$downtime")
    echo "$row" | tee -a "$work/rows"
    if [ -n "${PCAP:-}" ]; then
        local keep=$PCAP/$(basename "$1")-$(date +%s)
        mkdir -p "$keep" && cp "$1"/pgbench_log.* "$1/report.json" "$keep/"
    fi
    rm -f "$1"/pgbench_log.*
}

kiln_path() { # LABEL POSTCOPY
    local d=$work/$2
    client "$kiln" vm run "$image" --host $net.1:7100 --name pg --ip "$vm/24" >/dev/null
    wait_ready
    start_load "$d"
    /usr/bin/time -v ip netns exec $ns_c "$kiln" -q migrate pg --from $net.1:7100 --to $net.2:7100 \
        --postcopy "$2" --report json >"$d/report.json" 2>"$d/time" ||
        { grep -v '^\s' "$d/time" | head -5 >&2; exit 1; }
    finish_load "$d" "$1" "$d/time"
    client "$kiln" -q vm rm pg --host $net.2:7100 --force
}

qemu_vm() { # NS TAP DISK QMP INCOMING
    ip -n "$1" tuntap add "$2" mode tap && ip -n "$1" link set "$2" master br0 up
    ip netns exec "$1" qemu-system-x86_64 -machine q35 -accel tcg -m 512 -smp 1 -nodefaults \
        -display none -no-reboot -kernel "$files/vmlinuz" -initrd "$files/initrd.gz" \
        -append "console=ttyS0 panic=-1 quiet" -serial "file:$4.console" \
        -drive "file=$3,format=raw,if=virtio,id=d0" \
        -netdev "tap,id=n0,ifname=$2,script=no,downscript=no" -device "virtio-net-pci,netdev=n0,mac=$mac" \
        -qmp "unix:$4,server=on,wait=off" $5 >"$4.log" 2>&1 &
}

qemu_path() { # LABEL
    local d=$work/qemu
    mkdir -p "$d"
    # kiln builds the disk, kernel and initramfs; QEMU alone runs them.
    client "$kiln" vm run "$image" --host $net.1:7100 --name pg --ip "$vm/24" >/dev/null
    client "$kiln" vm stop pg --host $net.1:7100 >/dev/null
    files=$work/a/vms/pg
    mac=$(client "$kiln" vm inspect pg --host $net.1:7100 -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["mac"])')
    rm -f "$d"/a.raw "$d"/b.raw "$d"/*.qmp
    cp --sparse=always "$files/disk.raw" "$d/a.raw"
    truncate -s "$(stat -c %s "$d/a.raw")" "$d/b.raw"
    qemu_vm $ns_a kqa0 "$d/a.raw" "$d/a.qmp" ""
    wait_ready
    start_load "$d"
    qemu_vm $ns_b kqb0 "$d/b.raw" "$d/b.qmp" "-incoming defer"
    sleep 1
    /usr/bin/time -v python3 bench/migrate_qemu.py "$d/a.qmp" "$d/b.qmp" $net.2 d0 >"$d/report.json" 2>"$d/time" ||
        { grep -v '^\s' "$d/time" | head -5 >&2; cat "$d"/*.log >&2; exit 1; }
    finish_load "$d" "$1" "$d/time"
    pkill -f "$d/" || true
    sleep 0.5
    ip -n $ns_a link del kqa0 && ip -n $ns_b link del kqb0
    client "$kiln" -q vm rm pg --host $net.1:7100 --force
}

net_up
image=$(pg_image)
"$kiln" --version >/dev/null
accel=TCG
grep -qw -e vmx -e svm /proc/cpuinfo && [ ! -d /sys/module/kvm_pvm ] && accel=KVM
agent $ns_a 1 "$work/a"
agent $ns_b 2 "$work/b"
sleep 1
echo "PostgreSQL 15 in a 512 MiB microVM ($accel), pgbench -c 4 for ${secs} s, migration $warm s in; $(nproc) cores"
# gap_ms: from the last commit before the source's pause to the first
# after it; worst_ms: the largest gap between two commits anywhere.
header() {
    printf '%-34s %7s %7s %6s %6s %7s %6s %6s %10s %12s\n' path gap_ms worst_ms p50_ms p99_ms max_ms tx failed migrate_s downtime_ms
}
header
# PATHS picks some: auto, off, qemu; RUNS rounds of them, interleaved.
for _ in $(seq "${RUNS:-3}"); do
    for p in ${PATHS:-auto off qemu}; do
        case $p in
            auto) kiln_path "kiln migrate (postcopy auto)" auto ;;
            off) kiln_path "kiln migrate --postcopy off" off ;;
            qemu) qemu_path "qemu drive-mirror + migrate" ;;
            *) echo "bench: unknown path $p (auto, off, qemu)" >&2; exit 2 ;;
        esac
    done
done
echo
echo "medians over ${RUNS:-3} run(s):"
header
python3 - "$work/rows" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    label, nums = line[:34].rstrip(), line[34:].split()
    rows.setdefault(label, []).append([float(x) for x in nums])
for label, rs in rows.items():
    med = [statistics.median(c) for c in zip(*rs)]
    print(f"{label:<34} " + " ".join(f"{m:>{w}.{d}f}" for m, (w, d) in zip(med, [(7,0),(7,0),(6,0),(6,0),(7,0),(6,0),(6,0),(10,3),(12,0)])))
PY
