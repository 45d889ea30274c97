//! The two files a pre-copy's delta adds to a backup besides its archive
//! and index (see docs/backup-format.md): `<slug>.removed`, the tar names
//! of the pre-copy's entries that are gone, each ended by a NUL byte (what
//! `xargs -0 rm -rf --` reads), and `<slug>.final.index.gz`, the content
//! index of the path at the stop. Each is sealed (`.age`) when the backup
//! is encrypted, like every other file of it.

use std::io::Write;
use std::path::Path;

use super::backup::{sealed_file, sync_hashed, INDEX_METHOD};
use super::index::{path_from_bytes, path_to_bytes, write_line, IndexEntry};
use super::pargz::ParGzWriter;
use crate::error::{Context, Error, Result};

/// A file written: its name in the directory, sha256 and size.
pub struct Written {
    pub name: String,
    pub sha256: String,
    pub bytes: u64,
}

/// `<slug>.removed` from index paths.
pub fn write_removed(
    dir: &Path,
    slug: &str,
    removed: &[String],
    encrypt_to: &[String],
) -> Result<Written> {
    let (name, path, mut w) = sealed_file(dir, &format!("{slug}.removed"), 8 << 10, encrypt_to)?;
    let writing = || format!("writing {}", path.display());
    for p in removed {
        w.write_all(&path_to_bytes(p)?).ctx(writing())?;
        w.write_all(b"\0").ctx(writing())?;
    }
    let (sha256, bytes) = sync_hashed(w).ctx(writing())?;
    Ok(Written {
        name,
        sha256,
        bytes,
    })
}

/// The index paths of a `<slug>.removed` file's bytes (`name` for
/// messages, which never quote the bytes themselves).
pub fn parse_removed(name: &str, bytes: &[u8]) -> Result<Vec<String>> {
    let Some(body) = bytes.strip_suffix(b"\0") else {
        return match bytes.is_empty() {
            true => Ok(vec![]),
            false => Err(Error::integrity(format!(
                "{name}: not a list of names each ended by a NUL byte"
            ))),
        };
    };
    body.split(|&b| b == 0)
        .map(|n| match n.is_empty() {
            true => Err(Error::integrity(format!("{name}: an empty name"))),
            false => Ok(path_from_bytes(n)),
        })
        .collect()
}

/// `<slug>.final.index.gz`, gzipped as a path's own index is.
pub fn write_final_index(
    dir: &Path,
    slug: &str,
    entries: &[IndexEntry],
    encrypt_to: &[String],
) -> Result<Written> {
    let plain = format!("{slug}.final.index.gz");
    let (name, path, sealed) = sealed_file(dir, &plain, 8 << 10, encrypt_to)?;
    let mut gz = ParGzWriter::new(sealed, INDEX_METHOD, 1);
    for e in entries {
        write_line(&mut gz, e)?;
    }
    let writing = || format!("writing {}", path.display());
    let sealed = gz.finish().map_err(|e| e.context(writing()))?;
    let (sha256, bytes) = sync_hashed(sealed).ctx(writing())?;
    Ok(Written {
        name,
        sha256,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_names_round_trip_and_a_bad_list_is_refused() {
        let dir = std::env::temp_dir().join(format!("berth-removed-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let names = vec!["v/a b".to_owned(), "v/d/\u{fc}".to_owned()];
        let w = write_removed(&dir, "v", &names, &[]).unwrap();
        let bytes = std::fs::read(dir.join(&w.name)).unwrap();
        assert_eq!(bytes, "v/a b\0v/d/\u{fc}\0".as_bytes());
        assert_eq!(parse_removed(&w.name, &bytes).unwrap(), names);
        assert!(parse_removed("x", b"").unwrap().is_empty());
        for bad in [&b"v/a"[..], b"v/a\0\0", b"\0"] {
            let err = parse_removed("x", bad).unwrap_err();
            assert!(!err.msg.contains("v/a"), "{err}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
