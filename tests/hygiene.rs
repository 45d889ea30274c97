//! Backup hygiene against a real engine:
//!
//! * no value of a container's environment, nor the config file's content,
//!   in any file berth writes (run directory, backup directory) or any line
//!   it prints, across backups, a failed upgrade with its rollback, a good
//!   upgrade, a dry run and `--json` runs; the new container still gets
//!   the values (read again from the old one);
//! * errors about a user's file (image tarball, profile, config file,
//!   manifest.json, SHA256SUMS, index) name it and never quote it;
//! * hooks: exec-before-backup's work is in the backup, exec-after-restore
//!   runs on the restored data, and a failing or hung hook changes nothing.
//!
//! The appliance tests use the lightwave-sim fixture (see tests/upgrade.rs);
//! the others a busybox container with one named volume.

mod support;

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use berth::docker::{body, Docker};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::appliance;
use support::cli::Run;
use support::engine::Scope;
use support::fixtures::{self, Fixtures};
use support::images::busybox;
use support::stage::stage;

const BERTH: &str = env!("CARGO_BIN_EXE_berth");
/// Values of the app container's environment.
const TOKEN: &str = "tok-9c1f4e-never-in-a-file";
const DB_PW: &str = "dbpw-5e2a77-never-in-a-file";
/// The admin password in the config file berth puts in place.
const CFG_PW: &str = "cfgpw-77b3d1-never-in-a-file";
/// What a user's file given in the wrong place holds.
const FILE_SECRET: &str = "filesecret-31c9-never-echoed";

fn berth_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let t = Instant::now();
    let mut c = Command::new(BERTH);
    c.args(args)
        .env_remove("BERTH_TEST_KILL_AT")
        .env_remove("BERTH_HOOK_TIMEOUT");
    for (k, v) in env {
        c.env(k, v);
    }
    Run::from(c.output().expect("running berth"), t.elapsed())
}

fn berth(args: &[&str]) -> Run {
    berth_env(args, &[])
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

// ------------------------------------------------------------ the appliance

struct Lw {
    fx: Fixtures,
    app: String,
    app_id: String,
    config_src: PathBuf,
    /// --backup-root of upgrades.
    root: PathBuf,
    /// --out of backups.
    out: PathBuf,
    scope: Scope,
}

fn config_text() -> String {
    format!(
        "deployment=standalone\ndomain=vsphere.local\nadmin=Administrator\n\
         password={CFG_PW}\nfirst-instance=true\nsite-name=Default-first-site\nhostname=localhost\n"
    )
}

impl Lw {
    /// The appliance on a per-test tag of 6.6.0, its app container started
    /// with SECRET_TOKEN and DB_PASSWORD in its environment.
    async fn up(test: &str) -> Lw {
        let scope = Scope::new(test).await;
        let env = json!([
            format!("SECRET_TOKEN={TOKEN}"),
            format!("DB_PASSWORD={DB_PW}")
        ]);
        let s = stage()
            .config(config_text())
            .app(json!({ "Env": env }))
            .up(&scope)
            .await;
        Lw {
            fx: s.fx,
            app: s.lw.app,
            app_id: s.app_id,
            config_src: s.config_src,
            root: s.root,
            out: scope.dir("backups"),
            scope,
        }
    }

    fn d(&self) -> &Docker {
        &self.scope.docker
    }

    /// `berth upgrade APP --image-file F --profile lightwave --config-file
    /// SRC --backup-root ROOT EXTRA...`; the rollback tags it made are
    /// removed with the scope.
    fn upgrade(&self, file: &Path, extra: &[&str], env: &[(&str, &str)]) -> Run {
        let mut args = vec![
            "upgrade",
            &self.app,
            "--image-file",
            s(file),
            "--profile",
            "lightwave",
            "--config-file",
            s(&self.config_src),
            "--backup-root",
            s(&self.root),
        ];
        args.extend(extra);
        let r = berth_env(&args, env);
        for dir in dirs_in(&self.root) {
            if let Ok(b) = fs::read(dir.join("plan.json")) {
                let p: Value = serde_json::from_slice(&b).unwrap();
                if let Some(t) = p["rollback_tag"].as_str() {
                    self.scope.track_image(t);
                }
            }
        }
        r
    }

    async fn app(&self) -> Value {
        self.d().container_inspect_raw(&self.app).await.unwrap()
    }
}

fn dirs_in(root: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(root)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn running(c: &Value) -> bool {
    c.pointer("/State/Running").and_then(Value::as_bool) == Some(true)
}

fn env_of(c: &Value) -> Vec<String> {
    serde_json::from_value(c["Config"]["Env"].clone()).unwrap_or_default()
}

// --------------------------------------------------------------- secrets

/// Every file under `dirs` (gzip files decompressed), with its path.
fn files_under(dirs: &[&Path]) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = vec![];
    let mut stack: Vec<PathBuf> = dirs.iter().map(|d| d.to_path_buf()).collect();
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let raw = fs::read(&p).unwrap();
            let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
                let mut v = vec![];
                flate2::read::MultiGzDecoder::new(raw.as_slice())
                    .read_to_end(&mut v)
                    .unwrap();
                v
            } else {
                raw
            };
            out.push((p, bytes));
        }
    }
    out
}

/// None of `needles` in what `r` printed nor in any file under `dirs`.
fn assert_nowhere(what: &str, needles: &[&str], r: &Run, dirs: &[&Path]) {
    let files = files_under(dirs);
    assert!(!files.is_empty(), "{what}: no files written?");
    for n in needles {
        assert!(!r.stdout.contains(n), "{what}: {n} on stdout:\n{r}");
        assert!(!r.stderr.contains(n), "{what}: {n} on stderr:\n{r}");
        for (p, b) in &files {
            let found = b.windows(n.len()).any(|w| w == n.as_bytes());
            assert!(!found, "{what}: {n} in {}", p.display());
        }
    }
}

const SECRETS: [&str; 3] = [TOKEN, DB_PW, CFG_PW];

#[tokio::test(flavor = "multi_thread")]
async fn no_env_or_config_value_in_any_file_or_output() {
    let lw = Lw::up("hyg-secrets").await;
    // A backup, as text and as --json: the manifest has the names only.
    let b = berth(&["backup", &lw.app, "--out", s(&lw.out)]);
    assert_eq!(b.code, Some(0), "{b}");
    assert_nowhere("backup", &SECRETS, &b, &[&lw.out]);
    let bj = berth(&["backup", &lw.app, "--out", s(&lw.out), "--json"]);
    assert_eq!(bj.code, Some(0), "{bj}");
    assert_nowhere("backup --json", &SECRETS, &bj, &[&lw.out]);
    let dir = PathBuf::from(bj.json()["dir"].as_str().unwrap());
    let m: Value = serde_json::from_slice(&fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let cfg = &m["container"]["inspect"]["Config"];
    assert_eq!(cfg.get("Env"), None, "{cfg}");
    let names = cfg["EnvNames"].as_array().unwrap();
    assert!(
        names.contains(&json!("SECRET_TOKEN")) && names.contains(&json!("DB_PASSWORD")),
        "{cfg}"
    );
    let v = berth(&["verify", s(&dir), "--deep", "--json"]);
    assert_eq!(v.code, Some(0), "{v}");

    // A failed upgrade, rolled back: the old container keeps its values.
    let r = lw.upgrade(&lw.fx.broken_tarballs.tar, &["--json"], &[]);
    assert_eq!(r.code, Some(3), "{r}");
    assert_nowhere("failed upgrade --json", &SECRETS, &r, &[&lw.root, &lw.out]);
    let c = lw.app().await;
    assert_eq!(c["Id"], lw.app_id.as_str());
    assert!(running(&c));
    assert!(
        env_of(&c).contains(&format!("SECRET_TOKEN={TOKEN}")),
        "{:?}",
        env_of(&c)
    );
    let run = dirs_in(&lw.root).pop().unwrap();
    let plan: Value = serde_json::from_slice(&fs::read(run.join("plan.json")).unwrap()).unwrap();
    assert_eq!(
        plan["env_names"],
        json!(["SECRET_TOKEN", "DB_PASSWORD"]),
        "{plan}"
    );
    assert_eq!(plan["create"].get("Env"), None);
    let st = berth(&["status", s(&run), "--json"]);
    assert_eq!(st.code, Some(0), "{st}");
    assert_nowhere("status --json", &SECRETS, &st, &[&lw.root]);

    // A dry run prints the plan: names only.
    let dry = lw.upgrade(&lw.fx.good_tarballs.tar, &["--dry-run", "--json"], &[]);
    assert_eq!(dry.code, Some(0), "{dry}");
    assert!(dry.stdout.contains("SECRET_TOKEN"), "{dry}");
    assert_nowhere("dry run", &SECRETS, &dry, &[&lw.root]);

    // A good upgrade, as text: the new container has the values.
    let g = lw.upgrade(&lw.fx.good_tarballs.tar, &[], &[]);
    assert_eq!(g.code, Some(0), "{g}");
    assert_nowhere("good upgrade", &SECRETS, &g, &[&lw.root, &lw.out]);
    let c = lw.app().await;
    assert_ne!(c["Id"], lw.app_id.as_str());
    assert_eq!(c["Image"], lw.fx.good.id.as_str());
    let env = env_of(&c);
    for want in [
        format!("SECRET_TOKEN={TOKEN}"),
        format!("DB_PASSWORD={DB_PW}"),
    ] {
        assert!(
            env.contains(&want),
            "the new container lacks {want}: {env:?}"
        );
    }
}

/// A run directory whose plan.json was written by an older berth (the
/// values inline, no `env_names`) still resumes: rolled back, the old
/// container as it was.
#[tokio::test(flavor = "multi_thread")]
async fn old_plan_with_env_values_still_resumes() {
    let lw = Lw::up("hyg-oldplan").await;
    let r = lw.upgrade(
        &lw.fx.good_tarballs.tar,
        &["--json"],
        &[("BERTH_TEST_KILL_AT", "rename-old:done")],
    );
    assert_eq!(r.signal, Some(9), "{r}");
    let run = dirs_in(&lw.root).pop().unwrap();
    let path = run.join("plan.json");
    let mut plan: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    let names = plan.as_object_mut().unwrap().remove("env_names");
    assert!(names.is_some(), "{plan}");
    plan["create"]["Env"] = json!([
        format!("SECRET_TOKEN={TOKEN}"),
        format!("DB_PASSWORD={DB_PW}")
    ]);
    fs::write(&path, serde_json::to_vec_pretty(&plan).unwrap()).unwrap();
    let res = berth(&["resume", s(&run), "--json"]);
    assert!(matches!(res.code, Some(1 | 3)), "{res}");
    assert!(
        matches!(
            res.json()["outcome"].as_str(),
            Some("rolled-back" | "aborted")
        ),
        "{res}"
    );
    let c = lw.app().await;
    assert_eq!(c["Id"], lw.app_id.as_str());
    assert!(running(&c));
    assert!(env_of(&c).contains(&format!("DB_PASSWORD={DB_PW}")));
    assert!(lw
        .d()
        .container_list(&json!({"name": [format!("{}-berth-old-", lw.app)]}))
        .await
        .unwrap()
        .is_empty());
}

// ----------------------------------------------------- errors about files

/// A busybox container running `sleep` with the named volume at /data
/// (labels as given).
async fn sleeper(scope: &Scope, labels: Value) -> (String, String) {
    let d = &scope.docker;
    let image = busybox(d).await;
    let vol = scope.name("vol");
    scope.track_volume(&vol);
    let name = scope
        .run(
            "app",
            json!({
                "Image": image,
                "Cmd": ["sleep", "3600"],
                "Labels": labels,
                "HostConfig": {"Mounts": [{"Type": "volume", "Source": vol, "Target": "/data"}]},
            }),
        )
        .await;
    let id = d.container_inspect_raw(&name).await.unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_owned();
    (name, id)
}

fn sha_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// Copy a backup directory and rewrite one file of it; with `reseal`, the
/// manifest's checksum of it and SHA256SUMS are rewritten to match, as a
/// hostile backup would be.
fn tampered(src: &Path, to: &Path, file: &str, content: &[u8], reseal: bool) -> PathBuf {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(src).unwrap() {
        let p = e.unwrap().path();
        fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
    fs::write(to.join(file), content).unwrap();
    if reseal {
        let mpath = to.join("manifest.json");
        if file != "manifest.json" {
            let mut m: Value = serde_json::from_slice(&fs::read(&mpath).unwrap()).unwrap();
            for p in m["paths"].as_array_mut().unwrap() {
                if p["index"] == file {
                    p["index_sha256"] = json!(sha_hex(content));
                }
            }
            fs::write(&mpath, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
        }
        let sums: String = fs::read_dir(to)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap() != "SHA256SUMS")
            .map(|p| {
                format!(
                    "{}  {}\n",
                    sha_hex(&fs::read(&p).unwrap()),
                    p.file_name().unwrap().to_str().unwrap()
                )
            })
            .collect();
        fs::write(to.join("SHA256SUMS"), sums).unwrap();
    }
    to.to_owned()
}

fn assert_refused_quietly(what: &str, r: &Run, names: &str) {
    assert!(matches!(r.code, Some(c) if c != 0), "{what}: {r}");
    assert!(
        !r.stderr.contains(FILE_SECRET) && !r.stdout.contains(FILE_SECRET),
        "{what}: the file is echoed:\n{r}"
    );
    assert!(
        r.stderr.contains(names),
        "{what}: the message does not name {names}:\n{r}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_about_user_files_never_quote_them() {
    let scope = Scope::new("hyg-errors").await;
    let fx = fixtures::ensure(&scope.docker).await;
    let (app, _) = sleeper(&scope, json!({})).await;
    let dir = scope.dir("files");
    // A file like /etc/passwd (longer than a tar header), plain and gzip.
    let text: String = (0..40)
        .map(|i| format!("user{i}:x:{i}:{i}:{FILE_SECRET}:/home:/bin/sh\n"))
        .collect();
    let plain = dir.join("passwd-like");
    fs::write(&plain, &text).unwrap();
    let gz = dir.join("passwd-like.gz");
    let mut enc = flate2::write::GzEncoder::new(vec![], flate2::Compression::default());
    enc.write_all(text.as_bytes()).unwrap();
    fs::write(&gz, enc.finish().unwrap()).unwrap();
    let good = s(&fx.good_tarballs.tar);
    for f in [&plain, &gz] {
        let r = berth(&[
            "upgrade",
            &app,
            "--image-file",
            s(f),
            "--backup-root",
            s(&dir),
        ]);
        assert_refused_quietly("image file", &r, s(f));
    }
    let r = berth(&[
        "upgrade",
        &app,
        "--image-file",
        good,
        "--profile",
        s(&plain),
        "--backup-root",
        s(&dir),
    ]);
    assert_refused_quietly("profile", &r, s(&plain));
    let r = berth(&[
        "upgrade",
        &app,
        "--image-file",
        good,
        "--config-file",
        s(&plain),
        "--backup-root",
        s(&dir),
    ]);
    assert_refused_quietly("config file", &r, "--config-file");

    // Backup files: plain garbage, and values of the wrong type in files
    // whose checksums were rewritten to match.
    let out = scope.dir("out");
    let b = berth(&["backup", &app, "--out", s(&out), "--json"]);
    assert_eq!(b.code, Some(0), "{b}");
    let bdir = PathBuf::from(b.json()["dir"].as_str().unwrap());
    let m: Value = serde_json::from_slice(&fs::read(bdir.join("manifest.json")).unwrap()).unwrap();
    let index = m["paths"][0]["index"].as_str().unwrap().to_owned();
    let mut wrong_type = m.clone();
    wrong_type["compression"]["level"] = json!(FILE_SECRET);
    let bad_line = format!("{{\"path\": \"data\", \"kind\": \"{FILE_SECRET}\"}}\n");
    let cases: [(&str, Vec<u8>, bool, &str); 5] = [
        (
            "manifest.json",
            text.clone().into_bytes(),
            true,
            "manifest.json",
        ),
        (
            "manifest.json",
            serde_json::to_vec(&wrong_type).unwrap(),
            true,
            "manifest.json",
        ),
        ("SHA256SUMS", text.clone().into_bytes(), false, "SHA256SUMS"),
        (
            index.as_str(),
            text.clone().into_bytes(),
            true,
            index.as_str(),
        ),
        (index.as_str(), bad_line.into_bytes(), true, index.as_str()),
    ];
    for (i, (file, content, reseal, names)) in cases.iter().enumerate() {
        let t = tampered(&bdir, &scope.dir(&format!("t{i}")), file, content, *reseal);
        let v = berth(&["verify", s(&t), "--deep"]);
        assert_refused_quietly(&format!("verify, {file} #{i}"), &v, names);
        assert_eq!(v.code, Some(5), "{v}");
        let r = berth(&["restore", s(&t), "--container", &app]);
        assert_refused_quietly(&format!("restore, {file} #{i}"), &r, names);
    }
}

// ------------------------------------------------------------------ hooks

/// The content of `name` (a path ending) in the .tar.gz archives of a
/// backup directory.
fn in_backup(dir: &Path, name: &str) -> Option<String> {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if !p.to_str().unwrap().ends_with(".tar.gz") {
            continue;
        }
        let gz = flate2::read::MultiGzDecoder::new(fs::File::open(&p).unwrap());
        let mut ar = tar::Archive::new(gz);
        for en in ar.entries().unwrap() {
            let mut en = en.unwrap();
            if en.path().unwrap().to_str().unwrap().ends_with(name) {
                let mut s = String::new();
                en.read_to_string(&mut s).unwrap();
                return Some(s);
            }
        }
    }
    None
}

async fn hook_helpers(d: &Docker, name: &str) -> Vec<berth::docker::model::ContainerSummary> {
    d.container_list(&json!({"label": ["berth.helper=hook"], "name": [name]}))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_and_restore_hooks() {
    let scope = Scope::new("hyg-hooks").await;
    let d = scope.docker.clone();
    let label = "sh -c 'echo label > /data/marker'";
    let (app, id) = sleeper(&scope, json!({"berth.exec-before-backup": label})).await;
    let out = scope.dir("out");
    let backup = |extra: &[&str], env: &[(&str, &str)]| {
        let mut a = vec!["backup", app.as_str(), "--out", s(&out), "--json"];
        a.extend(extra);
        berth_env(&a, env)
    };
    // The label's hook, then a flag's over it.
    let b = backup(&[], &[]);
    assert_eq!(b.code, Some(0), "{b}");
    let by_label = PathBuf::from(b.json()["dir"].as_str().unwrap());
    assert_eq!(in_backup(&by_label, "marker").as_deref(), Some("label\n"));
    let b = backup(
        &[
            "--exec-before-backup",
            "sh -c \"echo 'flag word' > /data/marker\"",
        ],
        &[],
    );
    assert_eq!(b.code, Some(0), "{b}");
    let by_flag = PathBuf::from(b.json()["dir"].as_str().unwrap());
    assert_eq!(
        in_backup(&by_flag, "marker").as_deref(),
        Some("flag word\n")
    );

    // Failing and hung hooks: nothing written, the container untouched.
    let before = dirs_in(&out);
    let fail = backup(
        &[
            "--stop",
            "--exec-before-backup",
            "sh -c 'echo cannot-flush >&2; exit 3'",
        ],
        &[],
    );
    assert_eq!(fail.code, Some(1), "{fail}");
    assert!(
        fail.stderr.contains("cannot-flush") && fail.stderr.contains("exited with 3"),
        "{fail}"
    );
    let hung = backup(
        &["--exec-before-backup", "sleep 30"],
        &[("BERTH_HOOK_TIMEOUT", "1")],
    );
    assert_eq!(hung.code, Some(1), "{hung}");
    assert!(hung.stderr.contains("did not finish within 1s"), "{hung}");
    assert_eq!(
        dirs_in(&out),
        before,
        "a failed hook left something in {}",
        out.display()
    );
    let c = d.container_inspect_raw(&app).await.unwrap();
    assert_eq!(c["Id"], id.as_str());
    assert!(running(&c), "stopped although the hook failed first");

    // Stopped: the hooks run in a helper on the container's volumes.
    d.container_stop(&app, 5).await.unwrap();
    let b = backup(
        &[
            "--exec-before-backup",
            "sh -c 'echo stopped > /data/marker'",
        ],
        &[],
    );
    assert_eq!(b.code, Some(0), "{b}");
    let stopped = PathBuf::from(b.json()["dir"].as_str().unwrap());
    assert_eq!(in_backup(&stopped, "marker").as_deref(), Some("stopped\n"));
    let r = berth(&[
        "restore",
        s(&by_flag),
        "--exec-after-restore",
        "sh -c 'cat /data/marker > /data/after'",
    ]);
    assert_eq!(r.code, Some(0), "{r}");
    let after = appliance::read_file(&d, &app, "/data/after").await;
    assert_eq!(
        after.as_deref(),
        Some(&b"flag word\n"[..]),
        "the hook did not run on the restored data"
    );
    assert!(
        hook_helpers(&d, &app).await.is_empty(),
        "a hook helper is left"
    );
    let c = d.container_inspect_raw(&app).await.unwrap();
    assert!(!running(&c), "the restore's hook started the container");
}

/// busybox as /var/lib/vmware/busybox in the appliance's volume: the image has
/// no shell of its own.
async fn put_busybox(d: &Docker, container: &str) {
    let bin = fs::read("/bin/busybox").expect("busybox-static");
    let mut b = tar::Builder::new(vec![]);
    let mut h = tar::Header::new_gnu();
    h.set_size(bin.len() as u64);
    h.set_mode(0o755);
    h.set_cksum();
    b.append_data(&mut h, "busybox", bin.as_slice()).unwrap();
    let tar = b.into_inner().unwrap();
    d.archive_put(container, "/var/lib/vmware", body::full(tar))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn upgrade_hooks_and_a_failing_hook_changes_nothing() {
    let lw = Lw::up("hyg-uphooks").await;
    put_busybox(lw.d(), &lw.app).await;
    let good = lw.fx.good_tarballs.tar.clone();
    let r = lw.upgrade(
        &good,
        &[
            "--exec-before-backup",
            "/var/lib/vmware/busybox sh -c 'echo no-flush-today; exit 7'",
        ],
        &[],
    );
    assert_eq!(r.code, Some(1), "{r}");
    assert!(
        r.stderr.contains("no-flush-today") && r.stderr.contains("exited with 7"),
        "{r}"
    );
    assert!(
        dirs_in(&lw.root).is_empty(),
        "a run directory was made: {:?}",
        dirs_in(&lw.root)
    );
    let c = lw.app().await;
    assert_eq!(c["Id"], lw.app_id.as_str());
    assert!(running(&c));
    assert_eq!(c["Image"], lw.fx.old.id.as_str());

    // The broken version: the flush is in the backup; after the rollback's
    // restore the other hook ran on the data, before the start.
    let r = lw.upgrade(
        &lw.fx.broken_tarballs.tar,
        &[
            "--exec-before-backup",
            "/var/lib/vmware/busybox sh -c 'echo flushed > /var/lib/vmware/hook-marker'",
            "--exec-after-restore",
            "/var/lib/vmware/busybox sh -c 'cat /var/lib/vmware/hook-marker > /var/lib/vmware/after-restore'",
            "--json",
        ],
        &[],
    );
    assert_eq!(r.code, Some(3), "{r}");
    let run = dirs_in(&lw.root).pop().unwrap();
    assert_eq!(
        in_backup(&run.join("backup"), "hook-marker").as_deref(),
        Some("flushed\n")
    );
    let c = lw.app().await;
    assert_eq!(c["Id"], lw.app_id.as_str());
    assert!(running(&c));
    let after = appliance::read_file(lw.d(), &lw.app, "/var/lib/vmware/after-restore").await;
    assert_eq!(after.as_deref(), Some(&b"flushed\n"[..]));
    assert!(
        hook_helpers(lw.d(), &lw.app).await.is_empty(),
        "a hook helper is left"
    );
}
