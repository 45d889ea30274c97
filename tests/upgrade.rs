//! `berth upgrade`, `resume`, `rollback` and `status` against a real engine
//! on the lightwave-sim appliance (the layout of the reference procedure:
//! a data container with four anonymous volumes, an app container with
//! `--volumes-from` it, the host config directory bind mounted at
//! /var/lib/vmware/config, host networking).
//!
//! Every test asserts the end state on the engine and the host, not only
//! what berth printed: the container under the original name, its image id,
//! its configuration field by field, the content index of every volume read
//! back through the archive endpoint, the config file with the password,
//! the run directory.
//!
//! Each test stands up its own appliance on its own image reference
//! (`<scope prefix>/lightwave-sts:6.6.0`, the 6.6.0 fixture tagged again),
//! so the rollback tags berth makes are per test and removed with it.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth::archive::index::{compare, read_index, IndexEntry};
use berth::archive::restore::read_index_of;
use berth::docker::Docker;
use berth::manifest::Manifest;
use serde_json::{json, Value};
use support::appliance::{self, CONFIG_NAME, DATA_MDB};
use support::cli::Run;
use support::engine::Scope;
use support::fixtures::{self, Fixtures, DATA_PATHS};
use support::images::busybox;
use support::journal::{journal, journal_has};
use support::stage::{self, stage};

const BERTH: &str = env!("CARGO_BIN_EXE_berth");
/// The admin password in the config file that berth puts in place: it must
/// never reach a backup, and the file must be gone afterwards.
const PASSWORD: &str = "Upgr4de-S3cret-pw-7f3a";
const MACHINE_SSL_KEY: &str = "/etc/vmware-sso/keys/machine-ssl.key";
const UPGRADE_PARTIAL: &str = "/var/lib/vmware/vmdir/vdcupgrade.partial";

// ------------------------------------------------------------------ the CLI

fn berth_env<S: AsRef<std::ffi::OsStr>>(args: &[S], env: &[(&str, &str)]) -> Run {
    let t = Instant::now();
    let mut c = Command::new(BERTH);
    c.args(args).env_remove("BERTH_TEST_KILL_AT");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("running berth");
    Run::from(out, t.elapsed())
}

fn berth<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    berth_env(args, &[])
}

// ------------------------------------------------------------ the appliance

/// One appliance of one test, and everything around its upgrade.
struct Lw {
    fx: Fixtures,
    /// The data container (created, never started).
    data: String,
    /// The app container's name.
    app: String,
    /// Its id as stood up.
    app_id: String,
    /// The per-test reference of the 6.6.0 fixture the appliance runs.
    image: String,
    /// Host directory bind mounted at /var/lib/vmware/config.
    config_dir: PathBuf,
    /// The `--config-file` source (with [`PASSWORD`]).
    config_src: PathBuf,
    /// `--backup-root`.
    root: PathBuf,
    // Last: dropped (containers removed) after everything above.
    scope: Scope,
}

/// The reference config file, with our password.
fn config_text() -> String {
    format!(
        "deployment=standalone\n\
         domain=vsphere.local\n\
         admin=Administrator\n\
         password={PASSWORD}\n\
         first-instance=true\n\
         site-name=Default-first-site\n\
         hostname=localhost\n"
    )
}

impl Lw {
    /// Stand up the appliance on 6.6.0 (unprivileged: this engine cannot
    /// start privileged containers), with `labels` on the app container.
    async fn up(test: &str, labels: Value) -> Lw {
        let scope = Scope::new(test).await;
        let mut app = json!({});
        if !labels.is_null() {
            app["Labels"] = labels;
        }
        let s = stage().config(config_text()).app(app).up(&scope).await;
        eprintln!("fixtures in {:.1}s", s.fx.elapsed.as_secs_f64());
        Lw {
            fx: s.fx,
            data: s.lw.data,
            app: s.lw.app,
            app_id: s.app_id,
            image: s.lw.image,
            config_dir: s.lw.config_dir,
            config_src: s.config_src,
            root: s.root,
            scope,
        }
    }

    fn d(&self) -> &Docker {
        &self.scope.docker
    }

    fn config_file(&self) -> PathBuf {
        self.config_dir.join(CONFIG_NAME)
    }

    fn good(&self) -> &Path {
        &self.fx.good_tarballs.tar
    }

    fn broken(&self) -> &Path {
        &self.fx.broken_tarballs.tar
    }

    /// `berth upgrade APP --image-file F --profile lightwave --config-file
    /// SRC --backup-root ROOT --json EXTRA...` with `env`.
    fn upgrade_env(&self, file: &Path, extra: &[&str], env: &[(&str, &str)]) -> Run {
        let mut args: Vec<String> = [
            "upgrade",
            &self.app,
            "--image-file",
            file.to_str().unwrap(),
            "--profile",
            "lightwave",
            "--config-file",
            self.config_src.to_str().unwrap(),
            "--backup-root",
            self.root.to_str().unwrap(),
            "--json",
        ]
        .map(String::from)
        .to_vec();
        args.extend(extra.iter().map(|s| s.to_string()));
        let r = berth_env(&args, env);
        self.track_rollback_tags();
        r
    }

    fn upgrade(&self, file: &Path, extra: &[&str]) -> Run {
        self.upgrade_env(file, extra, &[])
    }

    /// The rollback tags berth made (read from the plans): removed with
    /// the scope.
    fn track_rollback_tags(&self) {
        stage::track_rollback_tags(&self.scope, &self.root);
    }

    /// The run directories under the backup root.
    fn run_dirs(&self) -> Vec<PathBuf> {
        stage::run_dirs(&self.root)
    }

    /// The one run directory.
    fn run_dir(&self) -> PathBuf {
        let dirs = self.run_dirs();
        assert_eq!(dirs.len(), 1, "one run directory expected: {dirs:?}");
        dirs.into_iter().next().unwrap()
    }

    async fn inspect(&self, name: &str) -> Option<Value> {
        match self.d().container_inspect_raw(name).await {
            Ok(v) => Some(v),
            Err(e) if e.is_not_found() => None,
            Err(e) => panic!("{e}"),
        }
    }

    /// The content index of every data path, read through the container
    /// under the app's name (the config bind mount cut out, as berth does).
    async fn indexes(&self) -> BTreeMap<String, Vec<IndexEntry>> {
        appliance::data_indexes(self.d(), &self.app).await
    }

    async fn read(&self, path: &str) -> Option<Vec<u8>> {
        appliance::read_file(self.d(), &self.data, path).await
    }

    async fn installed_version(&self) -> Option<String> {
        appliance::installed_version(self.d(), &self.data).await
    }

    /// Containers whose name holds `-berth-old-` (renamed aside by berth).
    async fn aside(&self) -> Vec<berth::docker::model::ContainerSummary> {
        self.d()
            .container_list(&json!({"name": [format!("{}-berth-old-", self.app)]}))
            .await
            .unwrap()
    }

    async fn snapshot(&self) -> Snapshot {
        Snapshot {
            inspect: self.inspect(&self.app).await.expect("the app container"),
            index: self.indexes().await,
            data_mdb: self.read(DATA_MDB).await.expect("data.mdb"),
        }
    }
}

/// The appliance before an upgrade.
struct Snapshot {
    inspect: Value,
    index: BTreeMap<String, Vec<IndexEntry>>,
    data_mdb: Vec<u8>,
}

fn running(c: &Value) -> bool {
    c.pointer("/State/Running").and_then(Value::as_bool) == Some(true)
}

fn diffs_text(diffs: &[berth::archive::index::Difference]) -> String {
    diffs.iter().take(20).map(|d| format!("  {d}\n")).collect()
}

/// The journal's events.
fn journal_outcome(run: &Path) -> Option<String> {
    journal(run)
        .last()
        .and_then(|e| e["outcome"].as_str().map(String::from))
}

// ----------------------------------------------------------- end states

/// The host is fully upgraded: 6.7.0 under the name, running, data
/// migrated, nothing of the upgrade left around.
async fn assert_upgraded(lw: &Lw, why: &str) {
    let c = lw
        .inspect(&lw.app)
        .await
        .unwrap_or_else(|| panic!("{why}: no container {}", lw.app));
    assert_eq!(c["Image"], lw.fx.good.id.as_str(), "{why}: image");
    assert!(running(&c), "{why}: not running: {}", c["State"]);
    assert_ne!(
        c["Id"],
        lw.app_id.as_str(),
        "{why}: still the old container"
    );
    assert_eq!(
        lw.installed_version().await.as_deref(),
        Some("6.7.0"),
        "{why}"
    );
    let mdb = lw.read(DATA_MDB).await.expect("data.mdb");
    assert!(
        mdb.starts_with(b"schema=2\n"),
        "{why}: data.mdb not migrated: {}",
        String::from_utf8_lossy(&mdb)
    );
    assert_common_end(lw, why).await;
}

/// The host is fully rolled back: the old container (same id, 6.6.0 image)
/// under the name, running, every volume equal to `before` (and to the
/// backup when there is one).
async fn assert_rolled_back(lw: &Lw, before: &Snapshot, why: &str) {
    let c = lw
        .inspect(&lw.app)
        .await
        .unwrap_or_else(|| panic!("{why}: no container {}", lw.app));
    assert_eq!(c["Id"], lw.app_id.as_str(), "{why}: not the old container");
    assert_eq!(c["Image"], lw.fx.old.id.as_str(), "{why}: image");
    assert!(running(&c), "{why}: not running: {}", c["State"]);
    let now = lw.indexes().await;
    for (p, idx) in &before.index {
        let diffs = compare(idx, &now[p]);
        assert!(
            diffs.is_empty(),
            "{why}: {p} differs from before the upgrade:\n{}",
            diffs_text(&diffs)
        );
    }
    assert_eq!(
        lw.read(DATA_MDB).await.as_deref(),
        Some(before.data_mdb.as_slice()),
        "{why}: data.mdb"
    );
    assert_eq!(
        lw.installed_version().await.as_deref(),
        Some("6.6.0"),
        "{why}"
    );
    for run in lw.run_dirs() {
        if run.join("backup/manifest.json").exists() {
            assert_equal_to_backup(lw, &run.join("backup")).await;
        }
    }
    assert_common_end(lw, why).await;
}

/// Every path of the backup reads back from the container under the app's
/// name equal to the backup's own content index.
async fn assert_equal_to_backup(lw: &Lw, backup: &Path) {
    let m = Manifest::load(backup).unwrap_or_else(|e| panic!("{}: {e}", backup.display()));
    assert_eq!(m.paths.len(), DATA_PATHS.len(), "paths in the backup");
    for e in &m.paths {
        let f = fs::File::open(backup.join(&e.index)).unwrap();
        let stored = read_index(BufReader::new(f)).unwrap();
        let found = read_index_of(lw.d(), &lw.app, &e.path, &e.excluded)
            .await
            .unwrap();
        let diffs = compare(&stored, &found);
        assert!(
            diffs.is_empty(),
            "{} differs from the backup {}:\n{}",
            e.path,
            backup.display(),
            diffs_text(&diffs)
        );
    }
}

/// What both end states share: the config file gone, no half backup, no
/// container left aside, an outcome in the journal and in `berth status`.
async fn assert_common_end(lw: &Lw, why: &str) {
    assert!(
        !lw.config_file().exists(),
        "{why}: the config file {} (with the password) is still there",
        lw.config_file().display()
    );
    let aside = lw.aside().await;
    assert!(
        aside.is_empty(),
        "{why}: containers left aside: {:?}",
        aside.iter().map(|c| c.name()).collect::<Vec<_>>()
    );
    for run in lw.run_dirs() {
        assert!(
            !run.join("backup.partial").exists(),
            "{why}: {}/backup.partial left",
            run.display()
        );
        let s = berth(&["status", run.to_str().unwrap(), "--json"]);
        assert_eq!(s.code, Some(0), "{why}: berth status: {s}");
        let v = s.json();
        assert!(
            v[0]["outcome"].is_string(),
            "{why}: berth status shows no outcome: {v}"
        );
        assert_eq!(
            v[0]["outcome"].as_str(),
            journal_outcome(&run).as_deref(),
            "{why}: status and journal disagree"
        );
    }
}

/// Nothing changed: the same container, running, under its name, the same
/// data, no run directory but aborted ones.
async fn assert_untouched(lw: &Lw, before: &Snapshot, why: &str) {
    let c = lw.inspect(&lw.app).await.expect("the app container");
    assert_eq!(c["Id"], lw.app_id.as_str(), "{why}");
    assert_eq!(c["Image"], lw.fx.old.id.as_str(), "{why}");
    assert!(running(&c), "{why}: not running: {}", c["State"]);
    assert_eq!(
        c["State"]["StartedAt"], before.inspect["State"]["StartedAt"],
        "{why}: the container was restarted"
    );
    let now = lw.indexes().await;
    for (p, idx) in &before.index {
        assert!(compare(idx, &now[p]).is_empty(), "{why}: {p} changed");
    }
    for run in lw.run_dirs() {
        assert_eq!(
            journal_outcome(&run).as_deref(),
            Some("aborted"),
            "{why}: a run directory {} that is not an aborted run",
            run.display()
        );
    }
    assert!(!lw.config_file().exists(), "{why}: config file written");
    assert!(
        lw.aside().await.is_empty(),
        "{why}: container renamed aside"
    );
}

/// Every file of a run directory (archives decompressed) is free of the
/// password and of the config file's name.
fn assert_no_secret(run: &Path) {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let mut files = vec![];
    walk(run, &mut files);
    assert!(files.len() >= 10, "{files:?}");
    for f in files {
        let raw = fs::read(&f).unwrap();
        let mut bytes = raw.clone();
        if raw.starts_with(&[0x1f, 0x8b]) {
            bytes.clear();
            flate2::read::MultiGzDecoder::new(raw.as_slice())
                .read_to_end(&mut bytes)
                .unwrap();
        }
        let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        assert!(
            !has(PASSWORD.as_bytes()),
            "the password is in {}",
            f.display()
        );
        if f.extension().is_some_and(|e| e == "gz" || e == "index") {
            assert!(
                !has(CONFIG_NAME.as_bytes()),
                "the config file is in {}",
                f.display()
            );
        }
    }
}

// ---------------------------------------------------- 1. a good upgrade

/// Differences between two JSON objects, except `ignore` keys.
fn object_diffs(old: &Value, new: &Value, ignore: &[&str]) -> Vec<String> {
    let (Some(o), Some(n)) = (old.as_object(), new.as_object()) else {
        return vec![format!("not objects: {old} / {new}")];
    };
    let keys: std::collections::BTreeSet<&String> = o.keys().chain(n.keys()).collect();
    keys.into_iter()
        .filter(|k| !ignore.contains(&k.as_str()))
        .filter(|k| o.get(*k) != n.get(*k))
        .map(|k| format!("{k}: {:?} -> {:?}", o.get(k), n.get(k)))
        .collect()
}

fn sorted_mounts(c: &Value) -> Vec<Value> {
    let mut m = c["Mounts"].as_array().cloned().unwrap_or_default();
    m.sort_by_key(|x| x["Destination"].as_str().unwrap_or("").to_owned());
    m
}

fn env_without_version(c: &Value) -> Vec<String> {
    c.pointer("/Config/Env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|e| !e.starts_with("LIGHTWAVE_VERSION="))
        .map(String::from)
        .collect()
}

async fn good_upgrade(test: &str, keep_old: bool) {
    let lw = Lw::up(test, Value::Null).await;
    let before = lw.snapshot().await;
    let old = &before.inspect;
    // The --keep-old run watches the logs instead of journalctl, and
    // takes the whole backup while stopped, as before the pre-copy.
    let extra: &[&str] = if keep_old {
        &["--keep-old", "--watch", "logs", "--no-precopy"]
    } else {
        &[]
    };
    let r = lw.upgrade(lw.good(), extra);
    assert_eq!(r.code, Some(0), "{r}");
    let s = r.json();
    assert_eq!(s["outcome"], "upgraded", "{s}");
    assert_eq!(s["container"], lw.app.as_str());
    assert_eq!(s["old_image"], lw.image.as_str());
    assert_eq!(s["new_image"], fixtures::GOOD);
    assert_eq!(s["verdict"]["verdict"], "success", "{s}");
    // The downtime: from the old container's stop to the new one's start.
    let down = s["downtime_s"]
        .as_f64()
        .expect("a running container's downtime");
    assert!(down > 0.0 && down < s["seconds"].as_f64().unwrap(), "{s}");
    // Backed up while it served; only what changed while stopped.
    assert_eq!(s["delta"]["entries"].as_u64().is_some(), !keep_old, "{s}");
    let run = lw.run_dir();
    assert_eq!(s["run_dir"], run.to_str().unwrap());
    let schema = Manifest::load(&run.join("backup")).unwrap().schema;
    assert_eq!(schema, if keep_old { 4 } else { 5 });
    assert_eq!(journal_outcome(&run).as_deref(), Some("upgraded"));

    // The container under the original name runs the new image...
    let new = lw.inspect(&lw.app).await.expect("the new container");
    assert_eq!(new["Image"], lw.fx.good.id.as_str());
    assert_eq!(new["Name"], old["Name"]);
    assert!(running(&new), "{}", new["State"]);
    // ... with the old one's configuration: HostConfig whole,
    let hc = object_diffs(&old["HostConfig"], &new["HostConfig"], &[]);
    assert!(hc.is_empty(), "HostConfig differs:\n{}", hc.join("\n"));
    for k in ["Binds", "VolumesFrom", "NetworkMode", "RestartPolicy"] {
        assert!(!new["HostConfig"][k].is_null(), "HostConfig.{k} missing");
    }
    assert_eq!(new["HostConfig"]["VolumesFrom"], json!([lw.data]));
    assert_eq!(new["HostConfig"]["Privileged"], false);
    // Config but for the image, its version and the generated hostname,
    let cd = object_diffs(
        &old["Config"],
        &new["Config"],
        &["Image", "Env", "Hostname", "Labels"],
    );
    assert!(cd.is_empty(), "Config differs:\n{}", cd.join("\n"));
    assert_eq!(new["Config"]["Image"], fixtures::GOOD);
    assert_eq!(env_without_version(old), env_without_version(&new));
    let env = new["Config"]["Env"].as_array().unwrap();
    assert!(
        env.contains(&json!("LIGHTWAVE_VERSION=6.7.0")),
        "the new image's version: {env:?}"
    );
    // labels: the same but for those that came from the image.
    let old_img = lw.d().image_inspect(&lw.fx.old.id).await.unwrap();
    let new_img = lw.d().image_inspect(&lw.fx.good.id).await.unwrap();
    let (ol, nl) = (&old["Config"]["Labels"], &new["Config"]["Labels"]);
    for k in ol
        .as_object()
        .unwrap()
        .keys()
        .chain(nl.as_object().unwrap().keys())
    {
        if ol.get(k) != nl.get(k) {
            assert!(
                ol.get(k) == old_img["Config"]["Labels"].get(k)
                    && nl.get(k) == new_img["Config"]["Labels"].get(k),
                "label {k}: {:?} -> {:?} (not from the images)",
                ol.get(k),
                nl.get(k)
            );
        }
    }
    // the same volumes (and the bind) at the same places.
    assert_eq!(sorted_mounts(old), sorted_mounts(&new));
    assert_eq!(sorted_mounts(&new).len(), 5, "{}", new["Mounts"]);

    // The data was migrated by the new version.
    assert_eq!(lw.installed_version().await.as_deref(), Some("6.7.0"));
    let mdb = lw.read(DATA_MDB).await.unwrap();
    assert!(mdb.starts_with(b"schema=2\n"), "{mdb:?}");
    assert!(
        lw.read("/var/lib/vmware/vmdir/upgrade-6.6.0-to-6.7.0.done")
            .await
            .is_some(),
        "the sim's upgrade marker"
    );

    // The config file is gone; it never reached the backup.
    assert!(!lw.config_file().exists(), "the config file is still there");
    assert_eq!(
        fs::read_dir(&lw.config_dir).unwrap().count(),
        0,
        "the config directory is not empty"
    );
    assert_no_secret(&run);
    let v = berth(&["verify", run.join("backup").to_str().unwrap(), "--deep"]);
    assert_eq!(v.code, Some(0), "berth verify: {v}");
    // The backup holds what the volumes held before the upgrade.
    let m = Manifest::load(&run.join("backup")).unwrap();
    for e in &m.paths {
        let stored = read_index(BufReader::new(
            fs::File::open(run.join("backup").join(&e.index)).unwrap(),
        ))
        .unwrap();
        let diffs = compare(&before.index[&e.path], &stored);
        assert!(diffs.is_empty(), "{}:\n{}", e.path, diffs_text(&diffs));
    }
    assert!(run.join("new-container.log").is_file());

    // The old image is still tagged: its own tags and the rollback tag.
    let plan: Value = serde_json::from_slice(&fs::read(run.join("plan.json")).unwrap()).unwrap();
    let tag = plan["rollback_tag"].as_str().unwrap();
    assert!(
        tag.starts_with(&format!(
            "{}/lightwave-sts:berth-rollback-",
            lw.scope.prefix
        )),
        "{tag}"
    );
    for r in [tag, fixtures::OLD, lw.image.as_str()] {
        let i = lw
            .d()
            .image_inspect(r)
            .await
            .unwrap_or_else(|e| panic!("{r}: {e}"));
        assert_eq!(i["Id"], lw.fx.old.id.as_str(), "{r}");
    }

    // The old container: removed, or (--keep-old) aside and stopped.
    let gone = lw.inspect(&lw.app_id).await;
    let aside = lw.aside().await;
    if keep_old {
        let c = gone.expect("--keep-old: the old container");
        assert_eq!(
            c["Name"].as_str().unwrap(),
            format!("/{}", plan["aside_name"].as_str().unwrap())
        );
        assert!(c["Name"].as_str().unwrap().contains("-berth-old-"));
        assert!(!running(&c), "the old container runs: {}", c["State"]);
        assert_eq!(c["Image"], lw.fx.old.id.as_str());
        assert_eq!(aside.len(), 1);
        let engine = support::engine::engine_downtime(&c, &new);
        assert!(
            (down - engine).abs() < 1e-6,
            "{down} s, the engine's {engine} s"
        );
    } else {
        assert!(gone.is_none(), "the old container was not removed");
        assert!(aside.is_empty());
    }
    // The data container and its volumes are untouched.
    let data = lw.inspect(&lw.data).await.expect("the data container");
    assert!(!running(&data));
    let s = berth(&["status", run.to_str().unwrap(), "--json"]);
    assert_eq!(s.json()[0]["outcome"], "upgraded", "{s}");
    assert_eq!(
        plan["settings"]["watch"],
        if keep_old {
            json!("logs")
        } else {
            json!({"exec": ["journalctl"]})
        }
    );

    // `berth rollback` afterwards: back to the kept old container and the
    // backup's data; without it, a clear refusal that changes nothing.
    let rb = berth(&["rollback", run.to_str().unwrap(), "--json"]);
    if keep_old {
        // Asked for and done: exit 0, the outcome says rolled back.
        assert_eq!(rb.code, Some(0), "{rb}");
        assert_eq!(rb.json()["outcome"], "rolled-back", "{rb}");
        assert_rolled_back(&lw, &before, "berth rollback after --keep-old").await;
        assert!(
            lw.inspect(new["Id"].as_str().unwrap()).await.is_none(),
            "the new container is still there"
        );
    } else {
        assert_eq!(rb.code, Some(1), "{rb}");
        assert!(rb.stderr.contains("nothing to roll back to"), "{rb}");
        assert_upgraded(&lw, "berth rollback without the old container").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn upgrade_6_6_to_6_7_keeps_config_volumes_and_migrates_data() {
    good_upgrade("up-good", false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn upgrade_keep_old_leaves_old_container_aside_and_stopped() {
    good_upgrade("up-keep-old", true).await;
}

// --------------------------------------------------- 2. a broken upgrade

#[tokio::test(flavor = "multi_thread")]
async fn broken_upgrade_rolls_back_image_and_data_exactly() {
    let lw = Lw::up("up-broken", Value::Null).await;
    let before = lw.snapshot().await;
    assert!(lw.read(MACHINE_SSL_KEY).await.is_some());
    let r = lw.upgrade(lw.broken(), &[]);
    assert_eq!(r.code, Some(3), "{r}");
    let s = r.json();
    assert_eq!(s["outcome"], "rolled-back", "{s}");
    assert_eq!(s["verdict"]["verdict"], "failure", "{s}");
    assert!(s["delta"]["entries"].as_u64().is_some(), "no pre-copy: {s}");
    assert!(
        s["cause"].as_str().unwrap_or("").contains("failure")
            || s["cause"].as_str().unwrap_or("").contains("failed"),
        "{s}"
    );
    let run = lw.run_dir();
    assert_rolled_back(&lw, &before, "broken upgrade").await;
    // Down from the old container's stop to its start again.
    let old = lw.inspect(&lw.app_id).await.expect("the old container");
    let engine = support::engine::engine_downtime(&old, &old);
    let down = s["downtime_s"].as_f64().expect("the rollback's downtime");
    assert!(
        (down - engine).abs() < 1e-6,
        "{down} s, the engine's {engine} s"
    );
    // The sim's damage is undone.
    assert_eq!(lw.read(DATA_MDB).await.unwrap(), before.data_mdb);
    assert!(
        lw.read(MACHINE_SSL_KEY).await.is_some(),
        "machine-ssl.key is missing"
    );
    assert!(
        lw.read(UPGRADE_PARTIAL).await.is_none(),
        "vdcupgrade.partial is still there"
    );
    // The new container said why, and berth kept its words.
    let log = fs::read_to_string(run.join("new-container.log")).unwrap();
    assert!(log.contains("Upgrade failed."), "{log}");
    let events = journal(&run);
    assert_eq!(events.last().unwrap()["outcome"], "rolled-back");
    for step in [
        "rollback",
        "remove-new",
        "restore",
        "rename-back",
        "start-old",
    ] {
        assert!(
            events
                .iter()
                .any(|e| e["step"] == step && e["phase"] == "done"),
            "no {step} done in the journal"
        );
    }
    // The new container is gone: only the appliance's two remain.
    let mut names: Vec<String> = lw
        .d()
        .container_list(&json!({"name": [lw.scope.prefix.clone()]}))
        .await
        .unwrap()
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec![lw.app.clone(), lw.data.clone()]);
    assert_no_secret(&run);
}

// ---------------------------------------- 3. SIGKILL at every boundary

#[derive(Clone, Copy)]
enum Image {
    Good,
    Broken,
}

async fn kill_and_resume(test: &str, image: Image, at: &str) {
    let t0 = Instant::now();
    let lw = Lw::up(test, Value::Null).await;
    let before = lw.snapshot().await;
    eprintln!("{at}: stood up in {:.1}s", t0.elapsed().as_secs_f64());
    let file = match image {
        Image::Good => lw.good().to_owned(),
        Image::Broken => lw.broken().to_owned(),
    };
    let r = lw.upgrade_env(&file, &[], &[("BERTH_TEST_KILL_AT", at)]);
    assert_eq!(r.signal, Some(9), "not killed at {at}: {r}");
    let run = lw.run_dir();
    let (step, phase) = at.split_once(':').unwrap();
    let last = journal(&run).last().cloned().unwrap();
    assert_eq!(
        (last["step"].as_str(), last["phase"].as_str()),
        (Some(step), Some(phase)),
        "the journal's last line"
    );
    assert!(journal_outcome(&run).is_none());
    let st = berth(&["status", run.to_str().unwrap(), "--json"]);
    assert!(st.json()[0]["outcome"].is_null(), "{st}");

    eprintln!("{at}: killed after {:.1}s", r.took.as_secs_f64());
    let res = berth(&["resume", run.to_str().unwrap(), "--json"]);
    eprintln!("{at}: resumed in {:.1}s", res.took.as_secs_f64());
    let outcome = res.json()["outcome"].as_str().unwrap_or("").to_owned();
    let want_code = match outcome.as_str() {
        "upgraded" => 0,
        "rolled-back" => 3,
        "aborted" => 1,
        _ => panic!("resume after a kill at {at}: no outcome: {res}"),
    };
    assert_eq!(res.code, Some(want_code), "resume after {at}: {res}");
    assert_eq!(journal_outcome(&run).as_deref(), Some(outcome.as_str()));
    let why = format!("killed at {at}, resumed as {outcome}");
    if outcome == "upgraded" {
        assert!(
            matches!(image, Image::Good),
            "{why}: the broken image counts as upgraded"
        );
        assert_upgraded(&lw, &why).await;
    } else {
        assert_rolled_back(&lw, &before, &why).await;
        if outcome == "rolled-back" {
            assert!(
                run.join("backup/manifest.json").exists(),
                "{why}: no backup"
            );
        }
    }
    // Resuming an ended run changes nothing and says so.
    let again = berth(&["resume", run.to_str().unwrap(), "--json"]);
    assert_eq!(again.code, Some(want_code), "{again}");
    assert_eq!(again.json()["outcome"], outcome.as_str());
}

macro_rules! kill_matrix {
    ($($name:ident: $image:ident $at:literal;)*) => {$(
        #[tokio::test(flavor = "multi_thread")]
        async fn $name() {
            kill_and_resume(
                &stringify!($name).replace("kill_at_", "k-"),
                Image::$image,
                $at,
            )
            .await;
        }
    )*};
}

kill_matrix! {
    kill_at_tag_old_begin: Good "tag-old:begin";
    kill_at_tag_old_done: Good "tag-old:done";
    kill_at_pre_copy_begin: Good "pre-copy:begin";
    kill_at_pre_copy_done: Good "pre-copy:done";
    kill_at_stop_begin: Good "stop:begin";
    kill_at_stop_done: Good "stop:done";
    kill_at_backup_begin: Good "backup:begin";
    kill_at_backup_done: Good "backup:done";
    kill_at_verify_begin: Good "verify:begin";
    kill_at_verify_done: Good "verify:done";
    kill_at_load_begin: Good "load:begin";
    kill_at_load_done: Good "load:done";
    kill_at_rename_old_begin: Good "rename-old:begin";
    kill_at_rename_old_done: Good "rename-old:done";
    kill_at_create_new_begin: Good "create-new:begin";
    kill_at_create_new_done: Good "create-new:done";
    kill_at_write_config_begin: Good "write-config:begin";
    kill_at_write_config_done: Good "write-config:done";
    kill_at_start_new_begin: Good "start-new:begin";
    kill_at_start_new_done: Good "start-new:done";
    kill_at_watch_begin: Good "watch:begin";
    kill_at_watch_done: Good "watch:done";
    kill_at_finish_begin: Good "finish:begin";
    kill_at_finish_done: Good "finish:done";
    kill_broken_at_watch_begin: Broken "watch:begin";
    kill_broken_at_remove_new_begin: Broken "remove-new:begin";
    kill_broken_at_remove_config_done: Broken "remove-config:done";
    kill_broken_at_restore_begin: Broken "restore:begin";
    kill_broken_at_rename_back_begin: Broken "rename-back:begin";
    kill_broken_at_start_old_begin: Broken "start-old:begin";
}

/// Crashed after the engine created the new container but before the
/// journal said so: resume finds it by name and image, removes it.
#[tokio::test(flavor = "multi_thread")]
async fn crash_between_create_and_its_journal_line() {
    let lw = Lw::up("up-crash-create", Value::Null).await;
    let before = lw.snapshot().await;
    let r = lw.upgrade_env(
        lw.good(),
        &[],
        &[("BERTH_TEST_KILL_AT", "create-new:begin")],
    );
    assert_eq!(r.signal, Some(9), "{r}");
    let run = lw.run_dir();
    let plan: Value = serde_json::from_slice(&fs::read(run.join("plan.json")).unwrap()).unwrap();
    // What berth was about to do.
    let stray = lw
        .d()
        .container_create(&lw.app, &plan["create"])
        .await
        .unwrap();
    let res = berth(&["resume", run.to_str().unwrap(), "--json"]);
    assert_eq!(res.json()["outcome"], "aborted", "{res}");
    assert_eq!(res.code, Some(1), "{res}");
    assert!(
        lw.inspect(&stray).await.is_none(),
        "the new container was left"
    );
    assert_rolled_back(&lw, &before, "crash after create").await;
}

/// Crashed after the new container started but before the journal said
/// so; the new version migrated the data meanwhile. Resume must not trust
/// it: the data is restored exactly.
#[tokio::test(flavor = "multi_thread")]
async fn crash_between_start_and_its_journal_line_restores_migrated_data() {
    let lw = Lw::up("up-crash-start", Value::Null).await;
    let before = lw.snapshot().await;
    let r = lw.upgrade_env(lw.good(), &[], &[("BERTH_TEST_KILL_AT", "start-new:begin")]);
    assert_eq!(r.signal, Some(9), "{r}");
    let run = lw.run_dir();
    let new = journal(&run)
        .iter()
        .find(|e| e["step"] == "create-new" && e["phase"] == "done")
        .and_then(|e| e["data"]["id"].as_str().map(String::from))
        .expect("the new container's id in the journal");
    lw.d().container_start(&new).await.unwrap();
    appliance::wait_for_line(lw.d(), &new, "Upgrade complete.", Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(lw.installed_version().await.as_deref(), Some("6.7.0"));
    let res = berth(&["resume", run.to_str().unwrap(), "--json"]);
    assert_eq!(res.code, Some(3), "{res}");
    assert_eq!(res.json()["outcome"], "rolled-back", "{res}");
    assert!(
        lw.inspect(&new).await.is_none(),
        "the new container was left"
    );
    assert_rolled_back(&lw, &before, "crash after start").await;
}

// ----------------------------------------------------------- 4. bad input

#[tokio::test(flavor = "multi_thread")]
async fn bad_image_files_and_checksum_change_nothing() {
    let lw = Lw::up("up-bad-file", Value::Null).await;
    let before = lw.snapshot().await;
    let dir = lw.scope.dir("bad");

    // Random bytes.
    let random = dir.join("random.tar");
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let bytes: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    fs::write(&random, bytes).unwrap();
    // A valid tar that is not an image.
    let notimage = dir.join("not-an-image.tar");
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(6);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "hello.txt", &b"hello\n"[..]).unwrap();
    fs::write(&notimage, b.into_inner().unwrap()).unwrap();

    for f in [&random, &notimage] {
        let r = lw.upgrade(f, &[]);
        assert!(matches!(r.code, Some(1 | 2)), "{}: {r}", f.display());
        let msg = r.json()["error"].as_str().unwrap_or("").to_owned();
        assert!(
            msg.contains(f.to_str().unwrap()) && msg.contains("not a docker save image tarball"),
            "unclear message: {r}"
        );
        assert!(r.stderr.contains("not a docker save image tarball"), "{r}");
        assert_untouched(&lw, &before, &format!("{}", f.display())).await;
    }
    // A missing file.
    let r = lw.upgrade(&dir.join("nope.tar"), &[]);
    assert_eq!(r.code, Some(2), "{r}");
    assert!(r.stderr.contains("nope.tar"), "{r}");

    // The right image with the wrong checksum.
    let r = lw.upgrade(lw.good(), &["--sha256", &"0".repeat(64)]);
    assert_eq!(r.code, Some(2), "{r}");
    assert!(r.stderr.contains("sha256"), "{r}");
    assert_untouched(&lw, &before, "--sha256 mismatch").await;
    assert!(lw.run_dirs().is_empty(), "{:?}", lw.run_dirs());
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_container_fails_with_exit_1() {
    let scope = Scope::new("up-missing").await;
    let fx = fixtures::ensure(&scope.docker).await;
    let root = scope.dir("runs");
    let name = scope.name("nobody");
    let r = berth(&[
        "upgrade",
        &name,
        "--image-file",
        fx.good_tarballs.tar.to_str().unwrap(),
        "--backup-root",
        root.to_str().unwrap(),
    ]);
    assert_eq!(r.code, Some(1), "{r}");
    assert!(r.stderr.contains(&name), "{r}");
    assert_eq!(fs::read_dir(&root).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn container_without_volumes_fails_with_exit_1() {
    let scope = Scope::new("up-novol").await;
    let d = scope.docker.clone();
    let fx = fixtures::ensure(&d).await;
    let bb = busybox(&d).await;
    let name = scope
        .run(
            "bb",
            json!({"Image": bb, "Cmd": ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done"]}),
        )
        .await;
    let id = d.container_inspect_raw(&name).await.unwrap()["Id"].clone();
    let root = scope.dir("runs");
    let r = berth(&[
        "upgrade",
        &name,
        "--image-file",
        fx.good_tarballs.tar.to_str().unwrap(),
        "--backup-root",
        root.to_str().unwrap(),
    ]);
    assert_eq!(r.code, Some(1), "{r}");
    assert!(r.stderr.contains("no volumes"), "{r}");
    let c = d.container_inspect_raw(&name).await.unwrap();
    assert_eq!(c["Id"], id);
    assert!(running(&c));
    assert_eq!(fs::read_dir(&root).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_success_line_before_timeout_rolls_back() {
    let lw = Lw::up("up-timeout", Value::Null).await;
    let before = lw.snapshot().await;
    let r = lw.upgrade(lw.good(), &["--success", "never-said", "--timeout", "5s"]);
    assert_eq!(r.code, Some(3), "{r}");
    let s = r.json();
    assert_eq!(s["outcome"], "rolled-back");
    assert!(
        s["cause"].as_str().unwrap_or("").contains("within 5s"),
        "{s}"
    );
    assert!(r.took >= Duration::from_secs(5), "{r}");
    // The new version did migrate the data: the rollback put it back.
    assert_rolled_back(&lw, &before, "timeout").await;
}

/// Start an upgrade to the broken image in the background and wait until
/// its journal shows `start-new` (the old container is renamed aside by
/// then, the new one holds the name); returns it and its run directory.
fn first_upgrade_until_start_new(lw: &Lw) -> (std::process::Child, PathBuf, Instant) {
    let mut first = Command::new(BERTH)
        .args([
            "upgrade",
            &lw.app,
            "--image-file",
            lw.broken().to_str().unwrap(),
            "--profile",
            "lightwave",
            "--config-file",
            lw.config_src.to_str().unwrap(),
            "--backup-root",
            lw.root.to_str().unwrap(),
            "--timeout",
            "30s",
            "--json",
        ])
        .env_remove("BERTH_TEST_KILL_AT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    let run = loop {
        let started = lw.run_dirs().into_iter().find(|r| {
            journal(r)
                .iter()
                .any(|e| e["step"] == "start-new" && e["phase"] == "begin")
        });
        if started.is_some() || t.elapsed() > Duration::from_secs(20) {
            break started;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    match run {
        Some(r) => (first, r, t),
        None => {
            let _ = first.kill();
            let out = first.wait_with_output().unwrap();
            panic!(
                "the first berth never reached start-new: {}",
                Run::from(out, t.elapsed())
            )
        }
    }
}

fn assert_locked_out(r: &Run, name: &str) {
    assert_eq!(r.code, Some(1), "{r}");
    assert!(
        r.stderr
            .contains(&format!("another berth is working on container {name}")),
        "{r}"
    );
    assert!(r.took < Duration::from_secs(3), "not at once: {r}");
}

#[tokio::test(flavor = "multi_thread")]
async fn second_berth_on_the_same_container_is_refused_at_once() {
    let lw = Lw::up("up-lock", Value::Null).await;
    let before = lw.snapshot().await;
    let (first, run, t) = first_upgrade_until_start_new(&lw);
    let second = lw.upgrade(lw.good(), &[]);
    let resume = berth(&["resume", run.to_str().unwrap()]);
    let rollback = berth(&["rollback", run.to_str().unwrap()]);
    let first = Run::from(first.wait_with_output().unwrap(), t.elapsed());
    lw.track_rollback_tags();
    for r in [&second, &resume, &rollback] {
        assert_locked_out(r, &lw.app);
    }
    assert_eq!(lw.run_dirs(), vec![run.clone()], "the second one planned");
    // The first one was not disturbed: it rolled back, verified.
    assert_eq!(first.code, Some(3), "{first}");
    assert_eq!(first.json()["outcome"], "rolled-back");
    assert_rolled_back(&lw, &before, "first berth").await;
}

/// The old container given by its id while the first berth has renamed it
/// aside: the same container, so the same lock. Run with --dry-run so that
/// the bug (the lock is keyed by the name the container has at that
/// moment) shows without damage; without --dry-run the second upgrade runs
/// on the same volumes, the first one's rollback ends in exit 4 and no
/// container holds the appliance's name.
#[tokio::test(flavor = "multi_thread")]
async fn second_berth_by_container_id_is_refused_while_renamed_aside() {
    let lw = Lw::up("up-lock-id", Value::Null).await;
    let before = lw.snapshot().await;
    let (first, run, t) = first_upgrade_until_start_new(&lw);
    let by_id = berth(&[
        "upgrade",
        &lw.app_id,
        "--image-file",
        lw.good().to_str().unwrap(),
        "--backup-root",
        lw.root.to_str().unwrap(),
        "--dry-run",
        "--json",
    ]);
    let first = Run::from(first.wait_with_output().unwrap(), t.elapsed());
    lw.track_rollback_tags();
    assert_eq!(first.code, Some(3), "{first}");
    assert_locked_out(&by_id, &lw.app);
    assert_eq!(lw.run_dirs(), vec![run.clone()]);
    assert_rolled_back(&lw, &before, "first berth").await;
}

// -------------------------------------------------------------- 5. dry run

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_prints_the_plan_and_changes_nothing() {
    let lw = Lw::up("up-dry", Value::Null).await;
    let before = lw.snapshot().await;
    let r = lw.upgrade(lw.good(), &["--dry-run"]);
    assert_eq!(r.code, Some(0), "{r}");
    let s = r.json();
    assert!(s["outcome"].is_null(), "{s}");
    let p = &s["plan"];
    assert_eq!(p["container"], lw.app.as_str(), "{s}");
    assert_eq!(p["container_id"], lw.app_id.as_str());
    assert_eq!(p["old_image_id"], lw.fx.old.id.as_str());
    assert_eq!(p["new_image_id"], lw.fx.good.id.as_str());
    assert_eq!(p["new_image_ref"], fixtures::GOOD);
    assert_eq!(p["paths"], json!(DATA_PATHS));
    assert_eq!(
        p["config_dest"],
        lw.config_file().to_str().unwrap(),
        "the config file goes through the bind mount"
    );
    let run_dir = PathBuf::from(p["run_dir"].as_str().unwrap());
    assert!(!run_dir.exists(), "{} was written", run_dir.display());
    assert!(lw.run_dirs().is_empty(), "{:?}", lw.run_dirs());
    assert_untouched(&lw, &before, "--dry-run").await;
    let tag = p["rollback_tag"].as_str().unwrap();
    assert!(
        lw.d().image_inspect(tag).await.is_err(),
        "{tag} was tagged by a dry run"
    );
    assert!(!r.stdout.contains(PASSWORD));
}

// ------------------------------------------------- 6. profile precedence

#[tokio::test(flavor = "multi_thread")]
async fn labels_override_the_profile_and_flags_override_labels() {
    let labels = json!({"berth.timeout": "7s", "berth.success": "never-said"});
    let lw = Lw::up("up-labels", labels.clone()).await;
    let before = lw.snapshot().await;
    // The labels' success pattern and timeout win over --profile lightwave
    // (whose timeout is 600 s): no word for 7 s, rolled back.
    let r = lw.upgrade(lw.good(), &[]);
    assert_eq!(r.code, Some(3), "{r}");
    let s = r.json();
    assert!(
        s["cause"].as_str().unwrap_or("").contains("within 7s"),
        "{s}"
    );
    assert!(
        r.took >= Duration::from_secs(7) && r.took < Duration::from_secs(60),
        "{r}"
    );
    let plan: Value =
        serde_json::from_slice(&fs::read(lw.run_dir().join("plan.json")).unwrap()).unwrap();
    assert_eq!(plan["settings"]["timeout_s"], 7);
    assert_eq!(plan["settings"]["success"], json!(["never-said"]));
    assert_eq!(
        plan["settings"]["watch"],
        json!({"exec": ["journalctl"]}),
        "what the labels do not say comes from the profile"
    );
    assert_rolled_back(&lw, &before, "labels").await;

    // A flag wins over the label.
    let first = lw.run_dir();
    let r = lw.upgrade(lw.good(), &["--success", r"Upgrade complete\."]);
    assert_eq!(r.code, Some(0), "{r}");
    assert!(r.took < Duration::from_secs(7), "{r}");
    let second: Vec<PathBuf> = lw.run_dirs().into_iter().filter(|d| *d != first).collect();
    assert_eq!(second.len(), 1);
    let plan: Value =
        serde_json::from_slice(&fs::read(second[0].join("plan.json")).unwrap()).unwrap();
    assert_eq!(plan["settings"]["success"], json!([r"Upgrade complete\."]));
    assert_eq!(plan["settings"]["timeout_s"], 7);
    let c = lw.inspect(&lw.app).await.unwrap();
    assert_eq!(c["Image"], lw.fx.good.id.as_str());
    assert_eq!(
        c["Config"]["Labels"]["berth.timeout"], "7s",
        "the labels stay"
    );
    assert_eq!(lw.installed_version().await.as_deref(), Some("6.7.0"));
    assert!(!lw.config_file().exists());
}

/// A writer in the data while the pre-copy runs: appends, same-size
/// overwrites in place with their mtime set back, renames, deletions,
/// mode and owner changes, a file that becomes a directory and back, hard
/// links. It runs until the container stops (an exec'd process dies with
/// it). Busybox is put into the app for it (the appliance has no shell).
const WRITER: &str = r#"B=/busybox
W=/var/lib/vmware/w
$B mkdir -p $W && cd $W && $B echo 0 > ref && $B printf 00000000 > same
i=0
while :; do
  i=$((i + 1))
  $B echo $i >> log
  $B printf '%08d' $i | $B dd of=same conv=notrunc 2>/dev/null
  $B touch -r ref same
  [ -e cur ] && $B mv cur prev
  $B echo $i > cur
  $B chmod $((i % 2 * 44 + 600)) cur
  $B rm -rf gone.$((i - 2))
  $B echo x > gone.$i
  [ -e prev ] && $B chown $((i % 3)):$((i % 3)) prev
  $B rm -rf flip
  if [ $((i % 2)) = 0 ]; then $B mkdir flip && $B echo d > flip/in; else $B echo f > flip; fi
  $B ln -f cur link
  $B usleep 20000
done"#;

/// A `--precopy-max-delta` no delta of the writer's reaches.
const ROOMY_DELTA: &str = "1000000000";

/// The pre-copy with a writer busy in the data: berth is killed right
/// after its backup (the app stopped, nothing renamed yet), so the test
/// reads the stopped state itself. The backup's final index must equal
/// it, the pre-copy's must not, and a restore of the backup (the
/// pre-copy, less the removals, then the delta) must write exactly it.
#[tokio::test(flavor = "multi_thread")]
async fn precopy_backup_is_the_stopped_state_while_a_writer_runs() {
    let lw = Lw::up("precopy-writer", Value::Null).await;
    let writer = start_writer(&lw).await;

    // The volumes hold a few KiB, all written within the second before the
    // pre-copy, so the delta carries about all of it: the default limit
    // (half the pre-copy) would fall back or not by the writer's luck.
    let r = lw.upgrade_env(
        lw.good(),
        &["--precopy-max-delta", ROOMY_DELTA],
        &[("BERTH_TEST_KILL_AT", "backup:done")],
    );
    assert_eq!(r.signal, Some(9), "not killed after the backup: {r}");
    // Killed with the container (137), never finished on its own.
    let wrote = writer.await.unwrap().unwrap();
    assert_eq!(
        wrote.exit_code,
        137,
        "the writer: {:?}",
        String::from_utf8_lossy(&wrote.stderr)
    );
    let run = lw.run_dir();
    assert!(journal_has(&run, "pre-copy", "done"), "no pre-copy: {r}");
    let stopped = lw.indexes().await;
    let app = lw.inspect(&lw.app).await.expect("the app");
    assert!(!running(&app), "the app runs after the backup");

    let backup = run.join("backup");
    let m = Manifest::load(&backup).unwrap();
    assert_eq!(m.schema, 5, "the pre-copy was not used: {r}");
    let vm = m.entry("/var/lib/vmware").expect("the writer's path");
    let delta = vm.delta.as_ref().expect("a delta");
    assert!(
        delta.changes.entries > 0 && delta.removed_count > 0,
        "{delta:?}"
    );
    for p in &m.paths {
        let (name, _) = p.state_index();
        let fin = read_index(BufReader::new(flate2::read::GzDecoder::new(
            fs::File::open(backup.join(name)).unwrap(),
        )))
        .unwrap();
        let diffs = compare(&stopped[&p.path], &fin);
        assert!(
            diffs.is_empty(),
            "{}: final index vs the stopped volume:\n{}",
            p.path,
            diffs_text(&diffs)
        );
    }
    let pre = read_index(BufReader::new(flate2::read::GzDecoder::new(
        fs::File::open(backup.join(&vm.index)).unwrap(),
    )))
    .unwrap();
    assert!(
        !compare(&stopped["/var/lib/vmware"], &pre).is_empty(),
        "the writer changed nothing after the pre-copy began"
    );

    // Resume puts the old version back; then a restore of the backup.
    let res = berth(&["resume", run.to_str().unwrap(), "--json"]);
    assert_eq!(res.json()["outcome"], "aborted", "{res}");
    assert!(
        !run.join("precopy").exists(),
        "the pre-copy's directory is left"
    );
    lw.d().container_stop(&lw.app, 10).await.unwrap();
    let rs = berth(&["restore", backup.to_str().unwrap(), "--json"]);
    assert_eq!(rs.code, Some(0), "{rs}");
    let restored = lw.indexes().await;
    for (path, want) in &stopped {
        let diffs = compare(want, &restored[path]);
        assert!(diffs.is_empty(), "{path} restored:\n{}", diffs_text(&diffs));
    }

    // A delta that disagrees with the final index, or removes a path
    // outside the volume, with every checksum made to match: refused
    // before anything is written (the volume keeps what it has).
    let vmdir = "/var/lib/vmware";
    let removed = backup.join(&delta.removed);
    let escape = [fs::read(&removed).unwrap(), b"vmware/../../etc\0".to_vec()].concat();
    let fin = backup.join(&delta.final_index);
    let fewer: Vec<u8> = {
        let mut text = String::new();
        flate2::read::GzDecoder::new(fs::File::open(&fin).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| !l.contains("vmware/w/log"))
            .collect();
        let mut gz = flate2::write::GzEncoder::new(vec![], flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, (kept.join("\n") + "\n").as_bytes()).unwrap();
        gz.finish().unwrap()
    };
    for (case, file, bytes, why) in [
        ("escape", &removed, escape, "component"),
        ("final", &fin, fewer, "do not give this final state"),
    ] {
        let copy = lw.root.join(format!("tampered-{case}"));
        let _ = fs::remove_dir_all(&copy);
        fs::create_dir_all(&copy).unwrap();
        for f in fs::read_dir(&backup).unwrap() {
            let f = f.unwrap().path();
            fs::copy(&f, copy.join(f.file_name().unwrap())).unwrap();
        }
        rewrite_consistently(
            &copy,
            file.file_name().unwrap().to_str().unwrap(),
            &bytes,
            case == "escape",
        );
        let v = berth(&["verify", "--deep", copy.to_str().unwrap()]);
        assert_eq!(v.code, Some(5), "{case}: {v}");
        assert!(v.stderr.contains(why), "{case}: {v}");
        let before = lw.indexes().await;
        let rs = berth(&["restore", copy.to_str().unwrap()]);
        assert_ne!(rs.code, Some(0), "{case}: {rs}");
        assert!(rs.stderr.contains("nothing was written"), "{case}: {rs}");
        assert!(
            compare(&before[vmdir], &lw.indexes().await[vmdir]).is_empty(),
            "{case}: written"
        );
    }

    // A broken upgrade with the writer busy again: the rollback puts back
    // the backup's final state (proven above to be the stopped one), not
    // the pre-copy's.
    lw.d().container_start(&lw.app).await.unwrap();
    let writer = start_writer(&lw).await;
    let r = lw.upgrade(lw.broken(), &["--precopy-max-delta", ROOMY_DELTA]);
    assert_eq!(r.code, Some(3), "{r}");
    assert!(
        r.json()["delta"]["entries"].as_u64().is_some_and(|n| n > 0),
        "{r}"
    );
    let _ = writer.await;
    let second = lw
        .run_dirs()
        .into_iter()
        .find(|d| *d != run)
        .expect("the second run");
    let m = Manifest::load(&second.join("backup")).unwrap();
    let rolled_back = lw.indexes().await;
    for p in &m.paths {
        let fin = read_index(BufReader::new(flate2::read::GzDecoder::new(
            fs::File::open(second.join("backup").join(p.state_index().0)).unwrap(),
        )))
        .unwrap();
        let diffs = compare(&fin, &rolled_back[&p.path]);
        assert!(
            diffs.is_empty(),
            "{} after the rollback:\n{}",
            p.path,
            diffs_text(&diffs)
        );
    }
}

/// Busybox into the app (its rootfs, not a volume) and [`WRITER`] exec'd
/// in it, running until the app stops.
async fn start_writer(
    lw: &Lw,
) -> tokio::task::JoinHandle<berth::error::Result<berth::docker::exec::ExecOutput>> {
    let d = lw.d().clone();
    let bin = fs::read("/bin/busybox").expect("busybox-static");
    let mut fsys = support::images::RootFs::new();
    fsys.file("busybox", &bin, 0o755);
    d.archive_put(&lw.app, "/", berth::docker::body::full(fsys.finish()))
        .await
        .unwrap();
    let app = lw.app.clone();
    let cmd: Vec<String> = ["/busybox", "sh", "-c", WRITER].map(String::from).to_vec();
    let writer = tokio::spawn(async move { d.exec_run(&app, &cmd).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    writer
}

/// Replace `name` in backup `dir` with `bytes` and make the manifest and
/// SHA256SUMS agree with it (one more removed name when `one_more`).
fn rewrite_consistently(dir: &Path, name: &str, bytes: &[u8], one_more: bool) {
    use sha2::Digest;
    let hex = |b: &[u8]| format!("{:x}", sha2::Sha256::digest(b));
    fs::write(dir.join(name), bytes).unwrap();
    let mtext = fs::read_to_string(dir.join("manifest.json")).unwrap();
    let mut m: Value = serde_json::from_str(&mtext).unwrap();
    for p in m["paths"].as_array_mut().unwrap() {
        let d = &mut p["delta"];
        for field in ["removed", "final_index"] {
            if d[field] == name {
                d[format!("{field}_sha256")] = json!(hex(bytes));
                d[format!("{field}_bytes")] = json!(bytes.len());
            }
        }
        if d["removed"] == name && one_more {
            d["removed_count"] = json!(d["removed_count"].as_u64().unwrap() + 1);
        }
    }
    let mbytes = serde_json::to_vec_pretty(&m).unwrap();
    let sums: String = fs::read_to_string(dir.join("SHA256SUMS"))
        .unwrap()
        .lines()
        .map(|l| match l.split_once("  ") {
            Some((_, n)) if n == name => format!("{}  {n}\n", hex(bytes)),
            Some((_, n)) if n == "manifest.json" => format!("{}  {n}\n", hex(&mbytes)),
            _ => format!("{l}\n"),
        })
        .collect();
    fs::write(dir.join("manifest.json"), mbytes).unwrap();
    fs::write(dir.join("SHA256SUMS"), sums).unwrap();
}

/// More changed during the pre-copy than `--precopy-max-delta` allows
/// (counted by the helper before the stop): one line says so and the
/// whole backup is taken while stopped; the upgrade goes on.
#[tokio::test(flavor = "multi_thread")]
async fn precopy_falls_back_when_more_changed_than_allowed() {
    let lw = Lw::up("precopy-max", Value::Null).await;
    let writer = start_writer(&lw).await;
    let r = lw.upgrade(lw.good(), &["--precopy-max-delta", "0"]);
    let _ = writer.await;
    assert_eq!(r.code, Some(0), "{r}");
    let s = r.json();
    assert!(s["delta"].is_null(), "{s}");
    let run = lw.run_dir();
    assert!(journal_has(&run, "pre-copy", "done"), "{r}");
    assert_eq!(Manifest::load(&run.join("backup")).unwrap().schema, 4);
    assert!(!run.join("precopy").exists());
    assert_upgraded(&lw, "fell back from the pre-copy").await;
}
