#!/usr/bin/env python3
"""Score vendored-component detection against the corpus wheels' truth.

For each wheel: install it (unzip into site-packages) once with its
*.dist-info and once without, scan with kiln (and syft), and compare the
components reported per file with truth/<wheel-stem>.json. cve-bin-tool's
checker classes are driven directly on the strings of every file (its CVE
database cannot be downloaded here, and the checkers do not need it).

Scoring, per wheel, over truth components whose version is known:
  project  = a component of the right project is reported for that file
  exact    = ... with exactly the truth version
  wrong    = reported (file, project) that truth lists at another version
  phantom  = reported (file, project) that truth does not list at all
  precision = (reported - wrong - phantom) / reported
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile


def install(wheel, root, keep_dist_info):
    site = os.path.join(root, "site-packages")
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(site)
    with zipfile.ZipFile(wheel) as z:
        for m in z.namelist():
            top = m.split("/", 1)[0]
            if not keep_dist_info and top.endswith(".dist-info"):
                continue
            z.extract(m, site)
    return site


def kiln_scan(kiln, db, root):
    t = time.monotonic()
    out = subprocess.run(
        [kiln, "scan", "-q", "--db", db, f"dir:{root}", "-o", "json"],
        check=True, capture_output=True, text=True,
    ).stdout
    elapsed = time.monotonic() - t
    doc = json.loads(out)
    comps, python = [], []
    for p in doc["packages"]:
        loc = p["locations"][0]["path"] if p.get("locations") else ""
        rel = loc.split("/site-packages/", 1)[-1]
        if p["type"] == "generic":
            comps.append((rel, p["name"], p.get("version") or ""))
        elif p["type"] == "python":
            python.append((p["name"], p["version"]))
    return comps, python, elapsed


def syft_scan(syft, root):
    out = subprocess.run(
        [syft, "scan", "-q", f"dir:{root}", "-o", "json"],
        check=True, capture_output=True, text=True,
    ).stdout
    doc = json.loads(out)
    comps, python = [], []
    for a in doc.get("artifacts", []):
        if a.get("type") == "python":
            python.append((a["name"].lower(), a["version"]))
            continue
        locs = a.get("locations") or [{}]
        rel = locs[0].get("path", "").split("/site-packages/", 1)[-1]
        comps.append((rel, a["name"].lower(), a.get("version") or ""))
    return comps, python


# cve-bin-tool checker names that differ from the canonical project names.
CBT_NAMES = {
    "libjpeg_turbo": "libjpeg-turbo",
    "lcms": "lcms2",
    "lcms2": "lcms2",
    "kerberos": "mit-krb5",
    "mit_kerberos": "mit-krb5",
    "mit_kerberos_5": "mit-krb5",
    "cyrus_sasl": "cyrus-sasl",
    "sasl": "cyrus-sasl",
    "openjpeg": "openjpeg",
    "libtiff": "libtiff",
    "postgresql": "postgresql",
    "libpq": "postgresql",
    "xz": "xz",
    "liblzma": "xz",
    "bzip2": "bzip2",
    "libbzip2": "bzip2",
}


def cbt_scan(root):
    from cve_bin_tool.checkers import BUILTIN_CHECKERS
    from cve_bin_tool.strings import parse_strings

    checkers = {}
    for name, ep in BUILTIN_CHECKERS.items():
        try:
            checkers[name] = ep.load() if hasattr(ep, "load") else ep
        except Exception as e:  # e.g. sqlite's checker wants its own DB
            print(f"cve-bin-tool checker {name} not loadable: {e}", file=sys.stderr)
    print(f"cve-bin-tool: {len(checkers)} checkers loaded", file=sys.stderr)
    comps = []
    for dirpath, _, names in os.walk(root):
        for n in names:
            path = os.path.join(dirpath, n)
            with open(path, "rb") as f:
                if f.read(4) != b"\x7fELF":
                    continue
            lines = parse_strings(path)
            rel = path.split("/site-packages/", 1)[-1]
            for name, cls in checkers.items():
                try:
                    res = cls().get_version(lines, path)
                except Exception:  # a checker's own bug is not a finding
                    continue
                results = [res] if "is_or_contains" in res else res
                for r in results:
                    if "is_or_contains" not in r:
                        continue
                    v = r.get("version", "UNKNOWN")
                    # cve-bin-tool itself drops version-less detections.
                    if v == "UNKNOWN":
                        continue
                    proj = CBT_NAMES.get(name, name.replace("_", "-"))
                    comps.append((rel, proj, v))
    return comps


def score(truth, comps, by_path=True):
    known = [c for c in truth if c["version"] != "unknown"]
    def same(r, c):
        return r[1] == c["project"] and (not by_path or r[0] == c["path"])
    proj = sum(1 for c in known if any(same(r, c) for r in comps))
    exact = sum(1 for c in known if any(same(r, c) and r[2] == c["version"] for r in comps))
    wrong = phantom = 0
    seen = set()
    for r in comps:
        if r in seen:
            continue
        seen.add(r)
        listed = [c for c in truth if same(r, c)]
        if not listed:
            phantom += 1
        elif r[2] and all(c["version"] != "unknown" and c["version"] != r[2] for c in listed):
            wrong += 1
    reported = len(seen)
    prec = (reported - wrong - phantom) / reported if reported else 1.0
    return dict(n=len(known), project=proj, exact=exact, reported=reported,
                wrong=wrong, phantom=phantom, precision=prec)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--truth", required=True)
    ap.add_argument("--wheels", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--syft")
    ap.add_argument("--cve-bin-tool", action="store_true")
    ap.add_argument("--json", help="write all scores here")
    ap.add_argument("--partial", action="store_true",
                    help="truth covers only some files: score only components in those files")
    a = ap.parse_args()

    rows, totals = [], {}
    for tf in sorted(os.listdir(a.truth)):
        truth = json.load(open(os.path.join(a.truth, tf)))
        wheel = os.path.join(a.wheels, truth["wheel"])
        stem = tf[:-5]
        comps_truth = truth["components"]
        cbt = None
        for mode in ("dist-info", "no-dist-info"):
            root = os.path.join(a.work, stem[:40], mode)
            install(wheel, root, mode == "dist-info")
            kc, kpy, secs = kiln_scan(a.kiln, a.db, root)
            if a.partial:
                listed = {c["path"] for c in comps_truth}
                kc = [r for r in kc if r[0] in listed]
            py_ok = any(n.replace("_", "-") == truth["python_package"] and v == truth["python_version"]
                        for n, v in kpy)
            row = {"wheel": stem.split("-cp")[0], "mode": mode, "kiln": score(comps_truth, kc),
                   "kiln_seconds": secs, "kiln_python_package": py_ok}
            if a.syft:
                sc, spy = syft_scan(a.syft, root)
                row["syft"] = score(comps_truth, sc, by_path=False)
                row["syft_python_package"] = any(
                    n.replace("_", "-") == truth["python_package"] and v == truth["python_version"]
                    for n, v in spy)
            if a.cve_bin_tool:
                if cbt is None:
                    cbt = score(comps_truth, cbt_scan(root))
                row["cve-bin-tool"] = cbt
            rows.append(row)
            for tool in ("kiln", "syft", "cve-bin-tool"):
                if tool in row:
                    t = totals.setdefault((mode, tool), dict(n=0, project=0, exact=0, reported=0, wrong=0, phantom=0))
                    for k in t:
                        t[k] += row[tool][k]

    tools = [t for t in ("kiln", "syft", "cve-bin-tool") if t in rows[0]]
    head = "| wheel | dist-info | truth |" + "".join(
        f" {t} project | {t} exact | {t} precision |" for t in tools) + " kiln s | python pkg (kiln) |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for r in rows:
        cells = [r["wheel"], "kept" if r["mode"] == "dist-info" else "deleted", str(r["kiln"]["n"])]
        for t in tools:
            s = r[t]
            cells += [f"{s['project']}/{s['n']}", f"{s['exact']}/{s['n']}",
                      f"{s['precision']:.2f} ({s['reported'] - s['wrong'] - s['phantom']}/{s['reported']})"]
        cells += [f"{r['kiln_seconds']:.2f}", "yes" if r["kiln_python_package"] else "no"]
        print("| " + " | ".join(cells) + " |")
    print()
    for (mode, tool), t in sorted(totals.items()):
        rep = t["reported"]
        prec = (rep - t["wrong"] - t["phantom"]) / rep if rep else 1.0
        print(f"total {tool:13} dist-info {'kept' if mode == 'dist-info' else 'deleted':8}: "
              f"project {t['project']}/{t['n']} ({100 * t['project'] / t['n']:.1f}%), "
              f"exact {t['exact']}/{t['n']} ({100 * t['exact'] / t['n']:.1f}%), "
              f"wrong {t['wrong']}, phantom {t['phantom']} of {rep} reported "
              f"({100 * (t['wrong'] + t['phantom']) / rep if rep else 0:.1f}%), precision {prec:.3f}")
    if a.json:
        json.dump({"rows": rows}, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    sys.exit(main())
