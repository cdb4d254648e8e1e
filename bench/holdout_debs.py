"""The version-holdout DB inputs: every corpus .deb except the installed
version of each package the corpus has in several versions.

usage: holdout_debs.py CORPUS_DIR DEBS_DIR HELD_FILE
Links the kept .debs into DEBS_DIR and writes the held-out package names,
one per line, to HELD_FILE (used by bench/holdout.sh and bench/functions.sh).
"""
import collections
import os
import sys

corpus, debs, held_file = sys.argv[1:4]
truth = dict(l.rstrip("\n").split("\t")[:2] for l in open(f"{corpus}/images/bookworm-curl.packages.tsv"))
rows = [l.rstrip("\n").split("\t") for l in open(f"{corpus}/debian-bookworm/MANIFEST.tsv")][1:]
count = collections.Counter(r[1] for r in rows)
os.makedirs(debs, exist_ok=True)
held = []
for r in rows:
    if count[r[1]] > 1 and truth.get(r[1]) == r[2]:
        held.append(r[1])
    else:
        os.symlink(os.path.abspath(f"{corpus}/debian-bookworm/{r[0]}"), f"{debs}/{r[0]}")
open(held_file, "w").write("\n".join(held) + "\n")
