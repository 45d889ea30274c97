//! `berth backup` and `berth verify` against the real engine, asserted on
//! real outcomes: the files in the backup directory, their digests, what
//! GNU tar and `docker cp` say about the same data, and the engine's state.

mod support;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth::docker::{body, containers::LogOptions, Docker};
use flate2::read::MultiGzDecoder;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::engine::Scope;
use support::images::busybox;
use support::tmpfs::Tmpfs;

// ---------------------------------------------------------------------------
// Helpers: the CLI, digests, tars.

fn berth<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The backup directory of a successful human `berth backup`: the last line
/// of its stdout.
fn backup_dir(out: &Output) -> PathBuf {
    assert!(
        out.status.success(),
        "berth backup failed ({:?}): {}",
        out.status.code(),
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    let dir = PathBuf::from(stdout.lines().last().expect("berth printed nothing"));
    assert!(
        dir.is_dir(),
        "{} is not a directory: {stdout}",
        dir.display()
    );
    dir
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn sha256_hex(b: &[u8]) -> String {
    hex(&Sha256::digest(b))
}

/// sha256 and byte count of everything `r` gives.
fn sha256_read(mut r: impl Read) -> (String, u64) {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf).unwrap();
        if k == 0 {
            return (hex(&h.finalize()), n);
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
}

fn sha256_file(p: &Path) -> (String, u64) {
    sha256_read(fs::File::open(p).unwrap())
}

fn gunzip(p: &Path) -> Vec<u8> {
    let mut v = vec![];
    MultiGzDecoder::new(BufReader::new(fs::File::open(p).unwrap()))
        .read_to_end(&mut v)
        .unwrap();
    v
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// One tar entry, as compared between archives.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ent {
    /// f d l h p c b
    kind: char,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    link: Option<Vec<u8>>,
    sha256: Option<String>,
    /// What the index holds (schema 4).
    blake3: Option<String>,
    xattrs: BTreeMap<String, Vec<u8>>,
}

/// Entries by path (without a trailing '/'), and the paths in stream order.
type Tree = BTreeMap<Vec<u8>, Ent>;

/// Parse a whole tar stream with the tar crate, hashing file contents as
/// they pass (constant memory). Reads the input to its end.
fn read_tar<R: Read>(mut r: R) -> (Vec<Vec<u8>>, Tree) {
    let mut order = vec![];
    let mut tree = Tree::new();
    {
        let mut a = tar::Archive::new(&mut r);
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let mut path = e.path_bytes().into_owned();
            while path.last() == Some(&b'/') {
                path.pop();
            }
            let mut xattrs = BTreeMap::new();
            if let Some(exts) = e.pax_extensions().unwrap() {
                for x in exts {
                    let x = x.unwrap();
                    if let Some(name) = x.key().unwrap().strip_prefix("SCHILY.xattr.") {
                        xattrs.insert(name.to_owned(), x.value_bytes().to_vec());
                    }
                }
            }
            use tar::EntryType as T;
            let kind = match e.header().entry_type() {
                T::Regular | T::Continuous => 'f',
                T::Directory => 'd',
                T::Symlink => 'l',
                T::Link => 'h',
                T::Fifo => 'p',
                T::Char => 'c',
                T::Block => 'b',
                other => panic!("unexpected entry type {other:?}"),
            };
            let link = e.link_name_bytes().map(|l| l.into_owned());
            let (sha256, blake3, size) = if kind == 'f' {
                let mut content = vec![];
                e.read_to_end(&mut content).unwrap();
                let b3 = blake3::hash(&content).to_hex().to_string();
                (Some(sha256_hex(&content)), Some(b3), content.len() as u64)
            } else {
                (None, None, 0)
            };
            let h = e.header();
            let ent = Ent {
                kind,
                mode: h.mode().unwrap() & 0o7777,
                uid: h.uid().unwrap(),
                gid: h.gid().unwrap(),
                size,
                link,
                sha256,
                blake3,
                xattrs,
            };
            assert!(
                tree.insert(path.clone(), ent).is_none(),
                "{} twice in one archive",
                String::from_utf8_lossy(&path)
            );
            order.push(path);
        }
    }
    // The end-of-archive blocks and record padding.
    io::copy(&mut r, &mut io::sink()).unwrap();
    (order, tree)
}

fn read_targz(p: &Path) -> (Vec<Vec<u8>>, Tree) {
    read_tar(MultiGzDecoder::new(BufReader::with_capacity(
        1 << 20,
        fs::File::open(p).unwrap(),
    )))
}

fn docker_cli() -> &'static str {
    ["/usr/local/bin/docker", "/usr/bin/docker"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("docker")
}

/// What `docker cp CONTAINER:PATH -` gives, parsed as it streams.
fn docker_cp(container: &str, path: &str) -> Tree {
    let mut child = Command::new(docker_cli())
        .args(["cp", &format!("{container}:{path}"), "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (_, tree) = read_tar(child.stdout.take().unwrap());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "docker cp: {}", text(&out.stderr));
    tree
}

fn show(p: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(p))
}

/// The index lines of a backup (a gzipped file), parsed as plain JSON.
fn read_index(p: &Path) -> Vec<Value> {
    String::from_utf8(gunzip(p))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Every index line equals the entry of the same path in `tree`, and the
/// index has exactly the archive's entries, in the archive's order.
fn assert_index_matches(index: &[Value], order: &[Vec<u8>], tree: &Tree) {
    let paths: Vec<Vec<u8>> = index
        .iter()
        .map(|e| e["path"].as_str().unwrap().as_bytes().to_vec())
        .collect();
    assert_eq!(paths, order, "index and archive list different entries");
    for e in index {
        let path = e["path"].as_str().unwrap();
        assert!(!path.contains('\\'), "no escapes expected: {path:?}");
        let t = &tree[path.as_bytes()];
        let kind = match e["type"].as_str().unwrap() {
            "file" => 'f',
            "dir" => 'd',
            "symlink" => 'l',
            "hardlink" => 'h',
            "fifo" => 'p',
            "char" => 'c',
            "block" => 'b',
            k => panic!("type {k}"),
        };
        let xattrs: BTreeMap<String, String> = e
            .get("xattrs")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let want_x: BTreeMap<String, String> =
            t.xattrs.iter().map(|(k, v)| (k.clone(), hex(v))).collect();
        let got = (
            kind,
            e["mode"].as_u64().unwrap() as u32,
            e["uid"].as_u64().unwrap(),
            e["gid"].as_u64().unwrap(),
            e["size"].as_u64().unwrap(),
            e.get("link")
                .and_then(Value::as_str)
                .map(|l| l.as_bytes().to_vec()),
            e.get("blake3").and_then(Value::as_str).map(str::to_owned),
            xattrs,
        );
        let want = (
            t.kind,
            t.mode,
            t.uid,
            t.gid,
            t.size,
            t.link.clone(),
            t.blake3.clone(),
            want_x,
        );
        assert_eq!(got, want, "index line for {path:?}");
    }
}

/// `sha256sum -c SHA256SUMS` in the directory passes and checks every
/// other file.
fn assert_sha256sum_c(dir: &Path) {
    let out = Command::new("sha256sum")
        .args(["-c", "--strict", "SHA256SUMS"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sha256sum -c: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let checked: Vec<String> = text(&out.stdout)
        .lines()
        .map(|l| l.strip_suffix(": OK").unwrap().to_owned())
        .collect();
    let mut files: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "SHA256SUMS")
        .collect();
    files.sort();
    let mut sorted = checked.clone();
    sorted.sort();
    assert_eq!(sorted, files, "SHA256SUMS does not cover every file");
}

/// GNU tar lists the archive without a complaint; returns its line count.
fn gnu_tar_list(p: &Path) -> usize {
    let out = Command::new("tar").arg("tvzf").arg(p).output().unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "tar tvzf {}: {}",
        p.display(),
        text(&out.stderr)
    );
    text(&out.stdout).lines().count()
}

fn entries_of(dir: &Path) -> Vec<String> {
    match fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => vec![],
        Err(e) => panic!("{}: {e}", dir.display()),
    }
}

fn manifest(dir: &Path) -> Value {
    serde_json::from_slice(&fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

// ---------------------------------------------------------------------------
// Helpers: the engine.

/// Run `script` in a one-shot busybox container that shares the volumes of
/// `from`; returns its output (stdout and stderr), asserting exit 0.
async fn sh(s: &Scope, what: &str, from: &str, script: &str) -> String {
    let d = &s.docker;
    let img = busybox(d).await;
    let name = s
        .run(
            what,
            json!({"Image": img, "Cmd": ["sh", "-c", script], "HostConfig": {"VolumesFrom": [from]}}),
        )
        .await;
    let code = d.container_wait(&name).await.unwrap();
    let out = logs(d, &name).await;
    assert_eq!(code, 0, "{script}: {out}");
    out
}

async fn logs(d: &Docker, name: &str) -> String {
    let mut l = d
        .container_logs(
            name,
            &LogOptions {
                stdout: true,
                stderr: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut v = vec![];
    while let Some((_, b)) = l.next().await.unwrap() {
        v.extend_from_slice(&b);
    }
    text(&v)
}

/// (Running, StartedAt).
async fn state(d: &Docker, name: &str) -> (bool, String) {
    let i = d.container_inspect_raw(name).await.unwrap();
    (
        i["State"]["Running"].as_bool().unwrap(),
        i["State"]["StartedAt"].as_str().unwrap().to_owned(),
    )
}

/// A shell loop that exits at once on SIGTERM.
const IDLE: &str = "trap 'exit 0' TERM; while :; do sleep 0.1; done";

/// Pseudo-random, incompressible bytes (xorshift), reproducible.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(n + 8);
    while v.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(n);
    v
}

/// A tar for PUT archive, written header by header so that every odd case
/// is exactly as meant: PAX records for long or non-ASCII names and link
/// targets and for xattrs, raw bytes in the ustar fields otherwise.
struct PutTar(tar::Builder<Vec<u8>>);

impl PutTar {
    fn new() -> Self {
        PutTar(tar::Builder::new(Vec::new()))
    }

    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        path: &str,
        kind: tar::EntryType,
        mode: u32,
        owner: (u64, u64),
        data: &[u8],
        link: &str,
        xattrs: &[(&str, &[u8])],
    ) -> &mut Self {
        let fits = |s: &str| s.len() < 100 && s.is_ascii();
        let mut pax: Vec<(String, Vec<u8>)> = vec![];
        if !fits(path) {
            pax.push(("path".into(), path.as_bytes().to_vec()));
        }
        if !fits(link) {
            pax.push(("linkpath".into(), link.as_bytes().to_vec()));
        }
        for (k, v) in xattrs {
            pax.push((format!("SCHILY.xattr.{k}"), v.to_vec()));
        }
        if !pax.is_empty() {
            self.0
                .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .unwrap();
        }
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(owner.0);
        h.set_gid(owner.1);
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        // The ustar fields: the name itself, or an ASCII stand-in that the
        // PAX record overrides.
        let field = |s: &str| -> Vec<u8> {
            s.bytes()
                .map(|b| if b.is_ascii() { b } else { b'_' })
                .take(99)
                .collect()
        };
        let name = field(path);
        h.as_old_mut().name[..name.len()].copy_from_slice(&name);
        let l = field(link);
        h.as_old_mut().linkname[..l.len()].copy_from_slice(&l);
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }

    fn dir(&mut self, path: &str, mode: u32, owner: (u64, u64)) -> &mut Self {
        self.add(
            &format!("{path}/"),
            tar::EntryType::Directory,
            mode,
            owner,
            b"",
            "",
            &[],
        )
    }

    fn file(&mut self, path: &str, mode: u32, owner: (u64, u64), data: &[u8]) -> &mut Self {
        self.add(path, tar::EntryType::Regular, mode, owner, data, "", &[])
    }

    fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.add(
            path,
            tar::EntryType::Symlink,
            0o777,
            (0, 0),
            b"",
            target,
            &[],
        )
    }

    fn finish(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

const ROOT: (u64, u64) = (0, 0);

/// A `security.capability` value (VFS_CAP_REVISION_2, effective):
/// cap_net_bind_service (bit 10) permitted.
const CAP_NET_BIND_SERVICE: [u8; 20] = [
    0x01, 0x00, 0x00, 0x02, // magic_etc: revision 2 | effective
    0x00, 0x04, 0x00, 0x00, // permitted[0]: bit 10
    0x00, 0x00, 0x00, 0x00, // inheritable[0]
    0x00, 0x00, 0x00, 0x00, // permitted[1]
    0x00, 0x00, 0x00, 0x00, // inheritable[1]
];

const SPARSE_SIZE: u64 = 1 << 30;

// ---------------------------------------------------------------------------
// 1. The hard cases of a file tree.

#[tokio::test(flavor = "multi_thread")]
async fn hard_case_tree_backs_up_exactly_what_docker_cp_sees() {
    let s = Scope::new("hardtree").await;
    let d = &s.docker;
    let img = busybox(d).await;
    let c = s
        .create(
            "c",
            json!({"Image": img, "Cmd": ["sleep", "600"], "Volumes": {"/data": {}}}),
        )
        .await;

    let long100 = format!("data/long/{}/{}.txt", "a".repeat(60), "b".repeat(60));
    let deep_dirs = format!("data/deep/{}/{}", "c".repeat(200), "d".repeat(200));
    let long255 = format!("{deep_dirs}/{}.txt", "e".repeat(120));
    assert!(long100.len() > 100 && long255.len() > 255);
    let long_target = format!("long/{}/{}.txt", "a".repeat(60), "b".repeat(60));
    let unicode = "data/ünïcødé-名前 ☃.txt";
    let mut t = PutTar::new();
    t.dir("data", 0o755, ROOT)
        .dir("data/dir", 0o755, ROOT)
        .dir("data/dir/sub", 0o750, ROOT)
        .dir("data/dir/sub/deeper", 0o700, ROOT)
        .file(
            "data/dir/sub/deeper/file.txt",
            0o644,
            ROOT,
            b"deep content\n",
        )
        .dir("data/emptydir", 0o755, ROOT)
        .file("data/empty", 0o644, ROOT, b"")
        .file("data/name with spaces.txt", 0o644, ROOT, b"spaces\n")
        .file("data/new\nline", 0o600, ROOT, b"newline in the name\n")
        .file(unicode, 0o644, ROOT, "non-ASCII ✓\n".as_bytes())
        .symlink("data/symabs", "/etc/passwd")
        .symlink("data/symrel", "dir/sub/deeper/file.txt")
        .symlink("data/dangling", "does/not/exist")
        .symlink("data/longlink", &long_target)
        .file("data/hard1", 0o640, (1234, 5678), b"one inode, two names\n")
        .add(
            "data/hard2",
            tar::EntryType::Link,
            0o640,
            (1234, 5678),
            b"",
            "data/hard1",
            &[],
        )
        .add("data/fifo", tar::EntryType::Fifo, 0o620, ROOT, b"", "", &[])
        .dir("data/long", 0o755, ROOT)
        .dir(&format!("data/long/{}", "a".repeat(60)), 0o755, ROOT)
        .file(&long100, 0o644, ROOT, b"more than 100 bytes of path\n")
        .dir("data/deep", 0o755, ROOT)
        .dir(&format!("data/deep/{}", "c".repeat(200)), 0o755, ROOT)
        .dir(&deep_dirs, 0o755, ROOT)
        .file(&long255, 0o644, ROOT, b"more than 255 bytes of path\n")
        .file("data/setuid", 0o4755, ROOT, b"#!/bin/sh\n")
        .file("data/setgid", 0o2755, ROOT, b"#!/bin/sh\n")
        .dir("data/sticky", 0o1777, ROOT)
        .dir("data/setgiddir", 0o2775, (0, 5678))
        .file("data/owned", 0o644, (1234, 5678), b"owned by 1234:5678\n")
        .dir("data/nobody", 0o755, (65534, 65534))
        .file("data/nobody/file", 0o600, (65534, 65534), b"nobody's\n")
        .add(
            "data/capbin",
            tar::EntryType::Regular,
            0o755,
            ROOT,
            b"\x7fELF pretend\n",
            "",
            &[("security.capability", &CAP_NET_BIND_SERVICE)],
        );
    d.archive_put(&c, "/", body::full(t.finish()))
        .await
        .unwrap();

    // What the filesystem does better: a sparse file, a hard link and a
    // FIFO made by the kernel, incompressible data.
    let out = sh(
        &s,
        "mk",
        &c,
        &format!(
            "set -e; cd /data; dd if=/dev/zero of=sparse bs=1 count=0 seek={SPARSE_SIZE} 2>/dev/null; \
             dd if=/dev/urandom of=random.bin bs=65536 count=16 2>/dev/null; ln random.bin random.link; \
             mkfifo -m 0600 fifo2; stat -c '%s %b' sparse"
        ),
    )
    .await;
    let (size, blocks) = out.trim().split_once(' ').unwrap();
    assert_eq!(size.parse::<u64>().unwrap(), SPARSE_SIZE, "{out}");
    assert!(
        blocks.parse::<u64>().unwrap() < 64,
        "the sparse file is not sparse: {out}"
    );

    // The capability xattr survived PUT: the engine gives it back.
    let (_, r) = d.archive_get(&c, "/data/capbin").await.unwrap();
    let (_, cap) = tokio::task::spawn_blocking(move || read_tar(r))
        .await
        .unwrap();
    assert_eq!(
        cap[&b"capbin"[..]].xattrs.get("security.capability"),
        Some(&CAP_NET_BIND_SERVICE.to_vec()),
        "the engine dropped security.capability: {cap:?}"
    );

    // The backup.
    let outdir = s.dir("out");
    let o = berth(["backup", &c, "--out", outdir.to_str().unwrap()]);
    let dir = backup_dir(&o);
    assert_eq!(dir.parent(), Some(outdir.as_path()));
    assert!(
        dir.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(&format!("{c}-")),
        "{}",
        dir.display()
    );
    assert!(
        o.stderr.is_empty(),
        "a stopped container: no warning: {}",
        text(&o.stderr)
    );
    let mut files = entries_of(&dir);
    files.sort();
    assert_eq!(
        files,
        [
            "SHA256SUMS",
            "data.index.gz",
            "data.tar.gz",
            "manifest.json"
        ]
    );
    assert_sha256sum_c(&dir);
    let m = manifest(&dir);
    assert_eq!(m["paths"].as_array().unwrap().len(), 1);
    assert_eq!(m["paths"][0]["path"], "/data");
    assert_eq!(m["container"]["name"], c);

    let archive = dir.join("data.tar.gz");
    let (order, ours) = read_targz(&archive);
    assert_eq!(m["paths"][0]["entries"].as_u64(), Some(order.len() as u64));
    assert_eq!(gnu_tar_list(&archive), order.len());

    // Exactly what docker cp gives.
    let theirs = docker_cp(&c, "/data");
    let only_ours: Vec<String> = ours
        .keys()
        .filter(|k| !theirs.contains_key(*k))
        .map(|k| show(k))
        .collect();
    let only_theirs: Vec<String> = theirs
        .keys()
        .filter(|k| !ours.contains_key(*k))
        .map(|k| show(k))
        .collect();
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "only in berth's: {only_ours:?}; only in docker cp's: {only_theirs:?}"
    );
    for (k, e) in &ours {
        assert_eq!(e, &theirs[k], "{}", show(k));
    }

    // And the tree is what was made (so the comparison compared something).
    let get = |p: &str| -> &Ent {
        ours.get(p.as_bytes())
            .unwrap_or_else(|| panic!("{p:?} missing from the backup"))
    };
    let kinds = |p: &str| (get(p).kind, get(p).mode, get(p).uid, get(p).gid);
    assert_eq!(kinds("data"), ('d', 0o755, 0, 0));
    assert_eq!(kinds("data/dir/sub"), ('d', 0o750, 0, 0));
    assert_eq!(kinds("data/dir/sub/deeper"), ('d', 0o700, 0, 0));
    assert_eq!(kinds("data/emptydir"), ('d', 0o755, 0, 0));
    assert!(!ours.keys().any(|k| k.starts_with(b"data/emptydir/")));
    assert_eq!(kinds("data/setuid"), ('f', 0o4755, 0, 0));
    assert_eq!(kinds("data/setgid"), ('f', 0o2755, 0, 0));
    assert_eq!(kinds("data/sticky"), ('d', 0o1777, 0, 0));
    assert_eq!(kinds("data/setgiddir"), ('d', 0o2775, 0, 5678));
    assert_eq!(kinds("data/owned"), ('f', 0o644, 1234, 5678));
    assert_eq!(kinds("data/nobody"), ('d', 0o755, 65534, 65534));
    assert_eq!(kinds("data/nobody/file"), ('f', 0o600, 65534, 65534));
    assert_eq!(kinds("data/fifo"), ('p', 0o620, 0, 0));
    assert_eq!(kinds("data/fifo2"), ('p', 0o600, 0, 0));
    let content = |p: &str, want: &[u8]| {
        let e = get(p);
        assert_eq!(
            (e.kind, e.size, e.sha256.clone()),
            ('f', want.len() as u64, Some(sha256_hex(want))),
            "{p:?}"
        );
    };
    content("data/empty", b"");
    content("data/dir/sub/deeper/file.txt", b"deep content\n");
    content("data/name with spaces.txt", b"spaces\n");
    content("data/new\nline", b"newline in the name\n");
    content(unicode, "non-ASCII ✓\n".as_bytes());
    content(&long100, b"more than 100 bytes of path\n");
    content(&long255, b"more than 255 bytes of path\n");
    content("data/hard1", b"one inode, two names\n");
    for (p, target) in [
        ("data/symabs", "/etc/passwd"),
        ("data/symrel", "dir/sub/deeper/file.txt"),
        ("data/dangling", "does/not/exist"),
        ("data/longlink", long_target.as_str()),
    ] {
        assert_eq!(get(p).kind, 'l', "{p}");
        assert_eq!(get(p).link.as_deref(), Some(target.as_bytes()), "{p}");
    }
    // Hard links: the second name of an inode is a link entry to the first.
    assert_eq!(kinds("data/hard2"), ('h', 0o640, 1234, 5678));
    assert_eq!(get("data/hard2").link.as_deref(), Some(&b"data/hard1"[..]));
    assert_eq!(get("data/random.link").kind, 'h');
    assert_eq!(
        get("data/random.link").link.as_deref(),
        Some(&b"data/random.bin"[..])
    );
    assert_eq!(get("data/random.bin").size, 1 << 20);
    // The sparse file comes out whole: 1 GiB of zeros in a plain entry.
    let zeros = {
        let mut h = Sha256::new();
        let z = vec![0u8; 1 << 20];
        for _ in 0..(SPARSE_SIZE >> 20) {
            h.update(&z);
        }
        hex(&h.finalize())
    };
    assert_eq!(
        (get("data/sparse").size, get("data/sparse").sha256.clone()),
        (SPARSE_SIZE, Some(zeros))
    );
    assert_eq!(
        get("data/capbin").xattrs.get("security.capability"),
        Some(&CAP_NET_BIND_SERVICE.to_vec())
    );
    // ...and it compressed: 1 GiB of zeros is not 1 GiB on disk.
    let bytes = fs::metadata(&archive).unwrap().len();
    assert!(bytes < 32 << 20, "{bytes} bytes");

    // The index agrees with the archive, line for line, and berth's deep
    // verify says so too.
    assert_index_matches(&read_index(&dir.join("data.index.gz")), &order, &ours);
    let v = berth(["verify", dir.to_str().unwrap(), "--deep"]);
    assert!(v.status.success(), "verify --deep: {}", text(&v.stderr));
}

// ---------------------------------------------------------------------------
// 2. Volumes from a data container; a host bind nested inside one of them.

#[tokio::test(flavor = "multi_thread")]
async fn volumes_from_a_data_container_and_a_nested_bind_left_out() {
    let s = Scope::new("volfrom").await;
    let d = &s.docker;
    let img = busybox(d).await;
    let data = s
        .create(
            "lw_data",
            json!({"Image": img, "Cmd": ["true"], "Volumes": {"/var/lib/vmware": {}, "/var/lib/likewise": {}}}),
        )
        .await;
    let db = noise(300_000, 7);
    let mut t = PutTar::new();
    t.dir("var/lib/vmware/db", 0o750, ROOT)
        .file("var/lib/vmware/db/data.bin", 0o640, ROOT, &db)
        .file("var/lib/vmware/version", 0o644, ROOT, b"6.6.0\n")
        .file(
            "var/lib/likewise/state.txt",
            0o600,
            (1234, 5678),
            b"joined\n",
        );
    d.archive_put(&data, "/", body::full(t.finish()))
        .await
        .unwrap();

    const PASSWORD: &str = "Adm1n-Pa55w0rd-berth-7f3a9c";
    let cfg = s.dir("cfg");
    fs::write(
        cfg.join("secret.cfg"),
        format!("admin_user=root\nadmin_password={PASSWORD}\n"),
    )
    .unwrap();
    fs::create_dir(cfg.join("sub")).unwrap();
    fs::write(cfg.join("sub/other.cfg"), format!("again {PASSWORD}\n")).unwrap();
    let app = s
        .run(
            "app",
            json!({"Image": img, "Cmd": ["sh", "-c", IDLE], "HostConfig": {
                "VolumesFrom": [data.clone()],
                "Binds": [format!("{}:/var/lib/vmware/config", cfg.display())]
            }}),
        )
        .await;

    // The engine's own archive of the volume does hold the bind's files:
    // leaving them out is berth's doing.
    let (_, r) = d.archive_get(&app, "/var/lib/vmware").await.unwrap();
    let (_, raw) = tokio::task::spawn_blocking(move || read_tar(r))
        .await
        .unwrap();
    assert!(
        raw.contains_key(&b"vmware/config/secret.cfg"[..]),
        "{:?}",
        raw.keys().map(|k| show(k)).collect::<Vec<_>>()
    );

    let outdir = s.dir("out");
    let o = berth(["backup", &app, "--out", outdir.to_str().unwrap()]);
    let dir = backup_dir(&o);
    let stdout = text(&o.stdout);
    assert!(
        stdout.contains("left out: /var/lib/vmware/config"),
        "{stdout}"
    );
    assert_sha256sum_c(&dir);
    let m = manifest(&dir);

    // Every volume, attributed to the data container.
    let paths = m["paths"].as_array().unwrap();
    let got: Vec<(&str, &str, &str)> = paths
        .iter()
        .map(|p| {
            (
                p["path"].as_str().unwrap(),
                p["archive"].as_str().unwrap(),
                p["mount"]["from"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "/var/lib/likewise",
                "var-lib-likewise.tar.gz",
                data.as_str()
            ),
            ("/var/lib/vmware", "var-lib-vmware.tar.gz", data.as_str()),
        ]
    );
    assert_eq!(paths[1]["excluded"], json!(["config"]));
    let excluded = m["excluded"].as_array().unwrap();
    assert_eq!(excluded.len(), 1, "{excluded:?}");
    assert_eq!(excluded[0]["path"], "/var/lib/vmware/config");
    assert_eq!(excluded[0]["inside"], "/var/lib/vmware");

    // The volumes' data is there...
    let (_, vm) = read_targz(&dir.join("var-lib-vmware.tar.gz"));
    assert_eq!(vm[&b"vmware/db/data.bin"[..]].sha256, Some(sha256_hex(&db)));
    assert!(vm.contains_key(&b"vmware/version"[..]));
    assert!(
        !vm.keys().any(|k| k.starts_with(b"vmware/config")),
        "{:?}",
        vm.keys().map(|k| show(k)).collect::<Vec<_>>()
    );
    let (_, lw) = read_targz(&dir.join("var-lib-likewise.tar.gz"));
    let st = &lw[&b"likewise/state.txt"[..]];
    assert_eq!(
        (st.uid, st.gid, st.sha256.clone()),
        (1234, 5678, Some(sha256_hex(b"joined\n")))
    );

    // ...and the secret is in no file of the backup, compressed or not.
    for f in entries_of(&dir) {
        let p = dir.join(&f);
        let bytes = if f.ends_with(".gz") {
            gunzip(&p)
        } else {
            fs::read(&p).unwrap()
        };
        assert!(
            !contains(&bytes, PASSWORD.as_bytes()),
            "the password is in {f}"
        );
        if f.ends_with(".tar.gz") || f.ends_with(".index.gz") {
            assert!(
                !contains(&bytes, b"secret.cfg"),
                "secret.cfg is named in {f}"
            );
            assert!(!contains(&bytes, b"other.cfg"), "other.cfg is named in {f}");
        }
    }
    let v = berth(["verify", dir.to_str().unwrap(), "--deep"]);
    assert!(v.status.success(), "verify --deep: {}", text(&v.stderr));
}

// ---------------------------------------------------------------------------
// 3. --stop.

/// Appends a tick every 50 ms; "start" when it starts, "stop" on SIGTERM.
const TICKER: &str = "trap 'echo stop >> /data/ticks; exit 0' TERM; echo start >> /data/ticks; \
                      i=0; while :; do i=$((i+1)); echo $i >> /data/ticks; sleep 0.05; done";

async fn ticks(d: &Docker, name: &str) -> String {
    let o = d
        .exec_run(name, &["cat".into(), "/data/ticks".into()])
        .await
        .unwrap();
    assert_eq!(o.exit_code, 0);
    text(&o.stdout)
}

fn archived_ticks(dir: &Path) -> String {
    let r = gunzip(&dir.join("data.tar.gz"));
    let mut a = tar::Archive::new(&r[..]);
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        if &*e.path_bytes() == b"data/ticks" {
            let mut s = String::new();
            e.read_to_string(&mut s).unwrap();
            return s;
        }
    }
    panic!("no data/ticks in the backup");
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_stops_for_the_copy_and_starts_again() {
    let s = Scope::new("stop").await;
    let d = &s.docker;
    let img = busybox(d).await;
    let app = s
        .run(
            "app",
            json!({"Image": img, "Cmd": ["sh", "-c", TICKER], "Volumes": {"/data": {}}}),
        )
        .await;
    for _ in 0..100 {
        if ticks(d, &app).await.lines().count() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (running, started0) = state(d, &app).await;
    assert!(running);

    // Watch the container while berth works.
    let watching = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let watcher = {
        let (d, app, watching) = (d.clone(), app.clone(), watching.clone());
        tokio::spawn(async move {
            let mut seen_stopped = false;
            while watching.load(std::sync::atomic::Ordering::SeqCst) {
                if let Ok(i) = d.container_inspect_raw(&app).await {
                    seen_stopped |= i["State"]["Running"] == false;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            seen_stopped
        })
    };
    let outdir = s.dir("out");
    let o = {
        let args: Vec<String> = ["backup", &app, "--out", outdir.to_str().unwrap()]
            .iter()
            .chain(&["--stop", "--stop-timeout", "10"])
            .map(|a| a.to_string())
            .collect();
        tokio::task::spawn_blocking(move || berth(args))
            .await
            .unwrap()
    };
    watching.store(false, std::sync::atomic::Ordering::SeqCst);
    let seen_stopped = watcher.await.unwrap();
    let dir = backup_dir(&o);
    assert!(!text(&o.stderr).contains("warning"), "{}", text(&o.stderr));
    let (running, started1) = state(d, &app).await;
    assert!(running, "not running again after --stop");
    assert_ne!(started0, started1, "StartedAt did not change");
    assert!(seen_stopped, "never saw the container stopped");
    let m = manifest(&dir);
    assert_eq!(m["container"]["was_running"], true);
    assert_eq!(m["container"]["stopped_for_backup"], true);
    // The copy was taken after the app's last write before it stopped and
    // before it started again: the archived file ends with "stop", and the
    // live one goes on exactly from there with "start".
    let copied = archived_ticks(&dir);
    assert!(copied.ends_with("\nstop\n"), "{copied:?}");
    let mut live = ticks(d, &app).await;
    for _ in 0..100 {
        if live.len() > copied.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        live = ticks(d, &app).await;
    }
    assert!(
        live.starts_with(&copied) && live[copied.len()..].starts_with("start\n"),
        "archived {copied:?}, live {live:?}"
    );

    // Without --stop: a warning, and the container is left alone.
    let o = berth(["backup", &app, "--out", outdir.to_str().unwrap()]);
    let dir2 = backup_dir(&o);
    assert_ne!(dir, dir2);
    let err = text(&o.stderr);
    assert!(
        err.contains("warning") && err.contains(&app) && err.contains("--stop"),
        "{err}"
    );
    assert_eq!(state(d, &app).await, (true, started1.clone()));
    let m = manifest(&dir2);
    assert_eq!(m["container"]["was_running"], true);
    assert_eq!(m["container"]["stopped_for_backup"], false);
    let copied = archived_ticks(&dir2);
    assert_eq!(
        copied.lines().filter(|l| *l == "stop").count(),
        1,
        "{copied:?}"
    );
    assert!(!copied.ends_with("stop\n"), "{copied:?}");

    // --stop on a stopped container: nothing to stop, nothing started.
    d.container_stop(&app, 10).await.unwrap();
    let (_, started2) = state(d, &app).await;
    let o = berth(["backup", &app, "--out", outdir.to_str().unwrap(), "--stop"]);
    let dir3 = backup_dir(&o);
    assert!(o.stderr.is_empty(), "{}", text(&o.stderr));
    assert_eq!(state(d, &app).await, (false, started2));
    let m = manifest(&dir3);
    assert_eq!(m["container"]["was_running"], false);
    assert_eq!(m["container"]["stopped_for_backup"], false);
    assert_eq!(entries_of(&outdir).len(), 3);
}

// ---------------------------------------------------------------------------
// 4. --json.

#[tokio::test(flavor = "multi_thread")]
async fn json_report_matches_the_files() {
    let s = Scope::new("json").await;
    let d = &s.docker;
    let img = busybox(d).await;
    let c = s
        .create(
            "c",
            json!({"Image": img, "Cmd": ["true"], "Volumes": {"/srv/a": {}, "/srv/b b": {}}}),
        )
        .await;
    let mut t = PutTar::new();
    t.file("srv/a/one.bin", 0o644, ROOT, &noise(2 << 20, 1))
        .file(
            "srv/a/two.txt",
            0o644,
            ROOT,
            &b"compressible ".repeat(100_000),
        )
        .dir("srv/b b/dir", 0o755, ROOT)
        .file("srv/b b/dir/x", 0o600, (5, 6), b"x\n");
    d.archive_put(&c, "/", body::full(t.finish()))
        .await
        .unwrap();
    let outdir = s.dir("out");
    let o = berth([
        "backup",
        &c,
        "--out",
        outdir.to_str().unwrap(),
        "--json",
        "--compression",
        "best",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(o.stderr.is_empty(), "{}", text(&o.stderr));
    // One JSON document and nothing else.
    let r: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not one JSON document ({e}): {}", text(&o.stdout)));
    let dir = PathBuf::from(r["dir"].as_str().unwrap());
    assert!(dir.is_dir());
    assert_eq!(dir.parent(), Some(outdir.as_path()));
    assert_eq!(entries_of(&outdir).len(), 1);
    assert_eq!(r["warnings"], json!([]));
    assert!(r["seconds"].as_f64().unwrap() > 0.0);
    // The report's manifest is the one on disk.
    assert_eq!(r["manifest"], manifest(&dir));
    assert_eq!(r["manifest"]["compression"]["level"], 9);
    assert_sha256sum_c(&dir);
    let sums = fs::read_to_string(dir.join("SHA256SUMS")).unwrap();

    let paths = r["manifest"]["paths"].as_array().unwrap();
    let names: Vec<&str> = paths.iter().map(|p| p["path"].as_str().unwrap()).collect();
    assert_eq!(names, ["/srv/a", "/srv/b b"]);
    for p in paths {
        let archive = dir.join(p["archive"].as_str().unwrap());
        let (sha, bytes) = sha256_file(&archive);
        assert_eq!(p["sha256"].as_str(), Some(sha.as_str()), "{p}");
        assert_eq!(p["bytes"].as_u64(), Some(bytes), "{p}");
        assert!(sums.contains(&format!("{sha}  {}\n", p["archive"].as_str().unwrap())));
        let (_, tbytes) = sha256_read(MultiGzDecoder::new(BufReader::new(
            fs::File::open(&archive).unwrap(),
        )));
        // Schema 4: no sha256 of the tar (the index proves its content),
        // each file's content under BLAKE3.
        assert_eq!(r["manifest"]["schema"], 4);
        assert_eq!(p["content_hash"], "blake3", "{p}");
        assert!(p.get("tar_sha256").is_none(), "{p}");
        assert_eq!(p["tar_bytes"].as_u64(), Some(tbytes), "{p}");
        assert_eq!(tbytes % 512, 0);
        let (order, tree) = read_targz(&archive);
        assert_eq!(p["entries"].as_u64(), Some(order.len() as u64), "{p}");
        let index = dir.join(p["index"].as_str().unwrap());
        assert_eq!(
            p["index_sha256"].as_str(),
            Some(sha256_file(&index).0.as_str())
        );
        assert_index_matches(&read_index(&index), &order, &tree);
        let secs = p["seconds"].as_f64().unwrap();
        assert!(secs > 0.0 && secs < 120.0, "{p}");
    }
    assert_eq!(paths[0]["archive"], "srv-a.tar.gz");
    assert_eq!(paths[1]["archive"], "srv-b-b.tar.gz");
    assert_eq!(paths[0]["entries"], 3); // a/, one.bin, two.txt
                                        // Compression did its work on the compressible file only.
    assert!(paths[0]["bytes"].as_u64().unwrap() < (2 << 20) + 100_000);
}

// ---------------------------------------------------------------------------
// 5. Faults.

#[tokio::test(flavor = "multi_thread")]
async fn missing_container_or_path_fails_and_leaves_nothing() {
    let s = Scope::new("missing").await;
    let d = &s.docker;
    let img = busybox(d).await;
    let base = s.dir("out");

    let outdir = base.join("never");
    let o = berth([
        "backup",
        "berth-no-such-container",
        "--out",
        outdir.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("berth-no-such-container"), "{err}");
    assert!(
        !outdir.exists(),
        "--out was created for a missing container"
    );
    assert!(o.stdout.is_empty());

    let c = s
        .create(
            "c",
            json!({"Image": img, "Cmd": ["true"], "Volumes": {"/data": {}}}),
        )
        .await;
    let outdir = s.dir("out2");
    let o = berth([
        "backup",
        &c,
        "--path",
        "/nope",
        "--out",
        outdir.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("/nope") && err.contains("does not exist"),
        "{err}"
    );
    assert_eq!(entries_of(&outdir), Vec::<String>::new());

    // A relative path is a usage error.
    let o = berth([
        "backup",
        &c,
        "--path",
        "data",
        "--out",
        outdir.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert_eq!(entries_of(&outdir), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn full_disk_fails_cleanly_and_restarts_the_container() {
    let s = Scope::new("diskfull").await;
    let d = &s.docker;
    let img = busybox(d).await;
    let app = s
        .run(
            "app",
            json!({"Image": img, "Cmd": ["sh", "-c", IDLE], "Volumes": {"/data": {}}}),
        )
        .await;
    sh(
        &s,
        "fill",
        &app,
        "dd if=/dev/urandom of=/data/noise bs=1048576 count=20 2>/dev/null",
    )
    .await;
    let outdir = s.dir("out");
    let _tmpfs = Tmpfs::mount(&outdir, "2m");

    for stop in [false, true] {
        let before = state(d, &app).await;
        assert!(before.0);
        let mut args = vec!["backup", &app, "--out", outdir.to_str().unwrap()];
        if stop {
            args.push("--stop");
        }
        let o = berth(args);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "--stop={stop}: {err}");
        assert!(err.to_lowercase().contains("space"), "--stop={stop}: {err}");
        assert_eq!(
            entries_of(&outdir),
            Vec::<String>::new(),
            "--stop={stop}: left behind"
        );
        let after = state(d, &app).await;
        assert!(after.0, "--stop={stop}: not running after the failure");
        if stop {
            assert_ne!(after.1, before.1, "it was never stopped");
        } else {
            assert_eq!(after, before, "touched without --stop");
        }
    }
    // The tmpfs is empty again: nothing leaked into it.
    let df = Command::new("df")
        .args(["--output=used", "-B1"])
        .arg(&outdir)
        .output()
        .unwrap();
    let used: u64 = text(&df.stdout)
        .lines()
        .last()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(used < 64 << 10, "{used} bytes still used on the tmpfs");
}

#[tokio::test(flavor = "multi_thread")]
async fn interrupted_backup_leaves_nothing_and_restarts_the_container() {
    let s = Scope::new("sigint").await;
    let d = &s.docker;
    let img = busybox(d).await;
    let app = s
        .run(
            "app",
            json!({"Image": img, "Cmd": ["sh", "-c", IDLE], "Volumes": {"/data": {}}}),
        )
        .await;
    // 4 GiB of zeros to read, none of it on disk.
    sh(
        &s,
        "mk",
        &app,
        "dd if=/dev/zero of=/data/big bs=1 count=0 seek=4294967296 2>/dev/null",
    )
    .await;
    let before = state(d, &app).await;
    let outdir = s.dir("out");
    let t0 = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["backup", &app, "--stop", "--out"])
        .arg(&outdir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once the copy runs (its .partial directory exists) and 0.3 s passed.
    loop {
        let copying = entries_of(&outdir).iter().any(|n| n.ends_with(".partial"));
        if copying && t0.elapsed() >= Duration::from_millis(300) {
            break;
        }
        if let Some(st) = child.try_wait().unwrap() {
            panic!("berth ended before the signal: {st}");
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "no copy started");
        std::thread::sleep(Duration::from_millis(10));
    }
    let pid = child.id() as libc::pid_t;
    // SAFETY: our own child, still running (not yet reaped).
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let signalled = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if signalled.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("berth did not stop within 20 s of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = signalled.elapsed();
    let o = child.wait_with_output().unwrap();
    let err = text(&o.stderr);
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(took < Duration::from_secs(5), "took {took:?} after SIGINT");
    assert!(err.contains("interrupted"), "{err}");
    assert_eq!(entries_of(&outdir), Vec::<String>::new());
    let after = state(d, &app).await;
    assert!(after.0, "not running after the interrupted --stop backup");
    assert_ne!(after.1, before.1, "it was never stopped");
}

// ---------------------------------------------------------------------------
// 6. verify.

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn verify(dir: &Path, deep: bool) -> Output {
    let mut args = vec!["verify", dir.to_str().unwrap()];
    if deep {
        args.push("--deep");
    }
    berth(args)
}

/// `berth verify` fails with exit 5 and names `file` (and not `other`).
fn assert_verify_fails(dir: &Path, deep: bool, file: &str, other: &str) {
    let o = verify(dir, deep);
    let err = text(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(5),
        "{} (deep={deep}): {err}",
        dir.display()
    );
    assert!(err.contains(file), "does not name {file}: {err}");
    assert!(!err.contains(other), "names the good {other} too: {err}");
}

/// Rewrite the sums of `files` in SHA256SUMS.
fn update_sums(dir: &Path, files: &[(&str, &str)]) {
    let p = dir.join("SHA256SUMS");
    let text = fs::read_to_string(&p).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        let (_, name) = line.split_once("  ").unwrap();
        match files.iter().find(|(n, _)| *n == name) {
            Some((_, sha)) => out.push_str(&format!("{sha}  {name}\n")),
            None => out.push_str(&format!("{line}\n")),
        }
    }
    fs::write(&p, out).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_catches_every_kind_of_damage() {
    let s = Scope::new("verify").await;
    let d = &s.docker;
    let img = busybox(d).await;
    let c = s
        .create(
            "c",
            json!({"Image": img, "Cmd": ["true"], "Volumes": {"/data": {}, "/logs": {}}}),
        )
        .await;
    const HELLO: &[u8] = b"hello from the berth verify test, unique line\n";
    let mut t = PutTar::new();
    t.file("data/random.bin", 0o644, ROOT, &noise(1 << 20, 3))
        .file("data/hello.txt", 0o644, ROOT, HELLO)
        .file("data/more.bin", 0o644, ROOT, &noise(1 << 20, 4))
        .file("logs/app.log", 0o640, ROOT, &b"log line\n".repeat(1000));
    d.archive_put(&c, "/", body::full(t.finish()))
        .await
        .unwrap();
    let base = s.dir("out");
    let good = backup_dir(&berth(["backup", &c, "--out", base.to_str().unwrap()]));
    for deep in [false, true] {
        let o = verify(&good, deep);
        assert!(o.status.success(), "deep={deep}: {}", text(&o.stderr));
        assert!(
            text(&o.stdout).starts_with("ok: 5 files"),
            "{}",
            text(&o.stdout)
        );
    }
    let copy = |what: &str| -> PathBuf {
        let p = base.join(what);
        copy_dir(&good, &p);
        p
    };

    // One byte flipped in the middle of an archive.
    let dir = copy("flipped");
    let p = dir.join("data.tar.gz");
    let mut b = fs::read(&p).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0xff;
    fs::write(&p, b).unwrap();
    assert_verify_fails(&dir, false, "data.tar.gz", "logs.tar.gz");

    // A truncated index.
    let dir = copy("truncated");
    let p = dir.join("logs.index.gz");
    let len = fs::metadata(&p).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    assert_verify_fails(&dir, false, "logs.index.gz", "data.index.gz");

    // An edited manifest.
    let dir = copy("edited");
    let mut m = manifest(&dir);
    let n = m["paths"][0]["entries"].as_u64().unwrap();
    m["paths"][0]["entries"] = json!(n + 1);
    fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec_pretty(&m).unwrap(),
    )
    .unwrap();
    assert_verify_fails(&dir, false, "manifest.json", "tar.gz");

    // A deleted archive.
    let dir = copy("deleted");
    fs::remove_file(dir.join("logs.tar.gz")).unwrap();
    assert_verify_fails(&dir, false, "logs.tar.gz", "data.tar.gz");

    // A different but valid archive with every checksum updated to match:
    // only re-reading the archive against its index catches it.
    let dir = copy("replaced");
    let mut tar = gunzip(&dir.join("data.tar.gz"));
    let at: Vec<usize> = (0..tar.len() - HELLO.len())
        .filter(|&i| tar[i..].starts_with(HELLO))
        .collect();
    assert_eq!(at.len(), 1);
    tar[at[0]] = b'H';
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    fs::write(dir.join("data.tar.gz"), &gz).unwrap();
    let mut m = manifest(&dir);
    let pe = m["paths"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|p| p["archive"] == "data.tar.gz")
        .unwrap();
    pe["sha256"] = json!(sha256_hex(&gz));
    pe["bytes"] = json!(gz.len());
    pe["tar_bytes"] = json!(tar.len());
    let mbytes = serde_json::to_vec_pretty(&m).unwrap();
    fs::write(dir.join("manifest.json"), &mbytes).unwrap();
    update_sums(
        &dir,
        &[
            ("data.tar.gz", &sha256_hex(&gz)),
            ("manifest.json", &sha256_hex(&mbytes)),
        ],
    );
    assert_sha256sum_c(&dir);
    let o = verify(&dir, false);
    assert!(
        o.status.success(),
        "the shallow check cannot see this: {}",
        text(&o.stderr)
    );
    assert_verify_fails(&dir, true, "data.tar.gz", "logs.tar.gz");
    let err = text(&verify(&dir, true).stderr);
    assert!(
        err.contains("hello.txt"),
        "does not name the changed file: {err}"
    );

    // The good one is still good: the copies shared nothing with it.
    let o = verify(&good, true);
    assert!(o.status.success(), "{}", text(&o.stderr));
}
