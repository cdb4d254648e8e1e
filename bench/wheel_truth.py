#!/usr/bin/env python3
"""Ground truth for vendored components of a wheel, made without kiln and
without reading strings the way kiln does:

1. every ELF file of the wheel is loaded with ctypes (siblings first) and
   each version function it exports is called (`png_get_libpng_ver`,
   `zmq_version`, `git_libgit2_version`, ...), whatever the file is named:
   a library linked statically into another still answers through its
   exported API;
2. with --venv, the wheel is installed into a fresh virtualenv (with its
   dependencies from PyPI) and the package's own introspection is asked
   (`lxml.etree.LIBXML_VERSION`, `zstandard.ZSTD_VERSION`, `PIL.features`,
   cryptography's OpenSSL version, `pymupdf.version`);
3. components present by the upstream build recipe but without any
   version API are listed with version "unknown" (not scored; they keep a
   correct detection from counting as a phantom). Each row says `how`.

usage: wheel_truth.py WHEEL [--venv DIR] > truth.json
"""

import argparse
import ctypes
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile


def cstr(lib, name, *args, argtypes=None):
    fn = getattr(lib, name)
    fn.restype = ctypes.c_char_p
    if argtypes:
        fn.argtypes = argtypes
    v = fn(*args)
    return v.decode() if v else None


def ints(lib, name, n=3):
    fn = getattr(lib, name)
    vals = [ctypes.c_int() for _ in range(n)]
    fn.restype = None
    fn(*[ctypes.byref(v) for v in vals])
    return ".".join(str(v.value) for v in vals)


def packed(lib, name, shifts):
    v = getattr(lib, name)()
    parts = []
    for s, mask in shifts:
        parts.append(str((v >> s) & mask))
    return ".".join(parts)


def freetype(lib):
    handle = ctypes.c_void_p()
    if lib.FT_Init_FreeType(ctypes.byref(handle)) != 0:
        return None
    a, b, c = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
    lib.FT_Library_Version(handle, ctypes.byref(a), ctypes.byref(b), ctypes.byref(c))
    return f"{a.value}.{b.value}.{c.value}"


def lcms(lib):
    v = lib.cmsGetEncodedCMMversion()
    # Upstream encodes 2.16 as 2160; a fork that answers otherwise (MuPDF's
    # lcms2mt says 14) gives no upstream version.
    return f"{v // 1000}.{(v % 1000) // 10}" if 2000 <= v < 3000 else None


def pq(lib):
    v = lib.PQlibVersion()
    return f"{v // 10000}.{v % 10000}" if v >= 100000 else f"{v // 10000}.{(v // 100) % 100}.{v % 100}"


def openssl(lib):
    s = cstr(lib, "OpenSSL_version", 0, argtypes=[ctypes.c_int])
    return re.match(r"OpenSSL (\d+\.\d+\.\d+[a-z]?)", s).group(1)


def openssl_old(lib):
    s = cstr(lib, "SSLeay_version", 0, argtypes=[ctypes.c_int])
    return re.match(r"OpenSSL (\d+\.\d+\.\d+[a-z]?)", s).group(1)


def tiff(lib):
    return re.search(r"Version (\S+)", cstr(lib, "TIFFGetVersion")).group(1)


class LDAPAPIInfo(ctypes.Structure):
    _fields_ = [("info_version", ctypes.c_int), ("api_version", ctypes.c_int),
                ("protocol_version", ctypes.c_int), ("extensions", ctypes.c_void_p),
                ("vendor_name", ctypes.c_char_p), ("vendor_version", ctypes.c_int)]


def ldap(lib):
    info = LDAPAPIInfo(info_version=1)
    if lib.ldap_get_option(None, 0x0000, ctypes.byref(info)) != 0:
        return None
    v = info.vendor_version
    return f"{v // 10000}.{(v // 100) % 100}.{v % 100}"


def sasl(lib):
    impl, ver = ctypes.c_char_p(), ctypes.c_char_p()
    a, b, c, d = (ctypes.c_int() for _ in range(4))
    lib.sasl_version_info(ctypes.byref(impl), ctypes.byref(ver), ctypes.byref(a),
                          ctypes.byref(b), ctypes.byref(c), ctypes.byref(d))
    return f"{a.value}.{b.value}.{c.value}"


class NgVersion(ctypes.Structure):
    _fields_ = [("age", ctypes.c_int), ("version_num", ctypes.c_int),
                ("version_str", ctypes.c_char_p), ("proto_str", ctypes.c_char_p)]


def nghttp2(lib):
    fn = lib.nghttp2_version
    fn.restype = ctypes.POINTER(NgVersion)
    fn.argtypes = [ctypes.c_int]
    return fn(0).contents.version_str.decode()


def pcre2(lib):
    buf = ctypes.create_string_buffer(64)
    lib.pcre2_config_8(11, buf)
    return buf.value.decode().split()[0]


def xxh(lib):
    v = lib.XXH_versionNumber()
    return f"{v // 10000}.{(v // 100) % 100}.{v % 100}"


def first_word(s):
    return s.split()[0] if s else None


def openblas(lib):
    for sym in ("scipy_openblas_get_config64_", "scipy_openblas_get_config",
                "openblas_get_config64_", "openblas_get_config"):
        if hasattr(lib, sym):
            return re.search(r"OpenBLAS (\d+\.\d+\.\d+)", cstr(lib, sym)).group(1)
    return None


def keyutils(lib):
    # `const char keyutils_version_string[]`: the symbol is the array.
    at = ctypes.addressof(ctypes.c_char.in_dll(lib, "keyutils_version_string"))
    s = ctypes.cast(at, ctypes.c_char_p).value.decode()
    return re.search(r"(\d+\.\d+(\.\d+)?)", s).group(1)


def unistring(lib):
    # (major << 16) | (minor << 8) | subminor.
    v = ctypes.c_int.in_dll(lib, "_libunistring_version").value
    return f"{v >> 16}.{(v >> 8) & 0xff}.{v & 0xff}"


# (exported symbol that identifies the API, project, reader). Every ELF file
# is asked every question it can answer.
READERS = [
    ("png_get_libpng_ver", "libpng", lambda l: cstr(l, "png_get_libpng_ver", None)),
    ("lzma_version_string", "xz", lambda l: cstr(l, "lzma_version_string")),
    ("TIFFGetVersion", "libtiff", tiff),
    ("opj_version", "openjpeg", lambda l: cstr(l, "opj_version")),
    ("WebPGetDecoderVersion", "libwebp", lambda l: packed(l, "WebPGetDecoderVersion", [(16, 0xff), (8, 0xff), (0, 0xff)])),
    ("WebPGetDemuxVersion", "libwebp", lambda l: packed(l, "WebPGetDemuxVersion", [(16, 0xff), (8, 0xff), (0, 0xff)])),
    ("WebPGetMuxVersion", "libwebp", lambda l: packed(l, "WebPGetMuxVersion", [(16, 0xff), (8, 0xff), (0, 0xff)])),
    ("FT_Library_Version", "freetype", freetype),
    ("hb_version_string", "harfbuzz", lambda l: cstr(l, "hb_version_string")),
    ("cmsGetEncodedCMMversion", "lcms2", lcms),
    ("BrotliDecoderVersion", "brotli", lambda l: packed(l, "BrotliDecoderVersion", [(24, 0xfff), (12, 0xfff), (0, 0xfff)])),
    ("OpenSSL_version", "openssl", openssl),
    ("SSLeay_version", "openssl", openssl_old),
    ("PQlibVersion", "postgresql", pq),
    ("zlibVersion", "zlib", lambda l: cstr(l, "zlibVersion")),
    ("ldap_get_option", "openldap", ldap),
    ("sasl_version_info", "cyrus-sasl", sasl),
    ("pcre_version", "pcre", lambda l: first_word(cstr(l, "pcre_version"))),
    ("pcre2_config_8", "pcre2", pcre2),
    ("curl_version_info", "curl", lambda l: re.match(r"libcurl/(\S+)", cstr(l, "curl_version")).group(1)),
    ("nghttp2_version", "nghttp2", nghttp2),
    ("idn2_check_version", "libidn2", lambda l: cstr(l, "idn2_check_version", None)),
    ("psl_get_version", "libpsl", lambda l: first_word(cstr(l, "psl_get_version"))),
    ("ssh_version", "libssh", lambda l: cstr(l, "ssh_version", 0, argtypes=[ctypes.c_int]).split("/")[0]),
    ("libssh2_version", "libssh2", lambda l: cstr(l, "libssh2_version", 0, argtypes=[ctypes.c_int])),
    ("zmq_version", "libzmq", lambda l: ints(l, "zmq_version")),
    ("sodium_version_string", "libsodium", lambda l: cstr(l, "sodium_version_string")),
    ("rd_kafka_version_str", "librdkafka", lambda l: cstr(l, "rd_kafka_version_str")),
    ("git_libgit2_version", "libgit2", lambda l: ints(l, "git_libgit2_version")),
    ("GEOSversion", "geos", lambda l: cstr(l, "GEOSversion").split("-")[0]),
    ("H5get_libversion", "hdf5", lambda l: ints(l, "H5get_libversion")),
    ("ZSTD_versionString", "zstd", lambda l: cstr(l, "ZSTD_versionString")),
    ("LZ4_versionString", "lz4", lambda l: cstr(l, "LZ4_versionString")),
    ("getLeptonicaVersion", "leptonica", lambda l: re.search(r"(\d+\.\d+\.\d+)", cstr(l, "getLeptonicaVersion")).group(1)),
    ("TessVersion", "tesseract", lambda l: cstr(l, "TessVersion")),
    ("avifVersion", "libavif", lambda l: cstr(l, "avifVersion")),
    ("keyutils_version_string", "keyutils", keyutils),
    ("_libunistring_version", "libunistring", unistring),
    ("XML_ExpatVersion", "expat", lambda l: cstr(l, "XML_ExpatVersion").split("_")[-1]),
    ("sqlite3_libversion", "sqlite", lambda l: cstr(l, "sqlite3_libversion")),
    ("BZ2_bzlibVersion", "bzip2", lambda l: cstr(l, "BZ2_bzlibVersion").split(",")[0]),
    ("XXH_versionNumber", "xxhash", xxh),
]

# scipy_openblas and numpy's openblas export their config under prefixes.
OPENBLAS = ("scipy_openblas_get_config64_", "scipy_openblas_get_config",
            "openblas_get_config64_", "openblas_get_config")


def symtab(path):
    """Addresses of the defined symbols of an ELF file's symbol table (the
    hidden ones too, when the file was not stripped)."""
    out = subprocess.run(["nm", "--defined-only", path], capture_output=True, text=True)
    syms = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3:
            try:
                syms[parts[2].split("@")[0]] = int(parts[0], 16)
            except ValueError:
                pass
    return syms


class Lib:
    """A loaded library whose hidden functions (a statically linked
    dependency's, kept in .symtab) can be called too: their address is the
    load base, found from an exported symbol, plus their symbol value."""

    def __init__(self, lib, path):
        self._lib = lib
        self._path = path
        self._syms = None

    def __getattr__(self, name):
        try:
            return getattr(self._lib, name)
        except AttributeError:
            pass
        if self._syms is None:
            self._syms = symtab(self._path)
        if name not in self._syms:
            raise AttributeError(name)
        for ex in exported(self._path):
            if ex in self._syms and hasattr(self._lib, ex):
                base = ctypes.cast(getattr(self._lib, ex), ctypes.c_void_p).value - self._syms[ex]
                return ctypes.CFUNCTYPE(ctypes.c_int)(base + self._syms[name])
        raise AttributeError(name)


def exported(path):
    """Defined dynamic symbols of an ELF file (functions and objects)."""
    out = subprocess.run(["nm", "-D", "--defined-only", path], capture_output=True, text=True)
    return {line.split()[-1].split("@")[0] for line in out.stdout.splitlines() if line.strip()}


def is_elf(path):
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def elf_files(root):
    files = []
    for dirpath, _, names in os.walk(root):
        for n in sorted(names):
            p = os.path.join(dirpath, n)
            if os.path.isfile(p) and not os.path.islink(p) and is_elf(p):
                files.append(p)
    return files


def ask_one(root, path, sym):
    """In a child process: preload the wheel's vendored libraries, load
    `path`, and call the reader for `sym`; prints the version or nothing."""
    pending = [f for f in elf_files(root) if ".libs" in f or f == path]
    # Load in dependency order: repeat until a pass loads nothing new.
    while pending:
        failed = []
        for f in pending:
            try:
                ctypes.CDLL(f, mode=ctypes.RTLD_GLOBAL)
            except OSError:
                failed.append(f)
        if len(failed) == len(pending):
            break
        pending = failed
    lib = Lib(ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL), path)
    if sym == "openblas":
        v = openblas(lib)
    else:
        read = next(r for s, _, r in READERS if s == sym)
        v = read(lib)
    if v:
        print(v)


def ask_ctypes(root):
    """Every exported version API of every ELF file, each asked in its own
    process: one that crashes costs only its own answer."""
    comps = []
    for path in elf_files(root):
        syms = exported(path) | set(symtab(path))
        rel = os.path.relpath(path, root)
        asks = [(s, proj) for s, proj, _ in READERS if s in syms]
        if any(s in syms for s in OPENBLAS):
            asks.append(("openblas", "openblas"))
        for sym, project in asks:
            if any(c["path"] == rel and c["project"] == project for c in comps):
                continue
            r = subprocess.run([sys.executable, __file__, "--ask", root, path, sym],
                               capture_output=True, text=True, timeout=60)
            v = r.stdout.strip()
            if r.returncode != 0 or not v:
                print(f"{rel}: {sym}: no answer (exit {r.returncode}) {r.stderr.strip()[-200:]}", file=sys.stderr)
                continue
            how = "ctypes *openblas_get_config*()" if sym == "openblas" else f"ctypes {sym}()"
            if sym != "openblas" and sym not in exported(path):
                how += " (hidden: called at its .symtab address)"
            comps.append({"path": rel, "project": project, "version": v,
                          "how": f"{how} of the file itself"})
    return comps


# Package introspection, run inside the wheel's virtualenv: prints
# [(path glob in the wheel, project, version, how)].
INTROSPECT = r'''
import glob, json, os, sys
site = sys.argv[1]
out = []
def add(pattern, project, version, how):
    for p in glob.glob(os.path.join(site, pattern)):
        out.append((os.path.relpath(p, site), project, version, how))
try:
    import lxml.etree as e
    v = lambda t: ".".join(map(str, t))
    for f in ("lxml/etree.*.so", "lxml/objectify.*.so"):
        add(f, "libxml2", v(e.LIBXML_VERSION), "lxml.etree.LIBXML_VERSION (one libxml2 build per wheel)")
    add("lxml/etree.*.so", "libxslt", v(e.LIBXSLT_VERSION), "lxml.etree.LIBXSLT_VERSION")
except ImportError:
    pass
try:
    import zstandard
    add("zstandard/backend_c*.so", "zstd", zstandard.ZSTD_VERSION and ".".join(map(str, zstandard.ZSTD_VERSION)), "zstandard.ZSTD_VERSION")
except ImportError:
    pass
try:
    from cryptography.hazmat.bindings.openssl.binding import Binding
    import re
    lib = Binding.lib
    txt = Binding.ffi.string(lib.OpenSSL_version(0)).decode()
    add("cryptography/hazmat/bindings/_rust.abi3.so", "openssl", re.match(r"OpenSSL (\S+)", txt).group(1), "cryptography's OpenSSL_version(0)")
except Exception:
    pass
try:
    import pymupdf
    add("pymupdf/libmupdf.so*", "mupdf", pymupdf.mupdf_version, "pymupdf.mupdf_version")
except Exception:
    try:
        import fitz
        add("fitz/_mupdf.so", "mupdf", fitz.VersionFitz, "fitz.VersionFitz")
    except Exception:
        pass
try:
    import zmq
    add("pyzmq.libs/libzmq*", "libzmq", zmq.zmq_version(), "zmq.zmq_version()")
except Exception:
    pass
try:
    import confluent_kafka
    add("confluent_kafka.libs/librdkafka*", "librdkafka", confluent_kafka.libversion()[0], "confluent_kafka.libversion()")
except Exception:
    pass
try:
    from PIL import features
    for name, project, pat in (("libjpeg_turbo", "libjpeg-turbo", "*libs/libjpeg-*"),
                               ("raqm", "raqm", "PIL/_imagingft.*.so"),
                               ("libimagequant", "libimagequant", "PIL/_imaging.*.so")):
        try:
            v = features.version(name)
        except ValueError:
            v = None
        if v:
            add(pat, project, v, f"PIL.features.version({name!r}) (the same build)")
except Exception:
    pass
json.dump(out, sys.stdout)
'''


def ask_package(wheel, venv):
    if not os.path.exists(os.path.join(venv, "bin", "python")):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    py = os.path.join(venv, "bin", "python")
    subprocess.run([py, "-m", "pip", "install", "-q", "--force-reinstall", wheel], check=True)
    site = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['platlib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    r = subprocess.run([py, "-c", INTROSPECT, site], capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stderr, file=sys.stderr)
        return []
    return [{"path": p, "project": proj, "version": v, "how": how} for p, proj, v, how in json.loads(r.stdout)]


# Present by the upstream build recipe, without a version API.
RECIPES = [
    (r"^lxml/(etree|objectify)\..*\.so$", ["zlib", "libiconv"], "lxml's buildlibxml.py links zlib and libiconv statically"),
    (r"^lxml/etree\..*\.so$", ["libexslt"], "lxml's buildlibxml.py links libexslt (libxslt's) statically"),
    (r"\.libs/libjpeg-", ["libjpeg-turbo"], "libjpeg.so.62 from libjpeg-turbo (auditwheel name)"),
    (r"\.libs/libbrotlicommon-", ["brotli"], "brotli's common library"),
    (r"\.libs/libXau-", ["libxau"], "X.Org libXau"),
    (r"\.libs/libxcb-", ["libxcb"], "X.Org libxcb"),
    (r"\.libs/lib(krb5|k5crypto|gssapi_krb5|krb5support)-", ["mit-krb5"], "MIT Kerberos libraries"),
    (r"\.libs/libcom_err-", ["e2fsprogs"], "com_err from e2fsprogs"),
    (r"\.libs/liblber", ["openldap"], "OpenLDAP's liblber"),
    (r"\.libs/libssl-", ["openssl"], "OpenSSL's libssl"),
    (r"\.libs/libselinux-", ["libselinux"], "SELinux library"),
    (r"\.libs/libcrypt-", ["libxcrypt"], "libxcrypt"),
    (r"\.libs/lib(gfortran|quadmath)-", ["gcc"], "GCC runtime"),
    (r"\.libs/libgeos-", ["geos"], "GEOS C++ library (libgeos_c's)"),
    (r"\.libs/libhdf5_hl-", ["hdf5"], "HDF5 high-level library"),
    (r"\.libs/lib(sz|aec)-", ["libaec"], "libaec"),
    (r"\.libs/libpcre-", ["pcre"], "PCRE"),
    (r"^(pymupdf/libmupdf\.so|fitz/_mupdf\.so)", ["freetype", "harfbuzz", "jbig2dec", "lcms2", "openjpeg",
     "libjpeg-turbo", "zlib", "gumbo-parser", "mujs", "leptonica", "tesseract", "brotli"],
     "MuPDF's thirdparty/ directory, linked into libmupdf"),
    (r"^confluent_kafka\.libs/librdkafka", ["openssl", "zstd", "lz4", "zlib", "cyrus-sasl", "curl"],
     "librdkafka's manylinux build links its dependencies statically"),
    (r"^cryptography/hazmat/bindings/_rust", ["openssl"], "cryptography links OpenSSL statically"),
    (r"^zstandard/backend_c", ["zstd"], "python-zstandard bundles zstd"),
    (r"^confluent_kafka\.libs/librdkafka", ["xxhash"], "librdkafka bundles xxhash (src/rdxxhash.c)"),
    (r"^scipy/spatial/_qhull\.", ["qhull"], "SciPy vendors Qhull (scipy/spatial/qhull_src)"),
    (r"^scipy/stats/_unuran/", ["unuran"], "SciPy vendors UNU.RAN (scipy/_lib/unuran)"),
    (r"\.libs/libfreetype-", ["bzip2"], "FreeType built with its bzip2 support links libbz2"),
]


def recipes(root, comps):
    """Components the upstream build recipe puts into ELF files."""
    out = []
    # libsharpyuv's own version numbers sharpyuv, not libwebp: the libwebp
    # release is that of the libwebp library beside it.
    webp = [c for c in comps if re.search(r"\.libs/libwebp-", c["path"])]
    for dirpath, _, names in os.walk(root):
        for n in names:
            rel = os.path.relpath(os.path.join(dirpath, n), root)
            if re.search(r"\.libs/libsharpyuv-", rel):
                v = webp[0]["version"] if webp else "unknown"
                out.append({"path": rel, "project": "libwebp", "version": v,
                            "how": "sibling: libwebp WebPGetDecoderVersion() of " + (webp[0]["path"] if webp else "none")})
    for dirpath, _, names in os.walk(root):
        for n in names:
            path = os.path.join(dirpath, n)
            rel = os.path.relpath(path, root)
            if os.path.islink(path) or not is_elf(path):
                continue
            for pattern, projects, how in RECIPES:
                if not re.search(pattern, rel):
                    continue
                for proj in projects:
                    if not any(c["path"] == rel and c["project"] == proj for c in comps + out):
                        out.append({"path": rel, "project": proj, "version": "unknown", "how": how})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("wheel")
    ap.add_argument("--venv", help="a virtualenv to install the wheel into for introspection")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp()
    zipfile.ZipFile(a.wheel).extractall(tmp)
    comps = ask_ctypes(tmp)
    if a.venv:
        for c in ask_package(os.path.abspath(a.wheel), a.venv):
            if not any(x["path"] == c["path"] and x["project"] == c["project"] for x in comps):
                comps.append(c)
    comps += recipes(tmp, comps)
    comps.sort(key=lambda c: (c["path"], c["project"]))
    meta = next((n for n in zipfile.ZipFile(a.wheel).namelist() if n.endswith(".dist-info/METADATA")), None)
    name = version = ""
    if meta:
        text = zipfile.ZipFile(a.wheel).read(meta).decode(errors="replace")
        name = re.search(r"^Name: (.+)$", text, re.M).group(1).strip().lower().replace("_", "-")
        version = re.search(r"^Version: (.+)$", text, re.M).group(1).strip()
    json.dump({"wheel": os.path.basename(a.wheel), "components": comps,
               "python_package": name, "python_version": version}, sys.stdout, indent=1)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--ask":
        ask_one(*sys.argv[2:])
    else:
        main()
