//! Podman's Docker-compatible API (`podman system service`, libpod 4.x)
//! answers the archive endpoints differently from Docker for a volume
//! mount point of a container that is not running (nothing is mounted
//! then: Podman resolves volume paths itself):
//!
//! * GET `archive?path=/etc/likewise` names the entries from the volume
//!   root, `/`, `/a.conf`, `/sub/b`, where Docker answers `likewise/`,
//!   `likewise/a.conf`, `likewise/sub/b` (a running container's archive is
//!   named like Docker's);
//! * PUT into the parent (`archive?path=/etc`, entries `likewise/...`, what
//!   berth sends Docker) answers 200 but extracts into the container's own
//!   filesystem under the mount point, not into the volume. PUT into the
//!   mount point itself lands in the volume, and an entry `./` there sets
//!   the volume root's mode, owner and times.
//!
//! And container inspect names HostConfig.Ulimits `RLIMIT_NOFILE` where
//! Docker names them `nofile`, while Podman's create takes only the
//! latter: a container recreated from its inspect (`berth upgrade`) failed
//! with "invalid ulimit type: RLIMIT_NOFILE". Its inspect reports a
//! device's CgroupPermissions as "" where its create refuses "" ("invalid
//! device mode: "); the mode it applied is `rwm`, its default.
//! [`create_config`] fixes both.
//!
//! berth keeps Docker's naming everywhere (backups made on either engine
//! restore on the other): [`Rename`] rewrites tar entry names on the fly,
//! headers only, with the data passed through unchanged and in constant
//! memory.

use std::io::{self, Read};

use serde_json::Value;

/// A create request for Podman: ulimit names as its create takes them
/// (`RLIMIT_NOFILE` -> `nofile`), a device's empty mode as `rwm`.
pub fn create_config(config: &Value) -> Value {
    let mut c = config.clone();
    if let Some(devices) = c
        .pointer_mut("/HostConfig/Devices")
        .and_then(Value::as_array_mut)
    {
        for d in devices {
            if d.get("CgroupPermissions").and_then(Value::as_str) == Some("") {
                d["CgroupPermissions"] = Value::from("rwm");
            }
        }
    }
    if let Some(limits) = c
        .pointer_mut("/HostConfig/Ulimits")
        .and_then(Value::as_array_mut)
    {
        for l in limits {
            if let Some(n) = l["Name"].as_str() {
                if let Some(short) = n.strip_prefix("RLIMIT_") {
                    l["Name"] = Value::from(short.to_ascii_lowercase());
                }
            }
        }
    }
    c
}

const BLOCK: usize = 512;

/// How entry names are rewritten.
#[derive(Debug, Clone)]
enum Mapping {
    /// Podman's volume-root naming (`/`, `/x`) to Docker's (`base/`,
    /// `base/x`); only when the first entry is named `/`, else the stream
    /// passes untouched (a running container's, a path that is no mount).
    FromVolumeRoot { base: Vec<u8> },
    /// Docker's naming (`base/`, `base/x`) to names relative to the path
    /// itself (`./`, `x`), for a PUT into the mount point.
    IntoPath { base: Vec<u8> },
}

impl Mapping {
    /// The new name, or None when it stays.
    fn map(&self, name: &[u8]) -> io::Result<Option<Vec<u8>>> {
        match self {
            Mapping::FromVolumeRoot { base } => Ok(name.strip_prefix(b"/").map(|rest| {
                let mut n = base.clone();
                n.push(b'/');
                n.extend_from_slice(rest);
                n
            })),
            Mapping::IntoPath { base } => {
                let trimmed = name.strip_prefix(b"./").unwrap_or(name);
                match trimmed.strip_prefix(base.as_slice()) {
                    Some(b"") | Some(b"/") => Ok(Some(b"./".to_vec())),
                    Some(rest) if rest.starts_with(b"/") => Ok(Some(rest[1..].to_vec())),
                    _ => Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "tar entry {:?} is not below {:?}",
                            String::from_utf8_lossy(name),
                            String::from_utf8_lossy(base)
                        ),
                    )),
                }
            }
        }
    }
}

/// The base name of a container path, as Docker names the archive's top
/// entry (`/etc/likewise` -> `likewise`).
fn base_of(path: &str) -> Vec<u8> {
    path.rsplit('/')
        .find(|b| !b.is_empty())
        .unwrap_or(".")
        .as_bytes()
        .to_vec()
}

/// A tar stream with its entry names (and hard link targets) rewritten.
pub struct Rename<R> {
    inner: R,
    mapping: Mapping,
    /// Rewritten header blocks not yet handed out.
    out: Vec<u8>,
    at: usize,
    /// Data and padding bytes of the current entry still to pass through.
    data_left: u64,
    /// Whether the names are rewritten (decided at the first entry for
    /// FromVolumeRoot); false: everything passes through.
    active: Option<bool>,
    /// After the end-of-archive block: pass the rest through.
    passthrough: bool,
    pending: Pending,
}

/// PAX records: (key, value).
type PaxRecords = Vec<(Vec<u8>, Vec<u8>)>;

/// Extension records before an entry's own header.
#[derive(Default)]
struct Pending {
    /// Their raw blocks, emitted as they were when nothing changes.
    raw: Vec<u8>,
    gnu_name: Option<Vec<u8>>,
    gnu_link: Option<Vec<u8>>,
    /// The PAX header block and its records.
    pax: Option<([u8; BLOCK], PaxRecords)>,
}

impl<R: Read> Rename<R> {
    /// A Podman GET archive of `path`, named as Docker names it.
    pub fn from_volume_root(path: &str, inner: R) -> Self {
        Self::new(
            inner,
            Mapping::FromVolumeRoot {
                base: base_of(path),
            },
        )
    }

    /// A tar named for a PUT into the parent of `path` (`base/...`),
    /// renamed for a PUT into `path` itself.
    pub fn into_path(path: &str, inner: R) -> Self {
        Self::new(
            inner,
            Mapping::IntoPath {
                base: base_of(path),
            },
        )
    }

    fn new(inner: R, mapping: Mapping) -> Self {
        let active = match mapping {
            Mapping::IntoPath { .. } => Some(true),
            Mapping::FromVolumeRoot { .. } => None,
        };
        Rename {
            inner,
            mapping,
            out: Vec::new(),
            at: 0,
            data_left: 0,
            active,
            passthrough: false,
            pending: Pending::default(),
        }
    }

    /// Read one block; None at a clean end of the stream.
    fn block(&mut self) -> io::Result<Option<[u8; BLOCK]>> {
        let mut b = [0u8; BLOCK];
        let mut n = 0;
        while n < BLOCK {
            match self.inner.read(&mut b[n..]) {
                Ok(0) if n == 0 => return Ok(None),
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Some(b))
    }

    /// An extension record's data (padded blocks read, payload returned).
    fn ext_data(&mut self, size: u64) -> io::Result<Vec<u8>> {
        if size > 1 << 20 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "tar extension header over 1 MiB",
            ));
        }
        let padded = padded(size) as usize;
        let mut data = vec![0u8; padded];
        self.inner.read_exact(&mut data)?;
        self.pending.raw.extend_from_slice(&data);
        data.truncate(size as usize);
        Ok(data)
    }

    /// Fill `out` with the next entry's header blocks (rewritten), or
    /// switch to pass-through at the end of the archive.
    fn next_header(&mut self) -> io::Result<()> {
        loop {
            let Some(h) = self.block()? else {
                // No end-of-archive blocks: leave it to the reader.
                self.out.append(&mut self.pending.raw);
                self.passthrough = true;
                return Ok(());
            };
            if h.iter().all(|&b| b == 0) {
                self.out.append(&mut self.pending.raw);
                self.out.extend_from_slice(&h);
                self.passthrough = true;
                return Ok(());
            }
            let size = size_of(&h)?;
            match h[156] {
                b'L' | b'K' | b'x' => {
                    self.pending.raw.extend_from_slice(&h);
                    let data = self.ext_data(size)?;
                    match h[156] {
                        b'L' => self.pending.gnu_name = Some(cstr(&data).to_vec()),
                        b'K' => self.pending.gnu_link = Some(cstr(&data).to_vec()),
                        _ => self.pending.pax = Some((h, parse_pax(&data)?)),
                    }
                }
                _ => {
                    self.entry(h)?;
                    self.data_left = if h[156] == b'g' || has_data(h[156]) {
                        padded(size)
                    } else {
                        0
                    };
                    return Ok(());
                }
            }
        }
    }

    /// The entry's own header: rewrite its name (and a hard link's target)
    /// wherever the name is stored.
    fn entry(&mut self, mut h: [u8; BLOCK]) -> io::Result<()> {
        let pending = std::mem::take(&mut self.pending);
        if h[156] == b'g' {
            // A global PAX header names no entry.
            self.out.extend_from_slice(&pending.raw);
            self.out.extend_from_slice(&h);
            return Ok(());
        }
        let name = self.name_of(&h, &pending);
        if self.active.is_none() {
            self.active = Some(name == b"/");
        }
        let new_name = match self.active {
            Some(true) => self.mapping.map(&name)?,
            _ => None,
        };
        let new_link = match (self.active, h[156]) {
            (Some(true), b'1') => self.mapping.map(&link_of(&h, &pending))?,
            _ => None,
        };
        if new_name.is_none() && new_link.is_none() {
            self.out.extend_from_slice(&pending.raw);
            self.out.extend_from_slice(&h);
            return Ok(());
        }
        let mut pax_fields: Vec<(&[u8], Vec<u8>)> = vec![];
        if let Some(n) = &new_name {
            match (&pending.pax, &pending.gnu_name) {
                (Some((_, recs)), _) if recs.iter().any(|(k, _)| k == b"path") => {
                    pax_fields.push((b"path", n.clone()))
                }
                _ if n.len() > 100 || pending.gnu_name.is_some() => {
                    self.out.extend_from_slice(&gnu_long(b'L', n))
                }
                _ => {}
            }
            set_field(&mut h, 0, 100, n);
            if is_ustar(&h) {
                set_field(&mut h, 345, 155, b"");
            }
        } else if let Some(n) = &pending.gnu_name {
            self.out.extend_from_slice(&gnu_long(b'L', n));
        }
        if let Some(l) = &new_link {
            match &pending.pax {
                Some((_, recs)) if recs.iter().any(|(k, _)| k == b"linkpath") => {
                    pax_fields.push((b"linkpath", l.clone()))
                }
                _ if l.len() > 100 || pending.gnu_link.is_some() => {
                    self.out.extend_from_slice(&gnu_long(b'K', l))
                }
                _ => {}
            }
            set_field(&mut h, 157, 100, l);
        } else if let Some(l) = &pending.gnu_link {
            self.out.extend_from_slice(&gnu_long(b'K', l));
        }
        if let Some((ph, recs)) = &pending.pax {
            self.out
                .extend_from_slice(&pax_entry(ph, recs, &pax_fields));
        }
        set_checksum(&mut h);
        self.out.extend_from_slice(&h);
        Ok(())
    }

    /// The entry's full name: PAX path, else GNU long name, else the
    /// ustar prefix and name.
    fn name_of(&self, h: &[u8; BLOCK], p: &Pending) -> Vec<u8> {
        if let Some((_, recs)) = &p.pax {
            if let Some((_, v)) = recs.iter().find(|(k, _)| k == b"path") {
                return v.clone();
            }
        }
        if let Some(n) = &p.gnu_name {
            return n.clone();
        }
        let name = cstr(&h[0..100]);
        let prefix = if is_ustar(h) { cstr(&h[345..500]) } else { b"" };
        if prefix.is_empty() {
            name.to_vec()
        } else {
            [prefix, b"/", name].concat()
        }
    }
}

fn link_of(h: &[u8; BLOCK], p: &Pending) -> Vec<u8> {
    if let Some((_, recs)) = &p.pax {
        if let Some((_, v)) = recs.iter().find(|(k, _)| k == b"linkpath") {
            return v.clone();
        }
    }
    p.gnu_link
        .clone()
        .unwrap_or_else(|| cstr(&h[157..257]).to_vec())
}

impl<R: Read> Read for Rename<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.at < self.out.len() {
                let n = buf.len().min(self.out.len() - self.at);
                buf[..n].copy_from_slice(&self.out[self.at..self.at + n]);
                self.at += n;
                return Ok(n);
            }
            self.out.clear();
            self.at = 0;
            if self.passthrough || self.active == Some(false) {
                return self.inner.read(buf);
            }
            if self.data_left > 0 {
                let want = buf
                    .len()
                    .min(self.data_left.min(usize::MAX as u64) as usize);
                let n = self.inner.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                self.data_left -= n as u64;
                return Ok(n);
            }
            self.next_header()?;
        }
    }
}

fn padded(size: u64) -> u64 {
    size.div_ceil(BLOCK as u64) * BLOCK as u64
}

/// Entry types whose size counts data blocks (not links, directories,
/// devices or fifos).
fn has_data(t: u8) -> bool {
    !matches!(t, b'1' | b'2' | b'3' | b'4' | b'5' | b'6')
}

fn is_ustar(h: &[u8; BLOCK]) -> bool {
    &h[257..263] == b"ustar\0"
}

fn cstr(b: &[u8]) -> &[u8] {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    &b[..end]
}

/// The size field: octal, or base-256 when its high bit is set.
fn size_of(h: &[u8; BLOCK]) -> io::Result<u64> {
    let f = &h[124..136];
    if f[0] & 0x80 != 0 {
        let mut v: u64 = (f[0] & 0x7f) as u64;
        for &b in &f[1..] {
            v = v.checked_shl(8).ok_or(io::ErrorKind::InvalidData)? | b as u64;
        }
        return Ok(v);
    }
    let s = std::str::from_utf8(f)
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?
        .trim_matches(|c: char| c == '\0' || c == ' ');
    if s.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(s, 8).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))
}

fn set_field(h: &mut [u8; BLOCK], at: usize, len: usize, v: &[u8]) {
    let n = v.len().min(len);
    h[at..at + len].fill(0);
    h[at..at + n].copy_from_slice(&v[..n]);
}

fn set_octal(h: &mut [u8; BLOCK], at: usize, len: usize, v: u64) {
    let s = format!("{v:0width$o}\0", width = len - 1);
    h[at..at + len].copy_from_slice(s.as_bytes());
}

fn set_checksum(h: &mut [u8; BLOCK]) {
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
}

/// A GNU long name (`L`) or long link (`K`) record holding `v`.
fn gnu_long(kind: u8, v: &[u8]) -> Vec<u8> {
    let mut h = [0u8; BLOCK];
    set_field(&mut h, 0, 100, b"././@LongLink");
    set_octal(&mut h, 100, 8, 0o644);
    set_octal(&mut h, 108, 8, 0);
    set_octal(&mut h, 116, 8, 0);
    set_octal(&mut h, 124, 12, v.len() as u64 + 1);
    set_octal(&mut h, 136, 12, 0);
    h[156] = kind;
    h[257..265].copy_from_slice(b"ustar  \0");
    set_checksum(&mut h);
    let mut out = h.to_vec();
    out.extend_from_slice(v);
    out.push(0);
    out.resize(BLOCK + padded(v.len() as u64 + 1) as usize, 0);
    out
}

fn parse_pax(data: &[u8]) -> io::Result<PaxRecords> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "bad PAX record");
    let mut recs = vec![];
    let mut rest = data;
    while !rest.is_empty() {
        let sp = rest.iter().position(|&b| b == b' ').ok_or_else(bad)?;
        let len: usize = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)?;
        if len <= sp + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err(bad());
        }
        let kv = &rest[sp + 1..len - 1];
        let eq = kv.iter().position(|&b| b == b'=').ok_or_else(bad)?;
        recs.push((kv[..eq].to_vec(), kv[eq + 1..].to_vec()));
        rest = &rest[len..];
    }
    Ok(recs)
}

/// The PAX entry again, with `fields` replaced.
fn pax_entry(
    header: &[u8; BLOCK],
    recs: &[(Vec<u8>, Vec<u8>)],
    fields: &[(&[u8], Vec<u8>)],
) -> Vec<u8> {
    let mut data = vec![];
    for (k, v) in recs {
        let v = fields
            .iter()
            .find(|(fk, _)| *fk == k.as_slice())
            .map_or(v, |(_, nv)| nv);
        data.extend_from_slice(&pax_record(k, v));
    }
    let mut h = *header;
    set_octal(&mut h, 124, 12, data.len() as u64);
    set_checksum(&mut h);
    let mut out = h.to_vec();
    let len = data.len();
    out.extend_from_slice(&data);
    out.resize(BLOCK + padded(len as u64) as usize, 0);
    out
}

/// "<len> key=value\n", where len counts itself.
fn pax_record(k: &[u8], v: &[u8]) -> Vec<u8> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Entries (name, type, link, data) as the tar crate reads them.
    fn entries(tar: &[u8]) -> Vec<(String, u8, String, Vec<u8>)> {
        let mut a = tar::Archive::new(tar);
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let mut data = vec![];
                e.read_to_end(&mut data).unwrap();
                (
                    String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                    e.header().entry_type().as_byte(),
                    e.link_name_bytes()
                        .map(|l| String::from_utf8_lossy(&l).into_owned())
                        .unwrap_or_default(),
                    data,
                )
            })
            .collect()
    }

    fn header(kind: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(0o755);
        h.set_size(size);
        h.set_mtime(1_700_000_000);
        h
    }

    /// A tar named as Podman names a stopped container's volume root.
    fn podman_tar(long: &str) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        // Raw names: the tar crate would strip the leading '/'.
        for (name, kind, data) in [
            ("/", tar::EntryType::Directory, &b""[..]),
            ("/a.conf", tar::EntryType::Regular, &b"hello"[..]),
        ] {
            let mut h = header(kind, data.len() as u64);
            h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            h.set_cksum();
            b.append(&h, data).unwrap();
        }
        // A long name in a GNU long name record, as GNU tar writes it.
        b.get_mut()
            .extend_from_slice(&gnu_long(b'L', format!("/{long}").as_bytes()));
        let mut h = header(tar::EntryType::Regular, 3);
        h.as_old_mut().name[..5].copy_from_slice(b"/trun");
        h.set_cksum();
        b.append(&h, &b"abc"[..]).unwrap();
        let mut h = header(tar::EntryType::Link, 0);
        let mut name = [0u8; 100];
        name[..7].copy_from_slice(b"/hlink\0");
        h.as_old_mut().name = name;
        h.as_old_mut().linkname[..7].copy_from_slice(b"/a.conf");
        h.set_cksum();
        b.append(&h, &b""[..]).unwrap();
        b.into_inner().unwrap()
    }

    fn read_all(r: impl Read) -> Vec<u8> {
        let mut out = vec![];
        let mut r = r;
        r.read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn volume_root_names_become_dockers() {
        let long = "d/".repeat(60) + "file";
        let tar = podman_tar(&long);
        let got = entries(&read_all(Rename::from_volume_root(
            "/etc/likewise",
            &tar[..],
        )));
        let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "likewise/".to_owned(),
                "likewise/a.conf".to_owned(),
                format!("likewise/{long}"),
                "likewise/hlink".to_owned()
            ]
        );
        assert_eq!(got[1].3, b"hello");
        assert_eq!(got[2].3, b"abc");
        assert_eq!(got[3].2, "likewise/a.conf");
    }

    #[test]
    fn dockers_names_pass_untouched() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = header(tar::EntryType::Directory, 0);
        b.append_data(&mut h, "likewise/", &b""[..]).unwrap();
        let mut h = header(tar::EntryType::Regular, 2);
        b.append_data(&mut h, "likewise/x", &b"hi"[..]).unwrap();
        let tar = b.into_inner().unwrap();
        let out = read_all(Rename::from_volume_root("/etc/likewise", &tar[..]));
        assert_eq!(out, tar);
    }

    #[test]
    fn into_path_strips_the_base_and_round_trips() {
        let long = "e/".repeat(70) + "f";
        let docker = read_all(Rename::from_volume_root(
            "/etc/likewise",
            &podman_tar(&long)[..],
        ));
        let got = entries(&read_all(Rename::into_path("/etc/likewise", &docker[..])));
        let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(names, ["./", "a.conf", long.as_str(), "hlink"]);
        assert_eq!(got[3].2, "a.conf");
        assert_eq!(got[2].3, b"abc");
    }

    #[test]
    fn into_path_refuses_entries_elsewhere() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = header(tar::EntryType::Regular, 1);
        b.append_data(&mut h, "other/x", &b"y"[..]).unwrap();
        let tar = b.into_inner().unwrap();
        let mut out = vec![];
        let e = Rename::into_path("/etc/likewise", &tar[..])
            .read_to_end(&mut out)
            .unwrap_err();
        assert!(e.to_string().contains("not below"), "{e}");
    }

    #[test]
    fn pax_path_is_rewritten() {
        let long = "p".repeat(150);
        let mut b = tar::Builder::new(Vec::new());
        let mut h = header(tar::EntryType::Directory, 0);
        h.as_old_mut().name[0] = b'/';
        h.set_cksum();
        b.append(&h, &b""[..]).unwrap();
        let path = format!("/{long}");
        b.append_pax_extensions([("path", path.as_bytes())])
            .unwrap();
        let mut h = header(tar::EntryType::Regular, 1);
        h.as_old_mut().name[..5].copy_from_slice(b"/trun");
        h.set_cksum();
        b.append(&h, &b"z"[..]).unwrap();
        let tar = b.into_inner().unwrap();
        let got = entries(&read_all(Rename::from_volume_root("/v", &tar[..])));
        assert_eq!(got[1].0, format!("v/{long}"));
        assert_eq!(got[1].3, b"z");
    }

    #[test]
    fn ulimit_names_as_create_takes_them() {
        let c = serde_json::json!({"Image": "x", "HostConfig": {"Ulimits": [
            {"Name": "RLIMIT_NOFILE", "Soft": 1, "Hard": 2},
            {"Name": "nproc", "Soft": 3, "Hard": 4},
        ]}});
        let got = create_config(&c);
        assert_eq!(got["HostConfig"]["Ulimits"][0]["Name"], "nofile");
        assert_eq!(got["HostConfig"]["Ulimits"][0]["Hard"], 2);
        assert_eq!(got["HostConfig"]["Ulimits"][1]["Name"], "nproc");
        let c = serde_json::json!({"HostConfig": {"Devices": [
            {"PathOnHost": "/dev/null", "PathInContainer": "/dev/n", "CgroupPermissions": ""},
            {"PathOnHost": "/dev/zero", "PathInContainer": "/dev/z", "CgroupPermissions": "r"}]}});
        let got = create_config(&c);
        assert_eq!(got["HostConfig"]["Devices"][0]["CgroupPermissions"], "rwm");
        assert_eq!(got["HostConfig"]["Devices"][1]["CgroupPermissions"], "r");
        assert_eq!(
            create_config(&serde_json::json!({"Image": "x"})),
            serde_json::json!({"Image": "x"})
        );
    }

    #[test]
    fn pax_record_lengths_count_themselves() {
        assert_eq!(pax_record(b"path", b"abc"), b"12 path=abc\n");
        // 90 + "path" + " =\n" + two digits: 99.
        let r = pax_record(b"path", &[b'x'; 90]);
        assert_eq!(r.len(), 99);
        assert!(r.starts_with(b"99 path="));
    }
}
