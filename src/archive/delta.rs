//! Inside a helper container: what changed in one volume since a moment.
//!
//! The pre-copy of an upgrade (issue 25) is a full backup taken while the
//! old version still serves. Once it is stopped, only what changed since
//! the pre-copy began has to be copied. berth runs its own static binary
//! in a helper with the volume mounted (as `wipe` does): `berth delta`
//! walks the volume once, reading metadata only, and writes a tar of every
//! entry that changed to stdout. The paths of the pre-copy's index that are
//! gone are listed on stderr as JSON lines (`{"removed": PATH}`).
//!
//! # What counts as changed
//!
//! An entry is written when its inode's ctime is at or after `since`, when
//! the pre-copy's index lacks it, or when its type, mode, owner, size,
//! mtime or link target differs from the index. The ctime is what makes
//! this safe: user space can set mtime back (`touch -r`), and an overwrite
//! of the same size within the same second leaves size and mtime as they
//! were, but every write, chmod, chown, rename, link and unlink sets the
//! ctime to the kernel's clock, and nothing but the clock sets it. The
//! caller passes `since` a little before the pre-copy's first read, which
//! covers the coarse clock the kernel stamps inodes with.
//!
//! # The same tar as the engine's
//!
//! The entries must index exactly as the engine's own archive of the same
//! files would: the restore compares what it wrote with the final index,
//! entry by entry. So the walk is the engine's (depth first, each
//! directory's names in byte order, the order of Go's `filepath.Walk`),
//! the first name of a hard-linked inode is the file and later names link
//! to it, sockets are left out, names carry the engine's root name (`name`:
//! "vmware/..." on Docker, "/..." on Podman), and the extended attributes
//! are those the engine archives (`Xattrs`).

use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::index::{path_from_bytes, EntryKind, IndexEntry};
use crate::error::{Context, Error, Result};
use crate::tarheader::{padded, pax_record, BLOCK};

/// Whose archive the delta must index as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Docker: `security.capability` is the only extended attribute, and
    /// mtimes are cut to the second.
    Docker,
    /// Podman: every extended attribute it can read, and mtimes rounded
    /// to the nearest second (Go's tar writer does that).
    Podman,
}

impl Engine {
    /// An entry's mtime, in seconds, as this engine's archive names it.
    fn mtime(self, md: &Metadata) -> i64 {
        match self {
            Engine::Docker => md.mtime(),
            Engine::Podman => md.mtime() + i64::from(md.mtime_nsec() >= 500_000_000),
        }
    }
}

/// What to look for.
#[derive(Debug, Clone)]
pub struct Since {
    /// Where the volume is mounted (in the helper).
    pub root: PathBuf,
    /// The root entry's name in the engine's archive of this path, without
    /// a trailing `/`, escaped as in the index: "vmware" (berth names
    /// Podman's archive as Docker names it).
    pub name: String,
    /// Nanoseconds since the epoch: entries whose ctime is at or after it
    /// are written.
    pub since_ns: i128,
    /// Paths relative to `root` where other mounts sit: the engine's
    /// archive left them out (`tarscan`'s exclusions), so does this.
    pub exclude: Vec<PathBuf>,
    pub engine: Engine,
    /// The owner (uid, gid) the engine's archive gives every entry, when
    /// it does not name the real one: Podman's names each entry as owned
    /// by the container's user (docs/podman.md). None: the real owner.
    pub owner: Option<(u32, u32)>,
}

/// The `since` for a pre-copy whose first read came at `t_ns`: the start
/// of the whole second before it. The kernel stamps inodes from a clock
/// that lags the one berth reads by up to a tick, and some filesystems
/// (ext4 with small inodes, FAT, many NFS servers) keep whole seconds
/// only; a few entries changed just before the pre-copy are written
/// again, none changed after it is missed.
pub fn since_of(t_ns: i128) -> i128 {
    const S: i128 = 1_000_000_000;
    (t_ns.div_euclid(S) - 1) * S
}

/// What the walk found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    /// Entries walked (the volume's whole tree).
    pub walked: u64,
    /// Entries written to the tar.
    pub changed: u64,
    /// Content bytes written.
    pub bytes: u64,
    /// Paths of the index no longer there.
    pub removed: u64,
}

/// Walk `o.root`, write the changed entries to `out` as a tar (with its
/// end-of-archive blocks) and call `removed` with each path of `before`
/// (the pre-copy's index) that is gone.
pub fn changes(
    o: &Since,
    before: &[IndexEntry],
    out: impl Write,
    mut removed: impl FnMut(&str) -> Result<()>,
) -> Result<Counts> {
    let before: HashMap<&str, &IndexEntry> = before.iter().map(|e| (e.path.as_str(), e)).collect();
    let mut w = Walk {
        o,
        before: &before,
        out: io::BufWriter::with_capacity(256 * 1024, out),
        seen: HashSet::new(),
        inodes: HashMap::new(),
        counts: Counts::default(),
    };
    let md = fs::symlink_metadata(&o.root).ctx(format!("reading {}", o.root.display()))?;
    let root_name = path_bytes(&o.name)?;
    w.entry(&o.root, &root_name, &md)?;
    w.dir(&o.root, &root_name, Path::new(""))?;
    w.out.write_all(&[0; 2 * BLOCK]).ctx("writing the delta")?;
    w.out.flush().ctx("writing the delta")?;
    let Walk {
        seen, mut counts, ..
    } = w;
    let mut gone: Vec<&str> = before
        .keys()
        .copied()
        .filter(|p| !seen.contains(*p))
        .collect();
    gone.sort_unstable();
    for p in gone {
        removed(p)?;
        counts.removed += 1;
    }
    Ok(counts)
}

fn path_bytes(index_path: &str) -> Result<Vec<u8>> {
    super::index::path_to_bytes(index_path)
}

struct Walk<'a, W: Write> {
    o: &'a Since,
    before: &'a HashMap<&'a str, &'a IndexEntry>,
    out: io::BufWriter<W>,
    /// Index paths walked (to find what was removed).
    seen: HashSet<String>,
    /// (device, inode) of files with more than one name: the first name.
    inodes: HashMap<(u64, u64), Vec<u8>>,
    counts: Counts,
}

impl<W: Write> Walk<'_, W> {
    /// The entries of directory `dir` (tar name `name`, `rel` below the
    /// root), in byte order, each before its own subtree.
    fn dir(&mut self, dir: &Path, name: &[u8], rel: &Path) -> Result<()> {
        let doing = || format!("reading the directory {}", dir.display());
        let mut names: Vec<_> = fs::read_dir(dir)
            .ctx(doing())?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()
            .ctx(doing())?;
        names.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for n in names {
            let r = rel.join(&n);
            if self.o.exclude.iter().any(|x| r.starts_with(x)) {
                continue;
            }
            let p = dir.join(&n);
            let mut child = name.to_vec();
            child.push(b'/');
            child.extend_from_slice(n.as_bytes());
            let md = fs::symlink_metadata(&p).ctx(format!("reading {}", p.display()))?;
            if md.file_type().is_socket() {
                continue;
            }
            self.entry(&p, &child, &md)?;
            if md.is_dir() {
                self.dir(&p, &child, &r)?;
            }
        }
        Ok(())
    }

    /// One entry: noted as seen, written when it changed.
    fn entry(&mut self, p: &Path, name: &[u8], md: &Metadata) -> Result<()> {
        self.counts.walked += 1;
        let index_path = path_from_bytes(name);
        let first = (md.is_file() && md.nlink() > 1)
            .then(|| {
                let key = (md.dev(), md.ino());
                match self.inodes.get(&key) {
                    Some(f) => Some(f.clone()),
                    None => {
                        self.inodes.insert(key, name.to_vec());
                        None
                    }
                }
            })
            .flatten();
        let kind = kind_of(md, first.is_some());
        let link = match (&first, kind) {
            (Some(f), _) => Some(f.clone()),
            (None, EntryKind::Symlink) => Some(
                fs::read_link(p)
                    .ctx(format!("reading the link {}", p.display()))?
                    .into_os_string()
                    .into_vec(),
            ),
            _ => None,
        };
        let prev = self.before.get(index_path.as_str()).copied();
        let changed = match prev {
            None => true,
            Some(e) => {
                let owner = self.o.owner.unwrap_or((md.uid(), md.gid()));
                ctime_ns(md) >= self.o.since_ns
                    || !same(
                        e,
                        md,
                        (owner, self.o.engine.mtime(md)),
                        kind,
                        link.as_deref(),
                    )
            }
        };
        self.seen.insert(index_path);
        if !changed {
            return Ok(());
        }
        let xattrs = read_xattrs(p, self.o.engine)?;
        self.write(p, name, md, kind, link.as_deref(), &xattrs)
            .ctx(format!("writing {} to the delta", p.display()))?;
        self.counts.changed += 1;
        Ok(())
    }

    /// The entry's header (after a PAX header when a name is long or it
    /// has attributes) and, for a file, its content.
    fn write(
        &mut self,
        p: &Path,
        name: &[u8],
        md: &Metadata,
        kind: EntryKind,
        link: Option<&[u8]>,
        xattrs: &[(Vec<u8>, Vec<u8>)],
    ) -> io::Result<()> {
        let mut name = name.to_vec();
        if kind == EntryKind::Dir {
            name.push(b'/');
        }
        let size = if kind == EntryKind::File {
            md.size()
        } else {
            0
        };
        let mut pax = Vec::new();
        if name.len() > 100 {
            pax.extend(pax_record(b"path", &name));
        }
        if let Some(l) = link.filter(|l| l.len() > 100) {
            pax.extend(pax_record(b"linkpath", l));
        }
        for (k, v) in xattrs {
            pax.extend(pax_record(&[b"SCHILY.xattr.", &k[..]].concat(), v));
        }
        if !pax.is_empty() {
            let mut h = header(
                b"././@PaxHeader",
                tar::EntryType::XHeader,
                0,
                pax.len() as u64,
            );
            h.set_cksum();
            self.out.write_all(h.as_bytes())?;
            self.out.write_all(&pax)?;
            pad(&mut self.out, pax.len() as u64)?;
        }
        let mut h = header(&name, entry_type(kind), md.mode() & 0o7777, size);
        let (uid, gid) = self.o.owner.unwrap_or((md.uid(), md.gid()));
        h.set_uid(u64::from(uid));
        h.set_gid(u64::from(gid));
        h.set_mtime(self.o.engine.mtime(md).max(0) as u64);
        if let Some(l) = link {
            let n = l.len().min(100);
            h.as_old_mut().linkname[..n].copy_from_slice(&l[..n]);
        }
        if matches!(kind, EntryKind::Char | EntryKind::Block) {
            let dev = md.rdev();
            h.set_device_major(libc::major(dev))?;
            h.set_device_minor(libc::minor(dev))?;
        }
        h.set_cksum();
        self.out.write_all(h.as_bytes())?;
        if kind == EntryKind::File {
            // Never more than the header said: a file that grew while read
            // would break the archive (one that shrank is reported).
            let n = io::copy(&mut File::open(p)?.take(size), &mut self.out)?;
            if n != size {
                return Err(io::Error::other(format!(
                    "it changed size while read ({n} of {size} bytes): is the container stopped?"
                )));
            }
            pad(&mut self.out, size)?;
            self.counts.bytes += size;
        }
        Ok(())
    }
}

/// A ustar header with the name cut to its field (a longer one is in the
/// PAX record before it).
fn header(name: &[u8], t: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    let n = name.len().min(100);
    h.as_old_mut().name[..n].copy_from_slice(&name[..n]);
    h.set_entry_type(t);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(0);
    h
}

fn pad(out: &mut impl Write, size: u64) -> io::Result<()> {
    out.write_all(&[0; BLOCK][..(padded(size) - size) as usize])
}

fn kind_of(md: &Metadata, linked: bool) -> EntryKind {
    let t = md.file_type();
    if linked {
        EntryKind::Hardlink
    } else if t.is_dir() {
        EntryKind::Dir
    } else if t.is_symlink() {
        EntryKind::Symlink
    } else if t.is_fifo() {
        EntryKind::Fifo
    } else if t.is_char_device() {
        EntryKind::Char
    } else if t.is_block_device() {
        EntryKind::Block
    } else {
        EntryKind::File
    }
}

fn entry_type(k: EntryKind) -> tar::EntryType {
    match k {
        EntryKind::File => tar::EntryType::Regular,
        EntryKind::Dir => tar::EntryType::Directory,
        EntryKind::Symlink => tar::EntryType::Symlink,
        EntryKind::Hardlink => tar::EntryType::Link,
        EntryKind::Fifo => tar::EntryType::Fifo,
        EntryKind::Char => tar::EntryType::Char,
        EntryKind::Block => tar::EntryType::Block,
    }
}

fn ctime_ns(md: &Metadata) -> i128 {
    i128::from(md.ctime()) * 1_000_000_000 + i128::from(md.ctime_nsec())
}

/// Whether the index's entry still describes the file as the metadata
/// shows it (the content is the ctime's to vouch for).
fn same(
    e: &IndexEntry,
    md: &Metadata,
    ((uid, gid), mtime): ((u32, u32), i64),
    kind: EntryKind,
    link: Option<&[u8]>,
) -> bool {
    let size = if kind == EntryKind::File {
        md.size()
    } else {
        0
    };
    e.kind == kind
        && e.mode == md.mode() & 0o7777
        && e.uid == u64::from(uid)
        && e.gid == u64::from(gid)
        && e.mtime == mtime
        && (kind == EntryKind::Dir || e.size == size)
        && e.link.as_deref() == link.map(path_from_bytes).as_deref()
}

/// The entry's extended attributes the engine would archive, by name.
fn read_xattrs(p: &Path, which: Engine) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let c = CString::new(p.as_os_str().as_bytes()).map_err(|_| Error::usage("a NUL in a path"))?;
    let names = match which {
        Engine::Docker => vec![b"security.capability".to_vec()],
        Engine::Podman => {
            list_xattrs(&c).ctx(format!("listing the attributes of {}", p.display()))?
        }
    };
    let mut out = Vec::new();
    for n in names {
        if let Some(v) =
            get_xattr(&c, &n).ctx(format!("reading an attribute of {}", p.display()))?
        {
            out.push((n, v));
        }
    }
    out.sort();
    Ok(out)
}

fn list_xattrs(c: &CString) -> io::Result<Vec<Vec<u8>>> {
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: buf is writable for its length; c is NUL-terminated.
        let n = unsafe { libc::llistxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            buf.truncate(n as usize);
            return Ok(buf
                .split(|&b| b == 0)
                .filter(|n| !n.is_empty())
                .map(<[u8]>::to_vec)
                .collect());
        }
        match io::Error::last_os_error() {
            e if e.raw_os_error() == Some(libc::ERANGE) => buf.resize(buf.len() * 4, 0),
            e if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(vec![]),
            e => return Err(e),
        }
    }
}

fn get_xattr(c: &CString, name: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let n = CString::new(name).map_err(io::Error::other)?;
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: as in list_xattrs.
        let r =
            unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if r >= 0 {
            buf.truncate(r as usize);
            return Ok(Some(buf));
        }
        match io::Error::last_os_error() {
            e if e.raw_os_error() == Some(libc::ERANGE) => buf.resize(buf.len() * 4, 0),
            e if matches!(e.raw_os_error(), Some(libc::ENODATA | libc::ENOTSUP)) => {
                return Ok(None)
            }
            e => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::index::{compare, ContentHash};
    use crate::archive::merge::merged;
    use crate::archive::tarscan::scan;
    use std::os::unix::fs::{symlink, PermissionsExt};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    fn now_ns() -> i128 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i128
    }

    fn opts(root: &Path, since_ns: i128) -> Since {
        Since {
            root: root.to_owned(),
            name: "vol".into(),
            since_ns,
            exclude: vec![PathBuf::from("mnt")],
            engine: Engine::Podman,
            owner: None,
        }
    }

    /// The delta's tar, indexed as a backup indexes the engine's; the
    /// removed paths.
    fn delta(o: &Since, before: &[IndexEntry]) -> (Vec<IndexEntry>, Vec<String>, Counts) {
        let mut tar = Vec::new();
        let mut gone = Vec::new();
        let c = changes(o, before, &mut tar, |p| {
            gone.push(p.to_owned());
            Ok(())
        })
        .unwrap();
        let mut idx = Vec::new();
        scan(&tar[..], io::sink(), &[], ContentHash::NEW, |e| {
            idx.push(e.clone());
            Ok(())
        })
        .unwrap();
        (idx, gone, c)
    }

    fn tree(root: &Path) {
        let _ = fs::remove_dir_all(root);
        for d in ["a/b", "mnt/inside", "z"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        fs::write(root.join("a/b/log"), b"one\n").unwrap();
        fs::write(root.join("a/same"), b"AAAA").unwrap();
        fs::write(root.join("a.txt"), b"text").unwrap();
        fs::write(root.join("mnt/inside/x"), b"another mount").unwrap();
        fs::write(root.join("z/bin"), vec![0x7f; 70_000]).unwrap();
        fs::hard_link(root.join("z/bin"), root.join("z/bin2")).unwrap();
        symlink("../a.txt", root.join("z/link")).unwrap();
        fs::write(root.join("z/gone"), b"bye").unwrap();
        fs::write(root.join("z/tobedir"), b"f").unwrap();
        fs::write(root.join("z/mode"), b"m").unwrap();
        fs::write(root.join("z/renamed"), b"r").unwrap();
        let long = "n".repeat(150);
        fs::write(root.join("z").join(&long), b"long name").unwrap();
        let c = CString::new(root.join("a.txt").as_os_str().as_bytes()).unwrap();
        // SAFETY: valid C strings and buffer.
        let r = unsafe {
            libc::setxattr(
                c.as_ptr(),
                c"user.k".as_ptr(),
                b"v\0w".as_ptr().cast(),
                3,
                0,
            )
        };
        assert_eq!(r, 0, "{}", io::Error::last_os_error());
        let fifo = CString::new(root.join("z/fifo").as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid C string.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o640) }, 0);
    }

    #[test]
    fn since_is_a_whole_second_before() {
        let s = 1_000_000_000;
        assert_eq!(since_of(10 * s + 999_999_999), 9 * s);
        assert_eq!(since_of(10 * s), 9 * s);
        assert_eq!(since_of(10 * s - 1), 8 * s);
    }

    #[test]
    fn a_full_walk_is_the_engines_order_and_names() {
        let root = std::env::temp_dir().join(format!("berth-delta-full-{}", std::process::id()));
        tree(&root);
        let (idx, gone, c) = delta(&opts(&root, 0), &[]);
        assert!(gone.is_empty());
        let names: Vec<&str> = idx.iter().map(|e| e.path.as_str()).collect();
        let long = format!("vol/z/{}", "n".repeat(150));
        assert_eq!(
            names,
            [
                "vol",
                "vol/a",
                "vol/a/b",
                "vol/a/b/log",
                "vol/a/same",
                "vol/a.txt",
                "vol/z",
                "vol/z/bin",
                "vol/z/bin2",
                "vol/z/fifo",
                "vol/z/gone",
                "vol/z/link",
                "vol/z/mode",
                &long,
                "vol/z/renamed",
                "vol/z/tobedir",
            ],
            "depth first, names in byte order, the other mount left out"
        );
        assert_eq!((c.walked, c.changed), (16, 16));
        let find = |p: &str| idx.iter().find(|e| e.path == p).unwrap();
        assert_eq!(find("vol/z/bin").size, 70_000);
        assert_eq!(find("vol/z/bin2").kind, EntryKind::Hardlink);
        assert_eq!(find("vol/z/bin2").link.as_deref(), Some("vol/z/bin"));
        assert_eq!(find("vol/z/link").link.as_deref(), Some("../a.txt"));
        assert_eq!(find("vol/z/fifo").kind, EntryKind::Fifo);
        assert_eq!(find("vol/z/fifo").mode, 0o640);
        assert_eq!(
            find("vol/a.txt").xattrs.get("user.k").map(String::as_str),
            Some("760077")
        );
        assert_eq!(find(&long).size, 9);
        fs::remove_dir_all(&root).unwrap();
    }

    /// The writer of the issue: every kind of change made after the
    /// pre-copy began, some of them invisible to size and mtime.
    #[test]
    fn every_change_since_the_moment_and_nothing_else() {
        let root = std::env::temp_dir().join(format!("berth-delta-since-{}", std::process::id()));
        tree(&root);
        // The pre-copy's moment, after the tree's last change by more than
        // the clock's slack.
        std::thread::sleep(Duration::from_millis(2100));
        let since = since_of(now_ns());
        let (pre, _, _) = delta(&opts(&root, 0), &[]);
        let r = |p: &str| root.join(p);
        fs::OpenOptions::new()
            .append(true)
            .open(r("a/b/log"))
            .unwrap()
            .write_all(b"two\n")
            .unwrap();
        // Same size, and the mtime put back: only the ctime tells.
        let mtime = fs::metadata(r("a/same")).unwrap().modified().unwrap();
        fs::write(r("a/same"), b"BBBB").unwrap();
        File::options()
            .write(true)
            .open(r("a/same"))
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        fs::remove_file(r("z/gone")).unwrap();
        fs::remove_file(r("z/tobedir")).unwrap();
        fs::create_dir(r("z/tobedir")).unwrap();
        fs::write(r("z/tobedir/in"), b"i").unwrap();
        fs::set_permissions(r("z/mode"), fs::Permissions::from_mode(0o600)).unwrap();
        fs::rename(r("z/renamed"), r("a/moved")).unwrap();
        fs::hard_link(r("a.txt"), r("a/b/hard")).unwrap();
        fs::write(r("mnt/inside/x"), b"not this volume's").unwrap();
        let (d, gone, c) = delta(&opts(&root, since), &pre);
        let mut changed: Vec<&str> = d.iter().map(|e| e.path.as_str()).collect();
        changed.sort_unstable();
        assert_eq!(
            changed,
            [
                "vol/a",
                "vol/a.txt",
                "vol/a/b",
                "vol/a/b/hard",
                "vol/a/b/log",
                "vol/a/moved",
                "vol/a/same",
                "vol/z",
                "vol/z/mode",
                "vol/z/tobedir",
                "vol/z/tobedir/in",
            ]
        );
        assert_eq!(gone, ["vol/z/gone", "vol/z/renamed"]);
        assert_eq!((c.changed, c.removed), (11, 2));
        // The pre-copy, then the delta, less the removed: the final state.
        let (now, _, _) = delta(&opts(&root, 0), &[]);
        let diffs = compare(&now, &merged("vol", &pre, &d, &gone).unwrap().state);
        assert!(diffs.is_empty(), "{diffs:?}");
        // Nothing changed since: an empty delta.
        let (d, gone, c) = delta(&opts(&root, now_ns() + 1_000_000_000), &now);
        assert!(d.is_empty() && gone.is_empty(), "{d:?} {gone:?}");
        assert_eq!(c.walked, 17);
        fs::remove_dir_all(&root).unwrap();
    }

    /// Without the ctime (a `since` in the future) the index still shows
    /// what size, mtime, mode and type betray.
    #[test]
    fn metadata_changes_show_without_the_ctime() {
        let root = std::env::temp_dir().join(format!("berth-delta-meta-{}", std::process::id()));
        tree(&root);
        let (pre, _, _) = delta(&opts(&root, 0), &[]);
        fs::write(root.join("a/b/log"), b"longer content\n").unwrap();
        fs::set_permissions(root.join("z/mode"), fs::Permissions::from_mode(0o700)).unwrap();
        let (d, _, _) = delta(&opts(&root, i128::MAX), &pre);
        let changed: Vec<&str> = d.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(changed, ["vol/a/b/log", "vol/z/mode"]);
        fs::remove_dir_all(&root).unwrap();
    }
}
