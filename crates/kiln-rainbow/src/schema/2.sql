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
