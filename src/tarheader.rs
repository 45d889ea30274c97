//! The tar header format in one place: where the fields are, how their
//! numbers and PAX records read, and the headers berth writes (through
//! `tar::Header`). Read by the backup scanner (archive/tarscan.rs), read
//! and rewritten by the Podman rename (docker/podman.rs).
//!
//! Errors name the field and the problem, never the bytes that were there:
//! headers come from a user's files. [`show_name`] is the one way an
//! entry's name reaches a message.

use std::fmt;

/// The tar block: every header and every data run is padded to it.
pub(crate) const BLOCK: usize = 512;

/// Where the header fields are (POSIX ustar; GNU and old tars agree on
/// the first ones).
pub mod field {
    use std::ops::Range;

    pub const NAME: Range<usize> = 0..100;
    pub(crate) const MODE: Range<usize> = 100..108;
    pub(crate) const UID: Range<usize> = 108..116;
    pub(crate) const GID: Range<usize> = 116..124;
    pub(crate) const SIZE: Range<usize> = 124..136;
    pub const MTIME: Range<usize> = 136..148;
    pub(crate) const CHKSUM: Range<usize> = 148..156;
    pub(crate) const TYPEFLAG: usize = 156;
    pub(crate) const LINKNAME: Range<usize> = 157..257;
    pub(crate) const MAGIC: Range<usize> = 257..263;
    pub(crate) const DEVMAJOR: Range<usize> = 329..337;
    pub(crate) const DEVMINOR: Range<usize> = 337..345;
    pub const PREFIX: Range<usize> = 345..500;
    /// star keeps atime and ctime after a shorter prefix...
    pub(crate) const STAR_PREFIX: Range<usize> = 345..476;
    /// ...and says so here.
    pub(crate) const STAR_MAGIC: Range<usize> = 508..512;
}

/// A header block.
pub type Block = [u8; BLOCK];

/// A field up to its first NUL.
pub(crate) fn cstr(b: &[u8]) -> &[u8] {
    match b.iter().position(|&c| c == 0) {
        Some(i) => &b[..i],
        None => b,
    }
}

/// `size` rounded up to whole blocks.
pub(crate) fn padded(size: u64) -> u64 {
    size.div_ceil(BLOCK as u64) * BLOCK as u64
}

/// A POSIX ustar header (it has the prefix field).
pub(crate) fn is_ustar(h: &Block) -> bool {
    &h[field::MAGIC] == b"ustar\0"
}

/// Entry types whose size counts data blocks (not links, directories,
/// devices or fifos).
pub(crate) fn has_data(typeflag: u8) -> bool {
    !matches!(typeflag, b'1' | b'2' | b'3' | b'4' | b'5' | b'6')
}

/// The name the header itself holds: ustar prefix and name, else name.
pub(crate) fn header_name(h: &Block) -> Vec<u8> {
    let base = cstr(&h[field::NAME]);
    let prefix = if !is_ustar(h) {
        &[][..]
    } else if &h[field::STAR_MAGIC] == b"tar\0" {
        cstr(&h[field::STAR_PREFIX])
    } else {
        cstr(&h[field::PREFIX])
    };
    if prefix.is_empty() {
        base.to_vec()
    } else {
        [prefix, b"/", base].concat()
    }
}

/// Why a numeric field does not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NumError {
    /// Base-256 with more bits than an i64 holds.
    Base256Range,
    /// A character that is not an octal digit.
    NotOctal,
    OctalRange,
}

impl fmt::Display for NumError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NumError::Base256Range => "base-256 number out of range",
            NumError::NotOctal => "not an octal number",
            NumError::OctalRange => "octal number out of range",
        })
    }
}

/// A numeric header field: base-256 if the high bit of the first byte is
/// set, otherwise octal (NUL/space terminated, leading spaces allowed).
pub(crate) fn parse_numeric(b: &[u8]) -> Result<i64, NumError> {
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
                return Err(NumError::Base256Range);
            }
            x = (x << 8) | c as u64;
        }
        if x >> 63 != 0 {
            return Err(NumError::Base256Range);
        }
        return Ok(if inv == 0xff { !(x as i64) } else { x as i64 });
    }
    let s = trim(cstr(b));
    let mut x: i64 = 0;
    for &c in s {
        if !(b'0'..=b'7').contains(&c) {
            return Err(NumError::NotOctal);
        }
        x = x
            .checked_mul(8)
            .and_then(|x| x.checked_add((c - b'0') as i64))
            .ok_or(NumError::OctalRange)?;
    }
    Ok(x)
}

/// The field without its leading and trailing spaces and NULs.
fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | 0, rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | 0] = s {
        s = rest;
    }
    s
}

/// A header's size field, which must not be negative.
pub(crate) fn size(h: &Block) -> Result<u64, NumError> {
    let n = parse_numeric(&h[field::SIZE])?;
    u64::try_from(n).map_err(|_| NumError::Base256Range)
}

/// Header checksum: the stored octal value must equal the unsigned or the
/// signed sum of the header bytes, the checksum field counted as spaces.
pub(crate) fn checksum_ok(h: &Block) -> bool {
    let Ok(stored) = parse_numeric(&h[field::CHKSUM]) else {
        return false;
    };
    let mut unsigned: i64 = 0;
    let mut signed: i64 = 0;
    for (i, &b) in h.iter().enumerate() {
        let b = if field::CHKSUM.contains(&i) { b' ' } else { b };
        unsigned += b as i64;
        signed += b as i8 as i64;
    }
    stored == unsigned || stored == signed
}

/// PAX records (key, value), in archive order.
pub(crate) type PaxRecords = Vec<(Vec<u8>, Vec<u8>)>;

/// Why PAX records do not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PaxError {
    NoLength,
    BadLength,
    NoEquals,
}

impl fmt::Display for PaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PaxError::NoLength => "a record has no length",
            PaxError::BadLength => "a record has a bad length",
            PaxError::NoEquals => "a record has no '='",
        })
    }
}

/// PAX records `LEN KEY=VALUE\n`; NUL padding after the last is allowed.
pub(crate) fn parse_pax(data: &[u8]) -> Result<PaxRecords, PaxError> {
    let mut recs = vec![];
    let mut rest = data;
    while !rest.is_empty() && !rest.iter().all(|&c| c == 0) {
        let sp = rest
            .iter()
            .position(|&c| c == b' ')
            .ok_or(PaxError::NoLength)?;
        let len = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
            .ok_or(PaxError::BadLength)?;
        if len <= sp + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err(PaxError::BadLength);
        }
        let rec = &rest[sp + 1..len - 1];
        let eq = rec
            .iter()
            .position(|&c| c == b'=')
            .ok_or(PaxError::NoEquals)?;
        recs.push((rec[..eq].to_vec(), rec[eq + 1..].to_vec()));
        rest = &rest[len..];
    }
    Ok(recs)
}

/// One PAX record, "<len> key=value\n", where len counts itself.
pub(crate) fn pax_record(k: &[u8], v: &[u8]) -> Vec<u8> {
    let body = k.len() + v.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    let mut r = format!("{len} ").into_bytes();
    r.extend_from_slice(k);
    r.push(b'=');
    r.extend_from_slice(v);
    r.push(b'\n');
    r
}

/// A header to edit, from its block.
fn editable(h: &Block) -> tar::Header {
    let mut t = tar::Header::new_old();
    t.as_mut_bytes().copy_from_slice(h);
    t
}

fn set_bytes(dst: &mut [u8], v: &[u8]) {
    let n = v.len().min(dst.len());
    dst.fill(0);
    dst[..n].copy_from_slice(&v[..n]);
}

/// Header `h` with a new name (the ustar prefix emptied) and/or a new
/// link target, cut to the field (a longer one goes in an extension
/// record before it), checksum renewed.
pub(crate) fn renamed(h: &Block, name: Option<&[u8]>, link: Option<&[u8]>) -> Block {
    let mut t = editable(h);
    if let Some(n) = name {
        set_bytes(&mut t.as_old_mut().name, n);
        if let Some(u) = t.as_ustar_mut() {
            u.prefix = [0; 155];
        }
    }
    if let Some(l) = link {
        set_bytes(&mut t.as_old_mut().linkname, l);
    }
    t.set_cksum();
    *t.as_bytes()
}

/// Extension header `h` (PAX `x`) with the size of new records.
pub(crate) fn resized(h: &Block, size: u64) -> Block {
    let mut t = editable(h);
    t.set_size(size);
    t.set_cksum();
    *t.as_bytes()
}

/// A GNU long name (`L`) or long link (`K`) record holding `v`: its
/// header and its padded data.
pub(crate) fn gnu_long(kind: tar::EntryType, v: &[u8]) -> Vec<u8> {
    let mut t = tar::Header::new_gnu();
    set_bytes(&mut t.as_old_mut().name, b"././@LongLink");
    t.set_mode(0o644);
    t.set_uid(0);
    t.set_gid(0);
    t.set_size(v.len() as u64 + 1);
    t.set_mtime(0);
    t.set_entry_type(kind);
    t.set_cksum();
    let mut out = t.as_bytes().to_vec();
    out.extend_from_slice(v);
    out.push(0);
    out.resize(BLOCK + padded(v.len() as u64 + 1) as usize, 0);
    out
}

/// How long a name shown in a message may be, in characters.
const SHOWN_MAX: usize = 64;

/// An entry's name for a message: quoted, control characters and invalid
/// UTF-8 escaped (a name cannot drive the terminal), cut to 64 characters.
pub(crate) fn show_name(name: &[u8]) -> String {
    let text = String::from_utf8_lossy(name);
    let mut s = String::from("\"");
    for (i, c) in text.chars().enumerate() {
        if i == SHOWN_MAX {
            s.push_str("...");
            break;
        }
        s.extend(c.escape_debug());
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, link: &str, kind: tar::EntryType) -> Block {
        let mut h = tar::Header::new_ustar();
        h.set_path(name).unwrap();
        if !link.is_empty() {
            h.set_link_name(link).unwrap();
        }
        h.set_entry_type(kind);
        h.set_size(0);
        h.set_cksum();
        *h.as_bytes()
    }

    #[test]
    fn numbers_octal_and_base256() {
        assert_eq!(parse_numeric(b"0000644\0"), Ok(0o644));
        assert_eq!(parse_numeric(b"  755 \0"), Ok(0o755));
        assert_eq!(parse_numeric(b"\0\0\0\0"), Ok(0));
        assert_eq!(parse_numeric(b"12x4\0"), Err(NumError::NotOctal));
        assert_eq!(
            parse_numeric(b"77777777777777777777777"),
            Err(NumError::OctalRange)
        );
        let mut big = [0u8; 12];
        big[0] = 0x80;
        big[4..].copy_from_slice(&(1u64 << 40).to_be_bytes());
        assert_eq!(parse_numeric(&big), Ok(1 << 40));
        assert_eq!(parse_numeric(&[0xff; 8]), Ok(-1));
        assert_eq!(
            parse_numeric(&[0x80, 0xff, 0, 0, 0, 0, 0, 0, 0]),
            Err(NumError::Base256Range)
        );
    }

    #[test]
    fn written_headers_read_back() {
        let h = header("dir/a", "", tar::EntryType::Regular);
        assert!(checksum_ok(&h) && is_ustar(&h));
        assert_eq!(header_name(&h), b"dir/a");
        let r = renamed(&h, Some(b"other/b"), None);
        assert!(checksum_ok(&r));
        assert_eq!(header_name(&r), b"other/b");
        let l = header("x", "target", tar::EntryType::Link);
        let r = renamed(&l, None, Some(b"t2"));
        assert_eq!(cstr(&r[field::LINKNAME]), b"t2");
        assert!(checksum_ok(&r));
        let mut bad = r;
        bad[0] ^= 1;
        assert!(!checksum_ok(&bad));
        let s = resized(&h, 1 << 40);
        assert_eq!(size(&s), Ok(1 << 40));
        assert!(checksum_ok(&s));
    }

    #[test]
    fn long_names_as_the_tar_crate_reads_them() {
        let long = "d/".repeat(100) + "file";
        let mut tar = gnu_long(tar::EntryType::GNULongName, long.as_bytes());
        assert_eq!(tar.len() % BLOCK, 0);
        assert!(checksum_ok(tar[..BLOCK].try_into().unwrap()));
        tar.extend_from_slice(&renamed(
            &header("short", "", tar::EntryType::Regular),
            Some(&long.as_bytes()[..100]),
            None,
        ));
        tar.extend_from_slice(&[0; 2 * BLOCK]);
        let mut a = tar::Archive::new(&tar[..]);
        let e = a.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(e.path_bytes().as_ref(), long.as_bytes());
    }

    #[test]
    fn pax_records_round_trip() {
        let mut data = pax_record(b"path", b"a/b");
        data.extend(pax_record(b"mtime", b"1.5"));
        assert_eq!(&data[..12], b"12 path=a/b\n");
        data.extend([0; 7]);
        let recs = parse_pax(&data).unwrap();
        assert_eq!(
            recs,
            vec![
                (b"path".to_vec(), b"a/b".to_vec()),
                (b"mtime".to_vec(), b"1.5".to_vec())
            ]
        );
        assert_eq!(parse_pax(b"x"), Err(PaxError::NoLength));
        assert_eq!(parse_pax(b"99 a=b\n"), Err(PaxError::BadLength));
        assert_eq!(parse_pax(b"5 ab\n"), Err(PaxError::NoEquals));
        // 90 + "path" + " =\n" + two digits: 99.
        let r = pax_record(b"path", &[b'x'; 90]);
        assert_eq!(r.len(), 99);
        assert!(r.starts_with(b"99 path="));
        // 94 + "k" + " =\n" is 98: with 2 digits 100, which has 3: 101.
        let r = pax_record(b"k", &[b'v'; 94]);
        assert_eq!(r.len(), 101);
        assert!(r.starts_with(b"101 "));
    }

    #[test]
    fn names_are_shown_escaped_and_cut() {
        assert_eq!(show_name(b"a/b"), "\"a/b\"");
        assert_eq!(show_name(b"x\x1b[2J\n"), "\"x\\u{1b}[2J\\n\"");
        assert_eq!(show_name(b"\xff"), "\"\u{fffd}\"");
        let long = show_name(&[b'a'; 500]);
        assert_eq!(long, format!("\"{}...\"", "a".repeat(64)));
    }
}
