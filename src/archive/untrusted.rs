//! Rules for an archive read back from a backup directory, which anyone
//! who can write that directory may have rewritten (SHA256SUMS and the
//! manifest included: the checksums prove nothing against them).
//!
//! Before `berth restore` hands an archive to the engine, every entry must
//! be one the engine will write inside the restored path and nowhere else,
//! and the archive must not decompress to more than the manifest declares:
//!
//! - names are the archive's root (the base name of the backed-up path,
//!   `vmware` for `/var/lib/vmware`) or below it; no `.`/`..` component,
//!   no absolute name (the engine's archive of `/` names its entries `/x`:
//!   there the root is the empty name and the one leading `/` is its
//!   separator);
//! - no entry lies below an earlier symlink entry of the same archive: the
//!   engine would write through the link (`data/l -> /`, then
//!   `data/l/etc/passwd`). Symlinks themselves are data: their targets,
//!   absolute or with `..`, are not checked;
//! - a hard link names an earlier non-directory entry of the archive (which
//!   passed these rules), so it cannot link to a file outside;
//! - [`Bounded`] stops decompression as soon as the output passes the
//!   declared tar size (a gzip bomb inflates no further than that).

use std::collections::BTreeSet;
use std::io::{self, Read};

use super::index::{path_to_bytes, EntryKind, IndexEntry};
use crate::error::{Error, Result};
use crate::tarheader::show_name;

/// Checks entries one by one, in archive order (see the module doc).
pub(crate) struct Confined {
    /// The root name, e.g. `vmware` (empty for the path `/`).
    root: Vec<u8>,
    /// Names of the symlink entries seen so far.
    symlinks: BTreeSet<Vec<u8>>,
    /// Names of the non-directory entries seen so far (hard-link targets).
    linkable: BTreeSet<Vec<u8>>,
    /// Entries checked so far: messages name an entry by its number.
    checked: u64,
}

impl Confined {
    /// For the archive of the container path `path` (absolute).
    pub fn new(path: &str) -> Confined {
        let root = path.rsplit('/').find(|b| !b.is_empty()).unwrap_or("");
        Confined {
            root: root.as_bytes().to_vec(),
            symlinks: BTreeSet::new(),
            linkable: BTreeSet::new(),
            checked: 0,
        }
    }

    /// Ok if the engine would write `e` inside the path; else why not.
    /// Messages name the entry by its number and its name escaped and cut
    /// (`tarheader::show_name`): the names are a stranger's.
    pub fn check(&mut self, e: &IndexEntry) -> Result<()> {
        self.checked += 1;
        let n = self.checked;
        let name = self.name(&e.path, "its name")?;
        if let Some(link) = self.through_symlink(&name) {
            return Err(refused(format!(
                "entry {n} {} lies below the symlink {} earlier in the archive: \
                 the engine would write through the link",
                show_name(&name),
                show_name(link)
            )));
        }
        if e.kind == EntryKind::Hardlink {
            let target = e.link.as_deref().unwrap_or_default();
            let t = self.name(target, "its hard link target")?;
            if !self.linkable.contains(&t) {
                return Err(refused(format!(
                    "entry {n}, hard link {} points to {}, which is not an earlier file of the archive",
                    show_name(&name),
                    show_name(&t)
                )));
            }
        }
        if e.kind == EntryKind::Symlink {
            self.symlinks.insert(name.clone());
        }
        if e.kind != EntryKind::Dir {
            self.linkable.insert(name);
        }
        Ok(())
    }

    /// The entry's name as bytes, if it is the root or below it and has no
    /// `.` or `..` component.
    fn name(&self, escaped: &str, what: &str) -> Result<Vec<u8>> {
        let n = self.checked;
        let bytes = path_to_bytes(escaped)
            .map_err(|_| refused(format!("entry {n}: {what} is not a valid escaped name")))?;
        let inside = bytes == self.root
            || bytes
                .strip_prefix(self.root.as_slice())
                .and_then(|rest| rest.strip_prefix(b"/"))
                .is_some_and(|rest| {
                    !rest.is_empty()
                        && rest
                            .split(|&b| b == b'/')
                            .all(|c| !c.is_empty() && c != b"." && c != b"..")
                });
        if inside {
            Ok(bytes)
        } else {
            Err(refused(format!(
                "entry {n}: {what} {} is not inside the archive's root {} \
                 (names must be relative, below the root, without `.` or `..`)",
                show_name(&bytes),
                show_name(&self.root)
            )))
        }
    }

    /// The earlier symlink entry that `name` would be written through.
    fn through_symlink(&self, name: &[u8]) -> Option<&[u8]> {
        name.iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'/')
            .map(|(i, _)| &name[..i])
            .find_map(|prefix| self.symlinks.get(prefix).map(Vec::as_slice))
    }
}

fn refused(msg: String) -> Error {
    Error::integrity(msg)
}

/// A reader that fails (Integrity) as soon as more than `limit` bytes came
/// out of it: a decompressor under it inflates at most one buffer past the
/// limit, whatever the compressed data claims.
pub(crate) struct Bounded<R> {
    inner: R,
    left: u64,
    limit: u64,
}

impl<R: Read> Bounded<R> {
    pub fn new(inner: R, limit: u64) -> Self {
        Bounded {
            inner,
            left: limit,
            limit,
        }
    }

    /// Bytes read through it so far.
    pub fn count(&self) -> u64 {
        self.limit - self.left
    }
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Ask for one byte more than allowed: getting it proves the excess
        // without reading (or inflating) anything beyond.
        let want = buf
            .len()
            .min(usize::try_from(self.left + 1).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n as u64 > self.left {
            return Err(Error::integrity(format!(
                "the archive decompresses to more than the {} bytes its manifest declares \
                 (a gzip bomb or a rewritten archive): stopped there",
                self.limit
            ))
            .into_io());
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, kind: EntryKind, link: Option<&str>) -> IndexEntry {
        IndexEntry {
            path: path.into(),
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: 0,
            link: link.map(String::from),
            xattrs: Default::default(),
            sha256: None,
            blake3: None,
            dev: None,
        }
    }

    fn run(path: &str, entries: &[IndexEntry]) -> Result<()> {
        let mut c = Confined::new(path);
        entries.iter().try_for_each(|e| c.check(e))
    }

    use EntryKind::{Dir, File, Hardlink, Symlink};

    #[test]
    fn normal_archives_pass() {
        let ok = [
            entry("data", Dir, None),
            entry("data/abs", Symlink, Some("/etc/passwd")),
            entry("data/up", Symlink, Some("../../x")),
            entry("data/f", File, None),
            entry("data/h", Hardlink, Some("data/f")),
            entry("data/hl", Hardlink, Some("data/abs")),
            entry("data/sub", Dir, None),
            entry("data/sub/g", File, None),
            entry("data/\\xff\\\\", File, None),
        ];
        run("/srv/data", &ok).unwrap();
        run("/", &[entry("", Dir, None), entry("/etc", Dir, None)]).unwrap();
    }

    #[test]
    fn hostile_names_are_refused() {
        for bad in [
            "../x",
            "/data/x",
            "data/../x",
            "data/./x",
            "data//x",
            "other/x",
            "datax",
            "data/",
            "/",
        ] {
            let r = run(
                "/srv/data",
                &[entry("data", Dir, None), entry(bad, File, None)],
            );
            assert!(r.is_err(), "{bad:?} was accepted");
        }
        assert!(run("/", &[entry("//etc", File, None)]).is_err());
        assert!(run("/", &[entry("/../etc", File, None)]).is_err());
        assert!(run("/", &[entry("etc", File, None)]).is_err());
    }

    #[test]
    fn writing_through_a_symlink_is_refused() {
        let e = run(
            "/srv/data",
            &[
                entry("data", Dir, None),
                entry("data/l", Symlink, Some("/")),
                entry("data/l/etc/passwd", File, None),
            ],
        )
        .unwrap_err();
        assert!(e.msg.contains("entry 3 \"data/l/etc/passwd\""), "{}", e.msg);
        assert!(e.msg.contains("symlink \"data/l\""), "{}", e.msg);
        // The root itself as a symlink.
        assert!(run(
            "/srv/data",
            &[
                entry("data", Symlink, Some("/")),
                entry("data/x", File, None)
            ]
        )
        .is_err());
    }

    /// A hostile name reaches the message escaped and cut, never as is.
    #[test]
    fn refusals_name_the_entry_without_replaying_it() {
        let long = format!("../\x1b[2J{}", "x".repeat(5000));
        let e = run(
            "/srv/data",
            &[entry("data", Dir, None), entry(&long, File, None)],
        )
        .unwrap_err();
        assert!(
            e.msg.starts_with("entry 2: its name \"../\\u{1b}[2J"),
            "{}",
            e.msg
        );
        assert!(!e.msg.contains('\x1b') && e.msg.len() < 300, "{}", e.msg);
        let e = run("/srv/data", &[entry("data/\\q", File, None)]).unwrap_err();
        assert_eq!(e.msg, "entry 1: its name is not a valid escaped name");
    }

    #[test]
    fn hard_links_must_name_earlier_files_inside() {
        let d = entry("data", Dir, None);
        for target in [
            "/etc/passwd",
            "../etc/passwd",
            "data/later",
            "data",
            "data/l/x",
        ] {
            let r = run(
                "/srv/data",
                &[
                    d.clone(),
                    entry("data/l", Symlink, Some("/etc")),
                    entry("data/h", Hardlink, Some(target)),
                    entry("data/later", File, None),
                ],
            );
            assert!(r.is_err(), "hard link to {target:?} was accepted");
        }
    }

    #[test]
    fn bounded_stops_right_after_the_limit() {
        let mut ok = Bounded::new(&[7u8; 100][..], 100);
        assert_eq!(io::copy(&mut ok, &mut io::sink()).unwrap(), 100);
        let mut over = Bounded::new(io::repeat(0), 1000);
        let mut got = 0u64;
        let mut buf = [0u8; 64];
        let err = loop {
            match over.read(&mut buf) {
                Ok(n) => got += n as u64,
                Err(e) => break e,
            }
        };
        assert!(got <= 1000, "{got}");
        assert!(Error::from(err).msg.contains("more than the 1000 bytes"));
    }
}
