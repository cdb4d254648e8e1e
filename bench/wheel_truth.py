#!/usr/bin/env python3
"""Ground truth for wheels outside the corpus: call each vendored library's
own version function through ctypes (never read strings), the way the
corpus truth was made. Prints a truth JSON in the corpus format.

usage: wheel_truth.py WHEEL
"""

import ctypes
import json
import os
import re
import sys
import tempfile
import zipfile


def s(fn):
    fn.restype = ctypes.c_char_p
    return fn().decode()


def webp(name):
    def get(lib):
        v = getattr(lib, name)()
        return f"{v >> 16}.{(v >> 8) & 0xff}.{v & 0xff}"
    return get


def freetype(lib):
    handle = ctypes.c_void_p()
    if lib.FT_Init_FreeType(ctypes.byref(handle)) != 0:
        return None
    a, b, c = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
    lib.FT_Library_Version(handle, ctypes.byref(a), ctypes.byref(b), ctypes.byref(c))
    return f"{a.value}.{b.value}.{c.value}"


def lcms(lib):
    v = lib.cmsGetEncodedCMMversion()
    return f"{v // 1000}.{(v % 1000) // 10}"


def brotli(lib):
    v = lib.BrotliDecoderVersion()
    return f"{v >> 24}.{(v >> 12) & 0xfff}.{v & 0xfff}"


def pq(lib):
    v = lib.PQlibVersion()
    return f"{v // 10000}.{v % 10000}" if v >= 100000 else f"{v // 10000}.{(v // 100) % 100}.{v % 100}"


def openssl(lib):
    fn = lib.OpenSSL_version
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_char_p
    return re.match(r"OpenSSL (\S+)", fn(0).decode()).group(1)


def tiff(lib):
    return re.search(r"Version (\S+)", s(lib.TIFFGetVersion)).group(1)


def xml2(lib):
    v = ctypes.c_char_p.in_dll(lib, "xmlParserVersion").value.decode()
    n = int(v)
    return f"{n // 10000}.{(n // 100) % 100}.{n % 100}"


# library base name -> (project, reader)
READERS = {
    "libpng16": ("libpng", lambda l: s(l.png_get_libpng_ver)),
    "liblzma": ("xz", lambda l: s(l.lzma_version_string)),
    "libtiff": ("libtiff", tiff),
    "libopenjp2": ("openjpeg", lambda l: s(l.opj_version)),
    "libwebp": ("libwebp", webp("WebPGetDecoderVersion")),
    "libwebpdemux": ("libwebp", webp("WebPGetDemuxVersion")),
    "libwebpmux": ("libwebp", webp("WebPGetMuxVersion")),
    "libfreetype": ("freetype", freetype),
    "libharfbuzz": ("harfbuzz", lambda l: s(l.hb_version_string)),
    "liblcms2": ("lcms2", lcms),
    "libbrotlidec": ("brotli", brotli),
    "libcrypto": ("openssl", openssl),
    "libpq": ("postgresql", pq),
    "libz": ("zlib", lambda l: s(l.zlibVersion)),
    "libxml2": ("libxml2", xml2),
    "libavif": ("libavif", lambda l: s(l.avifVersion)),
}


def base(name):
    b = name.split(".so", 1)[0]
    return re.sub(r"-[0-9a-f]{8}$", "", b)


def main():
    wheel = sys.argv[1]
    tmp = tempfile.mkdtemp()
    zipfile.ZipFile(wheel).extractall(tmp)
    comps = []
    pending = []
    for dirpath, _, names in os.walk(tmp):
        if dirpath.endswith(".libs"):
            pending += [os.path.join(dirpath, n) for n in sorted(names)]
    # Libraries need their siblings loaded first; retry until none loads.
    for _ in range(len(pending)):
        failed = []
        for path in pending:
            try:
                lib = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
            except OSError:
                failed.append(path)
                continue
            entry = READERS.get(base(os.path.basename(path)))
            if not entry:
                continue
            try:
                version = entry[1](lib)
            except (AttributeError, ValueError) as e:
                print(f"{path}: {e}", file=sys.stderr)
                continue
            if version:
                comps.append({"path": os.path.relpath(path, tmp), "project": entry[0],
                              "version": version, "how": "ctypes version function",
                              "confidence": "runtime-api"})
        if len(failed) == len(pending):
            break
        pending = failed
    json.dump({"wheel": os.path.basename(wheel), "components": comps,
               "python_package": "", "python_version": ""}, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
