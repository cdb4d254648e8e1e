# Shared helpers for bench/*.sh: timing with GNU time, and finding peers.
# shellcheck shell=bash

# time_summary TIME_FILE: "wall_seconds peak_rss_mib exit_status" from the
# report of /usr/bin/time -v.
time_summary() {
    awk -F': ' '
        /Elapsed \(wall clock\)/ {
            n = split($2, t, ":"); s = 0
            for (i = 1; i <= n; i++) s = s * 60 + t[i]
            wall = s
        }
        /Maximum resident set size/ { rss = $2 / 1024 }
        /Exit status/ { code = $2 }
        END { printf "%.3f %.1f %s\n", wall, rss, code }' "$1"
}

# measure OUT_PREFIX CMD...: run CMD with /usr/bin/time -v; stdout goes to
# OUT_PREFIX.out, and "wall_seconds peak_rss_mib" is printed.
measure() {
    local prefix=$1
    shift
    /usr/bin/time -v "$@" >"$prefix.out" 2>"$prefix.time" || {
        echo "bench: command failed: $*" >&2
        tail -5 "$prefix.time" >&2
        return 1
    }
    time_summary "$prefix.time" | cut -d' ' -f1,2
}

# measure_any OUT_PREFIX CMD...: as measure, but a failing CMD (a failed
# verification, say) is still measured; its exit status is appended.
measure_any() {
    local prefix=$1
    shift
    /usr/bin/time -v "$@" >"$prefix.out" 2>"$prefix.time" || true
    time_summary "$prefix.time"
}

# best_of N OUT_PREFIX CMD...: the run with the lowest wall time of N.
best_of() {
    local n=$1 prefix=$2
    shift 2
    local best="" line
    for _ in $(seq "$n"); do
        line=$(measure "$prefix" "$@")
        if [ -z "$best" ] || awk -v a="$line" -v b="$best" 'BEGIN { split(a, x, " "); split(b, y, " "); exit !(x[1] < y[1]) }'; then
            best=$line
        fi
    done
    echo "$best"
}

# find_syft: path to syft, installing the PyPI wheel into .venv if needed.
find_syft() {
    if [ -x .venv/bin/syft ]; then echo .venv/bin/syft; return; fi
    if command -v syft >/dev/null 2>&1; then command -v syft; return; fi
    python3 -m venv .venv && .venv/bin/pip install -q -r bench/requirements.txt
    echo .venv/bin/syft
}

# pg_start DIR: a throwaway PostgreSQL (Debian's initdb and pg_ctl) in DIR
# on a free loopback port; sets PG_PORT and PG_BIN. As root it runs as the
# postgres user. Stop it with pg_stop DIR.
pg_start() {
    local dir=$1 as=""
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    rm -rf "$dir" && mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then chown postgres: "$dir"; as="runuser -u postgres --"; fi
    $as "$PG_BIN/initdb" -D "$dir/data" -U kiln --auth=trust -E UTF8 >/dev/null
    $as "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/log" -w start \
        -o "-p $PG_PORT -k $dir -c listen_addresses=127.0.0.1 -c max_wal_size=4GB -c shared_buffers=1GB" >/dev/null
    export PG_BIN PG_PORT
}

# pg_resume DIR: start the PostgreSQL that pg_start made in DIR again, with
# its databases, on a new free port.
pg_resume() {
    local dir=$1 as=""
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    if [ "$(id -u)" -eq 0 ]; then as="runuser -u postgres --"; fi
    $as "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/log" -w start \
        -o "-p $PG_PORT -k $dir -c listen_addresses=127.0.0.1 -c max_wal_size=4GB -c shared_buffers=1GB" >/dev/null
    export PG_BIN PG_PORT
}

# pg_stop DIR
pg_stop() {
    local as=""
    if [ "$(id -u)" -eq 0 ]; then as="runuser -u postgres --"; fi
    $as "$PG_BIN/pg_ctl" -D "$1/data" -m fast -w stop >/dev/null 2>&1 || true
}

# pg_createdb NAME: its URL.
pg_createdb() {
    "$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U kiln -d postgres -c "CREATE DATABASE $1" >/dev/null
    echo "postgres://kiln@127.0.0.1:$PG_PORT/$1"
}
