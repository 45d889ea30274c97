//! The hard-case tree: a tar for PUT archive with every kind of entry a
//! volume can hold (owners, modes, long and odd names, links, a fifo,
//! xattrs), and a script that changes each kind of thing in it.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `security.capability` v2 granting cap_net_bind_service (10), effective.
pub const CAP_NET_BIND: [u8; 20] = [
    0x01, 0, 0, 0x02, 0x00, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

#[derive(Clone, Copy)]
pub struct Attr {
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
}

pub const fn attr(mode: u32, uid: u64, gid: u64, mtime: u64) -> Attr {
    Attr {
        mode,
        uid,
        gid,
        mtime,
    }
}

/// A tar for PUT archive, with owners, modes, mtimes, PAX xattrs.
pub struct TreeTar(tar::Builder<Vec<u8>>);

fn bpath(p: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(p))
}

impl TreeTar {
    pub fn new() -> Self {
        TreeTar(tar::Builder::new(Vec::new()))
    }

    fn header(kind: tar::EntryType, a: Attr, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(a.mode);
        h.set_uid(a.uid);
        h.set_gid(a.gid);
        h.set_mtime(a.mtime);
        h.set_size(size);
        h
    }

    /// A PAX extended header for the next entry.
    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let mut data = vec![];
        for (k, v) in records {
            let rest = k.len() + v.len() + 3;
            let mut len = rest + rest.to_string().len();
            if len.to_string().len() > rest.to_string().len() {
                len += 1;
            }
            data.extend_from_slice(format!("{len} {k}=").as_bytes());
            data.extend_from_slice(v);
            data.push(b'\n');
        }
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::XHeader);
        h.set_path("PaxHeaders/next").unwrap();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.0.append(&h, &data[..]).unwrap();
        self
    }

    pub fn dir(&mut self, p: impl AsRef<[u8]>, a: Attr) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Directory, a, 0);
        self.0
            .append_data(&mut h, bpath(p.as_ref()), std::io::empty())
            .unwrap();
        self
    }

    pub fn file(&mut self, p: impl AsRef<[u8]>, data: &[u8], a: Attr) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Regular, a, data.len() as u64);
        self.0.append_data(&mut h, bpath(p.as_ref()), data).unwrap();
        self
    }

    pub fn symlink(&mut self, p: &str, target: &str, a: Attr) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Symlink, a, 0);
        self.0.append_link(&mut h, p, target).unwrap();
        self
    }

    pub fn hardlink(&mut self, p: &str, target: &str, a: Attr) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Link, a, 0);
        self.0.append_link(&mut h, p, target).unwrap();
        self
    }

    pub fn fifo(&mut self, p: &str, a: Attr) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Fifo, a, 0);
        self.0.append_data(&mut h, p, std::io::empty()).unwrap();
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

/// Deterministic incompressible bytes.
pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub const T: u64 = 1_500_000_000;
pub const LONG_100: usize = 120;

pub fn long_over_100() -> String {
    format!("data/{}.txt", "l".repeat(LONG_100))
}

pub fn long_over_255() -> String {
    format!(
        "data/long/{}/{}/{}.txt",
        "x".repeat(100),
        "y".repeat(100),
        "z".repeat(100)
    )
}

/// The hard-case tree as `data/...`, for PUT archive into `/`.
pub fn hard_tree() -> Vec<u8> {
    let root = attr(0o751, 1234, 5678, T);
    let d = attr(0o755, 0, 0, T + 10);
    let f = attr(0o644, 0, 0, T + 20);
    let mut t = TreeTar::new();
    t.dir("data", root)
        .dir("data/a", d)
        .dir("data/a/b", attr(0o700, 65534, 65534, T + 30))
        .dir("data/a/b/c", d)
        .file("data/a/b/c/deep.txt", b"deep\n", f)
        .dir("data/empty-dir", attr(0o750, 1234, 5678, T + 40))
        .file("data/empty-file", b"", attr(0o600, 1234, 5678, T + 50))
        .file(
            "data/big.bin",
            &noise(1 << 20, 7),
            attr(0o640, 1234, 5678, T + 60),
        )
        .symlink("data/abs-link", "/etc/passwd", attr(0o777, 0, 0, T + 70))
        .symlink(
            "data/rel-link",
            "a/b/c/deep.txt",
            attr(0o777, 1234, 5678, T + 80),
        )
        .symlink("data/dangling", "no/such/target", attr(0o777, 0, 0, T + 90))
        .symlink("data/dir-link", "a", attr(0o777, 0, 0, T + 100))
        .file(
            "data/hard-orig",
            b"two names, one inode\n",
            attr(0o640, 1234, 5678, T + 110),
        )
        .hardlink(
            "data/hard-link",
            "data/hard-orig",
            attr(0o640, 1234, 5678, T + 110),
        )
        .fifo("data/fifo", attr(0o620, 1234, 5678, T + 120))
        .file("data/with space.txt", b"spaces\n", f)
        .file("data/new\nline", b"newline\n", f)
        .file(
            "data/caf\u{e9} \u{2615} \u{65e5}\u{672c}.txt",
            b"unicode\n",
            f,
        )
        .file(b"data/not-utf8-\xff\xfe", b"bytes\n", f)
        // Escaping in berth's index: a literal backslash, and text that
        // looks like an escape.
        .file("data/back\\slash \\x41", b"backslash\n", f)
        .file(long_over_100(), b"over 100\n", f)
        .dir("data/long", d)
        .dir(format!("data/long/{}", "x".repeat(100)), d)
        .dir(
            format!("data/long/{}/{}", "x".repeat(100), "y".repeat(100)),
            d,
        )
        .file(
            long_over_255(),
            b"over 255\n",
            attr(0o444, 65534, 65534, T + 130),
        )
        .file("data/setuid", b"#!/bin/true\n", attr(0o4755, 0, 0, T + 140))
        .file(
            "data/setgid",
            b"#!/bin/true\n",
            attr(0o2755, 0, 1234, T + 150),
        )
        .dir("data/sticky", attr(0o1777, 0, 0, T + 160))
        .dir("data/setgid-dir", attr(0o2775, 0, 5678, T + 170))
        .file(
            "data/setgid-dir/inside",
            b"in\n",
            attr(0o664, 0, 5678, T + 175),
        )
        .file(
            "data/nobody",
            b"nobody's\n",
            attr(0o600, 65534, 65534, T + 180),
        );
    t.pax(&[("SCHILY.xattr.security.capability", &CAP_NET_BIND)])
        .file("data/cap-file", b"capable\n", attr(0o755, 0, 0, T + 190));
    t.pax(&[("SCHILY.xattr.user.berth", b"1")])
        .file("data/user-xattr", b"user xattr\n", f);
    t.finish()
}

/// Changes every kind of thing the hard tree has (busybox sh in /data).
pub const MUTATE: &str = r#"set -e
cd /data
rm -rf a/b/c empty-dir 'with space.txt' new?line
rm rel-link
ln -s somewhere-else rel-link
echo changed > big.bin
echo added > added.txt
mkdir -p added-dir/x
echo y > added-dir/x/y
chmod 0644 setuid
chmod 0755 sticky
chown 1:1 nobody
chown 0:0 cap-file
chmod 0700 /data
chown 0:0 /data
rm -rf long
echo now-a-file > long
rm fifo
mkdir fifo
echo more >> hard-orig
"#;
