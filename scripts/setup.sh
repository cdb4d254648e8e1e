#!/usr/bin/env bash
# Install everything kiln's build, tests and benchmarks need on Debian 12:
# system packages from apt, Rust (if absent), and a Python virtualenv in
# .venv with the official SBOM validators and the peers bench/ runs.
# Safe to run again; it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

$sudo apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    build-essential pkg-config ca-certificates curl git \
    dpkg-dev tar gzip zstd time cpio e2fsprogs libisal-dev isal linux-perf sqlite3 golang-go \
    umoci skopeo runc gcc-aarch64-linux-gnu libc6-dev-arm64-cross \
    docker-registry apache2-utils openssl busybox-static mmdebstrap \
    clang libbpf-dev bpftool libelf-dev zlib1g-dev bpftrace \
    python3 python3-venv python3-pip libicu72 \
    rpm db5.3-util ruby-rack ruby-bundler composer libcommons-lang3-java libguava-java >/dev/null

# Servers the tests start themselves on loopback and stop at the end:
# Prometheus scrapes kiln trace's metrics, PostgreSQL holds the shared
# signature DB. Keep their packages' services from starting at install.
install_without_service() {
    guard=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
        $sudo chmod +x /usr/sbin/policy-rc.d
        guard=1
    fi
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
    if [ -n "$guard" ]; then $sudo rm -f /usr/sbin/policy-rc.d; fi
}
if ! command -v prometheus >/dev/null 2>&1; then
    install_without_service prometheus
fi
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    install_without_service postgresql
fi
# QEMU 10 for kiln-vm (its NBD client tools drive the disk server; its
# system emulator runs and migrates microVMs). It comes from
# bookworm-backports, on the mirror this machine already uses for bookworm:
# bookworm's own 7.2 conflicts with the qemu-utils 10 some machines ship.
if ! command -v qemu-system-x86_64 >/dev/null 2>&1 || ! command -v qemu-io >/dev/null 2>&1; then
    if ! apt-get indextargets --format '$(RELEASE)' | grep -qx bookworm-backports; then
        mirror=$(apt-get indextargets --format '$(SITE) $(RELEASE)' | awk '$2 == "bookworm" { print $1; exit }')
        if [ -z "$mirror" ]; then
            echo "setup: apt has no bookworm source to take bookworm-backports from; QEMU 10 is needed for kiln-vm's tests" >&2
            exit 1
        fi
        printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$mirror" |
            $sudo tee /etc/apt/sources.list.d/kiln-backports.sources >/dev/null
        $sudo apt-get update -qq
    fi
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -t bookworm-backports qemu-system-x86 qemu-utils >/dev/null
fi

# Microsoft's SARIF validator (npm). It runs a bundled .NET binary whose
# postinstall chmod newer npm skips unless allowed, so do it here.
if ! command -v npm >/dev/null 2>&1; then
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
if ! command -v sarif-multitool >/dev/null 2>&1; then
    $sudo npm install -g --silent @microsoft/sarif-multitool >/dev/null
fi
tool=$(find "$(npm root -g)/@microsoft" -name Sarif.Multitool -type f 2>/dev/null | head -n 1)
if [ -n "$tool" ]; then $sudo chmod u+x "$tool"; fi

if ! command -v cargo >/dev/null 2>&1; then
    # Debian 12's own cargo is older than kiln needs; rustup brings a current one.
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi

# cargo-auditable builds the Rust test binaries whose audit data kiln reads.
if ! command -v cargo-auditable >/dev/null 2>&1; then
    cargo install --locked -q cargo-auditable
fi

if [ ! -x .venv/bin/python3 ]; then
    python3 -m venv .venv
fi
.venv/bin/python3 -m pip install -q --upgrade pip >/dev/null
.venv/bin/python3 -m pip install -q -r tests/validators/requirements.txt -r bench/requirements.txt
echo "kiln: set-up complete" >&2
