#!/usr/bin/env bash
# Make the seed corpora in fuzz/seeds/TARGET from real files: layers made
# by GNU tar, an image made by umoci and saved by skopeo, this machine's
# ELF files, dpkg status and Python METADATA, real debs and a wheel from
# the package registries, advisories in the real schemas, and the
# challenges Debian's docker-registry sends. Small (well under 20 MB).
set -euo pipefail
cd "$(dirname "$0")"
S=seeds
rm -rf "$S"
for t in layer_tar image_json docker_archive layer_compression elf postings deb822 apk_db \
    python_metadata deb wheel osv debian_tracker nvd ignore_yaml versions registry_challenge; do
    mkdir -p "$S/$t"
done
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT

# Layers: dirs, a symlink, a hard link, whiteouts, a long name, a sparse file.
R=$W/root
mkdir -p "$R/etc" "$R/usr/bin" "$R/var/lib/dpkg" "$R/opt/$(printf 'n%.0s' $(seq 120))" "$R/gone"
cp /etc/os-release "$R/etc/os-release"
head -c 4096 /var/lib/dpkg/status >"$R/var/lib/dpkg/status"
cp /usr/bin/true "$R/usr/bin/true"
ln -s true "$R/usr/bin/also-true"
ln "$R/usr/bin/true" "$R/usr/bin/hard-true"
touch "$R/.wh.deleted" "$R/gone/.wh..wh..opq"
truncate -s 65536 "$R/sparse.img" && printf 'data' | dd of="$R/sparse.img" bs=1 seek=40000 conv=notrunc 2>/dev/null
tar --format=gnu --sparse -cf "$S/layer_tar/gnu.tar" -C "$R" .
tar --format=pax -cf "$S/layer_tar/pax.tar" -C "$R" etc usr/bin
tar --format=ustar -cf "$S/layer_tar/ustar.tar" -C "$R" etc
{ printf '\0'; gzip -c "$S/layer_tar/pax.tar"; } >"$S/layer_compression/gzip"
{ printf '\1'; zstd -q -c "$S/layer_tar/pax.tar"; } >"$S/layer_compression/zstd"

# An image made by umoci, then saved by skopeo as a docker archive.
umoci init --layout "$W/layout" >/dev/null
umoci new --image "$W/layout:t" >/dev/null
umoci insert --image "$W/layout:t" "$R/etc" /etc >/dev/null
umoci config --image "$W/layout:t" --config.entrypoint /usr/bin/true >/dev/null
blob() { cat "$W/layout/blobs/sha256/${1#sha256:}"; }
m=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"])' "$W/layout/index.json")
c=$(blob "$m" | python3 -c 'import json,sys; print(json.load(sys.stdin)["config"]["digest"])')
{ cat "$W/layout/index.json"; printf '\0'; blob "$m"; printf '\0'; blob "$c"; } >"$S/image_json/umoci"
skopeo copy -q "oci:$W/layout:t" "docker-archive:$W/saved.tar:app:t"
mkdir "$W/saved" && tar -xf "$W/saved.tar" -C "$W/saved"
cfg=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["Config"])' "$W/saved/manifest.json")
{ cat "$W/saved/manifest.json"; printf '\0'; cat "$W/saved/$cfg"; } >"$S/docker_archive/skopeo"

# ELF files of this machine.
cp /usr/bin/true "$S/elf/true"
cp "$(readlink -f /lib/x86_64-linux-gnu/libz.so.1)" "$S/elf/libz.so"
head -c 65536 /usr/lib/x86_64-linux-gnu/libc.so.6 >"$S/elf/libc-head"
if command -v aarch64-linux-gnu-gcc >/dev/null; then
    printf 'int f(int x) { return x * 3 + 1; }\nconst char v[] = "1.2.3";\n' >"$W/a.c"
    aarch64-linux-gnu-gcc -O2 -shared -fPIC -o "$S/elf/aarch64.so" "$W/a.c"
fi

printf '' >"$S/postings/empty"
printf '\x01\x81\x01\x7f' >"$S/postings/small"

head -c 16384 /var/lib/dpkg/status >"$S/deb822/status"
printf 'P:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\no:musl\nF:lib\nR:ld-musl-x86_64.so.1\nZ:Q1abc=\n\nP:busybox\nV:1.36.1-r5\nA:x86_64\n' >"$S/apk_db/installed"
mapfile -t metas < <(find ../.venv/lib -name METADATA -size -20k 2>/dev/null | sort | head -5 || true)
for f in "${metas[@]}"; do
    cp "$f" "$S/python_metadata/$(basename "$(dirname "$f")")"
done

# A real deb and a real wheel from the registries.
(cd "$W" && apt-get download -q libkeyutils1 >/dev/null 2>&1) && cp "$W"/libkeyutils1_*.deb "$S/deb/"
python3 -m pip download -q --no-deps --only-binary=:all: six==1.16.0 -d "$W/wheel" >/dev/null 2>&1 &&
    cp "$W"/wheel/six-*.whl "$S/wheel/"

cat >"$S/osv/debian.json" <<'JSON'
{"id":"DEBIAN-CVE-2023-0286","modified":"2024-01-01T00:00:00Z","aliases":["CVE-2023-0286"],
 "affected":[{"package":{"ecosystem":"Debian:12","name":"openssl"},
  "ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"3.0.8-1"}]}],
  "versions":["3.0.7-1"],"ecosystem_specific":{"urgency":"high"}}]}
JSON
cat >"$S/osv/pypi.json" <<'JSON'
{"id":"PYSEC-2023-0001","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"PyPI","name":"cryptography"},
 "ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"1.8"},{"last_affected":"39.0.0"}]},
           {"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.2.3"}]}]}]}
JSON
cat >"$S/debian_tracker/tracker.json" <<'JSON'
{"openssl":{"CVE-2023-0286":{"description":"X.400 address type confusion","scope":"remote",
 "releases":{"bookworm":{"status":"resolved","fixed_version":"3.0.8-1","urgency":"high","repositories":{"bookworm":"3.0.11-1~deb12u2"}}}}}}
JSON
cat >"$S/nvd/cve.json" <<'JSON'
{"format":"NVD_CVE","version":"2.0","vulnerabilities":[{"cve":{"id":"CVE-2023-0286","lastModified":"2024-02-04T09:15:09.113",
 "descriptions":[{"lang":"en","value":"type confusion"}],
 "metrics":{"cvssMetricV31":[{"cvssData":{"version":"3.1","vectorString":"CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:H","baseScore":7.4}}]},
 "configurations":[{"nodes":[{"operator":"OR","negate":false,"cpeMatch":[{"vulnerable":true,"criteria":"cpe:2.3:a:openssl:openssl:*:*:*:*:*:*:*:*","versionStartIncluding":"3.0.0","versionEndExcluding":"3.0.8"}]}]}]}}]}
JSON
cat >"$S/ignore_yaml/kilnignore.yaml" <<'YAML'
ignore:
  - vulnerability: CVE-2023-0286
    package: openssl
    reason: not reachable
    expires: 2027-01-01
  - vulnerability: GHSA-xxxx-yyyy-zzzz
YAML

dpkg-query -W -f '${Version}\n' 2>/dev/null | sed -n 1,30p | awk '{ a[NR] = $0 } END { for (i = 1; i + 2 <= NR; i += 3) { f = sprintf("'"$S"'/versions/v%02d", i); printf "%s\n%s\n%s", a[i], a[i+1], a[i+2] > f } }'
printf '1.0.0-rc.1\n1.0.0\n1.0.0+build.5' >"$S/versions/semver"
printf '1.0.post1\n1.0a1\n1.0.dev0' >"$S/versions/pep440"

printf 'Bearer realm="http://127.0.0.1:5000/token",service="registry",scope="repository:team/app:pull"' >"$S/registry_challenge/bearer"
printf 'Basic realm="basic-realm"' >"$S/registry_challenge/basic"
printf 'Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push",error="insufficient_scope"' >"$S/registry_challenge/scope"
du -sh "$S"
