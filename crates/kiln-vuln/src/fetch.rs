//! Fetching advisory exports over HTTP(S) with resume: a download goes to
//! `NAME.part` in the cache directory and continues from where it stopped
//! (`Range: bytes=N-`) when run again; only a complete file is renamed into
//! place. Sources are whatever URL the user gives; kiln names no host.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// A download that failed.
#[derive(Debug, thiserror::Error)]
#[error("{url}: {reason}")]
pub struct FetchError {
    /// The URL.
    pub url: String,
    /// What went wrong.
    pub reason: String,
}

/// Is `s` a URL rather than a path?
pub fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// The cache directory for downloads: `$XDG_CACHE_HOME/kiln/downloads`.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("kiln/downloads")
}

/// The local file name for a URL: its last path segment, made safe.
fn file_name(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let last = path
        .rsplit('/')
        .find(|s| !s.is_empty())
        .unwrap_or("download");
    last.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Download `url` into `dir` with `client`, resuming a previous partial
/// download. `progress(done, total)` is called as bytes arrive.
pub fn fetch(
    client: &kiln_http::Client,
    url: &str,
    dir: &Path,
    progress: &dyn Fn(u64, Option<u64>),
) -> Result<PathBuf, FetchError> {
    let fail = |reason: String| FetchError {
        url: url.to_string(),
        reason,
    };
    std::fs::create_dir_all(dir).map_err(|e| fail(format!("{}: {e}", dir.display())))?;
    let name = file_name(url);
    let done_path = dir.join(&name);
    let part = dir.join(format!("{name}.part"));
    let have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    let resp = client
        .retrying(|| {
            let mut req = client.agent().get(url);
            if have > 0 {
                req = req.header("Range", format!("bytes={have}-"));
            }
            req.call()
        })
        .map_err(|e| fail(e.to_string()))?;
    let status = resp.status().as_u16();
    let (append, start) = match status {
        206 => (true, have),
        200 => (false, 0),
        // The part is already complete: the server has nothing after it.
        416 if have > 0 => {
            std::fs::rename(&part, &done_path).map_err(|e| fail(e.to_string()))?;
            return Ok(done_path);
        }
        s => return Err(fail(format!("HTTP status {s}"))),
    };
    let length: Option<u64> = resp
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let total = length.map(|l| l + start);
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(&part)
        .map_err(|e| fail(format!("{}: {e}", part.display())))?;
    let mut body = resp.into_body().into_reader();
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = start;
    loop {
        let n = body.read(&mut buf).map_err(|e| {
            fail(format!(
                "download interrupted after {got} bytes ({e}); run again to resume"
            ))
        })?;
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n])
            .map_err(|e| fail(format!("{}: {e}", part.display())))?;
        got += n as u64;
        progress(got, total);
    }
    file.sync_all().map_err(|e| fail(e.to_string()))?;
    if let Some(t) = total {
        if got != t {
            return Err(fail(format!(
                "download ended after {got} of {t} bytes; run again to resume"
            )));
        }
    }
    std::fs::rename(&part, &done_path).map_err(|e| fail(e.to_string()))?;
    Ok(done_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            file_name("http://127.0.0.1:8000/osv/Debian/all.zip?x=1"),
            "all.zip"
        );
        assert_eq!(file_name("https://h/x/../json"), "json");
        assert!(is_url("https://a/b") && !is_url("./all.zip"));
    }
}
