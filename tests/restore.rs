//! `berth restore` against a real engine: exact restores of a tree full of
//! hard cases, into stopped, running, other and shell-less containers, with
//! a nested bind mount, `--merge`, bad input, `--json`. Every check reads
//! the container back with `docker cp` and compares the tars entry by entry.

mod support;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use berth::docker::{body, Docker};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::engine::Scope;
use support::fixtures;
use support::images::busybox;
use support::tree::{
    attr, hard_tree, long_over_100, long_over_255, TreeTar, CAP_NET_BIND, MUTATE, T,
};

const BERTH: &str = env!("CARGO_BIN_EXE_berth");
/// A busybox command that idles and exits at once on SIGTERM.
const IDLE: &str = "trap 'exit 0' TERM; while :; do sleep 0.1; done";

// ---------------------------------------------------------------- the CLI

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn berth(args: &[&str]) -> Run {
    let out = Command::new(BERTH)
        .args(args)
        .output()
        .expect("running berth");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `berth backup C --out DIR [extra]`; the backup directory.
fn backup(container: &str, out: &Path, extra: &[&str]) -> PathBuf {
    let out = out.to_str().unwrap();
    let mut args = vec!["backup", container, "--out", out];
    args.extend_from_slice(extra);
    let r = berth(&args);
    assert_eq!(r.code, 0, "berth backup: {r}");
    let dir = PathBuf::from(r.stdout.lines().last().expect("a last line").trim());
    assert!(dir.join("manifest.json").is_file(), "{r}");
    dir
}

fn restore(dir: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["restore", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    berth(&args)
}

// ------------------------------------------------- reading containers back

/// One tar entry as `docker cp` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Meta {
    kind: char,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    link: Option<Vec<u8>>,
    xattrs: BTreeMap<String, Vec<u8>>,
    sha256: Option<String>,
}

/// Tar name (no trailing `/`) to its entry.
type Tree = BTreeMap<Vec<u8>, Meta>;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn show(p: &[u8]) -> String {
    format!("{:?}", p.escape_ascii().to_string())
}

fn parse_tar(bytes: &[u8]) -> Tree {
    let mut ar = tar::Archive::new(bytes);
    let mut tree = Tree::new();
    for e in ar.entries().expect("a tar") {
        let mut e = e.expect("a tar entry");
        let mut path = e.path_bytes().into_owned();
        while path.len() > 1 && path.last() == Some(&b'/') {
            path.pop();
        }
        let h = e.header().clone();
        let mut xattrs = BTreeMap::new();
        if let Some(px) = e.pax_extensions().unwrap() {
            for r in px {
                let r = r.unwrap();
                if let Some(n) = r.key().unwrap().strip_prefix("SCHILY.xattr.") {
                    xattrs.insert(n.to_owned(), r.value_bytes().to_vec());
                }
            }
        }
        let link = e.link_name_bytes().map(|l| l.into_owned());
        let kind = h.entry_type();
        let sha256 = kind.is_file().then(|| {
            let mut buf = vec![];
            e.read_to_end(&mut buf).unwrap();
            hex(&Sha256::digest(&buf))
        });
        let meta = Meta {
            kind: kind.as_byte() as char,
            mode: h.mode().unwrap() & 0o7777,
            uid: h.uid().unwrap(),
            gid: h.gid().unwrap(),
            size: h.size().unwrap(),
            mtime: h.mtime().unwrap(),
            link,
            xattrs,
            sha256,
        };
        assert!(
            tree.insert(path.clone(), meta).is_none(),
            "{} twice in one tar",
            show(&path)
        );
    }
    tree
}

fn docker_cp(container: &str, path: &str) -> Vec<u8> {
    let out = Command::new("docker")
        .args(["cp", &format!("{container}:{path}"), "-"])
        .output()
        .expect("running docker cp");
    assert!(
        out.status.success(),
        "docker cp {container}:{path} -: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `docker cp C:/data -`, parsed.
fn snapshot(container: &str) -> Tree {
    parse_tar(&docker_cp(container, "/data"))
}

/// Every difference between two trees, one line each (empty: equal).
fn diff(want: &Tree, got: &Tree) -> Vec<String> {
    let mut out = vec![];
    for (p, w) in want {
        match got.get(p) {
            None => out.push(format!("{}: missing", show(p))),
            Some(g) if g != w => out.push(format!("{}: {w:?} != {g:?}", show(p))),
            _ => {}
        }
    }
    for p in got.keys().filter(|p| !want.contains_key(*p)) {
        out.push(format!("{}: not expected", show(p)));
    }
    out
}

#[track_caller]
fn assert_same(want: &Tree, got: &Tree, what: &str) {
    let d = diff(want, got);
    assert!(
        d.is_empty(),
        "{what}: {} differences:\n{}",
        d.len(),
        d.join("\n")
    );
}

/// The tree without `root` and what lies below it.
fn without(t: &Tree, root: &[u8]) -> Tree {
    t.iter()
        .filter(|(p, _)| {
            !(p.as_slice() == root || (p.starts_with(root) && p.get(root.len()) == Some(&b'/')))
        })
        .map(|(p, m)| (p.clone(), m.clone()))
        .collect()
}

// ------------------------------------------------------------- the engine

fn with_volume(image: &str, vol: &str, cmd: Value) -> Value {
    json!({
        "Image": image,
        "Cmd": cmd,
        "HostConfig": {"Mounts": [{"Type": "volume", "Source": vol, "Target": "/data"}]},
    })
}

/// A busybox container with a fresh volume at /data holding the hard tree;
/// running (idle) or only created.
async fn app(s: &Scope, what: &str, running: bool) -> (String, String) {
    let d = &s.docker;
    let img = busybox(d).await;
    let vol = s.volume(&format!("{what}-vol")).await;
    let cfg = with_volume(&img, &vol, json!(["sh", "-c", IDLE]));
    let c = if running {
        s.run(what, cfg).await
    } else {
        s.create(what, cfg).await
    };
    put(d, &c, hard_tree()).await;
    (c, vol)
}

async fn put(d: &Docker, c: &str, tar: Vec<u8>) {
    d.archive_put(c, "/", body::full(tar)).await.unwrap();
}

/// Run a busybox script with `vol` at /data in a one-shot container.
async fn in_volume(s: &Scope, vol: &str, script: &str) {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let d = &s.docker;
    let img = busybox(d).await;
    let what = format!("sh-{}", SEQ.fetch_add(1, Ordering::Relaxed));
    let c = s
        .create(&what, with_volume(&img, vol, json!(["sh", "-c", script])))
        .await;
    d.container_start(&c).await.unwrap();
    let code = d.container_wait(&c).await.unwrap();
    assert_eq!(code, 0, "the script in {c} failed:\n{script}");
    d.container_remove(&c, true, false).await.unwrap();
}

async fn running(d: &Docker, c: &str) -> bool {
    d.container_inspect_raw(c).await.unwrap()["State"]["Running"] == true
}

/// What the hard tree must look like once the engine holds it: proves the
/// hard cases are really there before anything is restored.
fn check_hard_cases(t: &Tree) {
    let get = |p: &[u8]| {
        t.get(p)
            .unwrap_or_else(|| panic!("{} is not in the tree", show(p)))
    };
    let root = get(b"data");
    assert_eq!(
        (root.kind, root.mode, root.uid, root.gid),
        ('5', 0o751, 1234, 5678)
    );
    assert_eq!(get(b"data/a/b").uid, 65534);
    assert_eq!(get(b"data/empty-dir").kind, '5');
    assert_eq!(get(b"data/empty-file").size, 0);
    assert_eq!(get(b"data/big.bin").size, 1 << 20);
    assert_eq!(
        get(b"data/abs-link").link.as_deref(),
        Some(&b"/etc/passwd"[..])
    );
    assert_eq!(get(b"data/rel-link").uid, 1234);
    assert_eq!(get(b"data/dangling").kind, '2');
    // One of the two names is the file, the other a hard link to it.
    let kinds = [get(b"data/hard-link").kind, get(b"data/hard-orig").kind];
    assert!(kinds.contains(&'1') && kinds.contains(&'0'), "{kinds:?}");
    assert_eq!(get(b"data/fifo").kind, '6');
    get(b"data/with space.txt");
    get(b"data/new\nline");
    get("data/caf\u{e9} \u{2615} \u{65e5}\u{672c}.txt".as_bytes());
    get(b"data/not-utf8-\xff\xfe");
    get(b"data/back\\slash \\x41");
    assert!(long_over_100().len() > 100);
    get(long_over_100().as_bytes());
    assert!(long_over_255().len() > 255);
    get(long_over_255().as_bytes());
    assert_eq!(get(b"data/setuid").mode, 0o4755);
    assert_eq!(get(b"data/setgid").mode, 0o2755);
    assert_eq!(get(b"data/sticky").mode, 0o1777);
    assert_eq!(get(b"data/setgid-dir").mode, 0o2775);
    assert_eq!(get(b"data/setgid").mtime, T + 150);
    assert_eq!(get(b"data/a").mtime, T + 10);
    assert_eq!(
        get(b"data/cap-file").xattrs.get("security.capability"),
        Some(&CAP_NET_BIND.to_vec())
    );
}

/// Restore must have changed these back: the mutation really happened.
fn check_mutated(t: &Tree, before: &Tree) {
    let d = diff(before, t);
    for p in [
        "data/a/b/c",
        "data/big.bin",
        "data/rel-link",
        "data/added.txt",
        "data/setuid",
        "data/nobody",
        "data/cap-file",
        "data/long",
        "data/fifo",
        "data/empty-dir",
    ] {
        assert!(
            d.iter().any(|l| l.starts_with(&show(p.as_bytes()))),
            "the mutation did not change {p}: {d:#?}"
        );
    }
}

// ----------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread")]
async fn exact_round_trip_of_a_hard_tree_into_a_stopped_container() {
    let s = Scope::new("restore-roundtrip").await;
    let d = &s.docker;
    let (c, vol) = app(&s, "app", true).await;
    let before = snapshot(&c);
    check_hard_cases(&before);

    let dir = backup(&c, &s.dir("out"), &["--stop"]);
    assert!(running(d, &c).await, "--stop starts the container again");
    assert_same(&before, &snapshot(&c), "a backup changes nothing");

    in_volume(&s, &vol, MUTATE).await;
    let mutated = snapshot(&c);
    check_mutated(&mutated, &before);
    d.container_stop(&c, 5).await.unwrap();

    let r = restore(&dir, &[]);
    assert_eq!(r.code, 0, "{r}");
    assert!(!r.stderr.contains("warning"), "{r}");
    assert!(!running(d, &c).await, "a stopped target stays stopped");
    let after = snapshot(&c);
    assert_same(&before, &after, "after the restore");
    assert!(!after.contains_key(&b"data/added.txt"[..]));
    assert!(!after.contains_key(&b"data/added-dir"[..]));
    // No helper container is left behind: only the target uses the volume.
    let users: Vec<String> = d
        .container_list(&json!({ "volume": [vol] }))
        .await
        .unwrap()
        .iter()
        .map(|u| u.name().to_owned())
        .collect();
    assert_eq!(users, [c.to_owned()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_into_a_running_container_warns_and_keeps_it_running() {
    let s = Scope::new("restore-running").await;
    let d = &s.docker;
    let (c, vol) = app(&s, "app", true).await;
    let before = snapshot(&c);
    let dir = backup(&c, &s.dir("out"), &[]);
    in_volume(&s, &vol, MUTATE).await;
    check_mutated(&snapshot(&c), &before);

    let r = restore(&dir, &[]);
    assert_eq!(r.code, 0, "{r}");
    assert!(
        r.stderr.contains("warning") && r.stderr.contains("running") && r.stderr.contains(&c),
        "{r}"
    );
    assert!(running(d, &c).await, "the target is still running");
    assert_same(&before, &snapshot(&c), "after the restore");
    // The application sees the restored data.
    let out = d
        .exec_run(&c, &["cat".into(), "/data/a/b/c/deep.txt".into()])
        .await
        .unwrap();
    assert_eq!((out.exit_code, out.stdout.as_slice()), (0, &b"deep\n"[..]));
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_into_another_container_with_the_same_path() {
    let s = Scope::new("restore-other").await;
    let d = &s.docker;
    let (c, _) = app(&s, "app", false).await;
    let before = snapshot(&c);
    let dir = backup(&c, &s.dir("out"), &[]);

    // Another container, its own volume at /data with other content.
    let img = busybox(d).await;
    let vol2 = s.volume("other-vol").await;
    let other = s
        .create("other", with_volume(&img, &vol2, json!(["sh", "-c", IDLE])))
        .await;
    let mut t = TreeTar::new();
    t.dir("data", attr(0o700, 7, 7, T))
        .file("data/other.txt", b"other\n", attr(0o600, 7, 7, T))
        .dir("data/a", attr(0o700, 7, 7, T))
        .file(
            "data/a/b",
            b"a file where the backup has a directory\n",
            attr(0o600, 7, 7, T),
        );
    put(d, &other, t.finish()).await;

    let r = restore(&dir, &["--container", &other]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains(&other), "{r}");
    assert_same(&before, &snapshot(&other), "the other container");
    assert_same(
        &before,
        &snapshot(&c),
        "the backed-up container is untouched",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn exact_restore_keeps_a_nested_bind_mount() {
    let s = Scope::new("restore-bind").await;
    let d = &s.docker;
    let img = busybox(d).await;
    let vol = s.volume("vol").await;
    let host = s.dir("conf");
    let secret = host.join("secret.cfg");
    std::fs::write(&secret, b"password=hunter2\n").unwrap();
    let secret_meta = std::fs::metadata(&secret).unwrap();
    let c = s
        .run(
            "app",
            json!({
                "Image": img,
                "Cmd": ["sh", "-c", IDLE],
                "HostConfig": {"Mounts": [
                    {"Type": "volume", "Source": vol, "Target": "/data"},
                    {"Type": "bind", "Source": host.to_str().unwrap(), "Target": "/data/conf"},
                ]},
            }),
        )
        .await;
    put(d, &c, hard_tree()).await;
    let before = snapshot(&c);
    assert!(before.contains_key(&b"data/conf/secret.cfg"[..]));
    let dir = backup(&c, &s.dir("out"), &[]);

    // The host file is not in the backup.
    let m: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let archive = dir.join(m["paths"][0]["archive"].as_str().unwrap());
    let mut tar = vec![];
    flate2::read::MultiGzDecoder::new(std::fs::File::open(&archive).unwrap())
        .read_to_end(&mut tar)
        .unwrap();
    let backed = parse_tar(&tar);
    assert!(
        backed.keys().all(|p| !p.starts_with(b"data/conf")),
        "the bind mount is cut out of the backup"
    );
    assert_same(&without(&before, b"data/conf"), &backed, "the backup");

    in_volume(&s, &vol, MUTATE).await;
    let r = restore(&dir, &[]);
    assert_eq!(r.code, 0, "{r}");
    assert!(running(d, &c).await);
    let after = snapshot(&c);
    assert_same(
        &without(&before, b"data/conf"),
        &without(&after, b"data/conf"),
        "the volume after the restore",
    );
    // The bind mount: host file untouched, still visible in the container.
    assert_eq!(std::fs::read(&secret).unwrap(), b"password=hunter2\n");
    let now = std::fs::metadata(&secret).unwrap();
    assert_eq!(now.modified().unwrap(), secret_meta.modified().unwrap());
    let out = d
        .exec_run(&c, &["cat".into(), "/data/conf/secret.cfg".into()])
        .await
        .unwrap();
    assert_eq!(
        (out.exit_code, out.stdout.as_slice()),
        (0, &b"password=hunter2\n"[..])
    );
    assert_eq!(
        after.get(&b"data/conf/secret.cfg"[..]),
        before.get(&b"data/conf/secret.cfg"[..])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn exact_restore_into_an_image_without_a_shell() {
    let s = Scope::new("restore-noshell").await;
    let d = &s.docker;
    let fx = fixtures::ensure(d).await;
    let image = fx.old.reference.clone();
    // The image really has no shell: a container of it cannot start sh.
    let probe = s
        .create(
            "probe",
            json!({"Image": image, "Entrypoint": ["/bin/sh"], "Cmd": ["-c", "true"]}),
        )
        .await;
    assert!(
        d.container_start(&probe).await.is_err(),
        "{image} has a shell"
    );

    let vol = s.volume("vol").await;
    let c = s
        .create(
            "app",
            json!({
                "Image": image,
                "Entrypoint": ["/bin/true"],
                "HostConfig": {"Mounts": [{"Type": "volume", "Source": vol, "Target": "/data"}]},
            }),
        )
        .await;
    put(d, &c, hard_tree()).await;
    let before = snapshot(&c);
    check_hard_cases(&before);
    let dir = backup(&c, &s.dir("out"), &[]);
    in_volume(&s, &vol, MUTATE).await;
    check_mutated(&snapshot(&c), &before);

    let r = restore(&dir, &[]);
    assert_eq!(r.code, 0, "{r}");
    assert_same(&before, &snapshot(&c), "after the restore");
}

#[tokio::test(flavor = "multi_thread")]
async fn merge_puts_backed_up_files_back_without_emptying() {
    let s = Scope::new("restore-merge").await;
    let (c, vol) = app(&s, "app", false).await;
    let before = snapshot(&c);
    let dir = backup(&c, &s.dir("out"), &[]);
    // Only changes to what the backup holds: nothing it does not know.
    in_volume(
        &s,
        &vol,
        "set -e; cd /data; echo changed > big.bin; rm a/b/c/deep.txt; chmod 0600 setuid; \
         chown 1:1 nobody; rm rel-link; ln -s elsewhere rel-link",
    )
    .await;
    assert!(!diff(&before, &snapshot(&c)).is_empty());

    let r = restore(&dir, &["--merge", "--json"]);
    assert_eq!(r.code, 0, "{r}");
    let v: Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r}"));
    assert_eq!(v["merge"], true, "{v}");
    assert_eq!(v["paths"][0]["emptied"], false, "{v}");
    assert_same(&before, &snapshot(&c), "after --merge");
}

#[tokio::test(flavor = "multi_thread")]
async fn merge_keeps_files_added_after_the_backup() {
    let s = Scope::new("restore-merge-added").await;
    let (c, vol) = app(&s, "app", false).await;
    let before = snapshot(&c);
    let dir = backup(&c, &s.dir("out"), &[]);
    in_volume(
        &s,
        &vol,
        "set -e; cd /data; echo added > added.txt; mkdir added-dir; echo x > added-dir/x; \
         echo changed > big.bin; rm a/b/c/deep.txt; chmod 0600 setuid",
    )
    .await;

    let r = restore(&dir, &["--merge"]);
    assert_eq!(r.code, 0, "{r}");
    let after = snapshot(&c);
    let added = after
        .get(&b"data/added.txt"[..])
        .expect("added.txt survives");
    assert_eq!(added.size, 6);
    assert!(after.contains_key(&b"data/added-dir/x"[..]));
    // Everything in the backup is back as it was.
    let mut back = after.clone();
    back.retain(|p, _| before.contains_key(p));
    assert_same(&before, &back, "the backed-up files after --merge");
}

#[tokio::test(flavor = "multi_thread")]
async fn corrupt_archive_is_refused_and_nothing_is_written() {
    let s = Scope::new("restore-corrupt").await;
    let (c, vol) = app(&s, "app", false).await;
    let dir = backup(&c, &s.dir("out"), &[]);
    in_volume(&s, &vol, MUTATE).await;
    let mutated = snapshot(&c);

    let m: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let archive = dir.join(m["paths"][0]["archive"].as_str().unwrap());
    let mut bytes = std::fs::read(&archive).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&archive, &bytes).unwrap();

    let r = restore(&dir, &[]);
    assert_eq!(r.code, 5, "{r}");
    let name = archive.file_name().unwrap().to_str().unwrap();
    assert!(
        r.stderr.contains(name) || r.stderr.contains("sha256") || r.stderr.contains("SHA256SUMS"),
        "the error names what is damaged: {r}"
    );
    assert_same(&mutated, &snapshot(&c), "nothing was written");
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_container_is_an_error() {
    let s = Scope::new("restore-missing").await;
    let (c, _) = app(&s, "app", false).await;
    let before = snapshot(&c);
    let dir = backup(&c, &s.dir("out"), &[]);
    let nope = s.name("no-such-container");
    let r = restore(&dir, &["--container", &nope]);
    assert_eq!(r.code, 1, "{r}");
    assert!(
        r.stderr.contains(&nope),
        "the error names the container: {r}"
    );
    assert_same(&before, &snapshot(&c), "the backed-up container");

    // The manifest's container gone: the same.
    s.docker.container_remove(&c, true, false).await.unwrap();
    let r = restore(&dir, &[]);
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stderr.contains(&c), "the error names the container: {r}");
}

#[tokio::test(flavor = "multi_thread")]
async fn target_without_the_path_is_refused() {
    let s = Scope::new("restore-nopath").await;
    let d = &s.docker;
    let (c, _) = app(&s, "app", false).await;
    let dir = backup(&c, &s.dir("out"), &[]);
    let img = busybox(d).await;
    let bare = s
        .create("bare", json!({"Image": img, "Cmd": ["sh", "-c", IDLE]}))
        .await;
    let root_before = root_tree(&bare);

    // A path the backup does not have: a usage error.
    let r = restore(&dir, &["--container", &bare, "--path", "/nope"]);
    assert_eq!(r.code, 2, "{r}");
    assert!(
        r.stderr.contains("/nope") && r.stderr.contains("/data"),
        "{r}"
    );
    // Exact: /data is not a volume of it.
    let r = restore(&dir, &["--container", &bare]);
    assert_eq!(r.code, 1, "{r}");
    assert!(
        r.stderr.contains("/data") && r.stderr.contains(&bare),
        "{r}"
    );
    // Merge: it has no /data at all.
    let r = restore(&dir, &["--container", &bare, "--merge"]);
    assert_eq!(r.code, 1, "{r}");
    assert!(
        r.stderr.contains("/data") && r.stderr.contains(&bare),
        "{r}"
    );

    assert!(d
        .archive_stat(&bare, "/data")
        .await
        .unwrap_err()
        .is_not_found());
    assert_same(&root_before, &root_tree(&bare), "the target's files");
}

/// `docker cp C:/ -`, parsed, without the mtime of `/` itself: Docker 28
/// sets it to now on every archive request (running or not), so two
/// snapshots a second apart differ there whatever berth did. Every entry
/// below `/` is still compared whole.
fn root_tree(container: &str) -> Tree {
    let mut tree = parse_tar(&docker_cp(container, "/"));
    if let Some(root) = tree.get_mut(&b"/"[..]) {
        root.mtime = 0;
    }
    tree
}

#[tokio::test(flavor = "multi_thread")]
async fn read_only_volume_is_refused() {
    let s = Scope::new("restore-ro").await;
    let d = &s.docker;
    let (c, vol) = app(&s, "app", false).await;
    let dir = backup(&c, &s.dir("out"), &[]);
    in_volume(&s, &vol, MUTATE).await;
    let mutated = snapshot(&c);

    let img = busybox(d).await;
    let ro = s
        .create(
            "ro",
            json!({
                "Image": img,
                "Cmd": ["sh", "-c", IDLE],
                "HostConfig": {"Binds": [format!("{vol}:/data:ro")]},
            }),
        )
        .await;
    for extra in [&[][..], &["--merge"][..]] {
        let mut args = vec!["--container", ro.as_str()];
        args.extend_from_slice(extra);
        let r = restore(&dir, &args);
        assert_ne!(r.code, 0, "{r}");
        assert!(r.stderr.contains("read-only"), "{r}");
        assert_same(&mutated, &snapshot(&c), "the read-only volume");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn json_report_is_one_document() {
    let s = Scope::new("restore-json").await;
    let (c, vol) = app(&s, "app", false).await;
    let before = snapshot(&c);
    let dir = backup(&c, &s.dir("out"), &[]);
    in_volume(&s, &vol, "echo added > /data/added.txt").await;

    let r = restore(&dir, &["--json"]);
    assert_eq!(r.code, 0, "{r}");
    let v: Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r}"));
    let m: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(v["container"], c.as_str(), "{v}");
    assert_eq!(v["merge"], false, "{v}");
    let paths = v["paths"].as_array().unwrap();
    assert_eq!(paths.len(), 1, "{v}");
    let p = &paths[0];
    assert_eq!(p["path"], "/data", "{v}");
    assert_eq!(p["entries"], m["paths"][0]["entries"], "{v}");
    assert_eq!(p["entries"].as_u64(), Some(before.len() as u64), "{v}");
    let archive = dir.join(m["paths"][0]["archive"].as_str().unwrap());
    assert_eq!(
        p["bytes"].as_u64(),
        Some(std::fs::metadata(&archive).unwrap().len()),
        "{v}"
    );
    assert_eq!(p["emptied"], true, "{v}");
    assert_same(&before, &snapshot(&c), "after the restore");

    // A failure under --json is one document too.
    let r = restore(&dir, &["--json", "--container", &s.name("nope")]);
    assert_eq!(r.code, 1, "{r}");
    let v: Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r}"));
    assert_eq!(v["exit_code"], 1, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains(&s.name("nope")),
        "{v}"
    );
}
