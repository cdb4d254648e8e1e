#!/usr/bin/env bash
# kiln trace exec,open against the workload's own counts and bpftrace's, same
# run: a container (static busybox root plus a static C workload) opens a file
# about 16,000 times/s and runs a program about 2,000 times/s for SECS
# seconds, once untraced and once traced by kiln and bpftrace together. Then
# 50 containers and the time to scrape kiln's /metrics. Needs root.
#
#   bench/trace.sh [SECS]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

secs=${1:-20}
[ "$(id -u)" -eq 0 ] || { echo "bench: needs root (eBPF, runc)" >&2; exit 2; }
for t in runc busybox bpftrace gcc curl; do
    command -v "$t" >/dev/null || { echo "bench: $t is not installed (scripts/setup.sh)" >&2; exit 2; }
done
cargo build --release -q
kiln=$PWD/target/release/kiln
out=bench/out/trace
mkdir -p "$out"
work=$(mktemp -d)
ids=()
pids=()
mounted=""
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for i in "${ids[@]}"; do runc delete --force "$i" >/dev/null 2>&1 || true; done
    [ -n "$mounted" ] && umount /sys/kernel/tracing 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'echo "bench: failed at line $LINENO" >&2' ERR
# bpftrace needs tracefs too; unmounted again at the end if mounted here.
if [ ! -d /sys/kernel/tracing/events/syscalls ]; then
    mount -t tracefs tracefs /sys/kernel/tracing && mounted=1
fi

cat >"$work/load.c" <<'C'
/* Paced load for argv[1] seconds: one process opens a file 16 times per
 * millisecond, another spawns a program twice per millisecond (each as
 * fast as it can when it cannot keep the pace); prints "opens execs". */
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
extern char **environ;
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static void pace(double *tick) {
    *tick += 0.001;
    double wait = *tick - now();
    if (wait > 0) { struct timespec t = { 0, (long)(wait * 1e9) }; nanosleep(&t, NULL); }
}
int main(int argc, char **argv) {
    double end = now() + atof(argv[1]), tick = now();
    int fds[2];
    if (pipe(fds)) return 1;
    pid_t opener = fork();
    if (opener == 0) {
        long opens = 0;
        while (now() < end) {
            for (int i = 0; i < 16; i++) { int fd = open("/etc/load-target", O_RDONLY); if (fd >= 0) close(fd); opens++; }
            pace(&tick);
        }
        dprintf(fds[1], "%ld", opens);
        _exit(0);
    }
    long execs = 0;
    char *child[] = { "/bin/tiny", NULL };
    while (now() < end) {
        for (int i = 0; i < 2; i++) { pid_t p; if (posix_spawn(&p, child[0], NULL, NULL, child, environ) == 0) { waitpid(p, NULL, 0); execs++; } }
        pace(&tick);
    }
    waitpid(opener, NULL, 0);
    char buf[32] = {0};
    if (read(fds[0], buf, sizeof buf - 1) < 0) return 1;
    printf("%s %ld\n", buf, execs);
    return 0;
}
C
gcc -O2 -static -o "$work/load" "$work/load.c"
# The program spawned: as small as a static program gets, so the exec rate
# measures exec, not the program.
printf 'int main(void) { return 0; }\n' >"$work/tiny.c"
gcc -O2 -static -o "$work/tiny" "$work/tiny.c"

# bundle NAME ARGS...: a busybox root with the workload, run detached.
container() {
    local name=$1
    shift
    local b=$work/$name
    mkdir -p "$b/rootfs"/{bin,etc,proc,dev,sys,tmp}
    cp /bin/busybox "$b/rootfs/bin/"
    cp "$work/load" "$work/tiny" "$b/rootfs/bin/"
    echo x >"$b/rootfs/etc/load-target"
    (cd "$b" && runc spec)
    python3 - "$b/config.json" "$@" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = sys.argv[2:]
json.dump(c, open(p, "w"))
PY
    runc run -d --bundle "$b" "$name" </dev/null >/dev/null 2>&1
    ids+=("$name")
}

cpu_busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }

# One run of the workload in container NAME; prints "opens execs wall_s busy_ticks".
run_load() {
    local name=$1
    local b0 t0
    b0=$(cpu_busy)
    t0=$(date +%s.%N)
    local counts
    counts=$(runc exec "$name" /bin/load "$secs")
    echo "$counts $(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN {print a - b}') $(( $(cpu_busy) - b0 ))"
}

container "kiln-bench-base-$$" /bin/busybox sleep 100000
base=$(run_load "kiln-bench-base-$$")
read -r base_opens base_execs base_wall base_busy <<<"$base"

# kiln alone, for its overhead on the workload and the host.
name="kiln-bench-kiln-$$"
container "$name" /bin/busybox sleep 100000
"$kiln" trace exec,open --container "$name" -o json >/dev/null 2>"$work/alone.err" &
alone_pid=$!
pids+=("$alone_pid")
for _ in $(seq 100); do grep -q tracing "$work/alone.err" && break; sleep 0.1; done
alone=$(run_load "$name")
read -r alone_opens alone_execs alone_wall alone_busy <<<"$alone"
alone_cpu=$(awk '{print ($14 + $15) / 100}' /proc/"$alone_pid"/stat)
alone_rss=$(awk '/VmHWM/ {print $2 / 1024}' /proc/"$alone_pid"/status)
kill -INT "$alone_pid"
wait "$alone_pid" 2>/dev/null || true

# Traced: kiln and bpftrace on the same container's mount namespace.
name="kiln-bench-traced-$$"
container "$name" /bin/busybox sleep 100000
ns=$(stat -Lc %i /proc/"$(runc state "$name" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')"/ns/mnt)
/usr/bin/time -v "$kiln" trace exec,open --container "$name" -o json \
    >"$out/kiln-events.json" 2>"$out/kiln.time" &
kiln_pid=$!
pids+=("$kiln_pid")
bpftrace -e "
tracepoint:syscalls:sys_exit_openat, tracepoint:syscalls:sys_exit_open, tracepoint:syscalls:sys_exit_openat2
/curtask->nsproxy->mnt_ns->ns.inum == $ns/ { @opens = count(); }
tracepoint:syscalls:sys_exit_execve, tracepoint:syscalls:sys_exit_execveat
/curtask->nsproxy->mnt_ns->ns.inum == $ns/ { @execs = count(); }" >"$out/bpftrace.out" 2>&1 &
bt_pid=$!
pids+=("$bt_pid")
for _ in $(seq 100); do grep -q tracing "$out/kiln.time" 2>/dev/null && grep -q Attaching "$out/bpftrace.out" 2>/dev/null && break; sleep 0.1; done
b0=$(cpu_busy)
t0=$(date +%s.%N)
read -r opens execs < <(runc exec "$name" /bin/load "$secs")
traced_wall=$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN {print a - b}')
traced_busy=$(( $(cpu_busy) - b0 ))
sleep 1
# GNU time ignores SIGINT while it waits: signal kiln itself.
pkill -INT -P "$kiln_pid" || true
kill -INT "$bt_pid"
wait "$kiln_pid" 2>/dev/null || true
wait "$bt_pid" 2>/dev/null || true
read -r k_wall k_rss < <(time_summary "$out/kiln.time" | cut -d' ' -f1,2)
k_cpu=$(awk -F': ' '/User time/ {u=$2} /System time/ {s=$2} END {print u + s}' "$out/kiln.time")

python3 - "$out/kiln-events.json" "$out/bpftrace.out" "$out/kiln.time" <<PY | tee "$out/summary.txt"
import json, re, sys
events, bt, ktime = sys.argv[1:4]
k = {"exec": 0, "open": 0}
for line in open(events):
    e = json.loads(line)
    if e["gadget"] == "exec" and e["args"] == ["/bin/tiny"]:
        k["exec"] += 1
    if e["gadget"] == "open" and e["path"] == "/etc/load-target":
        k["open"] += 1
text = open(bt).read()
b = {m[0]: int(m[1]) for m in re.findall(r"@(\w+): (\d+)", text)}
lost = re.findall(r"(\d+) (\w+) events were lost", open(ktime).read())
lost = {g: int(n) for n, g in lost}
print(f"workload, {${secs}} s: untraced {${base_opens}} opens, {${base_execs}} execs; traced {${opens}} opens, {${execs}} execs")
print(f"{'':10}{'workload':>10}{'kiln':>10}{'lost':>8}{'bpftrace':>10}")
print(f"{'opens':10}{${opens}:>10}{k['open']:>10}{lost.get('open', 0):>8}{b.get('opens', 0):>10}   (bpftrace counts every open in the namespace)")
print(f"{'execs':10}{${execs}:>10}{k['exec']:>10}{lost.get('exec', 0):>8}{b.get('execs', 0):>10}")
ncpu = $(nproc)
base = (${base_opens} / ${base_wall}, ${base_execs} / ${base_wall}, ${base_busy} / ${base_wall})
alone = (${alone_opens} / ${alone_wall}, ${alone_execs} / ${alone_wall}, ${alone_busy} / ${alone_wall})
print(f"{'rates/s':22}{'opens':>10}{'execs':>10}{'host busy ticks':>17}")
print(f"{'untraced':22}{base[0]:>10.0f}{base[1]:>10.0f}{base[2]:>17.0f}")
print(f"{'kiln exec,open alone':22}{alone[0]:>10.0f}{alone[1]:>10.0f}{alone[2]:>17.0f}")
print(f"workload throughput under kiln: opens {100 * (alone[0] / base[0] - 1):+.1f}%, execs {100 * (alone[1] / base[1] - 1):+.1f}%")
print(f"kiln alone: {${alone_cpu}:.2f} s CPU in {${alone_wall}:.1f} s = {100 * ${alone_cpu} / ${alone_wall} / ncpu:.1f}% of the host's {ncpu} cores; peak RSS {${alone_rss}:.1f} MiB")
print(f"kiln beside bpftrace: {${k_cpu}:.2f} s CPU in {${traced_wall}:.1f} s; peak RSS ${k_rss} MiB (/usr/bin/time)")
PY

# Scrape time with 50 containers, each with counters.
for i in $(seq 50); do container "kiln-bench-scrape-$$-$i" /bin/busybox sleep 100000; done
"$kiln" trace exec,open --metrics 127.0.0.1:0 -o json >/dev/null 2>"$work/scrape.err" &
pids+=("$!")
for _ in $(seq 100); do grep -q "metrics at" "$work/scrape.err" && break; sleep 0.1; done
addr=$(grep -o 'http://[^/]*/metrics' "$work/scrape.err")
for i in $(seq 50); do runc exec "kiln-bench-scrape-$$-$i" /bin/busybox true; done
sleep 1
python3 - "$addr" <<'PY' | tee -a "$out/summary.txt"
import statistics, sys, time, urllib.request
url = sys.argv[1]
times, size = [], 0
for _ in range(20):
    t = time.perf_counter()
    body = urllib.request.urlopen(url).read()
    times.append((time.perf_counter() - t) * 1000)
    size = len(body)
series = body.decode().count("kiln_trace_events_total{")
print(f"scrape of {url}: {series} event series, {size} bytes; median {statistics.median(times):.2f} ms, max {max(times):.2f} ms (20 scrapes, 50 containers)")
PY
