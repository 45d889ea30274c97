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

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};

use super::hashio::to_hex;
use super::index::{path_from_bytes, EntryKind, IndexEntry};
use crate::error::{Context, Error, Result};

const BLOCK: usize = 512;
const BUF_SIZE: usize = 256 * 1024;
/// Most bytes of extension headers (PAX `x`/`g`, GNU `L`/`K`, with their
/// headers and padding) held in memory for one entry, and most bytes of
/// global PAX records kept.
pub const MAX_EXT: usize = 1 << 20;

/// What [`scan`] saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanSummary {
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
/// `exclude`: paths in index form (e.g. `vmware/config`) whose entry and
/// every entry below it are dropped entirely, with their PAX/GNU extension
/// headers, from `out` and from the index. Matching is done on normalised
/// paths (a leading `./` or `/` and trailing `/` ignored on both sides), so
/// `vmware/config` also drops `./vmware/config/x`.
///
/// PAX global headers are passed through (also when the entry after them is
/// dropped) and apply to all following entries.
///
/// The archive must end with two zero blocks; whatever follows them must be
/// zeros too (record padding) and is read to EOF and passed through.
pub fn scan(
    input: impl Read,
    out: impl Write,
    exclude: &[String],
    mut on_entry: impl FnMut(&IndexEntry) -> Result<()>,
) -> Result<ScanSummary> {
    let roots = exclude
        .iter()
        .map(|r| {
            let n = normalise(r.as_bytes());
            if n.is_empty() {
                Err(Error::usage(format!(
                    "cannot exclude {r:?}: it names the whole archive"
                )))
            } else {
                Ok(n.to_vec())
            }
        })
        .collect::<Result<Vec<_>>>()?;
    let mut s = Scanner {
        input: Input::new(input),
        out,
        roots,
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
    roots: Vec<Vec<u8>>,
    root_seen: Vec<bool>,
    /// PAX global records in force.
    globals: BTreeMap<Vec<u8>, Vec<u8>>,
    pending: Pending,
    /// Name of the last entry, for error messages.
    last: Option<String>,
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

/// A field up to its first NUL.
fn cstr(b: &[u8]) -> &[u8] {
    match b.iter().position(|&c| c == 0) {
        Some(i) => &b[..i],
        None => b,
    }
}

fn show_bytes(b: &[u8]) -> String {
    format!("{:?}", path_from_bytes(b))
}

/// A numeric header field: base-256 if the high bit of the first byte is
/// set, otherwise octal (NUL/space terminated, leading spaces allowed).
fn parse_numeric(b: &[u8]) -> std::result::Result<i64, String> {
    if b.first().is_some_and(|&c| c & 0x80 != 0) {
        // Two's complement big-endian, the 0x80 flag bit excluded.
        let inv: u8 = if b[0] & 0x40 != 0 { 0xff } else { 0 };
        let mut x: u64 = 0;
        for (i, &c) in b.iter().enumerate() {
            let mut c = c ^ inv;
            if i == 0 {
                c &= 0x7f;
            }
            if x >> 56 != 0 {
                return Err("base-256 number out of range".into());
            }
            x = (x << 8) | c as u64;
        }
        if x >> 63 != 0 {
            return Err("base-256 number out of range".into());
        }
        return Ok(if inv == 0xff { !(x as i64) } else { x as i64 });
    }
    let s = cstr(b);
    let s = trim(s);
    if s.is_empty() {
        return Ok(0);
    }
    let mut x: i64 = 0;
    for &c in s {
        if !(b'0'..=b'7').contains(&c) {
            return Err(format!("bad octal number {:?}", String::from_utf8_lossy(b)));
        }
        x = x
            .checked_mul(8)
            .and_then(|x| x.checked_add((c - b'0') as i64))
            .ok_or("octal number out of range")?;
    }
    Ok(x)
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | 0, rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | 0] = s {
        s = rest;
    }
    s
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

/// Parses PAX records `LEN KEY=VALUE\n` into `into` (later records win).
fn parse_pax(
    data: &[u8],
    into: &mut BTreeMap<Vec<u8>, Vec<u8>>,
) -> std::result::Result<(), String> {
    let mut rest = data;
    while !rest.is_empty() {
        if rest.iter().all(|&c| c == 0) {
            break; // NUL padding after the last record
        }
        let sp = rest
            .iter()
            .position(|&c| c == b' ')
            .ok_or("a record has no length")?;
        let len = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
            .ok_or("a record has a bad length")?;
        if len <= sp + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err("a record has a bad length".into());
        }
        let rec = &rest[sp + 1..len - 1];
        let eq = rec
            .iter()
            .position(|&c| c == b'=')
            .ok_or("a record has no '='")?;
        into.insert(rec[..eq].to_vec(), rec[eq + 1..].to_vec());
        rest = &rest[len..];
    }
    Ok(())
}

/// Header checksum: the stored octal value must equal the unsigned or the
/// signed sum of the header bytes, the checksum field counted as spaces.
fn checksum_ok(blk: &[u8; BLOCK]) -> bool {
    let Ok(stored) = parse_numeric(&blk[148..156]) else {
        return false;
    };
    let mut unsigned: i64 = 0;
    let mut signed: i64 = 0;
    for (i, &b) in blk.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += b as i64;
        signed += b as i8 as i64;
    }
    stored == unsigned || stored == signed
}

impl<R: Read, W: Write> Scanner<R, W> {
    fn place(&self) -> String {
        match &self.last {
            Some(name) => format!("after entry {name}"),
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
            match blk[156] {
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
        let t = blk[156];
        let what = match t {
            b'x' => "PAX extended header",
            b'g' => "PAX global header",
            b'L' => "GNU long name header",
            _ => "GNU long link name header",
        };
        let place = format!("inside the {what} at byte offset {hdr_offset}");
        let size = parse_numeric(&blk[124..136])
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
        let ustar = &blk[257..263] == b"ustar\0";
        // The name: PAX path, else GNU long name, else prefix + name.
        let name: Vec<u8> = if let Some(p) = self.pax(b"path") {
            p.to_vec()
        } else if let Some(l) = &self.pending.long_name {
            l.clone()
        } else {
            let base = cstr(&blk[0..100]);
            // star puts atime/ctime after a shorter prefix and "tar\0" at 508.
            let prefix = if !ustar {
                &[][..]
            } else if &blk[508..512] == b"tar\0" {
                cstr(&blk[345..476])
            } else {
                cstr(&blk[345..500])
            };
            if prefix.is_empty() {
                base.to_vec()
            } else {
                [prefix, b"/", base].concat()
            }
        };
        let shown = path_from_bytes(&name);
        let field_err = |field: &str, e: String| {
            bad(format!(
                "tar header at byte offset {hdr_offset} (entry {shown}): {field}: {e}"
            ))
        };
        let header_num = |range: std::ops::Range<usize>, field: &str| {
            parse_numeric(&blk[range]).map_err(|e| field_err(field, e))
        };
        let pax_u64 = |this: &Self, key: &str, field: std::ops::Range<usize>| -> Result<u64> {
            match this.pax(key.as_bytes()) {
                Some(v) => parse_decimal_u64(v)
                    .ok_or_else(|| field_err(key, format!("bad PAX value {}", show_bytes(v)))),
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
                "GNU sparse file {shown} at byte offset {hdr_offset}: sparse archives are not supported"
            )));
        }

        let t = blk[156];
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
        let mode = (header_num(100..108, "mode")? & 0o7777) as u32;
        let uid = pax_u64(self, "uid", 108..116)?;
        let gid = pax_u64(self, "gid", 116..124)?;
        let size = pax_u64(self, "size", 124..136)?;
        let mtime = match self.pax(b"mtime") {
            Some(v) => parse_pax_time(v)
                .ok_or_else(|| field_err("mtime", format!("bad PAX value {}", show_bytes(v))))?,
            None => header_num(136..148, "mtime")?,
        };
        // Only regular files have data; like Go's archive/tar (Docker's
        // writer), the size of other types is ignored.
        let data_len = if kind == EntryKind::File { size } else { 0 };
        let link = match kind {
            EntryKind::Symlink | EntryKind::Hardlink => {
                let l: Vec<u8> = if let Some(p) = self.pax(b"linkpath") {
                    p.to_vec()
                } else if let Some(l) = &self.pending.long_link {
                    l.clone()
                } else {
                    cstr(&blk[157..257]).to_vec()
                };
                Some(path_from_bytes(&l))
            }
            _ => None,
        };
        let dev = match kind {
            EntryKind::Char | EntryKind::Block => {
                let major = header_num(329..337, "devmajor")?;
                let minor = header_num(337..345, "devminor")?;
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
        let mut keep = true;
        for (root, seen) in self.roots.iter().zip(self.root_seen.iter_mut()) {
            if norm == root.as_slice()
                || (norm.starts_with(root) && norm.get(root.len()) == Some(&b'/'))
            {
                keep = false;
                *seen = true;
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
            link,
            xattrs,
            sha256: None,
            dev,
        };

        // The data and its padding, hashed and copied in large slices.
        let place = format!("inside entry {shown}");
        let padded = data_len.div_ceil(BLOCK as u64) * BLOCK as u64;
        let mut hasher = (keep && kind == EntryKind::File).then(Sha256::new);
        let mut left = padded;
        while left > 0 {
            let avail = match self.input.fill() {
                Ok(a) => a,
                Err(e) => return Err(self.read_err(e, &place)),
            };
            if avail.is_empty() {
                return Err(early(self.input.offset, &place));
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
                self.out
                    .write_all(chunk)
                    .ctx(format_args!("writing the archive copy (entry {shown})"))?;
            }
            self.input.consume(n);
            left -= n as u64;
        }
        self.last = Some(shown);
        if keep {
            entry.sha256 = hasher.map(|h| to_hex(&h.finalize()));
            self.entries += 1;
            on_entry(&entry)?;
        }
        Ok(())
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
        self.write_out(first)?;
        self.write_out(&second)?;
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
            self.out
                .write_all(&self.input.buf[self.input.pos..self.input.pos + n])
                .ctx("writing the archive copy")?;
            self.input.consume(n);
        }
        Ok(())
    }
}
