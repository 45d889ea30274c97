//! The content index of a volume archive: one JSON object per tar entry, one
//! entry per line, in stream order. Backups store it gzip-compressed
//! (`<slug>.index.gz`, so `zcat`/`zgrep` read it); older ones as plain text
//! (`<slug>.index`). [`read_index`] reads both.
//!
//! # Paths
//!
//! `path` and `link` are the tar's own names (without a trailing `/`). Tar
//! names are bytes, JSON strings are Unicode, so names are escaped
//! losslessly ([`path_from_bytes`] / [`path_to_bytes`]):
//!
//! - a literal backslash `\` becomes two backslashes `\\`;
//! - each byte that is not part of valid UTF-8 becomes `\xNN` (two lowercase
//!   hex digits);
//! - everything else (valid UTF-8, including newlines and non-ASCII) is kept
//!   as is.
//!
//! So a name without backslashes that is valid UTF-8 reads the same in the
//! index as in the tar.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{BufRead, BufReader, Write};

use flate2::read::MultiGzDecoder;

use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};

/// The type of a tar entry.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    Hardlink,
    Fifo,
    Char,
    Block,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::File => "file",
            EntryKind::Dir => "dir",
            EntryKind::Symlink => "symlink",
            EntryKind::Hardlink => "hardlink",
            EntryKind::Fifo => "fifo",
            EntryKind::Char => "char",
            EntryKind::Block => "block",
        }
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of the index.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// The tar name without a trailing `/`, escaped (see the module doc).
    pub path: String,
    #[serde(rename = "type")]
    pub kind: EntryKind,
    /// Permission bits including setuid/setgid/sticky (`mode & 0o7777`).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Content bytes (0 for anything but regular files).
    pub size: u64,
    /// Whole seconds (the floor of a fractional PAX mtime).
    pub mtime: i64,
    /// Symlink or hardlink target, escaped like `path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// From PAX `SCHILY.xattr.NAME` records: name (escaped like `path`) to
    /// the value as lowercase hex.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub xattrs: BTreeMap<String, String>,
    /// Lowercase hex sha256 of the content, regular files only, in indexes
    /// hashed with [`ContentHash::Sha256`] (backup schemas 1 to 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Lowercase hex BLAKE3 of the content, regular files only, in indexes
    /// hashed with [`ContentHash::Blake3`] (schema 4 on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blake3: Option<String>,
    /// Major and minor number of char and block devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<[u32; 2]>,
}

/// The hash of each file's content in an index. The index only has to tell
/// one content from another under a hash nobody can collide, and BLAKE3 does
/// that in 0.25 CPU-s per GiB where SHA-256 (with the CPU's SHA extensions)
/// takes 0.57: backups write BLAKE3 (schema 4); indexes of older backups
/// hold SHA-256 and are still checked with it. SHA256SUMS stays SHA-256.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ContentHash {
    /// Backups of schema 1 to 3 (no `content_hash` in their manifest).
    #[default]
    Sha256,
    Blake3,
}

impl ContentHash {
    /// What new backups write.
    pub const NEW: ContentHash = ContentHash::Blake3;

    pub(crate) fn hasher(self) -> ContentHasher {
        match self {
            ContentHash::Sha256 => ContentHasher::Sha256(sha2::Sha256::default()),
            ContentHash::Blake3 => ContentHasher::Blake3(Box::default()),
        }
    }
}

/// One file's content being hashed; [`ContentHasher::finish`] puts the
/// digest into the entry's field for its algorithm.
pub(crate) enum ContentHasher {
    Sha256(sha2::Sha256),
    Blake3(Box<blake3::Hasher>),
}

impl ContentHasher {
    pub(crate) fn update(&mut self, b: &[u8]) {
        use sha2::Digest;
        match self {
            ContentHasher::Sha256(h) => h.update(b),
            ContentHasher::Blake3(h) => {
                h.update(b);
            }
        }
    }

    pub(crate) fn finish(self, e: &mut IndexEntry) {
        use sha2::Digest;
        match self {
            ContentHasher::Sha256(h) => {
                e.sha256 = Some(crate::archive::hashio::to_hex(&h.finalize()))
            }
            ContentHasher::Blake3(h) => e.blake3 = Some(h.finalize().to_hex().to_string()),
        }
    }
}

/// Escapes a tar name (bytes) into an index string, losslessly: `\` becomes
/// `\\`, each byte that is not valid UTF-8 becomes `\xNN`.
pub(crate) fn path_from_bytes(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                s.push_str("\\\\");
            } else {
                s.push(c);
            }
        }
        for b in chunk.invalid() {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s
}

/// The inverse of [`path_from_bytes`]. Fails on a backslash that starts
/// neither `\\` nor `\xNN`.
pub(crate) fn path_to_bytes(s: &str) -> Result<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        match b.get(i + 1) {
            Some(b'\\') => {
                out.push(b'\\');
                i += 2;
            }
            Some(b'x') => {
                let byte = b
                    .get(i + 2..i + 4)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        Error::usage(format!("bad escape at byte {i} in the index path {s:?}"))
                    })?;
                out.push(byte);
                i += 4;
            }
            _ => {
                return Err(Error::usage(format!(
                    "bad escape at byte {i} in the index path {s:?} (a literal backslash is written \\\\)"
                )))
            }
        }
    }
    Ok(out)
}

/// Writes one entry as a JSON object and a newline.
pub(crate) fn write_line(w: &mut impl Write, e: &IndexEntry) -> Result<()> {
    let mut line = serde_json::to_vec(e)
        .map_err(|err| Error::failed(format!("encoding the index entry {}: {err}", e.path)))?;
    line.push(b'\n');
    w.write_all(&line).ctx("writing the index")
}

/// The first bytes of every gzip file.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Reads an index written by [`write_line`], gzip-compressed or plain
/// (older backups). Blank lines are skipped.
pub fn read_index(r: impl BufRead) -> Result<Vec<IndexEntry>> {
    read_index_within(r, u64::MAX)
}

/// [`read_index`] of an untrusted file: fails (Integrity) once more than
/// `limit` bytes of text came out, so that a small compressed file cannot
/// inflate into all of memory.
pub(crate) fn read_index_within(mut r: impl BufRead, limit: u64) -> Result<Vec<IndexEntry>> {
    let head = r.fill_buf().ctx("reading the index")?;
    if head.starts_with(&GZIP_MAGIC) {
        let text = BufReader::with_capacity(1 << 16, MultiGzDecoder::new(r));
        read_lines(text, limit)
    } else {
        read_lines(r, limit)
    }
}

fn read_lines(r: impl BufRead, limit: u64) -> Result<Vec<IndexEntry>> {
    let mut entries = Vec::new();
    // One byte past the limit proves the excess without reading more.
    let mut r = r.take(limit.saturating_add(1));
    let mut line = String::new();
    let mut text = 0u64;
    for n in 1.. {
        line.clear();
        let got = r
            .read_line(&mut line)
            .map_err(|e| Error::integrity(format!("the index is damaged: line {n}: {e}")))?;
        text += got as u64;
        if text > limit {
            return Err(Error::integrity(format!(
                "the index is larger than its archive can explain (over {limit} bytes): stopped there"
            )));
        }
        if got == 0 {
            break;
        }
        if line.trim().is_empty() {
            continue;
        }
        let e = serde_json::from_str(&line).map_err(|err| {
            let why = crate::secrets::json_problem(&err);
            Error::integrity(format!("the index is damaged: line {n}: {why}"))
        })?;
        entries.push(e);
    }
    Ok(entries)
}

/// One way in which the actual entries differ from the expected ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    pub path: String,
    pub what: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.what)
    }
}

fn short_hash(h: &Option<String>) -> String {
    match h {
        Some(h) if h.len() > 12 => format!("{}..", &h[..12]),
        Some(h) => h.clone(),
        None => "none".into(),
    }
}

fn opt_str(o: &Option<String>) -> String {
    match o {
        Some(s) => format!("{s:?}"),
        None => "none".into(),
    }
}

fn opt_dev(d: &Option<[u32; 2]>) -> String {
    match d {
        Some([major, minor]) => format!("{major},{minor}"),
        None => "none".into(),
    }
}

/// What `compare` says of a path that only `actual` has.
pub const EXTRA: &str = "not in the backup";

impl Difference {
    /// The path exists now but not in the backup (expected after a merge).
    pub(crate) fn is_extra(&self) -> bool {
        self.what == EXTRA
    }
}

/// Every field in which `actual` differs from `expected` (the backup), one
/// [`Difference`] per field, sorted by path (fields in a fixed order).
///
/// Entries are matched by path; if a path occurs more than once in one
/// index, the last occurrence counts (as when extracting). A path only in
/// `expected` is `missing`; a path only in `actual` is `not in the backup`.
pub fn compare(expected: &[IndexEntry], actual: &[IndexEntry]) -> Vec<Difference> {
    let exp: BTreeMap<&str, &IndexEntry> = expected.iter().map(|e| (e.path.as_str(), e)).collect();
    let act: BTreeMap<&str, &IndexEntry> = actual.iter().map(|e| (e.path.as_str(), e)).collect();
    let paths: BTreeSet<&str> = exp.keys().chain(act.keys()).copied().collect();
    let mut out = Vec::new();
    for path in paths {
        let mut diff = |what: String| {
            out.push(Difference {
                path: path.to_string(),
                what,
            })
        };
        let (e, a) = match (exp.get(path), act.get(path)) {
            (Some(e), Some(a)) => (*e, *a),
            (Some(_), None) => {
                diff("missing".into());
                continue;
            }
            (None, _) => {
                diff(EXTRA.into());
                continue;
            }
        };
        if e.kind != a.kind {
            diff(format!("type {} != {}", e.kind, a.kind));
        }
        if e.mode != a.mode {
            diff(format!("mode {:04o} != {:04o}", e.mode, a.mode));
        }
        if e.uid != a.uid {
            diff(format!("uid {} != {}", e.uid, a.uid));
        }
        if e.gid != a.gid {
            diff(format!("gid {} != {}", e.gid, a.gid));
        }
        if e.size != a.size {
            diff(format!("size {} != {}", e.size, a.size));
        }
        if e.mtime != a.mtime {
            diff(format!("mtime {} != {}", e.mtime, a.mtime));
        }
        if e.link != a.link {
            diff(format!("link {} != {}", opt_str(&e.link), opt_str(&a.link)));
        }
        if e.xattrs != a.xattrs {
            let names: BTreeSet<&String> = e.xattrs.keys().chain(a.xattrs.keys()).collect();
            for name in names {
                let (ev, av) = (e.xattrs.get(name), a.xattrs.get(name));
                if ev != av {
                    let show = |v: Option<&String>| v.cloned().unwrap_or_else(|| "none".into());
                    diff(format!("xattr {name} {} != {}", show(ev), show(av)));
                }
            }
        }
        if e.sha256 != a.sha256 {
            diff(format!(
                "content differs (sha256 {} != {})",
                short_hash(&e.sha256),
                short_hash(&a.sha256)
            ));
        }
        if e.blake3 != a.blake3 {
            diff(format!(
                "content differs (blake3 {} != {})",
                short_hash(&e.blake3),
                short_hash(&a.blake3)
            ));
        }
        if e.dev != a.dev {
            diff(format!("device {} != {}", opt_dev(&e.dev), opt_dev(&a.dev)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> IndexEntry {
        IndexEntry {
            path: path.into(),
            kind: EntryKind::File,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: 3,
            mtime: 1_700_000_000,
            link: None,
            xattrs: BTreeMap::new(),
            sha256: Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".into()),
            blake3: None,
            dev: None,
        }
    }

    #[test]
    fn escape_round_trip() {
        let cases: &[&[u8]] = &[
            b"",
            b"plain/path.txt",
            "caf\u{e9} \u{1f600}\nx".as_bytes(),
            b"back\\slash",
            b"\\x41 is not A",
            b"bad\xff\xfe utf8 \xc3",
            b"\xe2\x82",
        ];
        for &c in cases {
            let s = path_from_bytes(c);
            assert_eq!(path_to_bytes(&s).unwrap(), c, "{s:?}");
        }
        assert_eq!(path_from_bytes(b"a\\b"), "a\\\\b");
        assert_eq!(path_from_bytes(b"a\xffb"), "a\\xffb");
        assert_eq!(path_from_bytes("é".as_bytes()), "é");
        assert_eq!(path_to_bytes("a\\xFFb").unwrap(), b"a\xffb");
        assert!(path_to_bytes("a\\b").is_err());
        assert!(path_to_bytes("a\\x4").is_err());
        assert!(path_to_bytes("a\\").is_err());
    }

    #[test]
    fn json_round_trip() {
        let mut dir = file("vmware/vmdir");
        dir.kind = EntryKind::Dir;
        dir.size = 0;
        dir.sha256 = None;
        dir.mode = 0o1777;
        let mut link = file("vmware/l");
        link.kind = EntryKind::Symlink;
        link.link = Some("../x\\xff".into());
        link.sha256 = None;
        let mut dev = file("dev/null");
        dev.kind = EntryKind::Char;
        dev.dev = Some([1, 3]);
        dev.sha256 = None;
        let mut x = file("vmware/with xattr\nand newline");
        x.xattrs.insert("user.a".into(), "00ff".into());
        x.mtime = -5;
        x.uid = 1 << 40;
        let entries = vec![file("vmware/a.txt"), dir, link, dev, x];
        let mut buf = Vec::new();
        for e in &entries {
            write_line(&mut buf, e).unwrap();
        }
        let text = String::from_utf8(buf.clone()).unwrap();
        assert_eq!(text.lines().count(), entries.len());
        assert!(text.contains(r#""type":"dir""#), "{text}");
        assert!(!text.lines().next().unwrap().contains("link"), "{text}");
        assert!(!text.lines().next().unwrap().contains("xattrs"), "{text}");
        assert!(!text.lines().next().unwrap().contains("dev"), "{text}");
        let back = read_index(&buf[..]).unwrap();
        assert_eq!(back, entries);

        // Blank lines are fine, bad JSON names its line.
        let mut bad = buf.clone();
        bad.extend_from_slice(b"\n{\"path\": 1}\n");
        let err = read_index(&bad[..]).unwrap_err();
        assert!(err.msg.contains("line 7"), "{err}");
        assert_eq!(err.kind, crate::error::Kind::Integrity);
    }

    #[test]
    fn reads_gzipped_and_plain_indexes_within_a_limit() {
        let entries: Vec<IndexEntry> = (0..500).map(|i| file(&format!("v/f{i}"))).collect();
        let mut plain = Vec::new();
        for e in &entries {
            write_line(&mut plain, e).unwrap();
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(3));
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        assert!(gz.len() * 5 < plain.len());
        assert_eq!(read_index(&gz[..]).unwrap(), entries);
        assert_eq!(read_index(&plain[..]).unwrap(), entries);
        let n = plain.len() as u64;
        assert_eq!(read_index_within(&gz[..], n).unwrap(), entries);
        // One byte short of the text: refused, compressed or not.
        for input in [&gz[..], &plain[..]] {
            let err = read_index_within(input, n - 1).unwrap_err();
            assert_eq!(err.kind, crate::error::Kind::Integrity);
            assert!(err.msg.contains("larger than its archive"), "{err}");
        }
        // A truncated gzip index is damaged, not short.
        let err = read_index(&gz[..gz.len() / 2]).unwrap_err();
        assert_eq!(err.kind, crate::error::Kind::Integrity, "{err}");
    }

    #[test]
    fn compare_finds_each_difference() {
        let base = file("v/a");
        assert!(compare(std::slice::from_ref(&base), std::slice::from_ref(&base)).is_empty());

        let mut all = base.clone();
        all.kind = EntryKind::Hardlink;
        all.mode = 0o600;
        all.uid = 1;
        all.gid = 2;
        all.size = 4;
        all.mtime = 1_700_000_001;
        all.link = Some("v/b".into());
        all.xattrs.insert("user.x".into(), "01".into());
        all.sha256 = Some("cd34".repeat(16));
        all.dev = Some([8, 1]);
        let d = compare(&[base.clone(), file("v/gone")], &[all, file("v/new")]);
        let got: Vec<String> = d.iter().map(|d| d.to_string()).collect();
        assert_eq!(
            got,
            vec![
                "v/a: type file != hardlink",
                "v/a: mode 0644 != 0600",
                "v/a: uid 0 != 1",
                "v/a: gid 0 != 2",
                "v/a: size 3 != 4",
                "v/a: mtime 1700000000 != 1700000001",
                "v/a: link none != \"v/b\"",
                "v/a: xattr user.x none != 01",
                "v/a: content differs (sha256 ba7816bf8f01.. != cd34cd34cd34..)",
                "v/a: device none != 8,1",
                "v/gone: missing",
                "v/new: not in the backup",
            ]
        );
        // A BLAKE3 index compares its own field; a line that lost its hash
        // (or holds the other algorithm's) differs too.
        let mut b3 = base.clone();
        b3.sha256 = None;
        b3.blake3 = Some("ab".repeat(32));
        let mut other = b3.clone();
        other.blake3 = Some("ef".repeat(32));
        let got: Vec<String> = compare(&[b3.clone()], &[other])
            .iter()
            .map(|d| d.to_string())
            .collect();
        assert_eq!(
            got,
            ["v/a: content differs (blake3 abababababab.. != efefefefefef..)"]
        );
        assert_eq!(compare(&[b3.clone()], &[base]).len(), 2);
        // A line names its hash: it reads back as written.
        let mut line = Vec::new();
        write_line(&mut line, &b3).unwrap();
        assert!(String::from_utf8_lossy(&line).contains("\"blake3\":\"abab"));
        assert_eq!(read_index(&line[..]).unwrap(), vec![b3]);
    }
}
