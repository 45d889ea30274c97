//! Encryption at rest against a real engine (issue 14, part 2):
//!
//! * a backup encrypted to a recipients file: `.age` files only, SHA256SUMS
//!   over them, `verify` without a key, `verify --deep` and `restore` with
//!   the identity, the restore exact by content index;
//! * a wrong identity, a truncated file and a flipped byte (checksums
//!   rewritten to match, as a hostile copy would be): exit 5, the volume
//!   and the container untouched;
//! * a failed upgrade with `--encrypt-to` rolls back with no identity given
//!   (the run's own key, 0600 in the run directory while it runs, removed
//!   after); no secret key string in any file berth wrote or any line it
//!   printed.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth::archive::backup::{stream_to_files, Level};
use berth::archive::index::{compare, IndexEntry};
use berth::archive::restore::read_index_of;
use berth::archive::seal::{new_identity_file, Keys};
use berth::archive::verify::{deep_check_all, read_stored_index};
use berth::docker::Docker;
use berth::error::Kind;
use berth::report::SILENT;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::appliance;
use support::cli::Run;
use support::engine::Scope;
use support::fixtures;
use support::images::{busybox, RootFs};

const BERTH: &str = env!("CARGO_BIN_EXE_berth");
/// What every age secret key starts with.
const SECRET_PREFIX: &str = "AGE-SECRET-KEY-";
/// The run's own key in an upgrade's run directory.
const RUN_KEY: &str = "rollback-identity";

fn berth(args: &[&str]) -> Run {
    let t = Instant::now();
    let out = Command::new(BERTH)
        .args(args)
        .env_remove("BERTH_TEST_KILL_AT")
        .output()
        .expect("running berth");
    Run::from(out, t.elapsed())
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn sha_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// An identity file and its public key.
fn key(dir: &Path, name: &str) -> (PathBuf, String) {
    let p = dir.join(name);
    let public = new_identity_file(&p).unwrap();
    (p, public)
}

/// The secret key line of an identity file.
fn secret_of(identity: &Path) -> String {
    fs::read_to_string(identity)
        .unwrap()
        .lines()
        .find(|l| l.starts_with(SECRET_PREFIX))
        .unwrap()
        .to_owned()
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// No secret key (the prefix every one has) in any file under `dirs` nor
/// in what `r` printed.
fn assert_no_secret_key(what: &str, r: &Run, dirs: &[&Path]) {
    for out in [&r.stdout, &r.stderr] {
        assert!(
            !out.contains(SECRET_PREFIX),
            "{what}: a secret key printed:\n{r}"
        );
    }
    for d in dirs {
        for p in files_under(d) {
            let b = fs::read(&p).unwrap();
            let found = b
                .windows(SECRET_PREFIX.len())
                .any(|w| w == SECRET_PREFIX.as_bytes());
            assert!(!found, "{what}: a secret key in {}", p.display());
        }
    }
}

/// A busybox container running `sleep` with a named volume at /data
/// holding a few MiB (several of age's 64 KiB chunks) and small files.
async fn app_with_data(scope: &Scope) -> String {
    let d = &scope.docker;
    let image = busybox(d).await;
    let vol = scope.name("vol");
    scope.track_volume(&vol);
    let name = scope
        .run(
            "app",
            json!({
                "Image": image,
                "Cmd": ["sh", "-c", "mkdir -p /data/sub && head -c 3000000 /dev/urandom > /data/big \
                    && for i in 1 2 3 4 5; do echo file $i > /data/sub/f$i; done && exec sleep 3600"],
                "HostConfig": {"Mounts": [{"Type": "volume", "Source": vol, "Target": "/data"}]},
            }),
        )
        .await;
    let t = Instant::now();
    while index(d, &name).await.len() < 8 {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the data never appeared"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    name
}

async fn index(d: &Docker, name: &str) -> Vec<IndexEntry> {
    read_index_of(d, name, "/data", &[]).await.unwrap()
}

/// Run a shell script in the container through the engine's exec.
async fn exec(d: &Docker, name: &str, script: &str) {
    let cmd = ["sh".to_owned(), "-c".to_owned(), script.to_owned()];
    let r = d.exec_run(name, &cmd).await.unwrap();
    assert_eq!(r.exit_code, 0, "{script}");
}

/// Copy a backup directory with `file` replaced by `content`, its
/// checksums in the manifest and SHA256SUMS rewritten to match.
fn hostile_copy(src: &Path, to: &Path, file: &str, content: &[u8]) -> PathBuf {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(src).unwrap() {
        let p = e.unwrap().path();
        fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
    fs::write(to.join(file), content).unwrap();
    let mpath = to.join("manifest.json");
    let mut m: Value = serde_json::from_slice(&fs::read(&mpath).unwrap()).unwrap();
    for p in m["paths"].as_array_mut().unwrap() {
        if p["archive"] == file {
            p["sha256"] = json!(sha_hex(content));
            p["bytes"] = json!(content.len());
        }
    }
    fs::write(&mpath, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    let sums: String = fs::read_dir(to)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap() != "SHA256SUMS")
        .map(|p| {
            let name = p.file_name().unwrap().to_str().unwrap().to_owned();
            format!("{}  {name}\n", sha_hex(&fs::read(&p).unwrap()))
        })
        .collect();
    fs::write(to.join("SHA256SUMS"), sums).unwrap();
    to.to_owned()
}

/// The data path alone (no engine): a tar streamed into sealed files, read
/// back by the deep check with the right key only.
#[test]
fn sealed_files_from_the_data_path() {
    let dir = std::env::temp_dir().join(format!("berth-enc-path-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let (identity, public) = key(&dir, "me.key");
    let (wrong, _) = key(&dir, "wrong.key");
    let big: Vec<u8> = (0..700_000u32).map(|i| (i * 31 % 253) as u8).collect();
    let mut fs_tar = RootFs::new();
    fs_tar
        .dir("data", 0o755)
        .file("data/big", &big, 0o644)
        .file("data/small", b"hi\n", 0o600);
    let tar = fs_tar.finish();
    let mut e = stream_to_files(
        tar.as_slice(),
        &dir,
        "data",
        &[],
        Level::Fast.method(),
        &[public],
    )
    .unwrap();
    e.path = "/data".into();
    assert_eq!(
        (e.archive.as_str(), e.index.as_str()),
        ("data.tar.gz.age", "data.index.gz.age")
    );
    assert_eq!(
        (e.tar_sha256.clone(), e.tar_bytes),
        (None, tar.len() as u64)
    );
    let sealed = fs::read(dir.join(&e.archive)).unwrap();
    assert_eq!(
        (sha_hex(&sealed), sealed.len() as u64),
        (e.sha256.clone(), e.bytes)
    );
    assert!(
        !sealed.windows(16).any(|w| w == &big[1000..1016]),
        "plain bytes in the sealed file"
    );

    let right = Keys::load(&identity).unwrap();
    deep_check_all(&dir, &[&e], &SILENT, &right).unwrap();
    assert_eq!(read_stored_index(&dir, &e, &right).unwrap().len(), 3);
    let err = deep_check_all(&dir, &[&e], &SILENT, &Keys::load(&wrong).unwrap()).unwrap_err();
    assert_eq!(err.kind, Kind::Integrity, "{err}");
    let err = deep_check_all(&dir, &[&e], &SILENT, &Keys::none()).unwrap_err();
    assert_eq!(err.kind, Kind::Usage, "{err}");
    fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn encrypted_backup_verify_and_restore_round_trip() {
    let scope = Scope::new("enc-round").await;
    let d = scope.docker.clone();
    let app = app_with_data(&scope).await;
    let keys = scope.dir("keys");
    let (identity, public) = key(&keys, "me.key");
    let (wrong, _) = key(&keys, "wrong.key");
    let recipients = keys.join("recipients.txt");
    fs::write(&recipients, format!("# the operators\n\n{public}\n")).unwrap();
    let before = index(&d, &app).await;

    let out = scope.dir("out");
    let b = berth(&[
        "backup",
        &app,
        "--out",
        s(&out),
        "--encrypt-to",
        s(&recipients),
        "--json",
    ]);
    assert_eq!(b.code, Some(0), "{b}");
    let dir = PathBuf::from(b.json()["dir"].as_str().unwrap());
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "SHA256SUMS",
            "data.index.gz.age",
            "data.tar.gz.age",
            "manifest.json"
        ],
        "only encrypted archives and indexes"
    );
    for f in ["data.tar.gz.age", "data.index.gz.age"] {
        let head = fs::read(dir.join(f)).unwrap();
        assert!(
            head.starts_with(b"age-encryption.org/v1\n"),
            "{f} is not an age file"
        );
    }
    let m: Value = serde_json::from_slice(&fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["schema"], 4);
    assert_eq!(
        m["encryption"],
        json!({"format": "age", "recipients": [public]})
    );
    // SHA256SUMS covers the encrypted files: sha256sum checks them.
    let sums = Command::new("sha256sum")
        .args(["-c", "--quiet", "SHA256SUMS"])
        .current_dir(&dir)
        .status()
        .unwrap();
    assert!(sums.success());

    // Integrity without a key; the deep check needs one, and the right one.
    let v = berth(&["verify", s(&dir)]);
    assert_eq!(v.code, Some(0), "{v}");
    let v = berth(&["verify", s(&dir), "--deep"]);
    assert_eq!(v.code, Some(2), "{v}");
    assert!(v.stderr.contains("--identity"), "{v}");
    let v = berth(&["verify", s(&dir), "--deep", "--identity", s(&wrong)]);
    assert_eq!(v.code, Some(5), "{v}");
    assert!(
        v.stderr.contains("none of the identities given opens it"),
        "{v}"
    );
    let v = berth(&["verify", s(&dir), "--deep", "--identity", s(&identity)]);
    assert_eq!(v.code, Some(0), "{v}");

    // Change the data, then the refusals: nothing written, nothing stopped.
    exec(
        &d,
        &app,
        "rm /data/sub/f1 && echo changed > /data/sub/f2 && echo new > /data/new",
    )
    .await;
    let changed = index(&d, &app).await;
    assert!(!compare(&before, &changed).is_empty());
    let id = d.container_inspect(&app).await.unwrap().id;
    let sealed = fs::read(dir.join("data.tar.gz.age")).unwrap();
    let mut flipped = sealed.clone();
    let mid = sealed.len() / 2;
    flipped[mid] ^= 0x20;
    let truncated = &sealed[..sealed.len() - 70_000];
    let cases = [
        ("wrong identity", dir.clone(), &wrong),
        (
            "flipped byte",
            hostile_copy(&dir, &scope.dir("flip"), "data.tar.gz.age", &flipped),
            &identity,
        ),
        (
            "truncated",
            hostile_copy(&dir, &scope.dir("trunc"), "data.tar.gz.age", truncated),
            &identity,
        ),
    ];
    for (what, bdir, key) in &cases {
        let r = berth(&["restore", s(bdir), "--identity", s(key)]);
        assert_eq!(r.code, Some(5), "{what}: {r}");
        assert!(r.stderr.contains("nothing was written"), "{what}: {r}");
        assert_no_secret_key(what, &r, &[bdir]);
        let now = index(&d, &app).await;
        assert!(
            compare(&changed, &now).is_empty(),
            "{what}: the volume changed"
        );
        let c = d.container_inspect(&app).await.unwrap();
        assert_eq!(c.id, id);
        assert!(c.state.running, "{what}");
    }

    // The right identity: an exact restore, equal by content index.
    let r = berth(&["restore", s(&dir), "--identity", s(&identity), "--json"]);
    assert_eq!(r.code, Some(0), "{r}");
    let after = index(&d, &app).await;
    let diffs = compare(&before, &after);
    assert!(diffs.is_empty(), "{diffs:?}");
    assert_no_secret_key("round trip", &r, &[&out]);
}

/// The run directory of the one upgrade under `root`.
fn run_dir(root: &Path) -> Option<PathBuf> {
    fs::read_dir(root)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.join("plan.json").exists())
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_encrypted_upgrade_rolls_back_without_a_key() {
    let scope = Scope::new("enc-upgrade").await;
    let d = scope.docker.clone();
    let fx = fixtures::ensure(&d).await;
    let lw = appliance::up(&scope, "6.6.0").await;
    let before = appliance::data_indexes(&d, &lw.data).await;
    let old_id = d.container_inspect(&lw.app).await.unwrap().id;
    let keys = scope.dir("keys");
    let (identity, public) = key(&keys, "ops.key");
    let root = scope.dir("runs");
    let secret = scope.dir("secret").join(appliance::CONFIG_NAME);
    fs::write(&secret, appliance::config_text("standalone")).unwrap();

    // Run it in the background to see the run's own key while it runs.
    let t = Instant::now();
    let mut child = Command::new(BERTH)
        .args([
            "upgrade",
            &lw.app,
            "--image-file",
            s(&fx.broken_tarballs.tar),
            "--profile",
            "lightwave",
            "--config-file",
            s(&secret),
            "--backup-root",
            s(&root),
            "--encrypt-to",
            &public,
            "--json",
        ])
        .env_remove("BERTH_TEST_KILL_AT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen: Option<(u32, String)> = None;
    while child.try_wait().unwrap().is_none() {
        if let Some(k) = run_dir(&root)
            .map(|r| r.join(RUN_KEY))
            .filter(|k| k.exists())
        {
            if let (Ok(md), Ok(text)) = (fs::metadata(&k), fs::read_to_string(&k)) {
                if let Some(line) = text.lines().find(|l| l.starts_with(SECRET_PREFIX)) {
                    seen = Some((md.permissions().mode() & 0o777, line.to_owned()));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let r = Run::from(child.wait_with_output().unwrap(), t.elapsed());
    let run = run_dir(&root).expect("a run directory");
    let plan: Value = serde_json::from_slice(&fs::read(run.join("plan.json")).unwrap()).unwrap();
    scope.track_image(plan["rollback_tag"].as_str().unwrap());
    assert_eq!(r.code, Some(3), "{r}");
    assert_eq!(r.json()["outcome"], "rolled-back", "{r}");
    assert_eq!(plan["encrypt_to"], json!([public]));

    // Rolled back with no identity given: the old container, its data.
    let c = d.container_inspect(&lw.app).await.unwrap();
    assert_eq!(c.id, old_id);
    assert!(c.state.running);
    assert_eq!(appliance::data_indexes(&d, &lw.data).await, before);

    // The run's key: 0600 while it ran, gone after, nowhere else.
    let (mode, run_secret) = seen.expect("the run's own key was never seen during the run");
    assert_eq!(mode, 0o600);
    assert!(!run.join(RUN_KEY).exists(), "the run's own key is left");
    assert_no_secret_key("failed upgrade", &r, &[&root]);
    assert!(!r.stdout.contains(&run_secret) && !r.stderr.contains(&run_secret));

    // The backup is encrypted to the user's key too, and only opens with it.
    let backup = run.join("backup");
    let m: Value =
        serde_json::from_slice(&fs::read(backup.join("manifest.json")).unwrap()).unwrap();
    let to = m["encryption"]["recipients"].as_array().unwrap();
    assert_eq!(to.len(), 2, "the user's key and the run's own: {to:?}");
    assert_eq!(to[0], public.as_str());
    assert!(m["paths"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["archive"].as_str().unwrap().ends_with(".tar.gz.age")));
    let v = berth(&["verify", s(&backup), "--deep"]);
    assert_eq!(v.code, Some(2), "{v}");
    let v = berth(&["verify", s(&backup), "--deep", "--identity", s(&identity)]);
    assert_eq!(v.code, Some(0), "{v}");
    assert_ne!(secret_of(&identity), run_secret);

    // A good upgrade: its own key is gone after success too.
    let good_root = scope.dir("good-runs");
    let g = berth(&[
        "upgrade",
        &lw.app,
        "--image-file",
        s(&fx.good_tarballs.tar),
        "--profile",
        "lightwave",
        "--config-file",
        s(&secret),
        "--backup-root",
        s(&good_root),
        "--encrypt-to",
        &public,
        "--json",
    ]);
    let good_run = run_dir(&good_root).expect("a run directory");
    let plan: Value =
        serde_json::from_slice(&fs::read(good_run.join("plan.json")).unwrap()).unwrap();
    scope.track_image(plan["rollback_tag"].as_str().unwrap());
    assert_eq!(g.code, Some(0), "{g}");
    assert_eq!(
        d.container_inspect(&lw.app).await.unwrap().image,
        fx.good.id.as_str()
    );
    assert!(
        !good_run.join(RUN_KEY).exists(),
        "the run's own key is left"
    );
    assert_no_secret_key("good upgrade", &g, &[&good_root]);
}

/// `berth rehearse --encrypt-to`: the rehearsal's own backup is sealed to
/// the user's key and the run's own, its scratch copy is restored with the
/// run's key, and that key is gone when the rehearsal ends.
#[tokio::test(flavor = "multi_thread")]
async fn encrypted_rehearsal_seals_its_backup_and_forgets_its_key() {
    let scope = Scope::new("enc-rehearse").await;
    let d = scope.docker.clone();
    let fx = fixtures::ensure(&d).await;
    let lw = appliance::up(&scope, "6.6.0").await;
    let before = appliance::data_indexes(&d, &lw.data).await;
    let (identity, public) = key(&scope.dir("keys"), "ops.key");
    let root = scope.dir("runs");
    let secret = scope.dir("secret").join(appliance::CONFIG_NAME);
    fs::write(&secret, appliance::config_text("standalone")).unwrap();
    let r = berth(&[
        "rehearse",
        &lw.app,
        "--image-file",
        s(&fx.good_tarballs.tar),
        "--profile",
        "lightwave",
        "--config-file",
        s(&secret),
        "--backup-root",
        s(&root),
        "--encrypt-to",
        &public,
        "--json",
    ]);
    assert_eq!(r.code, Some(0), "{r}");
    let run = PathBuf::from(r.json()["run_dir"].as_str().expect("run_dir"));
    assert!(!run.join(RUN_KEY).exists(), "the run's own key is left");
    assert_no_secret_key("rehearsal", &r, &[&root]);
    let backup = run.join("backup");
    let m: Value =
        serde_json::from_slice(&fs::read(backup.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["encryption"]["recipients"][0], public.as_str());
    let v = berth(&["verify", s(&backup), "--deep", "--identity", s(&identity)]);
    assert_eq!(v.code, Some(0), "{v}");
    // The old container and its data: untouched.
    assert_eq!(appliance::data_indexes(&d, &lw.data).await, before);
}
