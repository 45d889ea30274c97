//! Hostile backup directories against the real binary and a real engine.
//!
//! The attacker can rewrite the whole directory: every case starts from a
//! genuine backup, changes one thing, and recomputes the manifest's sums and
//! SHA256SUMS (with berth's own writer where an archive changes), so only
//! the hostile part is wrong. `berth verify --deep` and `berth restore` must
//! refuse each with one message and exit 5, and the target volume must be
//! exactly as before: same content index (every file's sha256, modes,
//! owners, links), a file the backup lacks still there, and no wipe helper
//! container created by those runs.

mod support;

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use berth::archive::backup::{stream_to_files, Level};
use berth::archive::index::IndexEntry;
use berth::archive::restore::read_index_of;
use berth::docker::{body, Docker};
use berth::manifest;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::engine::Scope;
use support::images::busybox;

const BERTH: &str = env!("CARGO_BIN_EXE_berth");

// ---------------------------------------------------------------- the CLI

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    pid: u32,
    seconds: f64,
    /// Peak resident set size of berth, in KiB.
    max_rss_kib: u64,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {} in {:.2}s, peak RSS {} KiB\n--- stdout\n{}--- stderr\n{}",
            self.code, self.seconds, self.max_rss_kib, self.stdout, self.stderr
        )
    }
}

/// Run berth; its output goes through files so that `wait4` can reap it
/// and report its peak memory.
#[allow(clippy::zombie_processes)] // reaped by wait4, which std cannot do
fn berth(scratch: &Path, args: &[&str]) -> Run {
    let (out_p, err_p) = (scratch.join("stdout"), scratch.join("stderr"));
    let t0 = Instant::now();
    let child = Command::new(BERTH)
        .args(args)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_p).unwrap())
        .stderr(fs::File::create(&err_p).unwrap())
        .spawn()
        .expect("running berth");
    let pid = child.id();
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; the pid is our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid as i32, &mut status, 0, &mut usage) };
    assert_eq!(r, pid as i32, "wait4");
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    Run {
        code,
        stdout: fs::read_to_string(out_p).unwrap(),
        stderr: fs::read_to_string(err_p).unwrap(),
        pid,
        seconds: t0.elapsed().as_secs_f64(),
        max_rss_kib: usage.ru_maxrss as u64,
    }
}

// ------------------------------------------------------------ the target

/// A stopped busybox container with a named volume at /data holding a
/// small tree, and a genuine backup of it.
struct Target {
    container: String,
    /// The genuine backup directory.
    genuine: PathBuf,
    /// Scratch space for hostile copies and berth's output.
    work: PathBuf,
}

fn raw_header(name: &[u8], kind: tar::EntryType, link: &[u8], size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(if kind == tar::EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h.set_size(size);
    // Raw names: the tar crate's setters refuse `..` and absolute names,
    // which is exactly what these archives need.
    let old = h.as_old_mut();
    old.name = [0; 100];
    old.name[..name.len()].copy_from_slice(name);
    old.linkname = [0; 100];
    old.linkname[..link.len()].copy_from_slice(link);
    h.set_cksum();
    h
}

/// A tar built entry by entry with raw names.
#[derive(Default)]
struct RawTar(Vec<u8>);

impl RawTar {
    fn entry(mut self, name: &str, kind: tar::EntryType, link: &str, data: &[u8]) -> Self {
        let h = raw_header(name.as_bytes(), kind, link.as_bytes(), data.len() as u64);
        self.0.extend_from_slice(h.as_bytes());
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len().div_ceil(512) * 512, 0);
        self
    }
    fn dir(self, name: &str) -> Self {
        self.entry(name, tar::EntryType::Directory, "", b"")
    }
    fn file(self, name: &str, data: &[u8]) -> Self {
        self.entry(name, tar::EntryType::Regular, "", data)
    }
    fn symlink(self, name: &str, target: &str) -> Self {
        self.entry(name, tar::EntryType::Symlink, target, b"")
    }
    fn hardlink(self, name: &str, target: &str) -> Self {
        self.entry(name, tar::EntryType::Link, target, b"")
    }
    fn finish(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0; 1024]);
        self.0
    }
}

/// What the volume holds: an absolute symlink out of the volume and a
/// relative one up are ordinary data and must back up and restore.
fn genuine_tree() -> Vec<u8> {
    RawTar::default()
        .dir("data/")
        .file("data/app.db", b"the application's data\n")
        .dir("data/sub/")
        .file("data/sub/notes.txt", b"notes\n")
        .symlink("data/passwd", "/etc/passwd")
        .symlink("data/up", "../etc")
        .hardlink("data/app.db.link", "data/app.db")
        .finish()
}

async fn target(s: &Scope) -> Target {
    let d = &s.docker;
    let image = busybox(d).await;
    let vol = s.name("vol");
    s.track_volume(&vol);
    d.volume_create(&json!({ "Name": vol })).await.unwrap();
    let container = s
        .create(
            "app",
            json!({
                "Image": image,
                "Cmd": ["true"],
                "HostConfig": {"Mounts": [{"Type": "volume", "Source": vol, "Target": "/data"}]},
            }),
        )
        .await;
    d.archive_put(&container, "/", body::full(genuine_tree()))
        .await
        .unwrap();
    let work = s.dir("work");
    let r = berth(
        &work,
        &[
            "backup",
            &container,
            "--out",
            work.join("out").to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "berth backup: {r}");
    let genuine = PathBuf::from(r.stdout.lines().last().unwrap().trim());
    // A file the backup lacks: an exact restore (or a wipe) would remove it.
    d.archive_put(
        &container,
        "/data",
        body::full(
            RawTar::default()
                .file("after-backup.txt", b"newer\n")
                .finish(),
        ),
    )
    .await
    .unwrap();
    Target {
        container,
        genuine,
        work,
    }
}

async fn content(d: &Docker, container: &str) -> Vec<IndexEntry> {
    read_index_of(d, container, "/data", &[]).await.unwrap()
}

/// Names of wipe helpers created since `since` (unix seconds).
fn wipe_helpers_since(since: i64) -> Vec<String> {
    let until = berth::clock::now_unix() + 1;
    let out = Command::new("docker")
        .args([
            "events",
            "--since",
            &since.to_string(),
            "--until",
            &until.to_string(),
            "--filter",
            "label=berth.helper=wipe",
            "--filter",
            "event=create",
            "--format",
            "{{.Actor.Attributes.name}}",
        ])
        .output()
        .expect("docker events");
    assert!(out.status.success(), "docker events failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

// ------------------------------------------------- hostile directories

fn sha_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// A copy of the genuine backup under `work/name`; `tar`: replace the
/// archive of the one path (written by berth's own writer, so its index
/// and sums are consistent); `edit`: then change the manifest. The sums of
/// the manifest and SHA256SUMS are recomputed over whatever regular files
/// the directory then holds.
fn hostile(
    t: &Target,
    name: &str,
    tar: Option<&[u8]>,
    edit: impl FnOnce(&mut Value, &Path),
) -> PathBuf {
    let dir = t.work.join(name);
    fs::create_dir_all(&dir).unwrap();
    for f in fs::read_dir(&t.genuine).unwrap() {
        let f = f.unwrap();
        fs::copy(f.path(), dir.join(f.file_name())).unwrap();
    }
    let mut m: Value =
        serde_json::from_slice(&fs::read(dir.join(manifest::MANIFEST)).unwrap()).unwrap();
    if let Some(tar) = tar {
        let p = &mut m["paths"][0];
        for k in ["archive", "index"] {
            fs::remove_file(dir.join(p[k].as_str().unwrap())).unwrap();
        }
        let e = stream_to_files(tar, &dir, "data", &[], Level::Default.method(), &[])
            .expect("berth's writer takes it");
        let mut fresh = serde_json::to_value(&e).unwrap();
        for k in ["path", "mount", "excluded"] {
            fresh[k] = p[k].take();
        }
        *p = fresh;
    }
    edit(&mut m, &dir);
    reseal(&dir, &m);
    dir
}

/// Write the manifest, and SHA256SUMS over every regular file beside it.
fn reseal(dir: &Path, m: &Value) {
    fs::write(
        dir.join(manifest::MANIFEST),
        serde_json::to_vec_pretty(m).unwrap(),
    )
    .unwrap();
    let mut sums = vec![];
    for f in fs::read_dir(dir).unwrap() {
        let f = f.unwrap();
        let name = f.file_name().into_string().unwrap();
        if name != manifest::SUMS && f.file_type().unwrap().is_file() {
            sums.push((name, sha_hex(&fs::read(f.path()).unwrap())));
        }
    }
    sums.sort();
    fs::write(dir.join(manifest::SUMS), manifest::sums_text(&sums)).unwrap();
}

/// Set the sums of a file the manifest names to the file's own.
fn resum_archive(m: &mut Value, dir: &Path) {
    let p = &mut m["paths"][0];
    let bytes = fs::read(dir.join(p["archive"].as_str().unwrap())).unwrap();
    p["sha256"] = json!(sha_hex(&bytes));
    p["bytes"] = json!(bytes.len());
}

/// Refused by both commands with exit 5 and one line naming `why`.
fn assert_refused(t: &Target, dir: &Path, why: &str) -> Vec<u32> {
    let d = dir.to_str().unwrap();
    let mut pids = vec![];
    for args in [vec!["verify", d, "--deep"], vec!["restore", d]] {
        let r = berth(&t.work, &args);
        assert_eq!(r.code, 5, "berth {args:?} must refuse ({why}): {r}");
        assert!(
            r.stderr.contains(why),
            "berth {args:?}: wanted {why:?}: {r}"
        );
        assert_eq!(r.stderr.lines().count(), 1, "one message: {r}");
        eprintln!("  {}", r.stderr.trim_end());
        assert!(r.stdout.is_empty(), "{r}");
        pids.push(r.pid);
    }
    pids
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_backups_are_refused_before_anything_is_written() {
    let s = Scope::new("hostile").await;
    let d = &s.docker;
    let t = target(&s).await;
    let before = content(d, &t.container).await;
    assert!(
        before.iter().any(|e| e.path == "data/after-backup.txt"),
        "the marker file is there"
    );
    let since = berth::clock::now_unix() - 1;
    let outside = t.work.join("outside");
    fs::create_dir_all(&outside).unwrap();

    let mut cases: Vec<(&str, PathBuf, &str)> = vec![];
    for (case, bad) in [
        ("archive-up", "../evil.tar.gz"),
        ("archive-abs", "/etc/passwd"),
        ("archive-sub", "sub/data.tar.gz"),
    ] {
        let dir = hostile(&t, case, None, |m, _| m["paths"][0]["archive"] = json!(bad));
        cases.push((case, dir, "points outside the backup directory"));
    }
    let dir = hostile(&t, "index-up", None, |m, _| {
        m["paths"][0]["index"] = json!("../../x.index")
    });
    cases.push(("index-up", dir, "points outside the backup directory"));
    // The archive a symlink to a file outside, with the right sum listed.
    let dir = hostile(&t, "archive-symlink", None, |_, _| {});
    let archive = dir.join("data.tar.gz");
    fs::rename(&archive, outside.join("data.tar.gz")).unwrap();
    std::os::unix::fs::symlink(outside.join("data.tar.gz"), &archive).unwrap();
    // SHA256SUMS was sealed over the regular file: the sum is right.
    cases.push(("archive-symlink", dir, "data.tar.gz: not a regular file"));

    // SHA256SUMS and manifest.json symlinks to genuine copies outside.
    for (case, file, why) in [
        (
            "sums-symlink",
            manifest::SUMS,
            "opening SHA256SUMS: is a symlink",
        ),
        (
            "manifest-symlink",
            manifest::MANIFEST,
            "manifest.json: not a regular file",
        ),
    ] {
        let dir = hostile(&t, case, None, |_, _| {});
        let away = outside.join(format!("{case}-{file}"));
        fs::rename(dir.join(file), &away).unwrap();
        std::os::unix::fs::symlink(&away, dir.join(file)).unwrap();
        cases.push((case, dir, why));
    }

    let tars: [(&str, Vec<u8>, &str); 6] = [
        (
            "entry-dotdot",
            RawTar::default()
                .dir("data/")
                .file("data/../../etc/berth-evil", b"x\n")
                .finish(),
            "is not inside the archive's root",
        ),
        (
            "entry-absolute",
            RawTar::default()
                .dir("data/")
                .file("/etc/berth-evil", b"x\n")
                .finish(),
            "is not inside the archive's root",
        ),
        (
            "entry-other-root",
            RawTar::default()
                .dir("data/")
                .file("etc/berth-evil", b"x\n")
                .finish(),
            "is not inside the archive's root",
        ),
        (
            "through-symlink",
            RawTar::default()
                .dir("data/")
                .symlink("data/l", "/")
                .dir("data/l/etc/")
                .file("data/l/etc/berth-evil", b"x\n")
                .finish(),
            "lies below the symlink",
        ),
        (
            "hardlink-outside",
            RawTar::default()
                .dir("data/")
                .hardlink("data/shadow", "/etc/shadow")
                .finish(),
            "is not inside the archive's root",
        ),
        (
            "hardlink-later",
            RawTar::default()
                .dir("data/")
                .hardlink("data/h", "data/f")
                .file("data/f", b"x\n")
                .finish(),
            "not an earlier file of the archive",
        ),
    ];
    for (case, tar, why) in &tars {
        cases.push((case, hostile(&t, case, Some(tar), |_, _| {}), why));
    }
    let dir = hostile(&t, "schema-6", None, |m, _| m["schema"] = json!(6));
    cases.push((
        "schema-6",
        dir,
        "backup format 6 is newer than this berth understands (5); use a newer berth",
    ));
    let dir = hostile(&t, "content-hash-md5", None, |m, _| {
        m["paths"][0]["content_hash"] = json!("md5")
    });
    cases.push(("content-hash-md5", dir, "not a berth manifest"));
    let dir = hostile(&t, "path-dotdot", None, |m, _| {
        m["paths"][0]["path"] = json!("/data/../etc")
    });
    cases.push(("path-dotdot", dir, "is not a clean absolute path"));

    let mut pids = vec![];
    for (case, dir, why) in &cases {
        eprintln!("case {case}");
        pids.extend(assert_refused(&t, dir, why));
        assert_eq!(
            content(d, &t.container).await,
            before,
            "{case}: the volume changed"
        );
    }
    assert_eq!(pids.len(), cases.len() * 2);
    let helpers = wipe_helpers_since(since);
    for pid in &pids {
        let prefix = format!("berth-wipe-{pid}-");
        assert!(
            !helpers.iter().any(|h| h.starts_with(&prefix)),
            "a refused restore (pid {pid}) ran a wipe helper: {helpers:?}"
        );
    }

    // The genuine backup restores, absolute and `..` symlinks included:
    // the checks above can fail, and do not refuse ordinary data.
    let r = berth(&t.work, &["restore", t.genuine.to_str().unwrap()]);
    assert_eq!(r.code, 0, "genuine restore: {r}");
    let after = content(d, &t.container).await;
    assert!(!after.iter().any(|e| e.path == "data/after-backup.txt"));
    let link = |p: &str| {
        after
            .iter()
            .find(|e| e.path == p)
            .and_then(|e| e.link.clone())
    };
    assert_eq!(link("data/passwd").as_deref(), Some("/etc/passwd"));
    assert_eq!(link("data/up").as_deref(), Some("../etc"));
    let prefix = format!("berth-wipe-{}-", r.pid);
    assert!(
        wipe_helpers_since(since)
            .iter()
            .any(|h| h.starts_with(&prefix)),
        "the genuine restore's wipe helper shows in the events (the check above can see one)"
    );
}

/// A gzip bomb: concatenated members of zeros that inflate to 32 GiB, in
/// a directory whose manifest declares the genuine few-KiB tar. Both
/// commands must stop once the output passes the declared size: fast, in
/// little memory, and without sending the engine anything.
#[tokio::test(flavor = "multi_thread")]
async fn a_gzip_bomb_is_stopped_at_the_declared_size() {
    let s = Scope::new("bomb").await;
    let d = &s.docker;
    let t = target(&s).await;
    let before = content(d, &t.container).await;
    let since = berth::clock::now_unix() - 1;

    const MEMBER: usize = 64 << 20;
    const MEMBERS: usize = 512; // 32 GiB
    let mut head = tar::Header::new_gnu();
    head.set_path("data/bomb").unwrap();
    head.set_size((MEMBER * MEMBERS) as u64);
    head.set_mode(0o644);
    head.set_cksum();
    let gz = |b: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(vec![], flate2::Compression::best());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    };
    let zeros = gz(&vec![0u8; MEMBER]);
    let dir = hostile(&t, "bomb", None, |m, dir| {
        let path = dir.join(m["paths"][0]["archive"].as_str().unwrap());
        let mut f = fs::File::create(&path).unwrap();
        f.write_all(&gz(RawTar::default().dir("data/").0.as_slice()))
            .unwrap();
        f.write_all(&gz(head.as_bytes())).unwrap();
        for _ in 0..MEMBERS {
            f.write_all(&zeros).unwrap();
        }
        drop(f);
        resum_archive(m, dir);
    });
    let bytes = fs::metadata(dir.join("data.tar.gz")).unwrap().len();
    eprintln!("bomb: {bytes} bytes of gzip inflating to 32 GiB");
    assert!(bytes < 64 << 20);
    // Sanity: it really is a valid gzip stream that inflates past 1 GiB.
    let mut inflated =
        flate2::read::MultiGzDecoder::new(fs::File::open(dir.join("data.tar.gz")).unwrap())
            .take(1 << 30);
    assert_eq!(
        std::io::copy(&mut inflated, &mut std::io::sink()).unwrap(),
        1 << 30
    );

    let d_ = dir.to_str().unwrap();
    let mut pids = vec![];
    for args in [vec!["verify", d_, "--deep"], vec!["restore", d_]] {
        let r = berth(&t.work, &args);
        eprintln!(
            "berth {args:?}: {:.2}s, peak RSS {} KiB",
            r.seconds, r.max_rss_kib
        );
        assert_eq!(r.code, 5, "{r}");
        assert!(r.stderr.contains("decompresses to more than"), "{r}");
        assert!(r.seconds < 5.0, "not stopped at once: {r}");
        assert!(r.max_rss_kib < 96 * 1024, "memory not bounded: {r}");
        pids.push(r.pid);
    }
    assert_eq!(content(d, &t.container).await, before, "the volume changed");
    let helpers = wipe_helpers_since(since);
    for pid in pids {
        let prefix = format!("berth-wipe-{pid}-");
        assert!(
            !helpers.iter().any(|h| h.starts_with(&prefix)),
            "{helpers:?}"
        );
    }
}
