//! The name of a layer's tar member, as GNU tar would read it.

use std::io::{self, Read};

/// The largest real size of a GNU sparse member kiln expands. A sparse
/// header can claim a terabyte of holes in a few bytes; expanding it would
/// never finish.
pub const MAX_SPARSE_SIZE: u64 = 1 << 30;

/// The real (expanded) size of a GNU sparse member, or an error when it is
/// over [`MAX_SPARSE_SIZE`].
pub fn sparse_size<R: Read>(entry: &tar::Entry<'_, R>, path: &str) -> io::Result<u64> {
    let real = entry.size();
    if real > MAX_SPARSE_SIZE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "sparse file {path} expands to {real} bytes, over the {MAX_SPARSE_SIZE}-byte limit; refused"
            ),
        ));
    }
    Ok(real)
}

/// The member's path (lossily UTF-8). A PAX extended header with a record
/// whose declared length does not match it is an error: the `tar` crate
/// skips such a record, so its `path=` would be silently ignored and kiln
/// would see another name than GNU tar, which refuses the archive.
pub fn member_path<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<String> {
    if let Some(records) = entry.pax_extensions()? {
        for r in records {
            r.map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    "malformed PAX extended header record (its length does not match it)",
                )
            })?;
        }
    }
    Ok(String::from_utf8_lossy(&entry.path_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One member with a PAX header whose `path` record declares `len`.
    fn archive(len: usize) -> Vec<u8> {
        let record = format!("{len} path=evil/name\n");
        let mut pax = tar::Header::new_ustar();
        pax.set_entry_type(tar::EntryType::XHeader);
        pax.set_size(record.len() as u64);
        pax.set_path("PaxHeader").unwrap();
        pax.set_cksum();
        let mut file = tar::Header::new_ustar();
        file.set_path("plain/name").unwrap();
        file.set_size(0);
        file.set_cksum();
        let mut b = tar::Builder::new(Vec::new());
        b.append(&pax, record.as_bytes()).unwrap();
        b.append(&file, &[][..]).unwrap();
        b.into_inner().unwrap()
    }

    fn first_path(data: &[u8]) -> io::Result<String> {
        let mut a = tar::Archive::new(data);
        let mut e = a.entries()?.next().expect("one member")?;
        member_path(&mut e)
    }

    #[test]
    fn a_well_formed_pax_path_wins_and_a_malformed_one_is_refused() {
        let good = "20 path=evil/name\n".len();
        assert_eq!(first_path(&archive(good)).unwrap(), "evil/name");
        let err = first_path(&archive(good + 40)).unwrap_err();
        assert!(err.to_string().contains("malformed PAX"), "{err}");
    }
}
