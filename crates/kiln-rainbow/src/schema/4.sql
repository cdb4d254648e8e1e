-- Schema 4: file contents are keyed by their BLAKE3-256 digest instead of
-- SHA-256, and code identities' `loaded` digests are BLAKE3 too. Hashing
-- every file is a large part of a scan, and BLAKE3 is about three times
-- faster here. Stored SHA-256 keys cannot be converted without the files,
-- so kiln refuses a schema-3 DB that holds contents (rebuild it); an
-- empty one is brought up to date by this rename.
ALTER TABLE content RENAME COLUMN sha256 TO digest;
