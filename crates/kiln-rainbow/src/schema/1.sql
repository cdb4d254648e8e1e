-- kiln signature tables, schema step 1: packages, files, contents, ELF facts.
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
