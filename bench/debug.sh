#!/usr/bin/env bash
# kiln debug against runc exec, same container, same run: a distroless-style
# nginx (Debian's .deb, its libraries only, uid 65532, read-only root) under
# `runc run -d`. Times `kiln debug ID -- true` and `runc exec ID
# /usr/sbin/nginx -v` from start to exit, RUNS times each, interleaved, and
# prints median and p95. Then 1 GiB through `kiln port-forward` against the
# same download straight over loopback inside the container's network
# namespace (nsenter). Needs root.
#
#   bench/debug.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

runs=${1:-50}
[ "$(id -u)" -eq 0 ] || { echo "bench: needs root (runc, namespaces)" >&2; exit 2; }
for t in runc busybox dpkg-deb curl nsenter; do
    command -v "$t" >/dev/null || { echo "bench: $t is not installed (scripts/setup.sh)" >&2; exit 2; }
done
cargo build --release -q
kiln=$PWD/target/release/kiln
out=bench/out/debug
mkdir -p "$out"

work=$(mktemp -d)
id="kiln-bench-$$"
pf_pid=""
cleanup() {
    [ -n "$pf_pid" ] && kill "$pf_pid" 2>/dev/null || true
    runc delete --force "$id" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

# The target: nginx from its .deb plus the host's copies of its libraries.
(cd "$work" && apt-get download -q nginx >/dev/null)
dpkg-deb -x "$work"/nginx_*.deb "$work/x"
root=$work/rootfs
mkdir -p "$root"/usr/{lib,lib64,bin,sbin} "$root"/{etc/nginx,srv/www,proc,dev,sys,tmp}
for l in lib lib64 bin sbin; do ln -s "usr/$l" "$root/$l"; done
for f in $(ldd "$work/x/usr/sbin/nginx" | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$f")"
    cp -L "$f" "$root$f"
done
cp "$work/x/usr/sbin/nginx" "$root/usr/sbin/nginx"
chmod 1777 "$root/tmp"
echo '<h1>bench</h1>' >"$root/srv/www/index.html"
truncate -s 1G "$root/srv/www/big.bin"
cat >"$root/etc/nginx/nginx.conf" <<'CONF'
worker_processes 2;
pid /tmp/nginx.pid;
error_log stderr;
events { worker_connections 256; }
http {
  access_log off; sendfile on;
  client_body_temp_path /tmp/body; proxy_temp_path /tmp/proxy;
  fastcgi_temp_path /tmp/fastcgi; uwsgi_temp_path /tmp/uwsgi; scgi_temp_path /tmp/scgi;
  server { listen 127.0.0.1:8080; root /srv/www; }
}
CONF
mkdir -p "$work/bundle"
(cd "$work/bundle" && runc spec)
python3 - "$work/bundle/config.json" "$root" <<'PY'
import json, sys
p, root = sys.argv[1], sys.argv[2]
c = json.load(open(p))
c["root"] = {"path": root, "readonly": True}
c["process"]["terminal"] = False
c["process"]["args"] = ["/usr/sbin/nginx", "-g", "daemon off;", "-c", "/etc/nginx/nginx.conf"]
c["process"]["user"] = {"uid": 65532, "gid": 65532}
c["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                    "options": ["nosuid", "nodev", "size=64m"]})
json.dump(c, open(p, "w"))
PY
runc run -d --bundle "$work/bundle" "$id" </dev/null >"$work/run.log" 2>&1
pid=$(runc state "$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
for _ in $(seq 100); do
    nsenter --net=/proc/"$pid"/ns/net curl -sf http://127.0.0.1:8080/ >/dev/null && break
    sleep 0.1
done
"$kiln" debug "$id" -- true # the toolbox cache is made once, not timed

python3 - "$runs" "$kiln" "$id" >"$out/latency.txt" <<'PY'
import statistics, subprocess, sys, time
runs, kiln, cid = int(sys.argv[1]), sys.argv[2], sys.argv[3]
cmds = {
    "kiln debug ID -- true": [kiln, "debug", cid, "--", "true"],
    "runc exec ID nginx -v": ["runc", "exec", cid, "/usr/sbin/nginx", "-v"],
}
times = {k: [] for k in cmds}
for _ in range(runs):
    for name, cmd in cmds.items():
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times[name].append((time.perf_counter() - t) * 1000)
for name, ts in times.items():
    ts.sort()
    p95 = ts[min(len(ts) - 1, int(round(0.95 * len(ts))) - 1)]
    print(f"{name:24s} median {statistics.median(ts):6.1f} ms   p95 {p95:6.1f} ms   ({len(ts)} runs)")
k = statistics.median(times["kiln debug ID -- true"])
r = statistics.median(times["runc exec ID nginx -v"])
print(f"{'ratio (kiln / runc)':24s} {k / r:.2f}x")
PY
cat "$out/latency.txt"
read -r d_wall d_rss < <(measure "$out/kiln-debug-true" "$kiln" debug "$id" -- true)
echo "kiln debug -- true, one run under /usr/bin/time: ${d_wall}s wall, ${d_rss} MiB peak RSS"

# 1 GiB through port-forward against the same download over loopback.
"$kiln" port-forward "$id" :8080 2>"$work/pf.log" &
pf_pid=$!
for _ in $(seq 100); do grep -q Forwarding "$work/pf.log" 2>/dev/null && break; sleep 0.05; done
local_addr=$(awk '/Forwarding/ {print $3}' "$work/pf.log")
# Three rounds, alternating; the best of each (the first warms caches).
direct="" forwarded=""
for _ in 1 2 3; do
    direct+=" $(nsenter --net=/proc/"$pid"/ns/net curl -s -o /dev/null -w '%{speed_download}' http://127.0.0.1:8080/big.bin)"
    forwarded+=" $(curl -s -o /dev/null -w '%{speed_download}' "http://$local_addr/big.bin")"
done
python3 - "$direct" "$forwarded" <<'PY' | tee "$out/port-forward.txt"
import sys
d = [float(x) / 2**20 for x in sys.argv[1].split()]
f = [float(x) / 2**20 for x in sys.argv[2].split()]
print(f"1 GiB direct over loopback (nsenter)  best {max(d):6.0f} MiB/s  runs {' '.join(f'{x:.0f}' for x in d)}")
print(f"1 GiB through kiln port-forward       best {max(f):6.0f} MiB/s  runs {' '.join(f'{x:.0f}' for x in f)}  ({max(f) / max(d):.2f} of direct)")
PY
