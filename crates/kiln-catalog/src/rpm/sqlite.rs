//! rpm's SQLite database (`rpmdb.sqlite`, rpm ≥ 4.16): the header blobs
//! of the `Packages` table. The image's bytes are copied to a private
//! temporary directory (with the write-ahead log when the image has one)
//! and opened there, so SQLite replays the log and never touches the
//! source.

use rusqlite::{Connection, OpenFlags};

use super::RpmError;

/// Every header blob in an `rpmdb.sqlite`, in `hnum` order.
pub fn values(db: &[u8], wal: Option<&[u8]>) -> Result<Vec<Vec<u8>>, RpmError> {
    let dir = tempfile::tempdir().map_err(|e| RpmError::Sqlite(e.to_string()))?;
    let path = dir.path().join("rpmdb.sqlite");
    std::fs::write(&path, db).map_err(|e| RpmError::Sqlite(e.to_string()))?;
    if let Some(w) = wal {
        std::fs::write(dir.path().join("rpmdb.sqlite-wal"), w)
            .map_err(|e| RpmError::Sqlite(e.to_string()))?;
    }
    let err = |e: rusqlite::Error| RpmError::Sqlite(e.to_string());
    let conn = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(err)?;
    let mut stmt = conn
        .prepare("SELECT blob FROM Packages ORDER BY hnum")
        .map_err(err)?;
    let rows = stmt
        .query_map([], |r| r.get::<_, Vec<u8>>(0))
        .map_err(err)?;
    rows.collect::<Result<_, _>>().map_err(err)
}
