-- kiln rainbow table, schema version 3.
-- Portable SQL: the same tables can live in PostgreSQL (BLOB -> bytea,
-- INTEGER PRIMARY KEY -> bigint generated identity) for a shared server DB.

CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- One binary package build: (ecosystem, name, version, arch) is unique.
CREATE TABLE IF NOT EXISTS package (
    id             INTEGER PRIMARY KEY,
    ecosystem      TEXT NOT NULL,
    name           TEXT NOT NULL,
    version        TEXT NOT NULL,
    arch           TEXT NOT NULL,
    source         TEXT NOT NULL,
    source_version TEXT NOT NULL,
    depends        TEXT NOT NULL DEFAULT '',
    archive_sha256 TEXT,
    UNIQUE (ecosystem, name, version, arch)
);
CREATE INDEX IF NOT EXISTS package_source ON package (source, source_version);

-- Paths and contents are stored once and shared by every version.
CREATE TABLE IF NOT EXISTS path (
    id   INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE
);

CREATE TABLE IF NOT EXISTS content (
    id     INTEGER PRIMARY KEY,
    sha256 BLOB NOT NULL UNIQUE,
    size   INTEGER NOT NULL
);

-- kind: f = regular file, l = symlink, h = hard link.
CREATE TABLE IF NOT EXISTS file (
    package_id  INTEGER NOT NULL REFERENCES package (id) ON DELETE CASCADE,
    path_id     INTEGER NOT NULL REFERENCES path (id),
    kind        TEXT NOT NULL,
    mode        INTEGER NOT NULL,
    content_id  INTEGER REFERENCES content (id),
    link_target TEXT,
    conffile    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (package_id, path_id)
);
CREATE INDEX IF NOT EXISTS file_content ON file (content_id);
CREATE INDEX IF NOT EXISTS file_path ON file (path_id);

-- ELF identity of a content blob.
CREATE TABLE IF NOT EXISTS elf (
    content_id   INTEGER PRIMARY KEY REFERENCES content (id),
    machine      INTEGER NOT NULL,
    kind         INTEGER NOT NULL,
    build_id     BLOB,
    soname       TEXT,
    note_package TEXT,
    needed       TEXT NOT NULL DEFAULT '',
    verdefs      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS elf_build_id ON elf (build_id);
CREATE INDEX IF NOT EXISTS elf_soname ON elf (soname);

-- Schema 2: learned version signatures (see learn.rs).

-- Strings of ELF contents that hold a dotted number: what a string
-- template must not match in other projects' files to count as specific.
CREATE TABLE IF NOT EXISTS elf_string (
    content_id INTEGER NOT NULL REFERENCES content (id),
    s          TEXT NOT NULL,
    PRIMARY KEY (content_id, s)
) WITHOUT ROWID;

-- One observation: a file of `project` at upstream `version` showed this
-- template (kind: string, fn-int, fn-str, store-int, store-seq).
CREATE TABLE IF NOT EXISTS template_seen (
    project TEXT NOT NULL,
    kind    TEXT NOT NULL,
    symbol  TEXT NOT NULL,
    pattern TEXT NOT NULL,
    version TEXT NOT NULL,
    PRIMARY KEY (project, kind, symbol, pattern, version)
) WITHOUT ROWID;

-- Shared libraries by base name: `libbrotlidec` at file version 1.0.9
-- belongs to project brotli at upstream version 1.0.9.
CREATE TABLE IF NOT EXISTS libname_seen (
    project      TEXT NOT NULL,
    base         TEXT NOT NULL,
    file_version TEXT NOT NULL,
    version      TEXT NOT NULL,
    PRIMARY KEY (project, base, file_version, version)
) WITHOUT ROWID;

-- Templates as scans use them, derived from the observations at the end
-- of every build: how many versions showed each, and how many other
-- projects' strings it also matches (0 = specific).
CREATE TABLE IF NOT EXISTS template (
    id       INTEGER PRIMARY KEY,
    project  TEXT NOT NULL,
    kind     TEXT NOT NULL,
    symbol   TEXT NOT NULL,
    pattern  TEXT NOT NULL,
    versions INTEGER NOT NULL,
    others   INTEGER NOT NULL,
    UNIQUE (project, kind, symbol, pattern)
);

-- Function signatures (normalised machine-code hashes, see
-- kiln-fingerprint's functions module) of each (project, upstream version)
-- in its shared libraries, executables and static archives. Each hash is
-- stored once, with its posting list: the ids of the versions that ship
-- it (sorted, LEB128 deltas). `common` marks hashes more than one project
-- ships (compiler runtime, PLT-like stubs, memcpy-like code): they tell
-- nothing apart. Both derived columns are refreshed at the end of a build.
CREATE TABLE IF NOT EXISTS func_version (
    id          INTEGER PRIMARY KEY,
    project     TEXT NOT NULL,
    version     TEXT NOT NULL,
    distinctive INTEGER NOT NULL DEFAULT 0,
    UNIQUE (project, version)
);

CREATE TABLE IF NOT EXISTS func_hash (
    hash     INTEGER PRIMARY KEY,
    common   INTEGER NOT NULL DEFAULT 0,
    versions BLOB NOT NULL
);

-- Schema 3: each ELF content's code identity, so a stripped or note-less
-- copy of a packaged file still matches the builds that ship it at the
-- same path: its function set (sorted distinct hashes, little-endian
-- u64s) and the SHA-256 of its loaded sections other than notes.
CREATE TABLE IF NOT EXISTS elf_functions (
    content_id INTEGER PRIMARY KEY REFERENCES content (id),
    hashes     BLOB NOT NULL,
    loaded     BLOB
);
