//! The backup files as other tools see them, against the real engine: a
//! fresh archive is ONE gzip member (Python's `tarfile` in stream mode,
//! `gzip -t`, `tar tzf` read it), the content index is gzipped (`zcat`
//! reads it), backups in the older format (concatenated members, a plain
//! index) still verify and restore, and 200,000 small files give a small
//! index that verifies deeply and restores exactly.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use berth::docker::body;
use flate2::read::MultiGzDecoder;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::engine::Scope;
use support::images::busybox;
use support::tree::noise;

const BERTH: &str = env!("CARGO_BIN_EXE_berth");
const MTIME: u64 = 1_600_000_000;

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

#[track_caller]
fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn berth(args: &[&str]) -> Output {
    run(Command::new(BERTH).args(args))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn sha256_hex(b: &[u8]) -> String {
    hex(&Sha256::digest(b))
}

/// `berth backup C --out OUT`: the backup directory (the last line).
fn backup(c: &str, out: &Path) -> (PathBuf, String) {
    let stdout = ok(
        &berth(&["backup", c, "--out", out.to_str().unwrap()]),
        "berth backup",
    );
    let dir = PathBuf::from(stdout.lines().last().unwrap().trim());
    assert!(dir.join("manifest.json").is_file(), "{stdout}");
    (dir, stdout)
}

fn manifest(dir: &Path) -> Value {
    serde_json::from_slice(&fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

/// The number of gzip members in `z` (each read with a single-member
/// decoder).
fn members(z: &[u8]) -> usize {
    let mut rest = z;
    let mut n = 0;
    while !rest.is_empty() {
        let mut d = flate2::bufread::GzDecoder::new(rest);
        std::io::copy(&mut d, &mut std::io::sink()).unwrap();
        rest = d.into_inner();
        n += 1;
    }
    n
}

fn gunzip(z: &[u8]) -> Vec<u8> {
    let mut v = vec![];
    MultiGzDecoder::new(z).read_to_end(&mut v).unwrap();
    v
}

/// Tar name to (type, mode, uid, gid, mtime, link, sha256 of the content).
type Tree = BTreeMap<Vec<u8>, (u8, u32, u64, u64, u64, Option<Vec<u8>>, String)>;

fn parse_tar(r: impl Read) -> Tree {
    let mut ar = tar::Archive::new(r);
    let mut tree = Tree::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let mut path = e.path_bytes().into_owned();
        while path.len() > 1 && path.last() == Some(&b'/') {
            path.pop();
        }
        let h = e.header().clone();
        let link = e.link_name_bytes().map(|l| l.into_owned());
        let mut content = vec![];
        e.read_to_end(&mut content).unwrap();
        let v = (
            h.entry_type().as_byte(),
            h.mode().unwrap() & 0o7777,
            h.uid().unwrap(),
            h.gid().unwrap(),
            h.mtime().unwrap(),
            link,
            sha256_hex(&content),
        );
        assert!(tree.insert(path, v).is_none(), "a name twice");
    }
    tree
}

/// `docker cp C:/data -`, parsed as it streams.
fn snapshot(c: &str) -> Tree {
    let mut child = Command::new("docker")
        .args(["cp", &format!("{c}:/data"), "-"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let tree = parse_tar(child.stdout.take().unwrap());
    assert!(child.wait().unwrap().success(), "docker cp {c}:/data -");
    tree
}

#[track_caller]
fn assert_same(want: &Tree, got: &Tree, what: &str) {
    let mut diffs = vec![];
    for (p, w) in want {
        match got.get(p) {
            None => diffs.push(format!("{}: missing", p.escape_ascii())),
            Some(g) if g != w => diffs.push(format!("{}: {w:?} != {g:?}", p.escape_ascii())),
            _ => {}
        }
    }
    for p in got.keys().filter(|p| !want.contains_key(*p)) {
        diffs.push(format!("{}: not expected", p.escape_ascii()));
    }
    assert!(
        diffs.is_empty(),
        "{what}: {} differences, first: {:?}",
        diffs.len(),
        &diffs[..diffs.len().min(10)]
    );
}

/// A stopped busybox container with a fresh volume at /data filled from
/// `tar` (one PUT through the archive API).
async fn app(s: &Scope, tar: Vec<u8>) -> String {
    let d = &s.docker;
    let img = busybox(d).await;
    let vol = s.name("vol");
    s.track_volume(&vol);
    d.volume_create(&json!({ "Name": vol })).await.unwrap();
    let c = s
        .create(
            "app",
            json!({
                "Image": img,
                "Cmd": ["true"],
                "HostConfig": {"Mounts": [{"Type": "volume", "Source": vol, "Target": "/data"}]},
            }),
        )
        .await;
    d.archive_put(&c, "/", body::full(tar)).await.unwrap();
    c
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(1000);
    h.set_gid(1000);
    h.set_mtime(MTIME);
    h.set_size(size);
    h
}

fn add_dir(b: &mut tar::Builder<Vec<u8>>, p: &str) {
    let mut h = header(tar::EntryType::Directory, 0o755, 0);
    b.append_data(&mut h, p, std::io::empty()).unwrap();
}

fn add_file(b: &mut tar::Builder<Vec<u8>>, p: &str, data: &[u8]) {
    let mut h = header(tar::EntryType::Regular, 0o644, data.len() as u64);
    b.append_data(&mut h, p, data).unwrap();
}

/// Several MiB of both kinds (stored and deflated runs, many chunks),
/// small files, a symlink.
fn mixed_tree() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    add_dir(&mut b, "data");
    add_file(&mut b, "data/random.bin", &noise(3 << 20, 7));
    let text: Vec<u8> = (0..60_000)
        .flat_map(|i| {
            format!(
                "2026-12-03T07:{:02}:00Z INFO replication {i} done\n",
                i % 60
            )
            .into_bytes()
        })
        .collect();
    add_file(&mut b, "data/log.txt", &text);
    add_dir(&mut b, "data/small");
    for i in 0..300 {
        add_file(
            &mut b,
            &format!("data/small/f{i}"),
            format!("value {i}\n").as_bytes(),
        );
    }
    let mut h = header(tar::EntryType::Symlink, 0o777, 0);
    b.append_link(&mut h, "data/link", "log.txt").unwrap();
    b.into_inner().unwrap()
}

/// Python's tarfile reading `archive` in stream mode: the names it lists.
fn python_stream_names(archive: &Path) -> Vec<String> {
    let script = "import sys, tarfile\n\
        t = tarfile.open(fileobj=sys.stdin.buffer, mode='r|gz')\n\
        for m in t:\n    print(m.name)\n";
    let out = run(Command::new("python3")
        .args(["-c", script])
        .stdin(fs::File::open(archive).unwrap()));
    ok(&out, "python3 tarfile r|gz")
        .lines()
        .map(String::from)
        .collect()
}

/// The manifest's and SHA256SUMS's sums made to match the files again (as
/// anyone who can write the directory can do).
fn reseal(dir: &Path) {
    let mut m = manifest(dir);
    let p = &mut m["paths"][0];
    let (a, i) = (
        p["archive"].as_str().unwrap().to_owned(),
        p["index"].as_str().unwrap().to_owned(),
    );
    let z = fs::read(dir.join(&a)).unwrap();
    let idx = fs::read(dir.join(&i)).unwrap();
    p["sha256"] = json!(sha256_hex(&z));
    p["bytes"] = json!(z.len());
    p["index_sha256"] = json!(sha256_hex(&idx));
    let mtext = serde_json::to_vec_pretty(&m).unwrap();
    fs::write(dir.join("manifest.json"), &mtext).unwrap();
    let sums = format!(
        "{}  {a}\n{}  {i}\n{}  manifest.json\n",
        sha256_hex(&z),
        sha256_hex(&idx),
        sha256_hex(&mtext)
    );
    fs::write(dir.join("SHA256SUMS"), sums).unwrap();
}

/// Each line of a BLAKE3 index with the SHA-256 of the file's content
/// instead, as berths before schema 4 wrote it.
fn sha256_index(plain: &[u8], tar: &[u8]) -> Vec<u8> {
    let mut sums = BTreeMap::new();
    let mut a = tar::Archive::new(tar);
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let path = String::from_utf8(e.path_bytes().to_vec()).unwrap();
        let mut content = vec![];
        e.read_to_end(&mut content).unwrap();
        sums.insert(path.trim_end_matches('/').to_owned(), sha256_hex(&content));
    }
    let mut out = vec![];
    for line in String::from_utf8(plain.to_vec()).unwrap().lines() {
        let mut v: Value = serde_json::from_str(line).unwrap();
        let o = v.as_object_mut().unwrap();
        if o.remove("blake3").is_some() {
            let sum = &sums[o["path"].as_str().unwrap()];
            o.insert("sha256".into(), json!(sum));
        }
        out.extend(serde_json::to_vec(&v).unwrap());
        out.push(b'\n');
    }
    out
}

/// The backup rewritten as an older berth wrote it: schema 1, the archive
/// as one gzip member per MiB of tar, the tar's sha256 in the manifest, the
/// index as plain text named `<slug>.index` with each file's SHA-256, no
/// `index_bytes`, no `content_hash`.
fn to_old_format(dir: &Path) {
    let mut m = manifest(dir);
    m["schema"] = json!(1);
    let p = &mut m["paths"][0];
    assert_eq!(p["content_hash"], "blake3");
    p.as_object_mut().unwrap().remove("content_hash");
    let archive = dir.join(p["archive"].as_str().unwrap());
    let tar = gunzip(&fs::read(&archive).unwrap());
    p["tar_sha256"] = json!(sha256_hex(&tar));
    let mut z = vec![];
    for chunk in tar.chunks(1 << 20) {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(2));
        e.write_all(chunk).unwrap();
        z.extend(e.finish().unwrap());
    }
    assert!(members(&z) >= 5, "{} members", members(&z));
    fs::write(&archive, &z).unwrap();
    let index_gz = dir.join(p["index"].as_str().unwrap());
    let plain = sha256_index(&gunzip(&fs::read(&index_gz).unwrap()), &tar);
    assert!(!plain.is_empty());
    fs::remove_file(&index_gz).unwrap();
    let index = p["archive"].as_str().unwrap().replace(".tar.gz", ".index");
    fs::write(dir.join(&index), &plain).unwrap();
    p["index"] = json!(index);
    p.as_object_mut().unwrap().remove("index_bytes");
    fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec_pretty(&m).unwrap(),
    )
    .unwrap();
    reseal(dir);
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn standard_tools_read_a_fresh_backup_and_old_backups_still_restore() {
    let s = Scope::new("format-tools").await;
    let c = app(&s, mixed_tree()).await;
    let before = snapshot(&c);
    let (dir, stdout) = backup(&c, &s.dir("out"));
    let m = manifest(&dir);
    let p = &m["paths"][0];
    assert_eq!(p["archive"], "data.tar.gz");
    assert_eq!(p["index"], "data.index.gz");
    let archive = dir.join("data.tar.gz");
    let index = dir.join("data.index.gz");
    let entries = p["entries"].as_u64().unwrap() as usize;
    assert_eq!(entries, before.len());

    // One member: Python's stream mode lists every entry; gzip and tar agree.
    let z = fs::read(&archive).unwrap();
    assert_eq!(members(&z), 1);
    let names = python_stream_names(&archive);
    assert_eq!(names.len(), entries, "{names:?}");
    assert!(names.contains(&"data/random.bin".to_string()), "{names:?}");
    ok(
        &run(Command::new("gzip").arg("-t").arg(&archive)),
        "gzip -t",
    );
    let listed = ok(
        &run(Command::new("tar").arg("tzf").arg(&archive)),
        "tar tzf",
    );
    assert_eq!(listed.lines().count(), entries, "{listed}");

    // The index is gzip (zcat reads it), its size is reported.
    let iz = fs::read(&index).unwrap();
    assert_eq!(&iz[..2], &[0x1f, 0x8b]);
    assert_eq!(members(&iz), 1);
    let text = ok(&run(Command::new("zcat").arg(&index)), "zcat");
    assert_eq!(text.lines().count(), entries);
    assert!(text.contains(r#""path":"data/random.bin""#), "{text}");
    // Schema 4: each file's content under BLAKE3, none under SHA-256.
    assert_eq!(
        (m["schema"].as_u64(), p["content_hash"].as_str()),
        (Some(4), Some("blake3"))
    );
    assert!(
        text.contains(r#""blake3":""#) && !text.contains(r#""sha256""#),
        "{text}"
    );
    assert_eq!(p["index_bytes"].as_u64(), Some(iz.len() as u64));
    assert!(stdout.contains("index"), "{stdout}");
    ok(
        &berth(&["verify", dir.to_str().unwrap(), "--deep"]),
        "verify --deep",
    );

    // The same backup in the older format: verifies deeply and restores.
    let old = s.dir("old").join("backup");
    copy_dir(&dir, &old);
    to_old_format(&old);
    assert!(old.join("data.index").is_file() && !old.join("data.index.gz").exists());
    ok(
        &berth(&["verify", old.to_str().unwrap(), "--deep"]),
        "verify --deep (old format)",
    );
    // Its tar_sha256 is still checked; without one it is no schema 1.
    for (case, value, why) in [
        (
            "wrong-tar-sha",
            json!("0".repeat(64)),
            "the tar inside differs",
        ),
        ("no-tar-sha", Value::Null, "without tar_sha256"),
    ] {
        let bad = s.dir(case).join("backup");
        copy_dir(&old, &bad);
        let mut m = manifest(&bad);
        let p = m["paths"][0].as_object_mut().unwrap();
        match value {
            Value::Null => p.remove("tar_sha256"),
            v => p.insert("tar_sha256".into(), v),
        };
        fs::write(
            bad.join("manifest.json"),
            serde_json::to_vec_pretty(&m).unwrap(),
        )
        .unwrap();
        reseal(&bad);
        let out = berth(&["verify", bad.to_str().unwrap(), "--deep"]);
        assert_eq!(out.status.code(), Some(5), "{case}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(why),
            "{case}: {out:?}"
        );
    }
    // Change the volume, then restore the old-format backup over it.
    let mut b = tar::Builder::new(Vec::new());
    add_file(&mut b, "data/log.txt", b"overwritten\n");
    add_file(&mut b, "data/added.txt", b"not in the backup\n");
    s.docker
        .archive_put(&c, "/", body::full(b.into_inner().unwrap()))
        .await
        .unwrap();
    assert_ne!(snapshot(&c), before);
    ok(
        &berth(&["restore", old.to_str().unwrap()]),
        "restore (old format)",
    );
    assert_same(
        &before,
        &snapshot(&c),
        "after restoring the old-format backup",
    );

    // A truncated compressed index (sums made to match) is refused by the
    // deep check, which names the file.
    let bad = s.dir("bad").join("backup");
    copy_dir(&dir, &bad);
    fs::write(bad.join("data.index.gz"), &iz[..iz.len() / 2]).unwrap();
    reseal(&bad);
    ok(
        &berth(&["verify", bad.to_str().unwrap()]),
        "verify (fast) of a resealed backup",
    );
    let out = berth(&["verify", bad.to_str().unwrap(), "--deep"]);
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("data.index.gz"),
        "{out:?}"
    );
}

/// 200,000 small files (a directory server's worth): `ENTRIES=N` changes
/// the count.
#[tokio::test(flavor = "multi_thread")]
async fn index_of_200000_small_files_is_compressed_verifies_and_restores() {
    let n: usize = std::env::var("ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let s = Scope::new("format-200k").await;
    let mut b = tar::Builder::new(Vec::with_capacity(n * 1100));
    add_dir(&mut b, "data");
    for i in 0..n {
        if i % 1000 == 0 {
            add_dir(&mut b, &format!("data/ou{}", i / 1000));
        }
        let entry = format!(
            "dn: uid=user{i},ou=people,dc=example,dc=com\nuid: user{i}\nuidNumber: {}\n",
            10_000 + i
        );
        add_file(
            &mut b,
            &format!("data/ou{}/user{i}.ldif", i / 1000),
            entry.as_bytes(),
        );
    }
    let c = app(&s, b.into_inner().unwrap()).await;
    let before = snapshot(&c);
    assert_eq!(before.len(), 1 + n + n.div_ceil(1000));

    let (dir, stdout) = backup(&c, &s.dir("out"));
    let m = manifest(&dir);
    let p = &m["paths"][0];
    let index = dir.join(p["index"].as_str().unwrap());
    let iz = fs::read(&index).unwrap();
    let plain = gunzip(&iz);
    let archive_bytes = p["bytes"].as_u64().unwrap();
    eprintln!(
        "{n} files: archive {archive_bytes} bytes, index {} bytes ({} plain)\n{stdout}",
        iz.len(),
        plain.len()
    );
    assert_eq!(p["entries"].as_u64(), Some(before.len() as u64));
    assert_eq!(plain.iter().filter(|&&b| b == b'\n').count(), before.len());
    // Compressed about as well as `gzip -6` does (each line's sha256 is 32
    // random bytes: ~4.5x is what any gzip gets on distinct files).
    let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    g.write_all(&plain).unwrap();
    let gzip6 = g.finish().unwrap().len();
    eprintln!("gzip -6 of the same index: {gzip6} bytes");
    assert!(
        iz.len() * 3 < plain.len(),
        "{} of {}",
        iz.len(),
        plain.len()
    );
    assert!(iz.len() * 4 < gzip6 * 5, "{} vs gzip -6 {gzip6}", iz.len());

    ok(
        &berth(&["verify", dir.to_str().unwrap(), "--deep"]),
        "verify --deep",
    );
    // Empty the volume's contents a little, then restore exactly.
    let mut b = tar::Builder::new(Vec::new());
    add_file(&mut b, "data/ou0/user0.ldif", b"changed\n");
    add_file(&mut b, "data/stray.txt", b"stray\n");
    s.docker
        .archive_put(&c, "/", body::full(b.into_inner().unwrap()))
        .await
        .unwrap();
    ok(&berth(&["restore", dir.to_str().unwrap()]), "berth restore");
    assert_same(&before, &snapshot(&c), "after the restore");
}
