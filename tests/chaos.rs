//! Real-engine chaos during upgrades and backups: the engine restarted in
//! the middle of an upgrade (on an engine the test owns), the disk filling
//! during a backup (a small tmpfs), the new container crash-looping under a
//! restart policy, the old container removed by someone else mid-upgrade.
//!
//! The rule every test checks: one clear message and a non-zero exit, and
//! nothing lost. Each test asserts the end state on the engine and the host
//! (which container runs under the name, on which image; every data path
//! read back and compared entry for entry with the state before and with
//! the backup; the config file with the password gone), not messages alone.
//!
//! Moments are picked by watching berth's progress (journal lines, the
//! backup's files growing), never by blind sleeps.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::io::BufReader;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth::archive::index::{compare, read_index, IndexEntry};
use berth::docker::{body, Docker};
use berth::manifest::Manifest;
use serde_json::{json, Value};
use support::appliance::{self, Appliance, CONFIG_NAME};
use support::cli::Run;
use support::dockerd::Dockerd;
use support::engine::Scope;
use support::fixtures::{self, Fixtures, DATA_PATHS};
use support::journal::{journal, journal_has, journal_outcome};
use support::stage::{self, stage};
use support::tmpfs::Tmpfs;

const BERTH: &str = env!("CARGO_BIN_EXE_berth");
/// How long berth may take to give up once the engine is gone.
const GIVE_UP: Duration = Duration::from_secs(30);
/// How long a step of berth may take to show up in its journal or files.
const PROGRESS: Duration = Duration::from_secs(60);

// ------------------------------------------------------------------ the CLI

fn berth_cmd(args: &[String]) -> Command {
    let mut c = Command::new(BERTH);
    c.args(args).env_remove("BERTH_TEST_KILL_AT");
    c
}

fn berth(args: &[String]) -> Run {
    let t = Instant::now();
    let out = berth_cmd(args).output().expect("running berth");
    Run::from(out, t.elapsed())
}

/// A berth started in the background, killed if the test panics first.
struct Bg {
    child: Option<Child>,
    t: Instant,
}

impl Bg {
    fn spawn(args: &[String], env: &[(&str, &str)]) -> Bg {
        let mut c = berth_cmd(args);
        for (k, v) in env {
            c.env(k, v);
        }
        let child = c
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting berth");
        Bg {
            child: Some(child),
            t: Instant::now(),
        }
    }

    fn running(&mut self) -> bool {
        let c = self.child.as_mut().expect("not waited yet");
        matches!(c.try_wait(), Ok(None))
    }

    /// Wait at most `limit` for berth to exit: a berth that hangs fails
    /// the test (after being killed, so its output can be shown).
    fn wait(mut self, limit: Duration) -> Run {
        let deadline = Instant::now() + limit;
        let mut hung = false;
        while self.running() {
            if Instant::now() > deadline {
                hung = true;
                let _ = self.child.as_mut().unwrap().kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = self.child.take().unwrap().wait_with_output().unwrap();
        let r = Run::from(out, self.t.elapsed());
        assert!(!hung, "berth hung (killed after {limit:?}): {r}");
        r
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Poll `what` every 10 ms until it gives a value; panics after `limit`.
fn until<T>(why: &str, limit: Duration, mut what: impl FnMut() -> Option<T>) -> T {
    let t = Instant::now();
    loop {
        if let Some(v) = what() {
            return v;
        }
        assert!(t.elapsed() < limit, "{why}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ------------------------------------------------------------ the appliance

/// The reference appliance of one test on its own image reference (so the
/// rollback tags berth makes are per test), and its upgrade's settings.
struct Lw {
    fx: Fixtures,
    a: Appliance,
    /// The app container's id as stood up.
    id: String,
    /// `--config-file` (the password berth puts in place).
    config_src: PathBuf,
    /// `--backup-root`.
    root: PathBuf,
    // Last: dropped (containers removed) after everything above.
    scope: Scope,
}

impl Lw {
    async fn up(scope: Scope) -> Lw {
        let s = stage().privileged_if_possible().up(&scope).await;
        Lw {
            fx: s.fx,
            a: s.lw,
            id: s.app_id,
            config_src: s.config_src,
            root: s.root,
            scope,
        }
    }

    /// The upgrade's surroundings for an appliance that is up.
    async fn with(scope: Scope, fx: Fixtures, a: Appliance) -> Lw {
        let id = scope.docker.container_inspect_raw(&a.app).await.unwrap()["Id"]
            .as_str()
            .unwrap()
            .to_owned();
        let src = scope.dir("secret").join(CONFIG_NAME);
        fs::write(&src, appliance::config_text("standalone")).unwrap();
        fs::set_permissions(&src, fs::Permissions::from_mode(0o600)).unwrap();
        let root = scope.dir("runs");
        Lw {
            fx,
            a,
            id,
            config_src: src,
            root,
            scope,
        }
    }

    /// The appliance with its data in volumes of its own instead of a data
    /// container's: named (`-v NAME:PATH`) or anonymous (`-v PATH`).
    /// `a.data` is the container to read them through: for named volumes
    /// one that is never started and mounts them too; for anonymous ones
    /// the app itself (a second user would keep `rm -v` from removing them).
    async fn up_own_volumes(scope: Scope, named: bool) -> Lw {
        let d = scope.docker.clone();
        let fx = fixtures::ensure(&d).await;
        let repo = format!("{}/lightwave-sts", scope.prefix);
        d.image_tag(&fx.old.id, &repo, "6.6.0").await.unwrap();
        let image = format!("{repo}:6.6.0");
        scope.track_image(&image);
        let config_dir = scope.dir("lw-config");
        let config_file =
            appliance::write_config_file(&config_dir, &appliance::config_text("standalone"));
        let mut binds: Vec<String> = vec![];
        if named {
            for p in DATA_PATHS {
                let v = scope.name(&format!("vol{}", p.replace('/', "-")));
                scope.track_volume(&v);
                binds.push(format!("{v}:{p}"));
            }
        }
        let mut app = appliance::app_config(&image, "", &config_dir, false);
        let reader = if named {
            let mut r = appliance::data_config(&image);
            r["HostConfig"] = json!({ "Binds": binds });
            Some(scope.create("reader", r).await)
        } else {
            app["Volumes"] = appliance::data_config(&image)["Volumes"].clone();
            None
        };
        binds.push(format!(
            "{}:{}",
            config_dir.display(),
            appliance::CONFIG_MOUNT
        ));
        app["HostConfig"]["VolumesFrom"] = json!([]);
        app["HostConfig"]["Binds"] = json!(binds);
        let name = scope.run("lw", app).await;
        appliance::wait_for_lines(
            &d,
            &name,
            &[appliance::SETUP_COMPLETE, appliance::STARTED],
            appliance::SETUP_TIMEOUT,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        fs::remove_file(&config_file).unwrap();
        let a = Appliance {
            data: reader.unwrap_or_else(|| name.clone()),
            app: name,
            config_dir,
            config_file,
            image,
            privileged: false,
        };
        Lw::with(scope, fx, a).await
    }

    fn d(&self) -> &Docker {
        &self.scope.docker
    }

    fn host(&self) -> String {
        format!("unix://{}", self.d().socket().display())
    }

    /// `berth upgrade APP --image-file F --profile lightwave --config-file
    /// SRC --backup-root ROOT --host H --json EXTRA...`
    fn upgrade_args(&self, file: &Path, extra: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = [
            "upgrade",
            &self.a.app,
            "--image-file",
            file.to_str().unwrap(),
            "--profile",
            "lightwave",
            "--config-file",
            self.config_src.to_str().unwrap(),
            "--backup-root",
            self.root.to_str().unwrap(),
            "--host",
            &self.host(),
            "--json",
        ]
        .map(String::from)
        .to_vec();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    }

    /// `berth CMD RUN_DIR --host H --json`.
    fn on_run(&self, cmd: &str, run: &Path) -> Run {
        let r = berth(&[
            cmd.into(),
            run.to_str().unwrap().into(),
            "--host".into(),
            self.host(),
            "--json".into(),
        ]);
        self.track_rollback_tags();
        r
    }

    /// The rollback tags berth made (from the plans): removed with the scope.
    fn track_rollback_tags(&self) {
        stage::track_rollback_tags(&self.scope, &self.root);
    }

    fn run_dirs(&self) -> Vec<PathBuf> {
        stage::run_dirs(&self.root)
    }

    /// The run directory of the one upgrade, once it exists.
    fn run_dir(&self) -> PathBuf {
        until("the run directory", PROGRESS, || {
            self.run_dirs().into_iter().next()
        })
    }

    /// Wait until the run's journal has `step` `phase`.
    fn wait_journal(&self, bg: &mut Bg, step: &str, phase: &str) -> PathBuf {
        let run = self.run_dir();
        until(&format!("{step}:{phase} in the journal"), PROGRESS, || {
            assert!(bg.running(), "berth ended before {step}:{phase}");
            journal_has(&run, step, phase).then_some(())
        });
        run
    }

    async fn inspect(&self, name: &str) -> Option<Value> {
        match self.d().container_inspect_raw(name).await {
            Ok(v) => Some(v),
            Err(e) if e.is_not_found() => None,
            Err(e) => panic!("{e}"),
        }
    }

    /// The content index of every data path, read through the data
    /// container (it outlives the app container whatever happens to it),
    /// the config directory's mountpoint left out as berth does.
    async fn indexes(&self) -> BTreeMap<String, Vec<IndexEntry>> {
        appliance::data_indexes(self.d(), &self.a.data).await
    }

    /// Put a file of `mb` MiB of incompressible bytes into the volumes, so
    /// that a backup or a restore lasts long enough to be interrupted.
    async fn add_bulk(&self, mb: usize) {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut data = Vec::with_capacity(mb << 20);
        while data.len() < mb << 20 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            data.extend_from_slice(&x.to_le_bytes());
        }
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o600);
        h.set_cksum();
        let mut b = tar::Builder::new(vec![]);
        b.append_data(&mut h, "bulk.bin", data.as_slice()).unwrap();
        let tar = b.into_inner().unwrap();
        self.d()
            .archive_put(&self.a.data, "/var/lib/vmware/vmdir", body::full(tar))
            .await
            .unwrap();
    }
}

fn running(c: &Value) -> bool {
    c.pointer("/State/Running").and_then(Value::as_bool) == Some(true)
}

// ------------------------------------------------------------ end states

/// The data volumes hold exactly what they held before the upgrade, and
/// what the run's backup holds when it has one.
async fn assert_data_as_before(lw: &Lw, before: &BTreeMap<String, Vec<IndexEntry>>, why: &str) {
    let now = lw.indexes().await;
    for (p, idx) in before {
        let diffs = compare(idx, &now[p]);
        assert!(
            diffs.is_empty(),
            "{why}: {p} differs from before the upgrade:\n{}",
            diffs
                .iter()
                .take(10)
                .map(|d| format!("  {d}\n"))
                .collect::<String>()
        );
    }
    for run in lw.run_dirs() {
        let backup = run.join("backup");
        if !backup.join("manifest.json").exists() {
            continue;
        }
        let m = Manifest::load(&backup).unwrap_or_else(|e| panic!("{why}: {e}"));
        assert_eq!(
            m.paths.len(),
            DATA_PATHS.len(),
            "{why}: paths in the backup"
        );
        for e in &m.paths {
            let f = fs::File::open(backup.join(&e.index)).unwrap();
            let stored = read_index(BufReader::new(f)).unwrap();
            let diffs = compare(&stored, &now[&e.path]);
            assert!(
                diffs.is_empty(),
                "{why}: {} differs from the backup: {:?}",
                e.path,
                diffs.first().map(|d| d.to_string())
            );
        }
    }
}

/// Back to before: the old container (same id, old image) under the name,
/// running, the data as before, the config file gone, nothing aside.
async fn assert_rolled_back(lw: &Lw, before: &BTreeMap<String, Vec<IndexEntry>>, why: &str) {
    let c = lw
        .inspect(&lw.a.app)
        .await
        .unwrap_or_else(|| panic!("{why}: no container {}", lw.a.app));
    assert_eq!(c["Id"], lw.id.as_str(), "{why}: not the old container");
    assert_eq!(c["Image"], lw.fx.old.id.as_str(), "{why}: image");
    assert!(running(&c), "{why}: not running: {}", c["State"]);
    assert_data_as_before(lw, before, why).await;
    assert_tidy(lw, why).await;
}

/// What every end state shares: no config file (it holds the password), no
/// half backup, no container left aside.
async fn assert_tidy(lw: &Lw, why: &str) {
    let cfg = lw.a.config_dir.join(CONFIG_NAME);
    assert!(!cfg.exists(), "{why}: {} is still there", cfg.display());
    for run in lw.run_dirs() {
        assert!(
            !run.join("backup.partial").exists(),
            "{why}: {}/backup.partial left",
            run.display()
        );
    }
    let aside = lw
        .d()
        .container_list(&json!({"name": [format!("{}-berth-old-", lw.a.app)]}))
        .await
        .unwrap();
    assert!(aside.is_empty(), "{why}: containers left aside");
}

/// No helper container of berth (wipe, restore stand-in) is left on an
/// engine the test owns (on the shared engine other tests' helpers run).
async fn assert_no_helpers(lw: &Lw, why: &str) {
    let left = lw
        .d()
        .container_list(&json!({"label": ["berth.helper"]}))
        .await
        .unwrap();
    let names: Vec<&str> = left.iter().map(|c| c.name()).collect();
    assert!(names.is_empty(), "{why}: helpers left: {names:?}");
}

/// The outcome `berth status` shows for a run equals its journal's.
fn assert_status(lw: &Lw, run: &Path, want: &str) {
    let s = lw.on_run("status", run);
    assert_eq!(s.code, Some(0), "{s}");
    assert_eq!(s.json()[0]["outcome"], want, "{s}");
    assert_eq!(journal_outcome(run).as_deref(), Some(want));
}

/// The bytes berth has written into the run's `backup.partial` so far.
fn partial_bytes(run: &Path) -> u64 {
    fs::read_dir(run.join("backup.partial"))
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn short(id: &str) -> &str {
    &id[..12]
}

// ------------------------------------------ 1. the engine restarted mid-way

/// Stop the engine at the moment `at` says, check that berth gives up at
/// once with one message about the engine (exit 4: the rollback could not
/// reach it either), then start the engine again. Containers come back
/// stopped (no restart policy).
async fn engine_down_under_berth(e: &mut Dockerd, bg: Bg) -> Run {
    e.stop();
    let stopped = Instant::now();
    let r = bg.wait(GIVE_UP);
    eprintln!(
        "berth gave up {:.1}s after the engine stopped",
        stopped.elapsed().as_secs_f64()
    );
    assert_eq!(r.code, Some(4), "{r}");
    let msg = r.error();
    eprintln!("berth said: {msg}");
    assert!(
        msg.starts_with("rollback incomplete: ") && msg.contains("Docker engine"),
        "{msg}"
    );
    assert!(msg.contains("berth rollback "), "{msg}");
    e.restart().await;
    r
}

#[tokio::test(flavor = "multi_thread")]
async fn engine_restart_during_backup_streaming_then_resume() {
    let mut e = Dockerd::start("chaos-bk").await;
    let lw = Lw::up(Scope::on(e.docker().await, "chaos-eng-backup")).await;
    lw.add_bulk(48).await;
    let before = lw.indexes().await;
    let bg = Bg::spawn(&lw.upgrade_args(&lw.fx.good_tarballs.tar, &[]), &[]);
    let run = lw.run_dir();
    until("the backup streaming", PROGRESS, || {
        (partial_bytes(&run) > 1 << 20).then_some(())
    });
    engine_down_under_berth(&mut e, bg).await;
    assert!(!journal_has(&run, "backup", "done"), "the backup finished");
    let app = lw.inspect(&lw.a.app).await.expect("the old container");
    assert!(!running(&app), "{}", app["State"]);

    // The backup never completed and the new version never ran: resume
    // rolls back without a restore and starts the old container again.
    let res = lw.on_run("resume", &run);
    assert_eq!(res.code, Some(1), "{res}");
    assert_eq!(res.json()["outcome"], "aborted", "{res}");
    assert_rolled_back(&lw, &before, "engine restarted during the backup").await;
    assert!(
        !run.join("backup").exists(),
        "a backup that never completed"
    );
    assert_status(&lw, &run, "aborted");
}

#[tokio::test(flavor = "multi_thread")]
async fn engine_restart_while_watching_then_resume_restores() {
    let mut e = Dockerd::start("chaos-watch").await;
    let lw = Lw::up(Scope::on(e.docker().await, "chaos-eng-watch")).await;
    let before = lw.indexes().await;
    // The new version migrates the data, then never says the word.
    let args = lw.upgrade_args(
        &lw.fx.good_tarballs.tar,
        &["--success", "never-said", "--timeout", "120s"],
    );
    let mut bg = Bg::spawn(&args, &[]);
    let run = lw.wait_journal(&mut bg, "watch", "begin");
    appliance::wait_for_line(lw.d(), &lw.a.app, "Upgrade complete.", PROGRESS)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    engine_down_under_berth(&mut e, bg).await;

    let res = lw.on_run("resume", &run);
    assert_eq!(res.code, Some(3), "{res}");
    assert_eq!(res.json()["outcome"], "rolled-back", "{res}");
    assert_rolled_back(&lw, &before, "engine restarted during the watch").await;
    assert_status(&lw, &run, "rolled-back");
}

#[tokio::test(flavor = "multi_thread")]
async fn engine_restart_during_rollback_restore_then_rollback() {
    let mut e = Dockerd::start("chaos-restore").await;
    let lw = Lw::up(Scope::on(e.docker().await, "chaos-eng-restore")).await;
    lw.add_bulk(48).await;
    let before = lw.indexes().await;
    let mut bg = Bg::spawn(&lw.upgrade_args(&lw.fx.broken_tarballs.tar, &[]), &[]);
    let run = lw.wait_journal(&mut bg, "restore", "begin");
    // The moment the volumes are being emptied: berth's wipe helper exists.
    let t = Instant::now();
    while lw
        .d()
        .container_list(&json!({"label": ["berth.helper=wipe"]}))
        .await
        .unwrap()
        .is_empty()
    {
        assert!(t.elapsed() < PROGRESS && bg.running(), "no wipe helper");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    engine_down_under_berth(&mut e, bg).await;
    assert!(
        !journal_has(&run, "restore", "done"),
        "the restore finished"
    );
    // Whether or not the engine left berth's helper behind this time, one
    // is there now (as a berth that died mid-wipe leaves it): the next
    // wipe of that volume must remove it.
    let data = lw.inspect(&lw.a.data).await.unwrap();
    let vol = data["Mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["Destination"] == "/var/lib/vmware")
        .and_then(|m| m["Name"].as_str())
        .unwrap()
        .to_owned();
    let mut stale = appliance::data_config(&lw.fx.old.id);
    stale["Labels"] = json!({"berth.helper": "wipe", "berth.volume": vol});
    stale["HostConfig"] =
        json!({"Mounts": [{"Type": "volume", "Source": vol, "Target": "/var/lib/vmware"}]});
    lw.scope.create("stale-wipe", stale).await;

    // `berth rollback` asked for and done: exit 0.
    let res = lw.on_run("rollback", &run);
    assert_eq!(res.code, Some(0), "{res}");
    assert_eq!(res.json()["outcome"], "rolled-back", "{res}");
    assert_rolled_back(&lw, &before, "engine restarted during the restore").await;
    assert_no_helpers(&lw, "engine restarted during the restore").await;
    assert_status(&lw, &run, "rolled-back");
}

/// The engine restarted after the application had said "upgraded" but
/// before berth finished: the new container comes back stopped, and resume
/// must not call the upgrade done while it is not running.
#[tokio::test(flavor = "multi_thread")]
async fn engine_restart_after_success_then_resume_runs_the_new_version() {
    let mut e = Dockerd::start("chaos-success").await;
    let lw = Lw::up(Scope::on(e.docker().await, "chaos-eng-success")).await;
    let bg = Bg::spawn(
        &lw.upgrade_args(&lw.fx.good_tarballs.tar, &[]),
        &[("BERTH_TEST_KILL_AT", "watch:done")],
    );
    let r = bg.wait(PROGRESS);
    assert_eq!(r.signal, Some(9), "not killed at watch:done: {r}");
    let run = lw.run_dir();
    e.restart().await;
    let new = lw.inspect(&lw.a.app).await.expect("the new container");
    assert!(!running(&new), "{}", new["State"]);

    let res = lw.on_run("resume", &run);
    assert_eq!(res.code, Some(0), "{res}");
    assert_eq!(res.json()["outcome"], "upgraded", "{res}");
    let c = lw.inspect(&lw.a.app).await.expect("the new container");
    assert_eq!(c["Id"], new["Id"]);
    assert_eq!(c["Image"], lw.fx.good.id.as_str());
    assert!(running(&c), "upgraded but not running: {}", c["State"]);
    assert_eq!(
        lw.a.installed_version(lw.d()).await.as_deref(),
        Some("6.7.0")
    );
    assert!(lw.inspect(&lw.id).await.is_none(), "the old container");
    assert_tidy(&lw, "engine restarted after success").await;
    assert_status(&lw, &run, "upgraded");
}

// ------------------------------------------------------- 2. the disk full

#[tokio::test(flavor = "multi_thread")]
async fn disk_full_during_backup_and_upgrade_loses_nothing() {
    let lw = Lw::up(Scope::new("chaos-full").await).await;
    lw.add_bulk(24).await;
    let before = lw.indexes().await;
    let small = lw.scope.dir("small");
    let _tmpfs = Tmpfs::mount(&small, "8m");
    let on_small = |r: &Run, msg: &str| {
        eprintln!("berth said: {msg}");
        assert!(
            msg.contains("No space left on device") && msg.contains(small.to_str().unwrap()),
            "not one clear \"no space left\" naming the path: {msg}\n{r}"
        );
    };
    let started = lw.inspect(&lw.a.app).await.unwrap()["State"]["StartedAt"].clone();

    // `berth backup`: exit 1, nothing left behind, the container untouched.
    let backup: Vec<String> = vec![
        "backup".into(),
        lw.a.app.clone(),
        "--out".into(),
        small.to_str().unwrap().into(),
        "--host".into(),
        lw.host(),
        "--json".into(),
    ];
    let r = berth(&backup);
    assert_eq!(r.code, Some(1), "{r}");
    on_small(&r, &r.error());
    let left: Vec<_> = fs::read_dir(&small).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    let c = lw.inspect(&lw.a.app).await.unwrap();
    assert!(
        running(&c) && c["State"]["StartedAt"] == started,
        "{}",
        c["State"]
    );
    assert_data_as_before(&lw, &before, "berth backup on a full disk").await;
    // With --stop: the container berth stopped for the copy runs again.
    let mut stop = backup.clone();
    stop.push("--stop".into());
    let r = berth(&stop);
    assert_eq!(r.code, Some(1), "{r}");
    on_small(&r, &r.error());
    assert_eq!(fs::read_dir(&small).unwrap().count(), 0, "left behind");
    let c = lw.inspect(&lw.a.app).await.unwrap();
    assert_eq!(c["Id"], lw.id.as_str());
    assert!(running(&c), "not started again: {}", c["State"]);
    assert_data_as_before(&lw, &before, "berth backup --stop on a full disk").await;

    // `berth upgrade` sees the space is short before changing anything...
    let mut args = lw.upgrade_args(&lw.fx.good_tarballs.tar, &[]);
    let at = args.iter().position(|a| a == "--backup-root").unwrap();
    args[at + 1] = small.to_str().unwrap().into();
    let r = berth(&args);
    assert_eq!(r.code, Some(1), "{r}");
    assert!(r.error().contains("not enough space"), "{r}");
    // ... and with --force fills the disk: aborted, old container back.
    args.push("--force".into());
    let r = berth(&args);
    lw.track_rollback_tags();
    assert_eq!(r.code, Some(1), "{r}");
    let s = r.json();
    assert_eq!(s["outcome"], "aborted", "{r}");
    on_small(&r, s["cause"].as_str().unwrap_or(""));
    let runs: Vec<PathBuf> = fs::read_dir(&small)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = &runs[0];
    assert!(!run.join("backup").exists() && !run.join("backup.partial").exists());
    let c = lw.inspect(&lw.a.app).await.unwrap();
    assert_eq!(c["Id"], lw.id.as_str());
    assert_eq!(c["Image"], lw.fx.old.id.as_str());
    assert!(running(&c), "{}", c["State"]);
    assert_data_as_before(&lw, &before, "berth upgrade on a full disk").await;
    assert!(!lw.a.config_dir.join(CONFIG_NAME).exists());
    assert_eq!(journal_outcome(run).as_deref(), Some("aborted"));
}

// --------------------------------------- 3. the new container crash-looping

/// The old container has a restart policy, so the new one inherits it; the
/// new version exits at once (6.7.0 refuses to upgrade without the config
/// file), the engine restarts it again and again (`always`), or a few
/// times and then leaves it exited (`on-failure:2`). The watch must call
/// that a failure within seconds, not wait for its timeout, and the old
/// container must run again under its policy.
#[tokio::test(flavor = "multi_thread")]
async fn crash_looping_new_container_under_restart_policy_rolls_back() {
    crash_loop(
        "chaos-loop",
        json!({"Name": "always", "MaximumRetryCount": 0}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_looping_new_container_under_on_failure_policy_rolls_back() {
    crash_loop(
        "chaos-loop-onfail",
        json!({"Name": "on-failure", "MaximumRetryCount": 2}),
    )
    .await;
}

async fn crash_loop(test: &str, policy: Value) {
    let lw = Lw::up(Scope::new(test).await).await;
    lw.d()
        .post_json(
            &format!("/containers/{}/update", lw.id),
            Some(&json!({ "RestartPolicy": policy })),
            "setting the restart policy",
        )
        .await
        .unwrap();
    let before = lw.indexes().await;
    let mut args = lw.upgrade_args(&lw.fx.good_tarballs.tar, &[]);
    let at = args.iter().position(|a| a == "--config-file").unwrap();
    args.drain(at..at + 2);
    let r = berth(&args);
    lw.track_rollback_tags();
    assert_eq!(r.code, Some(3), "{r}");
    let s = r.json();
    assert_eq!(s["outcome"], "rolled-back", "{r}");
    // Once its retries are used up an on-failure container stays exited:
    // the watch may see it only then.
    let why = s["verdict"]["why"].as_str().unwrap_or("");
    assert!(
        why.contains("crash-looping") || (policy["Name"] == "on-failure" && why.contains("exited")),
        "{r}"
    );
    let run = lw.run_dir();
    let at = |phase: &str| {
        journal(&run)
            .iter()
            .find(|e| e["step"] == "watch" && e["phase"] == phase)
            .and_then(|e| e["t"].as_i64())
            .unwrap()
    };
    eprintln!(
        "watch {}s, whole upgrade and rollback {:.1}s",
        at("done") - at("begin"),
        r.took.as_secs_f64()
    );
    assert!(at("done") - at("begin") <= 10, "not detected promptly: {r}");
    let log = fs::read_to_string(run.join("new-container.log")).unwrap();
    assert!(
        log.contains("upgrade requires domain and password"),
        "{log}"
    );

    assert_rolled_back(&lw, &before, "crash loop").await;
    let c = lw.inspect(&lw.a.app).await.unwrap();
    assert_eq!(c["HostConfig"]["RestartPolicy"], policy);
    let names: Vec<String> = lw
        .d()
        .container_list(&json!({"name": [lw.scope.prefix.clone()]}))
        .await
        .unwrap()
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    assert_eq!(names.len(), 2, "the new container is left: {names:?}");
    assert_status(&lw, &run, "rolled-back");
}

// --------------------------- 4. the old container removed by someone else

/// `docker rm -f` of the old container (volumes kept) once the journal
/// shows `at`; berth must end with exit 4 saying exactly that.
/// `with_volumes`: `docker rm -f -v` (anonymous volumes go too).
async fn remove_old_at(
    lw: &Lw,
    file: &Path,
    at: (&str, &str),
    with_volumes: bool,
) -> (Run, PathBuf) {
    let mut bg = Bg::spawn(&lw.upgrade_args(file, &[]), &[]);
    let run = lw.wait_journal(&mut bg, at.0, at.1);
    lw.d()
        .container_remove(&lw.id, true, with_volumes)
        .await
        .unwrap();
    let r = bg.wait(PROGRESS);
    lw.track_rollback_tags();
    assert_eq!(r.code, Some(4), "{r}");
    let msg = r.error();
    eprintln!("berth said: {msg}");
    assert!(
        msg.contains(&format!("old container {} was removed", short(&lw.id))),
        "{msg}"
    );
    (r, run)
}

/// Removed after berth renamed it aside, and the new version failed: the
/// volumes (the data container's) are restored and verified all the same.
#[tokio::test(flavor = "multi_thread")]
async fn old_container_removed_after_rename_aside_data_restored() {
    let lw = Lw::up(Scope::new("chaos-rm-aside").await).await;
    let before = lw.indexes().await;
    let (r, run) = remove_old_at(
        &lw,
        &lw.fx.broken_tarballs.tar,
        ("rename-old", "done"),
        false,
    )
    .await;
    let msg = r.error();
    assert!(msg.contains("restored and verified"), "{msg}");
    assert!(lw.inspect(&lw.a.app).await.is_none(), "the new one is left");
    assert_data_as_before(&lw, &before, "old container removed aside").await;
    assert_tidy(&lw, "old container removed aside").await;
    assert!(journal_outcome(&run).is_none());
    // Asking again gives the same answer and changes nothing; a stand-in
    // that a killed berth left behind is removed on the way.
    let stale = format!("{}-berth-restore-1", lw.a.app);
    let mut cfg = appliance::data_config(&lw.fx.old.id);
    cfg["Labels"] = json!({"berth.helper": "restore"});
    cfg["HostConfig"] = json!({"VolumesFrom": [lw.a.data]});
    assert_eq!(lw.scope.create("lw-berth-restore-1", cfg).await, stale);
    let again = lw.on_run("rollback", &run);
    assert_eq!(again.code, Some(4), "{again}");
    assert!(lw.inspect(&stale).await.is_none(), "stale stand-in left");
    assert_data_as_before(&lw, &before, "rollback again").await;
    let left = lw
        .d()
        .container_list(
            &json!({"label": ["berth.helper=restore"], "name": [lw.scope.prefix.clone()]}),
        )
        .await
        .unwrap();
    assert!(left.is_empty(), "stand-ins left: {left:?}");
}

/// Removed while berth is stopping it: nothing was restored because the
/// new version never ran; the volumes are as they were.
#[tokio::test(flavor = "multi_thread")]
async fn old_container_removed_before_the_stop_data_untouched() {
    let lw = Lw::up(Scope::new("chaos-rm-stop").await).await;
    let before = lw.indexes().await;
    let (r, run) = remove_old_at(&lw, &lw.fx.good_tarballs.tar, ("tag-old", "done"), false).await;
    assert!(r.error().contains("did not touch its data volumes"), "{r}");
    assert!(!journal_has(&run, "start-new", "begin"));
    assert!(lw.inspect(&lw.a.app).await.is_none());
    assert_data_as_before(&lw, &before, "old container removed before the stop").await;
    assert_tidy(&lw, "old container removed before the stop").await;
}

/// Named volumes survive even `docker rm -f -v`: removed after the rename
/// aside, the failed upgrade's data is restored into them all the same.
#[tokio::test(flavor = "multi_thread")]
async fn old_container_with_named_volumes_removed_with_v_data_restored() {
    let lw = Lw::up_own_volumes(Scope::new("chaos-rm-named").await, true).await;
    let before = lw.indexes().await;
    let (r, run) = remove_old_at(
        &lw,
        &lw.fx.broken_tarballs.tar,
        ("rename-old", "done"),
        true,
    )
    .await;
    assert!(r.error().contains("restored and verified"), "{r}");
    assert!(journal_has(&run, "restore", "done"));
    assert!(lw.inspect(&lw.a.app).await.is_none(), "the new one is left");
    assert_data_as_before(&lw, &before, "named volumes, rm -f -v").await;
    assert_tidy(&lw, "named volumes, rm -f -v").await;
}

/// Anonymous volumes of the old container itself go with `docker rm -f
/// -v` once no other container uses them (here: berth was killed just
/// after it removed the new container). The rollback must not create
/// empty volumes in their place: it says the data is only in the backup,
/// which still verifies.
#[tokio::test(flavor = "multi_thread")]
async fn old_container_removed_with_its_anonymous_volumes_is_refused() {
    let lw = Lw::up_own_volumes(Scope::new("chaos-rm-anon").await, false).await;
    let vols: Vec<String> = lw.inspect(&lw.a.app).await.unwrap()["Mounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["Type"] == "volume")
        .map(|m| m["Name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(vols.len(), DATA_PATHS.len());
    let bg = Bg::spawn(
        &lw.upgrade_args(&lw.fx.broken_tarballs.tar, &[]),
        &[("BERTH_TEST_KILL_AT", "remove-new:done")],
    );
    let r = bg.wait(PROGRESS);
    assert_eq!(r.signal, Some(9), "not killed at remove-new:done: {r}");
    let run = lw.run_dir();
    lw.track_rollback_tags();
    lw.d().container_remove(&lw.id, true, true).await.unwrap();
    for v in &vols {
        let e = lw.d().volume_inspect(v).await.unwrap_err();
        assert!(e.is_not_found(), "volume {v} was not removed: {e}");
    }

    let r = lw.on_run("rollback", &run);
    assert_eq!(r.code, Some(4), "{r}");
    let msg = r.error();
    eprintln!("berth said: {msg}");
    assert!(
        msg.contains("is gone too") && msg.contains("only in the backup"),
        "{msg}"
    );
    for v in &vols {
        let e = lw.d().volume_inspect(v).await.unwrap_err();
        assert!(e.is_not_found(), "volume {v} is back: {e}");
    }
    assert!(lw.inspect(&lw.a.app).await.is_none(), "the new one is left");
    assert!(!lw.a.config_dir.join(CONFIG_NAME).exists());
    let v = berth(&[
        "verify".into(),
        run.join("backup").to_str().unwrap().into(),
        "--deep".into(),
    ]);
    assert_eq!(v.code, Some(0), "the backup: {v}");
}
