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

use crate::tarheader::{self as th, field, Block, PaxRecords, BLOCK};

/// A create request for Podman: ulimit names as its create takes them
/// (`RLIMIT_NOFILE` -> `nofile`), a device's empty mode as `rwm`.
pub(crate) fn create_config(config: &Value) -> Value {
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
                            "tar entry {} is not below {}",
                            th::show_name(name),
                            th::show_name(base)
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

/// Extension records before an entry's own header.
#[derive(Default)]
struct Pending {
    /// Their raw blocks, emitted as they were when nothing changes.
    raw: Vec<u8>,
    gnu_name: Option<Vec<u8>>,
    gnu_link: Option<Vec<u8>>,
    /// The PAX header block and its records.
    pax: Option<(Block, PaxRecords)>,
}

impl<R: Read> Rename<R> {
    /// A Podman GET archive of `path`, named as Docker names it.
    pub(crate) fn from_volume_root(path: &str, inner: R) -> Self {
        Self::new(
            inner,
            Mapping::FromVolumeRoot {
                base: base_of(path),
            },
        )
    }

    /// A tar named for a PUT into the parent of `path` (`base/...`),
    /// renamed for a PUT into `path` itself.
    pub(crate) fn into_path(path: &str, inner: R) -> Self {
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
    fn block(&mut self) -> io::Result<Option<Block>> {
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
        let padded = th::padded(size) as usize;
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
            let size = th::size(&h).map_err(invalid)?;
            let t = h[field::TYPEFLAG];
            match t {
                b'L' | b'K' | b'x' => {
                    self.pending.raw.extend_from_slice(&h);
                    let data = self.ext_data(size)?;
                    match t {
                        b'L' => self.pending.gnu_name = Some(th::cstr(&data).to_vec()),
                        b'K' => self.pending.gnu_link = Some(th::cstr(&data).to_vec()),
                        _ => self.pending.pax = Some((h, th::parse_pax(&data).map_err(invalid)?)),
                    }
                }
                _ => {
                    self.entry(h)?;
                    self.data_left = if t == b'g' || th::has_data(t) {
                        th::padded(size)
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
    fn entry(&mut self, h: Block) -> io::Result<()> {
        let pending = std::mem::take(&mut self.pending);
        let t = h[field::TYPEFLAG];
        if t == b'g' {
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
        let new_link = match (self.active, t) {
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
                    self.out.extend_from_slice(&th::gnu_long(LONG_NAME, n))
                }
                _ => {}
            }
        } else if let Some(n) = &pending.gnu_name {
            self.out.extend_from_slice(&th::gnu_long(LONG_NAME, n));
        }
        if let Some(l) = &new_link {
            match &pending.pax {
                Some((_, recs)) if recs.iter().any(|(k, _)| k == b"linkpath") => {
                    pax_fields.push((b"linkpath", l.clone()))
                }
                _ if l.len() > 100 || pending.gnu_link.is_some() => {
                    self.out.extend_from_slice(&th::gnu_long(LONG_LINK, l))
                }
                _ => {}
            }
        } else if let Some(l) = &pending.gnu_link {
            self.out.extend_from_slice(&th::gnu_long(LONG_LINK, l));
        }
        if let Some((ph, recs)) = &pending.pax {
            self.out
                .extend_from_slice(&pax_entry(ph, recs, &pax_fields));
        }
        let h = th::renamed(&h, new_name.as_deref(), new_link.as_deref());
        self.out.extend_from_slice(&h);
        Ok(())
    }

    /// The entry's full name: PAX path, else GNU long name, else the
    /// ustar prefix and name.
    fn name_of(&self, h: &Block, p: &Pending) -> Vec<u8> {
        if let Some((_, recs)) = &p.pax {
            if let Some((_, v)) = recs.iter().find(|(k, _)| k == b"path") {
                return v.clone();
            }
        }
        if let Some(n) = &p.gnu_name {
            return n.clone();
        }
        th::header_name(h)
    }
}

fn link_of(h: &Block, p: &Pending) -> Vec<u8> {
    if let Some((_, recs)) = &p.pax {
        if let Some((_, v)) = recs.iter().find(|(k, _)| k == b"linkpath") {
            return v.clone();
        }
    }
    p.gnu_link
        .clone()
        .unwrap_or_else(|| th::cstr(&h[field::LINKNAME]).to_vec())
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

const LONG_NAME: tar::EntryType = tar::EntryType::GNULongName;
const LONG_LINK: tar::EntryType = tar::EntryType::GNULongLink;

/// A header problem as the reader's error (the field's bytes stay out).
fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("tar header: {e}"))
}

/// The PAX entry again, with `fields` replaced.
fn pax_entry(header: &Block, recs: &PaxRecords, fields: &[(&[u8], Vec<u8>)]) -> Vec<u8> {
    let mut data = vec![];
    for (k, v) in recs {
        let v = fields
            .iter()
            .find(|(fk, _)| *fk == k.as_slice())
            .map_or(v, |(_, nv)| nv);
        data.extend_from_slice(&th::pax_record(k, v));
    }
    let len = data.len() as u64;
    let mut out = th::resized(header, len).to_vec();
    out.extend_from_slice(&data);
    out.resize(BLOCK + th::padded(len) as usize, 0);
    out
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
            .extend_from_slice(&th::gnu_long(LONG_NAME, format!("/{long}").as_bytes()));
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
}
