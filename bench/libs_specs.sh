#!/usr/bin/env bash
# Every package of the `libs` section in the machine's apt indexes
# (native architecture and all), as name:arch, one per line: what
# `kiln db build --apt-section libs` selects.
set -euo pipefail
native=$(dpkg --print-architecture)
apt-get indextargets --format '$(FILENAME)' 'Created-By: Packages' | while read -r f; do
    /usr/lib/apt/apt-helper cat-file "$f"
done | awk -v native="$native" '
    /^Package:/ {p=$2} /^Architecture:/ {a=$2} /^Section:/ {s=$2}
    /^$/ { n=split(s, parts, "/"); if (parts[n]=="libs" && (a==native || a=="all")) print p ":" a; p=a=s="" }
' | sort -u
