//! A streaming tar checker, filter and indexer.
//!
//! [`scan`] reads a tar stream block by block with its own reader (not the
//! `tar` crate) because it needs three things the usual readers do not give:
//! byte-exact pass-through, dropping whole entries together with their
//! extension headers, and a strict end-of-archive check. Docker answers
//! `200 OK` to `GET /containers/{id}/archive` even when it gives up in the
//! middle, so a stream that stops early is the only sign of a failed backup.
//!
//! Supported: ustar/POSIX (with the `prefix` field), GNU (`L`/`K` long
//! names, base-256 numbers) and PAX (`x` and `g` headers). Rejected: GNU
//! sparse files and unknown entry types.
//!
//! One pass, constant memory: data moves through a 256 KiB buffer; only
//! extension headers are held (at most [`MAX_EXT`] bytes) until the entry
//! they belong to is kept or dropped.
//!
//! Malformed or truncated archives are [`Kind::Integrity`](crate::error::Kind::Integrity)
//! errors.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read, Write};

use super::hashio::to_hex;
use super::index::{path_from_bytes, path_to_bytes, ContentHash, EntryKind, IndexEntry};
use crate::error::{Context, Error, Result};
use crate::tarheader::{self as th, checksum_ok, cstr, field, parse_numeric, BLOCK};
const BUF_SIZE: usize = 256 * 1024;
/// Most bytes of extension headers (PAX `x`/`g`, GNU `L`/`K`, with their
/// headers and padding) held in memory for one entry, and most bytes of
/// global PAX records kept.
pub(crate) const MAX_EXT: usize = 1 << 20;

/// What [`scan`] saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ScanSummary {
    /// Entries kept (passed to `on_entry`).
    pub entries: u64,
    /// Bytes read from the input, up to its EOF (trailer padding included).
    pub tar_bytes: u64,
    /// The exclusion roots (as given) that matched at least one entry, in
    /// the order of the `exclude` argument.
    pub excluded: Vec<String>,
}

/// Reads a tar stream from `input`, checks it, writes every kept byte to
/// `out` (byte-exact pass-through of the original headers, extension headers
/// and data of kept entries, then the end-of-archive trailer) and calls
/// `on_entry` for each kept entry in stream order, after its data.
///
/// `exclude`: paths in index form (escaped as in [`super::index`], e.g.
/// `vmware/config`) whose entry and every entry below it are dropped
/// entirely, with their PAX/GNU extension headers, from `out` and from the
/// index. Matching is done on normalised paths (a leading `./` or `/` and
/// trailing `/` ignored on both sides), so `vmware/config` also drops
/// `./vmware/config/x`. A kept hard link to a dropped file is an error
/// ([`Kind::Usage`](crate::error::Kind::Usage)): the copy could not be
/// extracted.
///
/// PAX global headers are passed through (also when the entry after them is
/// dropped) and apply to all following entries.
///
/// The archive must end with two zero blocks; whatever follows them must be
/// zeros too (record padding) and is read to EOF and passed through.
pub(crate) fn scan(
    input: impl Read,
    out: impl Write,
    exclude: &[String],
    hash: ContentHash,
    on_entry: impl FnMut(&IndexEntry) -> Result<()>,
) -> Result<ScanSummary> {
    scan_with(input, out, exclude, hash, true, on_entry)
}

/// [`scan`], writing everything but the end-of-archive marker (and the
/// padding after it) when `trailer` is false: what a restore sends before
/// the delta's tar, so that the engine extracts both as one archive.
pub(crate) fn scan_with(
    input: impl Read,
    out: impl Write,
    exclude: &[String],
    hash: ContentHash,
    trailer: bool,
    mut on_entry: impl FnMut(&IndexEntry) -> Result<()>,
) -> Result<ScanSummary> {
    let list = exclude
        .iter()
        .map(|r| {
            let bytes = path_to_bytes(r).ctx(format_args!("excluding {r:?}"))?;
            let n = normalise(&bytes);
            if n.is_empty() {
                Err(Error::usage(format!(
                    "cannot exclude {r:?}: it names the whole archive"
                )))
            } else {
                Ok(n.to_vec())
            }
        })
        .collect::<Result<Vec<_>>>()?;
    // Looked up by each entry's ancestors: a restore drops every path the
    // delta removed, which may be many.
    let mut roots = HashMap::with_capacity(list.len());
    for (i, r) in list.into_iter().enumerate() {
        roots.entry(r).or_insert(i);
    }
    let mut s = Scanner {
        input: Input::new(input),
        out,
        roots,
        trailer,
        hash,
        root_seen: vec![false; exclude.len()],
        globals: BTreeMap::new(),
        pending: Pending::default(),
        last: None,
        entries: 0,
    };
    s.run(&mut on_entry)?;
    Ok(ScanSummary {
        entries: s.entries,
        tar_bytes: s.input.offset,
        excluded: exclude
            .iter()
            .zip(&s.root_seen)
            .filter(|(_, seen)| **seen)
            .map(|(r, _)| r.clone())
            .collect(),
    })
}

/// Drops leading `./` and `/` and trailing `/`; `.` alone becomes empty.
fn normalise(mut p: &[u8]) -> &[u8] {
    loop {
        if let Some(rest) = p.strip_prefix(b"./") {
            p = rest;
        } else if let Some(rest) = p.strip_prefix(b"/") {
            p = rest;
        } else {
            break;
        }
    }
    while let Some(rest) = p.strip_suffix(b"/") {
        p = rest;
    }
    if p == b"." {
        &[]
    } else {
        p
    }
}

/// The input, read through a large buffer, with the count of bytes consumed.
struct Input<R> {
    r: R,
    buf: Box<[u8]>,
    pos: usize,
    len: usize,
    /// Bytes consumed so far.
    offset: u64,
}

impl<R: Read> Input<R> {
    fn new(r: R) -> Self {
        Input {
            r,
            buf: vec![0u8; BUF_SIZE].into_boxed_slice(),
            pos: 0,
            len: 0,
            offset: 0,
        }
    }

    /// The buffered bytes, reading more if there are none; empty at EOF.
    fn fill(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.len {
            self.pos = 0;
            self.len = 0;
            loop {
                match self.r.read(&mut self.buf) {
                    Ok(n) => {
                        self.len = n;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(&self.buf[self.pos..self.len])
    }

    fn consume(&mut self, n: usize) {
        debug_assert!(self.pos + n <= self.len);
        self.pos += n;
        self.offset += n as u64;
    }

    /// Fills `blk` as far as the input goes; returns how many bytes it got
    /// (fewer than 512 only at EOF).
    fn read_block(&mut self, blk: &mut [u8; BLOCK]) -> io::Result<usize> {
        let mut got = 0;
        while got < BLOCK {
            let avail = self.fill()?;
            if avail.is_empty() {
                break;
            }
            let n = avail.len().min(BLOCK - got);
            blk[got..got + n].copy_from_slice(&avail[..n]);
            self.consume(n);
            got += n;
        }
        Ok(got)
    }
}

/// Extension headers read but not yet written: they belong to the next entry.
#[derive(Default)]
struct Pending {
    /// The raw bytes (headers, data, padding) of the extension headers.
    raw: Vec<u8>,
    /// Ranges of `raw` that are PAX global headers: written even when the
    /// entry is dropped.
    globals: Vec<std::ops::Range<usize>>,
    /// Offset of the first pending header.
    first_offset: u64,
    /// Local PAX records (later ones win).
    pax: BTreeMap<Vec<u8>, Vec<u8>>,
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }
}

struct Scanner<R, W> {
    input: Input<R>,
    out: W,
    /// Each exclusion root (normalised) and its place in `root_seen`.
    roots: HashMap<Vec<u8>, usize>,
    /// Whether the end-of-archive marker is written out.
    trailer: bool,
    /// How each kept file's content is hashed into its entry.
    hash: ContentHash,
    root_seen: Vec<bool>,
    /// PAX global records in force.
    globals: BTreeMap<Vec<u8>, Vec<u8>>,
    pending: Pending,
    /// The last entry: its number (from 1, dropped ones counted) and its
    /// name as messages show it (escaped, cut: see `tarheader::show_name`).
    last: Option<(u64, String)>,
    entries: u64,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::integrity(msg)
}

fn early(offset: u64, place: &str) -> Error {
    bad(format!(
        "the archive stream ended early (after {offset} bytes, {place}): \
         the daemon gave up or the connection broke"
    ))
}

fn parse_decimal_u64(v: &[u8]) -> Option<u64> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// A PAX time like `1700000000`, `1700000000.5` or `-1.25`, floored to whole
/// seconds.
fn parse_pax_time(v: &[u8]) -> Option<i64> {
    let (neg, v) = match v.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    let (int, frac) = match v.iter().position(|&c| c == b'.') {
        Some(i) => (&v[..i], &v[i + 1..]),
        None => (v, &[][..]),
    };
    if !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let int = if int.is_empty() && !frac.is_empty() {
        0
    } else {
        parse_decimal_u64(int)?
    };
    let int = i64::try_from(int).ok()?;
    if neg {
        let frac_nonzero = frac.iter().any(|&c| c != b'0');
        Some(-int - i64::from(frac_nonzero))
    } else {
        Some(int)
    }
}

/// Parses PAX records into `into` (later records win).
fn parse_pax(
    data: &[u8],
    into: &mut BTreeMap<Vec<u8>, Vec<u8>>,
) -> std::result::Result<(), th::PaxError> {
    into.extend(th::parse_pax(data)?);
    Ok(())
}

impl<R: Read, W: Write> Scanner<R, W> {
    fn place(&self) -> String {
        match &self.last {
            Some((n, name)) => format!("after entry {n} {name}"),
            None => "at the start".into(),
        }
    }

    fn read_err(&self, e: io::Error, place: &str) -> Error {
        Error::from(e).context(format!(
            "reading the archive stream (at byte {}, {place})",
            self.input.offset
        ))
    }

    fn write_out(&mut self, b: &[u8]) -> Result<()> {
        self.out.write_all(b).ctx("writing the archive copy")
    }

    fn run(&mut self, on_entry: &mut impl FnMut(&IndexEntry) -> Result<()>) -> Result<()> {
        let mut blk = [0u8; BLOCK];
        loop {
            let hdr_offset = self.input.offset;
            let n = match self.input.read_block(&mut blk) {
                Ok(n) => n,
                Err(e) => {
                    let place = format!("reading the header {}", self.place());
                    return Err(self.read_err(e, &place));
                }
            };
            if n == 0 {
                return Err(early(
                    self.input.offset,
                    &format!("before the end-of-archive marker, {}", self.place()),
                ));
            }
            if n < BLOCK {
                return Err(early(
                    self.input.offset,
                    &format!("inside the header {}", self.place()),
                ));
            }
            if blk.iter().all(|&b| b == 0) {
                return self.finish_trailer(&blk, hdr_offset);
            }
            if !checksum_ok(&blk) {
                return Err(bad(format!(
                    "bad tar header checksum at byte offset {hdr_offset} ({}): the archive is corrupt",
                    self.place()
                )));
            }
            match blk[field::TYPEFLAG] {
                b'x' | b'g' | b'L' | b'K' => self.extension(&blk, hdr_offset)?,
                b'0' | 0 | b'7' | b'1'..=b'6' => self.entry(&blk, hdr_offset, on_entry)?,
                b'S' => {
                    return Err(bad(format!(
                        "GNU sparse file at byte offset {hdr_offset}: sparse archives are not supported"
                    )))
                }
                t => {
                    return Err(bad(format!(
                        "unsupported tar entry type {:?} at byte offset {hdr_offset} ({})",
                        t as char,
                        self.place()
                    )))
                }
            }
        }
    }

    /// Appends exactly `len` bytes of the input to `buf`.
    fn read_small(&mut self, buf: &mut Vec<u8>, len: usize, place: &str) -> Result<()> {
        let mut left = len;
        while left > 0 {
            let avail = match self.input.fill() {
                Ok(a) => a,
                Err(e) => return Err(self.read_err(e, place)),
            };
            if avail.is_empty() {
                return Err(early(self.input.offset, place));
            }
            let n = avail.len().min(left);
            buf.extend_from_slice(&avail[..n]);
            self.input.consume(n);
            left -= n;
        }
        Ok(())
    }

    fn extension(&mut self, blk: &[u8; BLOCK], hdr_offset: u64) -> Result<()> {
        let t = blk[field::TYPEFLAG];
        let what = match t {
            b'x' => "PAX extended header",
            b'g' => "PAX global header",
            b'L' => "GNU long name header",
            _ => "GNU long link name header",
        };
        let place = format!("inside the {what} at byte offset {hdr_offset}");
        let size = parse_numeric(&blk[field::SIZE])
            .map_err(|e| bad(format!("{what} at byte offset {hdr_offset}: size: {e}")))?;
        let size = usize::try_from(size)
            .ok()
            .filter(|&s| s <= MAX_EXT)
            .ok_or_else(|| {
                bad(format!(
                    "{what} at byte offset {hdr_offset} is {size} bytes: more than the limit of {MAX_EXT}"
                ))
            })?;
        let padded = size.div_ceil(BLOCK) * BLOCK;
        if self.pending.raw.len() + BLOCK + padded > MAX_EXT + 4 * BLOCK {
            return Err(bad(format!(
                "extension headers before byte offset {hdr_offset} exceed the limit of {MAX_EXT} bytes"
            )));
        }
        if self.pending.is_empty() {
            self.pending.first_offset = hdr_offset;
        }
        let start = self.pending.raw.len();
        let mut raw = std::mem::take(&mut self.pending.raw);
        raw.extend_from_slice(blk);
        let r = self.read_small(&mut raw, padded, &place);
        self.pending.raw = raw;
        r?;
        let data = &self.pending.raw[start + BLOCK..start + BLOCK + size];
        match t {
            b'x' => parse_pax(data, &mut self.pending.pax),
            b'g' => {
                let mut g = BTreeMap::new();
                parse_pax(data, &mut g).map(|()| {
                    for (k, v) in g {
                        if v.is_empty() {
                            self.globals.remove(&k);
                        } else {
                            self.globals.insert(k, v);
                        }
                    }
                })
            }
            b'L' => {
                self.pending.long_name = Some(cstr(data).to_vec());
                Ok(())
            }
            _ => {
                self.pending.long_link = Some(cstr(data).to_vec());
                Ok(())
            }
        }
        .map_err(|e| bad(format!("{what} at byte offset {hdr_offset}: {e}")))?;
        if t == b'g' {
            let end = self.pending.raw.len();
            self.pending.globals.push(start..end);
            let total: usize = self.globals.iter().map(|(k, v)| k.len() + v.len()).sum();
            if total > MAX_EXT {
                return Err(bad(format!(
                    "PAX global records exceed the limit of {MAX_EXT} bytes at byte offset {hdr_offset}"
                )));
            }
        }
        Ok(())
    }

    /// A PAX value for `key`: the local record, else the global one. An
    /// empty local value means "use the header field".
    fn pax(&self, key: &[u8]) -> Option<&[u8]> {
        match self.pending.pax.get(key) {
            Some(v) if v.is_empty() => None,
            Some(v) => Some(v),
            None => self.globals.get(key).map(|v| v.as_slice()),
        }
    }

    fn entry(
        &mut self,
        blk: &[u8; BLOCK],
        hdr_offset: u64,
        on_entry: &mut impl FnMut(&IndexEntry) -> Result<()>,
    ) -> Result<()> {
        // The name: PAX path, else GNU long name, else prefix + name.
        let name: Vec<u8> = if let Some(p) = self.pax(b"path") {
            p.to_vec()
        } else if let Some(l) = &self.pending.long_name {
            l.clone()
        } else {
            th::header_name(blk)
        };
        let number = self.last.as_ref().map_or(1, |(n, _)| n + 1);
        let shown = th::show_name(&name);
        let field_err = |field: &str, e: String| {
            bad(format!(
                "tar header at byte offset {hdr_offset} (entry {number} {shown}): {field}: {e}"
            ))
        };
        let header_num = |range: std::ops::Range<usize>, field: &str| {
            parse_numeric(&blk[range]).map_err(|e| field_err(field, e.to_string()))
        };
        let pax_u64 = |this: &Self, key: &str, field: std::ops::Range<usize>| -> Result<u64> {
            match this.pax(key.as_bytes()) {
                Some(v) => parse_decimal_u64(v)
                    .ok_or_else(|| field_err(key, "the PAX value is not a decimal number".into())),
                None => {
                    let n = header_num(field, key)?;
                    u64::try_from(n).map_err(|_| field_err(key, format!("negative ({n})")))
                }
            }
        };

        if self
            .pending
            .pax
            .keys()
            .any(|k| k.starts_with(b"GNU.sparse."))
            || self.globals.keys().any(|k| k.starts_with(b"GNU.sparse."))
        {
            return Err(bad(format!(
                "GNU sparse file (entry {number} {shown}) at byte offset {hdr_offset}: sparse archives are not supported"
            )));
        }

        let t = blk[field::TYPEFLAG];
        let kind = match t {
            b'0' | b'7' => EntryKind::File,
            // Old tars mark directories by a trailing slash only.
            0 if name.ends_with(b"/") => EntryKind::Dir,
            0 => EntryKind::File,
            b'1' => EntryKind::Hardlink,
            b'2' => EntryKind::Symlink,
            b'3' => EntryKind::Char,
            b'4' => EntryKind::Block,
            b'5' => EntryKind::Dir,
            _ => EntryKind::Fifo,
        };
        let mode = (header_num(field::MODE, "mode")? & 0o7777) as u32;
        let uid = pax_u64(self, "uid", field::UID)?;
        let gid = pax_u64(self, "gid", field::GID)?;
        let size = pax_u64(self, "size", field::SIZE)?;
        let mtime = match self.pax(b"mtime") {
            Some(v) => parse_pax_time(v)
                .ok_or_else(|| field_err("mtime", "the PAX value is not a time".into()))?,
            None => header_num(field::MTIME, "mtime")?,
        };
        // Only regular files have data; like Go's archive/tar (Docker's
        // writer), the size of other types is ignored.
        let data_len = if kind == EntryKind::File { size } else { 0 };
        let link: Option<Vec<u8>> = match kind {
            EntryKind::Symlink | EntryKind::Hardlink => {
                Some(if let Some(p) = self.pax(b"linkpath") {
                    p.to_vec()
                } else if let Some(l) = &self.pending.long_link {
                    l.clone()
                } else {
                    cstr(&blk[field::LINKNAME]).to_vec()
                })
            }
            _ => None,
        };
        let dev = match kind {
            EntryKind::Char | EntryKind::Block => {
                let major = header_num(field::DEVMAJOR, "devmajor")?;
                let minor = header_num(field::DEVMINOR, "devminor")?;
                let m =
                    u32::try_from(major).map_err(|_| field_err("devmajor", major.to_string()))?;
                let n =
                    u32::try_from(minor).map_err(|_| field_err("devminor", minor.to_string()))?;
                Some([m, n])
            }
            _ => None,
        };
        let mut xattrs = BTreeMap::new();
        for (k, v) in self.globals.iter().chain(self.pending.pax.iter()) {
            if let Some(attr) = k.strip_prefix(b"SCHILY.xattr.") {
                xattrs.insert(path_from_bytes(attr), to_hex(v));
            }
        }

        let index_path = name.strip_suffix(b"/").unwrap_or(&name);
        let norm = normalise(&name);
        let seen: Vec<usize> = self.roots_of(norm).map(|(_, i)| i).collect();
        for &i in &seen {
            self.root_seen[i] = true;
        }
        let keep = seen.is_empty();
        if keep && kind == EntryKind::Hardlink {
            // The target came earlier in the stream; if it was dropped, the
            // copy could not be extracted.
            let target = normalise(link.as_deref().unwrap_or_default());
            if let Some((root, _)) = self.roots_of(target).next() {
                return Err(Error::usage(format!(
                    "cannot exclude {}: the hard link {} (kept) points to {} inside it",
                    path_from_bytes(root),
                    th::show_name(&name),
                    th::show_name(target),
                )));
            }
        }

        let pending = std::mem::take(&mut self.pending);
        if keep {
            self.write_out(&pending.raw)?;
            self.write_out(blk)?;
        } else {
            for r in &pending.globals {
                self.write_out(&pending.raw[r.clone()])?;
            }
        }
        let mut entry = IndexEntry {
            path: path_from_bytes(index_path),
            kind,
            mode,
            uid,
            gid,
            size: data_len,
            mtime,
            link: link.map(|l| path_from_bytes(&l)),
            xattrs,
            sha256: None,
            blake3: None,
            dev,
        };

        // The data and its padding, hashed and copied in large slices.
        let place = || format!("inside entry {number} {shown}");
        let padded = data_len.div_ceil(BLOCK as u64) * BLOCK as u64;
        let mut hasher = (keep && kind == EntryKind::File).then(|| self.hash.hasher());
        let mut left = padded;
        while left > 0 {
            let avail = match self.input.fill() {
                Ok(a) => a,
                Err(e) => return Err(self.read_err(e, &place())),
            };
            if avail.is_empty() {
                return Err(early(self.input.offset, &place()));
            }
            let n = avail.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let chunk = &avail[..n];
            if let Some(h) = hasher.as_mut() {
                // Bytes before `data_len` are content, the rest padding.
                let done = padded - left;
                let content = data_len.saturating_sub(done).min(n as u64) as usize;
                h.update(&chunk[..content]);
            }
            if keep {
                self.out.write_all(chunk).ctx(format_args!(
                    "writing the archive copy (entry {number} {shown})"
                ))?;
            }
            self.input.consume(n);
            left -= n as u64;
        }
        self.last = Some((number, shown));
        if keep {
            if let Some(h) = hasher {
                h.finish(&mut entry);
            }
            self.entries += 1;
            on_entry(&entry)?;
        }
        Ok(())
    }

    /// The exclusion roots that `p` (normalised) is or lies below, with
    /// their places in `root_seen`: `p` and each of its ancestors, looked up.
    fn roots_of<'p>(&'p self, p: &'p [u8]) -> impl Iterator<Item = (&'p [u8], usize)> + 'p {
        // Most archives have no roots: then no entry's name is walked.
        let p = if self.roots.is_empty() { &p[..0] } else { p };
        let ancestors = p.iter().enumerate().filter(|(_, &b)| b == b'/');
        ancestors
            .map(|(i, _)| &p[..i])
            .chain([p])
            .filter_map(|a| Some((a, *self.roots.get(a)?)))
    }

    /// After the first zero block: the second, then zero padding to EOF.
    fn finish_trailer(&mut self, first: &[u8; BLOCK], offset: u64) -> Result<()> {
        if !self.pending.is_empty() {
            return Err(bad(format!(
                "extension header at byte offset {} is not followed by an entry",
                self.pending.first_offset
            )));
        }
        let mut second = [0u8; BLOCK];
        let place = "inside the end-of-archive marker";
        let n = match self.input.read_block(&mut second) {
            Ok(n) => n,
            Err(e) => return Err(self.read_err(e, place)),
        };
        if n < BLOCK {
            return Err(early(
                self.input.offset,
                &format!("{place}, {}", self.place()),
            ));
        }
        if second.iter().any(|&b| b != 0) {
            return Err(bad(format!(
                "a lone zero block at byte offset {offset} is followed by data: \
                 the archive is corrupt ({})",
                self.place()
            )));
        }
        if self.trailer {
            self.write_out(first)?;
            self.write_out(&second)?;
        }
        loop {
            let at = self.input.offset;
            let avail = match self.input.fill() {
                Ok(a) => a,
                Err(e) => return Err(self.read_err(e, "after the end-of-archive marker")),
            };
            if avail.is_empty() {
                break;
            }
            if let Some(i) = avail.iter().position(|&b| b != 0) {
                return Err(bad(format!(
                    "unexpected data after the end of the archive, at byte offset {}",
                    at + i as u64
                )));
            }
            let n = avail.len();
            if self.trailer {
                self.out
                    .write_all(&self.input.buf[self.input.pos..self.input.pos + n])
                    .ctx("writing the archive copy")?;
            }
            self.input.consume(n);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::hashio::sha256_file;
    use crate::error::Kind;
    use sha2::{Digest, Sha256};
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};

    type Scanned = (Vec<u8>, Vec<IndexEntry>, ScanSummary);

    fn scan_vec(data: &[u8], exclude: &[&str]) -> Result<Scanned> {
        let mut out = Vec::new();
        let mut idx = Vec::new();
        let ex: Vec<String> = exclude.iter().map(|s| s.to_string()).collect();
        let sum = scan(data, &mut out, &ex, ContentHash::Sha256, |e| {
            idx.push(e.clone());
            Ok(())
        })?;
        Ok((out, idx, sum))
    }

    fn sha_hex(b: &[u8]) -> String {
        to_hex(&Sha256::digest(b))
    }

    fn temp_dir(name: &str) -> PathBuf {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let d =
            std::env::temp_dir().join(format!("berth-tarscan-{name}-{}-{t}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    const LONG_DIR: &str =
        "long-directory-name-number-one-long-directory-name-number-one-xxxxxxxxxxxxxxxxxx";

    fn long_path_300() -> String {
        format!("{LONG_DIR}/{LONG_DIR}/{LONG_DIR}/file-at-the-end-of-a-path-over-255-bytes.txt")
    }

    /// A tree with every kind of entry GNU tar and Docker produce (no device
    /// nodes: creating them needs privileges).
    fn make_tree(root: &Path) -> bool {
        let w = |p: &str, data: &[u8]| {
            let p = root.join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, data).unwrap();
        };
        w("sub/nested/deep/file.txt", b"hello\n");
        w(
            &format!("sub/{}", "c".repeat(120)),
            b"long name in the excluded tree",
        );
        std::fs::create_dir_all(root.join("sub/empty_dir")).unwrap();
        std::fs::create_dir_all(root.join("subway")).unwrap(); // not below "sub"
        w("subway/keep.txt", b"keep me");
        w("empty_file", b"");
        w("name with spaces.txt", b"spaces");
        w("new\nline", b"newline");
        w(
            "h\u{e9}llo w\u{f6}rld \u{2603}.txt",
            "non-ascii \u{2603}".as_bytes(),
        );
        w("back\\slash", b"backslash");
        let bad = root.join(OsStr::from_bytes(b"caf\xe9-latin1"));
        std::fs::write(bad, b"not utf-8").unwrap();
        w(
            &format!("long/{}/{}.txt", "a".repeat(60), "b".repeat(60)),
            b"over 100",
        );
        w(&long_path_300(), b"over 255");
        w("big.bin", &pseudo_random(700 * 1024 + 77, 9));
        w("hl_a", b"hard linked content");
        std::fs::hard_link(root.join("hl_a"), root.join("hl_b")).unwrap();
        let link = |target: &str, name: &str| {
            std::os::unix::fs::symlink(target, root.join(name)).unwrap();
        };
        link("/etc/passwd", "abs_link");
        link("sub/nested/deep/file.txt", "rel_link");
        link("does/not/exist", "dangling");
        link(
            &format!("{}/{}", "t".repeat(90), "u".repeat(90)),
            "long_target_link",
        );
        let st = Command::new("mkfifo")
            .arg(root.join("fifo"))
            .status()
            .unwrap();
        assert!(st.success());
        w("setuid", b"#!/bin/sh\n");
        let mode = |p: &str, m: u32| {
            std::fs::set_permissions(root.join(p), std::fs::Permissions::from_mode(m)).unwrap()
        };
        mode("setuid", 0o4755);
        std::fs::create_dir(root.join("setgid_dir")).unwrap();
        mode("setgid_dir", 0o2750);
        std::fs::create_dir(root.join("sticky_dir")).unwrap();
        mode("sticky_dir", 0o1777);
        // An extended attribute, where the file system has them.
        let p = std::ffi::CString::new(root.join("name with spaces.txt").as_os_str().as_bytes())
            .unwrap();
        let value = [0u8, 0xff, b'v'];
        // SAFETY: valid NUL-terminated strings and a valid buffer.
        let rc = unsafe {
            libc::setxattr(
                p.as_ptr(),
                c"user.berth".as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        rc == 0
    }

    fn gnu_tar(root: &Path, format: &str, xattrs: bool) -> Vec<u8> {
        let mut cmd = Command::new("tar");
        cmd.arg(format!("--format={format}"));
        if xattrs {
            cmd.arg("--xattrs");
        }
        let out = cmd
            .args(["-cf", "-", "-C"])
            .arg(root)
            .arg(".")
            .stderr(Stdio::inherit())
            .output()
            .unwrap();
        assert!(out.status.success(), "GNU tar --format={format} failed");
        out.stdout
    }

    /// `tar tf -` on `data`: the number of names listed.
    fn gnu_tar_list(data: &[u8]) -> Vec<String> {
        let mut child = Command::new("tar")
            .args(["tvf", "-", "--quoting-style=escape"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let input = data.to_vec();
        let feeder = std::thread::spawn(move || stdin.write_all(&input));
        let out = child.wait_with_output().unwrap();
        feeder.join().unwrap().unwrap();
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "tar tvf: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// What the `tar` crate reads: (path, kind, mode, size, link, sha256).
    type Seen = (String, EntryKind, u32, u64, Option<String>, Option<String>);

    fn tar_crate_view(data: &[u8]) -> Vec<Seen> {
        let mut a = tar::Archive::new(data);
        let mut v = Vec::new();
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let t = e.header().entry_type();
            if t.is_pax_global_extensions() {
                continue;
            }
            let kind = match t {
                tar::EntryType::Regular | tar::EntryType::Continuous => EntryKind::File,
                tar::EntryType::Directory => EntryKind::Dir,
                tar::EntryType::Symlink => EntryKind::Symlink,
                tar::EntryType::Link => EntryKind::Hardlink,
                tar::EntryType::Fifo => EntryKind::Fifo,
                tar::EntryType::Char => EntryKind::Char,
                tar::EntryType::Block => EntryKind::Block,
                other => panic!("unexpected {other:?}"),
            };
            let path = e.path_bytes().into_owned();
            let path = path_from_bytes(path.strip_suffix(b"/").unwrap_or(&path));
            let link = e.link_name_bytes().map(|l| path_from_bytes(&l));
            let mode = e.header().mode().unwrap() & 0o7777;
            let (size, sha) = if kind == EntryKind::File {
                let mut c = Vec::new();
                e.read_to_end(&mut c).unwrap();
                (c.len() as u64, Some(sha_hex(&c)))
            } else {
                (0, None)
            };
            v.push((path, kind, mode, size, link, sha));
        }
        v
    }

    fn view_of(idx: &[IndexEntry]) -> Vec<Seen> {
        idx.iter()
            .map(|e| {
                (
                    e.path.clone(),
                    e.kind,
                    e.mode,
                    e.size,
                    e.link.clone(),
                    e.sha256.clone(),
                )
            })
            .collect()
    }

    /// Checks every index entry against the file it came from.
    fn check_against_fs(root: &Path, idx: &[IndexEntry]) {
        let fs_path = |p: &str| root.join(OsStr::from_bytes(&path_to_bytes(p).unwrap()));
        for e in idx {
            let p = fs_path(&e.path);
            let md =
                std::fs::symlink_metadata(&p).unwrap_or_else(|err| panic!("{}: {err}", e.path));
            let ft = md.file_type();
            use std::os::unix::fs::FileTypeExt;
            let kind = if ft.is_dir() {
                EntryKind::Dir
            } else if ft.is_symlink() {
                EntryKind::Symlink
            } else if ft.is_fifo() {
                EntryKind::Fifo
            } else {
                assert!(ft.is_file());
                if e.kind == EntryKind::Hardlink {
                    EntryKind::Hardlink
                } else {
                    EntryKind::File
                }
            };
            assert_eq!(e.kind, kind, "{}", e.path);
            assert_eq!(e.mode, md.mode() & 0o7777, "{}", e.path);
            assert_eq!(
                (e.uid, e.gid),
                (md.uid() as u64, md.gid() as u64),
                "{}",
                e.path
            );
            assert_eq!(e.mtime, md.mtime(), "{}", e.path);
            assert_eq!(e.dev, None);
            match e.kind {
                EntryKind::File => {
                    let (sha, size) = sha256_file(&p).unwrap();
                    assert_eq!(
                        (e.size, e.sha256.as_deref()),
                        (size, Some(sha.as_str())),
                        "{}",
                        e.path
                    );
                    assert_eq!(e.link, None);
                }
                EntryKind::Symlink => {
                    let t = std::fs::read_link(&p).unwrap();
                    assert_eq!(
                        e.link.as_deref(),
                        Some(&*path_from_bytes(t.as_os_str().as_bytes()))
                    );
                    assert_eq!((e.size, &e.sha256), (0, &None));
                }
                EntryKind::Hardlink => {
                    let target = fs_path(e.link.as_deref().unwrap());
                    assert_eq!(std::fs::metadata(target).unwrap().ino(), md.ino());
                    assert_eq!((e.size, &e.sha256), (0, &None));
                }
                _ => assert_eq!((e.size, &e.sha256, &e.link), (0, &None, &None)),
            }
        }
    }

    /// Every truncation before the end-of-archive marker is an error.
    fn check_truncations(data: &[u8]) {
        let last = data.iter().rposition(|&b| b != 0).unwrap();
        let marker = (last / BLOCK + 1) * BLOCK;
        let mut cuts: Vec<usize> = (0..=marker + BLOCK).step_by(BLOCK).collect();
        cuts.extend([1, 100, 511, 513, 700, marker - 1, marker + 1, marker + 1023]);
        cuts.extend((0..marker).step_by(4099));
        for k in cuts {
            match scan_vec(&data[..k], &[]) {
                Ok(_) => panic!("truncated at {k} of {} and still Ok", data.len()),
                Err(e) => {
                    assert_eq!(e.kind, Kind::Integrity, "{e}");
                    assert!(e.msg.contains("ended early"), "cut at {k}: {e}");
                    assert!(
                        e.msg.contains(&format!("after {k} bytes")),
                        "cut at {k}: {e}"
                    );
                }
            }
        }
    }

    #[test]
    fn gnu_tar_archives_pass_through_and_index() {
        let root = temp_dir("gnu");
        let has_xattrs = make_tree(&root);
        for format in ["pax", "gnu"] {
            let data = gnu_tar(&root, format, has_xattrs && format == "pax");
            let (out, idx, sum) = scan_vec(&data, &[]).unwrap();
            assert!(out == data, "{format}: pass-through differs");
            assert_eq!(sum.tar_bytes, data.len() as u64);
            assert_eq!(sum.entries, idx.len() as u64);
            assert!(sum.excluded.is_empty());
            assert_eq!(view_of(&idx), tar_crate_view(&data), "{format}");
            check_against_fs(&root, &idx);

            let find = |p: &str| {
                idx.iter()
                    .find(|e| e.path == p)
                    .unwrap_or_else(|| panic!("{p}"))
            };
            assert_eq!(find(".").kind, EntryKind::Dir);
            assert_eq!(find("./sub/empty_dir").kind, EntryKind::Dir);
            assert_eq!(find("./fifo").kind, EntryKind::Fifo);
            assert_eq!(find("./setuid").mode, 0o4755);
            assert_eq!(find("./setgid_dir").mode, 0o2750);
            assert_eq!(find("./sticky_dir").mode, 0o1777);
            assert_eq!(find("./abs_link").link.as_deref(), Some("/etc/passwd"));
            assert_eq!(find("./dangling").link.as_deref(), Some("does/not/exist"));
            assert_eq!(find("./long_target_link").link.as_ref().unwrap().len(), 181);
            assert_eq!(find("./new\nline").size, 7);
            assert_eq!(find("./back\\\\slash").size, 9);
            assert_eq!(find("./caf\\xe9-latin1").size, 9);
            assert!(find(&format!("./{}", long_path_300())).path.len() > 255);
            let hl: Vec<_> = idx
                .iter()
                .filter(|e| e.kind == EntryKind::Hardlink)
                .collect();
            assert_eq!(hl.len(), 1);
            assert!(hl[0].link.as_deref().unwrap().starts_with("./hl_"));
            if has_xattrs && format == "pax" {
                let x = &find("./name with spaces.txt").xattrs;
                assert_eq!(x.get("user.berth").map(|s| s.as_str()), Some("00ff76"));
            }

            // Excluding a subtree drops exactly it, extension headers and all.
            for ex in ["sub", "./sub/", "/sub"] {
                let (out2, idx2, sum2) = scan_vec(&data, &[ex, "not/there"]).unwrap();
                let expected: Vec<IndexEntry> = idx
                    .iter()
                    .filter(|e| e.path != "./sub" && !e.path.starts_with("./sub/"))
                    .cloned()
                    .collect();
                assert_eq!(idx2, expected);
                assert_eq!(idx.len() - idx2.len(), 6, "{format}");
                assert_eq!(sum2.excluded, vec![ex.to_string()]);
                assert!(!out2.windows(120).any(|w| w == "c".repeat(120).as_bytes()));
                // Still a valid tar, identical when scanned again.
                let (out3, idx3, _) = scan_vec(&out2, &[]).unwrap();
                assert!(out3 == out2);
                assert_eq!(idx3, expected);
                assert_eq!(view_of(&idx3), tar_crate_view(&out2));
                let listed = gnu_tar_list(&out2);
                assert_eq!(listed.len(), expected.len(), "{listed:#?}");
                assert!(listed.iter().all(|l| !l.contains(" ./sub/")), "{listed:#?}");
                assert!(listed.iter().any(|l| l.ends_with(" ./subway/keep.txt")));
            }
            // Roots are in index form: escaped backslashes and bytes.
            let (_, idx2, sum2) = scan_vec(&data, &["./back\\\\slash", "caf\\xe9-latin1"]).unwrap();
            assert_eq!(idx2.len(), idx.len() - 2);
            assert_eq!(sum2.excluded.len(), 2);
            check_truncations(&data);
        }
        std::fs::remove_dir_all(&root).unwrap();
    }

    fn header(name: &str, t: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(t);
        h.set_size(size);
        h.set_mode(0o640);
        h.set_mtime(1_700_000_000);
        if !name.is_empty() && name.len() <= 100 {
            h.set_path(name).unwrap();
        }
        h.set_cksum();
        h
    }

    /// An archive made by the tar crate: GNU long names and links,
    /// devices, a base-256 uid.
    fn builder_archive() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = header("d/", tar::EntryType::Directory, 0);
        b.append(&h, &[][..]).unwrap();
        let content = pseudo_random(300_000, 3);
        h = header("d/f.bin", tar::EntryType::Regular, content.len() as u64);
        b.append(&h, &content[..]).unwrap();
        let long = format!("d/{}", "n".repeat(150));
        h = header("", tar::EntryType::Regular, 5);
        b.append_data(&mut h, &long, &b"12345"[..]).unwrap();
        h = header("", tar::EntryType::Symlink, 0);
        b.append_link(&mut h, "d/sym", "t".repeat(130)).unwrap();
        h = header("d/hard", tar::EntryType::Link, 0);
        b.append_link(&mut h, "d/hard", "d/f.bin").unwrap();
        h = header("dev/null", tar::EntryType::Char, 0);
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
        h.set_cksum();
        b.append(&h, &[][..]).unwrap();
        h = header("dev/sda1", tar::EntryType::Block, 0);
        h.set_device_major(8).unwrap();
        h.set_device_minor(1).unwrap();
        h.set_cksum();
        b.append(&h, &[][..]).unwrap();
        h = header("bigid", tar::EntryType::Regular, 0);
        h.set_uid(3_000_000_000);
        h.set_gid(3_000_000);
        h.set_cksum();
        b.append(&h, &[][..]).unwrap();
        h = header("d/empty", tar::EntryType::Regular, 0);
        b.append(&h, &[][..]).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn tar_crate_archive_with_devices_and_base256() {
        let data = builder_archive();
        let at = (0..data.len())
            .step_by(BLOCK)
            .find(|&i| data[i..].starts_with(b"bigid\0"))
            .unwrap();
        assert_eq!(data[at + 108], 0x80, "uid is base-256");
        let (out, idx, sum) = scan_vec(&data, &[]).unwrap();
        assert!(out == data);
        assert_eq!(sum.entries, 9);
        assert_eq!(view_of(&idx), tar_crate_view(&data));
        let find = |p: &str| idx.iter().find(|e| e.path == p).unwrap();
        assert_eq!(find("d").kind, EntryKind::Dir);
        assert_eq!(find("dev/null").dev, Some([1, 3]));
        assert_eq!(find("dev/sda1").kind, EntryKind::Block);
        assert_eq!(find("dev/sda1").dev, Some([8, 1]));
        assert_eq!(find("bigid").uid, 3_000_000_000);
        assert_eq!(find("bigid").gid, 3_000_000);
        assert_eq!(find("d/hard").link.as_deref(), Some("d/f.bin"));
        assert_eq!(find("d/sym").link.as_deref().map(str::len), Some(130));
        assert_eq!(find(&format!("d/{}", "n".repeat(150))).size, 5);
        assert_eq!(find("d/empty").sha256.as_deref(), Some(&*sha_hex(b"")));
        assert_eq!(find("d/f.bin").mtime, 1_700_000_000);
        assert_eq!(find("d/f.bin").mode, 0o640);
        check_truncations(&data);

        // Exclude the long-named file (GNU 'L' header and all) and the dir.
        let (out, idx, sum) = scan_vec(&data, &["dev", "bigid"]).unwrap();
        assert_eq!(idx.len(), 6);
        assert_eq!(sum.excluded, vec!["dev", "bigid"]);
        assert_eq!(view_of(&idx), tar_crate_view(&out));
        // A kept hard link to an excluded file: refused.
        let e = scan_vec(&data, &["d/f.bin"]).unwrap_err();
        assert_eq!(e.kind, Kind::Usage);
        assert!(e.msg.contains("hard link \"d/hard\""), "{e}");
        let (_, idx, _) = scan_vec(&data, &["d/f.bin", "d/hard"]).unwrap();
        assert_eq!(idx.len(), 7);
        let (_, idx, _) = scan_vec(&data, &["d"]).unwrap();
        assert_eq!(idx.len(), 3);
        assert_eq!(gnu_tar_list(&scan_vec(&data, &["d"]).unwrap().0).len(), 3);
    }

    fn block(h: &tar::Header) -> Vec<u8> {
        h.as_bytes().to_vec()
    }

    fn padded(data: &[u8]) -> Vec<u8> {
        let mut v = data.to_vec();
        v.resize(data.len().div_ceil(BLOCK) * BLOCK, 0);
        v
    }

    fn pax_records(recs: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, v) in recs {
            let body = k.len() + v.len() + 3; // ' ', '=', '\n'
            let mut len = body + 1;
            while len != body + len.to_string().len() {
                len = body + len.to_string().len();
            }
            out.extend_from_slice(format!("{len} {k}=").as_bytes());
            out.extend_from_slice(v);
            out.push(b'\n');
        }
        out
    }

    fn ext(t: u8, data: &[u8]) -> Vec<u8> {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::new(t));
        h.set_path("PaxHeaders/x").unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        [block(&h), padded(data)].concat()
    }

    fn file(name: &str, data: &[u8]) -> Vec<u8> {
        let mut h = header(name, tar::EntryType::Regular, data.len() as u64);
        h.set_uid(5);
        h.set_cksum();
        [block(&h), padded(data)].concat()
    }

    const END: [u8; 1024] = [0; 1024];

    #[test]
    fn pax_local_and_global_records() {
        let g = ext(
            b'g',
            &pax_records(&[("uid", b"77"), ("comment", b"ignored")]),
        );
        let x1 = ext(
            b'x',
            &pax_records(&[
                ("path", "a/\u{e9}t\u{e9}".as_bytes()),
                ("mtime", b"-1.5"),
                ("SCHILY.xattr.user.k", b"\x00\xff"),
                ("atime", b"1.25"),
                ("size", b"3"),
            ]),
        );
        let x2 = ext(b'x', &pax_records(&[("mtime", b"1700000000.999")]));
        let data = [
            g.clone(),
            x1.clone(),
            file("short", b"abc"),
            x2.clone(),
            file("b", b"x"),
            file("c", b""),
            END.to_vec(),
            vec![0; 3000], // record padding
        ]
        .concat();
        let (out, idx, sum) = scan_vec(&data, &[]).unwrap();
        assert!(out == data);
        assert_eq!(sum.tar_bytes, data.len() as u64);
        assert_eq!(idx[0].path, "a/\u{e9}t\u{e9}");
        assert_eq!((idx[0].mtime, idx[0].uid, idx[0].size), (-2, 77, 3));
        assert_eq!(idx[0].xattrs.get("user.k").unwrap(), "00ff");
        assert_eq!(idx[0].sha256.as_deref(), Some(&*sha_hex(b"abc")));
        assert_eq!(
            (idx[1].path.as_str(), idx[1].uid, idx[1].mtime),
            ("b", 77, 1_700_000_000)
        );
        assert_eq!((idx[2].path.as_str(), idx[2].uid), ("c", 77));
        assert!(idx[1].xattrs.is_empty());

        // Dropping the first entry keeps the global header, drops its 'x'.
        let (out, idx, _) = scan_vec(&data, &["a"]).unwrap();
        let expected = [
            g,
            x2,
            file("b", b"x"),
            file("c", b""),
            END.to_vec(),
            vec![0; 3000],
        ]
        .concat();
        assert!(out == expected);
        assert_eq!(idx[1].uid, 77);
        assert_eq!(gnu_tar_list(&out).len(), 2);

        // An empty local value falls back to the header field (POSIX; GNU
        // tar rejects "uid=" though).
        let g = ext(b'g', &pax_records(&[("uid", b"77")]));
        let x = ext(b'x', &pax_records(&[("uid", b"")]));
        let data = [g, x, file("b", b"x"), END.to_vec()].concat();
        let (_, idx, _) = scan_vec(&data, &[]).unwrap();
        assert_eq!(idx[0].uid, 5);
    }

    #[test]
    fn malformed_archives_are_errors() {
        let good = [file("a", b"hello"), END.to_vec()].concat();
        assert!(scan_vec(&good, &[]).is_ok());
        let (out, idx, _) = scan_vec(&END, &[]).unwrap(); // an empty archive
        assert!(out == END && idx.is_empty());
        let err = |data: &[u8]| match scan_vec(data, &[]) {
            Ok((_, idx, _)) => panic!("accepted: {idx:?}"),
            Err(e) => e,
        };

        // Missing second zero block; a lone zero block followed by data.
        let e = err(&good[..good.len() - BLOCK]);
        assert!(
            e.msg.contains("ended early") && e.msg.contains("end-of-archive"),
            "{e}"
        );
        let lone = [
            file("a", b"hello"),
            vec![0; BLOCK],
            file("b", b"x"),
            END.to_vec(),
        ]
        .concat();
        assert!(err(&lone).msg.contains("lone zero block"));
        // Garbage after the end.
        let mut trailing = [good.clone(), vec![0; 100]].concat();
        trailing[good.len() + 50] = 1;
        let e = err(&trailing);
        assert!(
            e.msg.contains(&format!("offset {}", good.len() + 50)),
            "{e}"
        );
        // Corrupt header checksum: names the offset.
        let mut bad = [file("a", b"hello"), file("b", b"x"), END.to_vec()].concat();
        bad[2 * BLOCK + 3] ^= 0x20;
        let e = err(&bad);
        assert!(e.msg.contains("checksum at byte offset 1024"), "{e}");
        assert!(e.msg.contains("after entry 1 \"a\""), "{e}");
        assert_eq!(e.kind, Kind::Integrity);
        // Unknown type and GNU sparse.
        for (t, what) in [(b'Z', "unsupported tar entry type 'Z'"), (b'S', "sparse")] {
            let mut h = header("x", tar::EntryType::new(t), 0);
            h.set_cksum();
            let e = err(&[block(&h), END.to_vec()].concat());
            assert!(e.msg.contains(what), "{e}");
        }
        let e = err(&[
            ext(b'x', &pax_records(&[("GNU.sparse.major", b"1")])),
            good.clone(),
        ]
        .concat());
        assert!(e.msg.contains("sparse"), "{e}");
        // Extension header without an entry; bad PAX record; oversized.
        let e = err(&[ext(b'x', &pax_records(&[("path", b"p")])), END.to_vec()].concat());
        assert!(e.msg.contains("not followed by an entry"), "{e}");
        let e = err(&[ext(b'x', b"12 path=p\n"), good.clone()].concat());
        assert!(e.msg.contains("bad length"), "{e}");
        let mut h = header("x", tar::EntryType::XHeader, (MAX_EXT + 1) as u64);
        h.set_cksum();
        let e = err(&[block(&h), vec![b'1'; MAX_EXT + 512], END.to_vec()].concat());
        assert!(e.msg.contains("limit"), "{e}");
        // Bad octal.
        let mut h = header("x", tar::EntryType::Regular, 0);
        h.as_mut_bytes()[100..108].copy_from_slice(b"0000x44\0");
        h.set_cksum();
        let e = err(&[block(&h), END.to_vec()].concat());
        assert!(e.msg.contains("mode") && e.msg.contains("octal"), "{e}");
        assert!(
            !e.msg.contains("x44"),
            "the field's bytes are not shown: {e}"
        );
        // A bad PAX value is named, not shown.
        let e = err(&[
            ext(b'x', &pax_records(&[("uid", b"12secret")])),
            good.clone(),
        ]
        .concat());
        assert!(e.msg.contains("uid") && !e.msg.contains("secret"), "{e}");
        let e = err(&[
            ext(b'x', &pax_records(&[("mtime", b"t1mesecret")])),
            good.clone(),
        ]
        .concat());
        assert!(e.msg.contains("mtime") && !e.msg.contains("secret"), "{e}");
        // Empty input.
        assert!(err(&[]).msg.contains("after 0 bytes"));
        // Excluding everything is refused.
        let e = scan_vec(&good, &["./"]).unwrap_err();
        assert_eq!(e.kind, Kind::Usage);
    }

    #[test]
    fn odd_but_valid_headers() {
        // Signed checksum (bytes >= 0x80 in the name), negative base-256
        // mtime, ustar prefix, old-style directory (type '\0' + slash),
        // contiguous file ('7').
        let mut h = tar::Header::new_ustar();
        h.set_path("pre/fix/\u{e9}\u{e9}").unwrap();
        h.set_size(0);
        h.set_mode(0o600);
        h.set_entry_type(tar::EntryType::Regular);
        h.as_mut_bytes()[136..148].copy_from_slice(&[0xff; 12]);
        let bytes = h.as_mut_bytes();
        bytes[148..156].copy_from_slice(b"        ");
        let signed: i64 = bytes.iter().map(|&b| b as i8 as i64).sum();
        bytes[148..156].copy_from_slice(format!("{signed:06o}\0 ").as_bytes());
        let signed_hdr = block(&h);

        let mut h = tar::Header::new_ustar();
        let long = format!("{}/{}", "p".repeat(120), "n".repeat(90));
        h.set_path(&long).unwrap(); // uses the prefix field
        h.set_size(2);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Continuous);
        h.set_cksum();
        let prefixed = [block(&h), padded(b"ok")].concat();

        let mut h = tar::Header::new_old();
        h.as_mut_bytes()[..7].copy_from_slice(b"olddir/");
        h.set_size(0);
        h.set_mode(0o755);
        h.as_mut_bytes()[156] = 0;
        h.set_cksum();
        let old = block(&h);

        let data = [signed_hdr, prefixed, old, END.to_vec()].concat();
        let (out, idx, _) = scan_vec(&data, &[]).unwrap();
        assert!(out == data);
        assert_eq!(idx[0].path, "pre/fix/\u{e9}\u{e9}");
        assert_eq!(idx[0].mtime, -1);
        assert_eq!(
            (idx[1].path.as_str(), idx[1].kind, idx[1].size),
            (&*long, EntryKind::File, 2)
        );
        assert_eq!(
            (idx[2].path.as_str(), idx[2].kind),
            ("olddir", EntryKind::Dir)
        );
    }

    /// Returns `data` in small pieces, then fails with a berth error.
    struct Broken<'a> {
        data: &'a [u8],
        fail_at: usize,
    }

    impl Read for Broken<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.fail_at == 0 {
                return Err(Error::new(Kind::Connection, "the daemon hung up").into_io());
            }
            let n = buf.len().min(self.fail_at).min(self.data.len()).min(1000);
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            self.fail_at -= n;
            Ok(n)
        }
    }

    #[test]
    fn blake3_index_holds_blake3_only() {
        let data = builder_archive();
        let (mut sha, mut b3) = (vec![], vec![]);
        scan(&data[..], io::sink(), &[], ContentHash::Sha256, |e| {
            sha.push(e.clone());
            Ok(())
        })
        .unwrap();
        scan(&data[..], io::sink(), &[], ContentHash::Blake3, |e| {
            b3.push(e.clone());
            Ok(())
        })
        .unwrap();
        assert_eq!(sha.len(), b3.len());
        let mut files = 0;
        for (s, b) in sha.iter().zip(&b3) {
            assert_eq!(b.sha256, None);
            assert_eq!(s.blake3, None);
            assert_eq!(s.sha256.is_some(), b.blake3.is_some(), "{}", s.path);
            files += usize::from(b.blake3.is_some());
            // Everything but the hash is the same.
            let mut t = s.clone();
            t.sha256 = None;
            t.blake3.clone_from(&b.blake3);
            assert_eq!(&t, b);
        }
        assert!(files > 0);
        // The published test vector.
        let mut h = ContentHash::Blake3.hasher();
        h.update(b"abc");
        let mut e = sha[0].clone();
        h.finish(&mut e);
        assert_eq!(
            e.blake3.as_deref(),
            Some("6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85")
        );
    }

    #[test]
    fn input_errors_keep_their_kind_and_callback_errors_propagate() {
        let data = builder_archive();
        for fail_at in [0, 100, 512, 2000, 200_000, data.len() - 10] {
            let r = scan(
                Broken {
                    data: &data,
                    fail_at,
                },
                io::sink(),
                &[],
                ContentHash::Sha256,
                |_| Ok(()),
            );
            let e = r.unwrap_err();
            assert_eq!(e.kind, Kind::Connection, "{e}");
            assert!(e.msg.contains("the daemon hung up"), "{e}");
            assert!(e.msg.contains(&format!("at byte {fail_at}")), "{e}");
        }
        let e = scan(&data[..], io::sink(), &[], ContentHash::Sha256, |e| {
            if e.path == "d/f.bin" {
                Err(Error::failed("stop"))
            } else {
                Ok(())
            }
        })
        .unwrap_err();
        assert_eq!(e.msg, "stop");
        // Output errors (e.g. a full disk) surface too.
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::from_raw_os_error(libc::ENOSPC))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let e = scan(&data[..], Full, &[], ContentHash::Sha256, |_| Ok(())).unwrap_err();
        assert!(e.msg.contains("No space left"), "{e}");
    }

    /// Generates a tar of `files` files of `size` bytes without holding it.
    struct Synth {
        files: u64,
        size: u64,
        pattern: Vec<u8>,
        /// Current piece: header, data, padding or end.
        hdr: Vec<u8>,
        hdr_pos: usize,
        data_left: u64,
        done_files: u64,
        pad_left: usize,
        end_left: usize,
    }

    impl Read for Synth {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.hdr_pos < self.hdr.len() {
                let n = buf.len().min(self.hdr.len() - self.hdr_pos);
                buf[..n].copy_from_slice(&self.hdr[self.hdr_pos..self.hdr_pos + n]);
                self.hdr_pos += n;
                return Ok(n);
            }
            if self.data_left > 0 {
                let off = ((self.size - self.data_left) % self.pattern.len() as u64) as usize;
                let n = buf
                    .len()
                    .min(self.pattern.len() - off)
                    .min(self.data_left as usize);
                buf[..n].copy_from_slice(&self.pattern[off..off + n]);
                self.data_left -= n as u64;
                return Ok(n);
            }
            if self.pad_left > 0 {
                let n = buf.len().min(self.pad_left);
                buf[..n].fill(0);
                self.pad_left -= n;
                return Ok(n);
            }
            if self.done_files < self.files {
                let h = header(
                    &format!("vmware/big{}.bin", self.done_files),
                    tar::EntryType::Regular,
                    self.size,
                );
                self.hdr = block(&h);
                self.hdr_pos = 0;
                self.data_left = self.size;
                self.pad_left = (BLOCK - (self.size as usize % BLOCK)) % BLOCK;
                self.done_files += 1;
                return self.read(buf);
            }
            let n = buf.len().min(self.end_left);
            buf[..n].fill(0);
            self.end_left -= n;
            Ok(n)
        }
    }

    /// `cargo test --release --lib archive::tarscan -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn bench_scan() {
        // Large files (a multiple of 512: no padding), then many small ones.
        for (files, size) in [(4u64, 1u64 << 30), (200_000, 1000)] {
            let synth = Synth {
                files,
                size,
                pattern: pseudo_random(1 << 20, 11),
                hdr: Vec::new(),
                hdr_pos: 0,
                data_left: 0,
                done_files: 0,
                pad_left: 0,
                end_left: 1024,
            };
            let t = std::time::Instant::now();
            let mut n = 0;
            let sum = scan(synth, io::sink(), &[], ContentHash::NEW, |e| {
                assert_eq!(e.size, size);
                n += 1;
                Ok(())
            })
            .unwrap();
            let secs = t.elapsed().as_secs_f64();
            assert_eq!(n, files);
            println!(
                "tarscan: {files} files of {size} bytes, {} bytes in {secs:.3} s = {:.2} GB/s, {:.0} entries/s",
                sum.tar_bytes,
                sum.tar_bytes as f64 / secs / 1e9,
                files as f64 / secs
            );
        }
    }
}
