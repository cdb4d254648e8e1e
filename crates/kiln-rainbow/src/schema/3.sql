-- Schema 3: function signatures and code identities.

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
