//! The fault x step matrix: berth talks to the real engine through the
//! fault-injecting fake daemon (tests/support/fakedaemon.rs), which breaks
//! one request of one step the way a real engine can but cannot be made to
//! on demand: a connection dropped in an archive, a tar without its end
//! blocks, a 500 or a 409, a stall longer than berth's timeout, an error
//! inside a 200 stream, an answer lost after the engine did the work, a
//! daemon that vanishes between two steps.
//!
//! Every cell checks the exit code, that the message names the step and
//! the cause, what the journal says, and then, after the fault clears and
//! `berth resume` / `berth rollback` / a second run did its part, the END
//! STATE on the real engine: the container under its name, running, on its
//! image, every volume's content index equal to the backup's, the config
//! file (with the password) absent, no half backup left.
//!
//! Each cell stands up its own lightwave-sim appliance on its own image
//! reference, so cells run in parallel (one process each under nextest).

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use berth::archive::index::{compare, read_index, IndexEntry};
use berth::archive::restore::read_index_of;
use berth::docker::{body, Docker};
use berth::manifest::Manifest;
use hyper::Method;
use serde_json::Value;
use support::appliance::{self, CONFIG_NAME};
use support::cli::Run;
use support::engine::Scope;
use support::fakedaemon::{on, FakeDaemon, Fault, When};
use support::fixtures::{Fixtures, DATA_PATHS};
use support::journal::{journal, journal_outcome};
use support::stage::stage;

const BERTH: &str = env!("CARGO_BIN_EXE_berth");
/// berth's engine timeout (BERTH_ENGINE_TIMEOUT) for a run whose fault is
/// a stall: the stall shows after this long.
const STALL_TIMEOUT_S: u64 = 6;
/// berth's engine timeout for every other run: a busy engine on a busy
/// machine may take seconds to answer, and only a stall may end in a
/// timeout, so that no cell depends on how fast the engine is today.
const CALM_TIMEOUT_S: u64 = 120;
const PASSWORD: &str = "F4ult-S3cret-pw-91c2";

// ------------------------------------------------------------------ the CLI

/// Run berth against `host` with the engine timeout `timeout_s`.
fn berth_with(host: &str, timeout_s: u64, args: &[&str]) -> Run {
    let t = Instant::now();
    let out = Command::new(BERTH)
        .arg("--host")
        .arg(host)
        .args(args)
        .env("BERTH_ENGINE_TIMEOUT", timeout_s.to_string())
        .env_remove("BERTH_TEST_KILL_AT")
        .output()
        .expect("running berth");
    Run::from(out, t.elapsed())
}

/// Run berth against the real engine `host`.
fn berth(host: &str, args: &[&str]) -> Run {
    berth_with(host, CALM_TIMEOUT_S, args)
}

// ------------------------------------------------------------ the appliance

/// One cell's appliance, the fake in front of the engine, and its host dirs.
struct Cell {
    fx: Fixtures,
    fake: FakeDaemon,
    /// `unix://` of the real engine.
    real: String,
    data: String,
    app: String,
    app_id: String,
    config_dir: PathBuf,
    config_src: PathBuf,
    /// `--backup-root` / `--out`.
    root: PathBuf,
    scope: Scope,
    /// The engine timeout of the next run through the fake.
    timeout_s: AtomicU64,
}

impl Cell {
    /// Stand up the appliance on 6.6.0 (a per-cell tag of the fixture), the
    /// config file removed after setup as the procedure says; a fake
    /// daemon in front of the engine, passing everything through.
    async fn up(test: &str) -> Cell {
        let scope = Scope::new(test).await;
        let d = scope.docker.clone();
        let s = stage().config(config_text()).up(&scope).await;
        let fake = FakeDaemon::start(d.socket(), &scope.prefix);
        Cell {
            fx: s.fx,
            fake,
            real: format!("unix://{}", d.socket().display()),
            data: s.lw.data,
            app: s.lw.app,
            app_id: s.app_id,
            config_dir: s.lw.config_dir,
            config_src: s.config_src,
            root: s.root,
            scope,
            timeout_s: AtomicU64::new(CALM_TIMEOUT_S),
        }
    }

    fn d(&self) -> &Docker {
        &self.scope.docker
    }

    fn config_file(&self) -> PathBuf {
        self.config_dir.join(CONFIG_NAME)
    }

    /// berth through the fake, with the short timeout while a stall is
    /// injected.
    fn berth(&self, args: &[&str]) -> Run {
        let timeout_s = self.timeout_s.load(Ordering::Relaxed);
        berth_with(&self.fake.host(), timeout_s, args)
    }

    /// Inject one fault into the fake.
    fn inject(&self, when: When, fault: Fault) {
        let timeout_s = if fault.stalls() {
            STALL_TIMEOUT_S
        } else {
            CALM_TIMEOUT_S
        };
        self.timeout_s.store(timeout_s, Ordering::Relaxed);
        self.fake.inject(when, fault);
    }

    /// Clear the fake's faults: it passes everything through again.
    fn clear(&self) {
        self.timeout_s.store(CALM_TIMEOUT_S, Ordering::Relaxed);
        self.fake.clear();
    }

    /// `berth upgrade` to the 6.7.0 (`good`) or 6.8.0-broken tarball,
    /// through the fake.
    fn upgrade(&self, good: bool, extra: &[&str]) -> Run {
        let file = if good {
            &self.fx.good_tarballs.tar
        } else {
            &self.fx.broken_tarballs.tar
        };
        let mut args = vec![
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
            "--stop-timeout",
            "3",
            "--json",
        ];
        args.extend_from_slice(extra);
        let r = self.berth(&args);
        for dir in self.dirs() {
            if let Ok(p) = fs::read(dir.join("plan.json")) {
                let p: Value = serde_json::from_slice(&p).unwrap();
                if let Some(t) = p["rollback_tag"].as_str() {
                    self.scope.track_image(t);
                }
            }
        }
        r
    }

    /// The directories under the backup root.
    fn dirs(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(&self.root)
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    fn run_dir(&self) -> PathBuf {
        let dirs = self.dirs();
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
    /// under the app's name (the config bind cut out, as berth does).
    async fn indexes(&self) -> BTreeMap<String, Vec<IndexEntry>> {
        appliance::data_indexes(self.d(), &self.app).await
    }

    /// Fail with the fake's log unless every injected fault fired.
    fn assert_faults_fired(&self) {
        let unfired = self.fake.unfired();
        assert!(
            unfired.is_empty(),
            "faults that never fired: {unfired:?}\nrequests:\n{}",
            self.fake.log().join("\n")
        );
    }

    fn requests(&self) -> String {
        self.fake.log().join("\n")
    }
}

fn config_text() -> String {
    format!("deployment=standalone\ndomain=vsphere.local\nadmin=Administrator\npassword={PASSWORD}\nfirst-instance=true\nsite-name=Default-first-site\nhostname=localhost\n")
}

fn running(c: &Value) -> bool {
    c.pointer("/State/Running").and_then(Value::as_bool) == Some(true)
}

/// The error the journal recorded for `step`'s `failed` line.
fn journal_failure(run: &Path, step: &str) -> Option<String> {
    journal(run)
        .iter()
        .find(|e| e["step"] == step && e["phase"] == "failed")
        .map(|e| e["data"]["error"].as_str().unwrap_or("").to_owned())
}

// ----------------------------------------------------------- end states

/// The old container (same id, old image) runs under the name, every
/// volume reads back equal to `before` and to the run's backup, and
/// nothing of the upgrade is left: config file, half backup, container
/// renamed aside, new container.
async fn assert_back_to_old(c: &Cell, before: &BTreeMap<String, Vec<IndexEntry>>, why: &str) {
    let old = c.inspect(&c.app).await.expect("a container under the name");
    assert_eq!(old["Id"], c.app_id.as_str(), "{why}: not the old container");
    assert_eq!(old["Image"], c.fx.old.id.as_str(), "{why}: image");
    assert!(running(&old), "{why}: not running: {}", old["State"]);
    let now = c.indexes().await;
    for (p, idx) in before {
        let diffs = compare(idx, &now[p]);
        assert!(
            diffs.is_empty(),
            "{why}: {p} differs from before: {diffs:?}"
        );
    }
    for run in c.dirs() {
        if run.join("backup/manifest.json").exists() {
            assert_equal_to_backup(c, &run.join("backup"), why).await;
        }
    }
    assert_nothing_left(c, why).await;
    let stray = c
        .d()
        .container_list(&serde_json::json!({"ancestor": [c.fx.good.id.clone()]}))
        .await
        .unwrap()
        .into_iter()
        .chain(
            c.d()
                .container_list(&serde_json::json!({"ancestor": [c.fx.broken.id.clone()]}))
                .await
                .unwrap(),
        )
        .filter(|x| x.name().contains(&c.scope.prefix))
        .count();
    assert_eq!(stray, 0, "{why}: a new container is left");
}

/// The new version runs under the name, the data migrated, nothing of the
/// upgrade left.
async fn assert_upgraded(c: &Cell, why: &str) {
    let new = c.inspect(&c.app).await.expect("a container under the name");
    assert_ne!(
        new["Id"],
        c.app_id.as_str(),
        "{why}: still the old container"
    );
    assert_eq!(new["Image"], c.fx.good.id.as_str(), "{why}: image");
    assert!(running(&new), "{why}: not running: {}", new["State"]);
    assert_eq!(
        appliance::installed_version(c.d(), &c.data)
            .await
            .as_deref(),
        Some("6.7.0"),
        "{why}"
    );
    assert!(
        c.inspect(&c.app_id).await.is_none(),
        "{why}: old container left"
    );
    assert_nothing_left(c, why).await;
}

/// Every path of the backup reads back from the container under the app's
/// name equal to the backup's own content index.
async fn assert_equal_to_backup(c: &Cell, backup: &Path, why: &str) {
    let m = Manifest::load(backup).unwrap_or_else(|e| panic!("{}: {e}", backup.display()));
    assert_eq!(
        m.paths.len(),
        DATA_PATHS.len(),
        "{why}: paths in the backup"
    );
    for e in &m.paths {
        let stored = read_index(BufReader::new(
            fs::File::open(backup.join(&e.index)).unwrap(),
        ))
        .unwrap();
        let found = read_index_of(c.d(), &c.app, &e.path, &e.excluded)
            .await
            .unwrap();
        let diffs = compare(&stored, &found);
        assert!(
            diffs.is_empty(),
            "{why}: {} differs from the backup: {diffs:?}",
            e.path
        );
    }
}

/// The config file gone, no `.partial`, nothing renamed aside, and an
/// outcome that `berth status` and the journal agree on.
async fn assert_nothing_left(c: &Cell, why: &str) {
    assert!(
        !c.config_file().exists(),
        "{why}: the config file with the password is still there"
    );
    let aside = c
        .d()
        .container_list(&serde_json::json!({"name": [format!("{}-berth-old-", c.app)]}))
        .await
        .unwrap();
    assert!(aside.is_empty(), "{why}: a container is left renamed aside");
    for run in c.dirs() {
        assert!(
            !run.to_string_lossy().ends_with(".partial") && !run.join("backup.partial").exists(),
            "{why}: a half backup is left in {}",
            run.display()
        );
        let s = berth(&c.real, &["status", run.to_str().unwrap(), "--json"]);
        assert_eq!(s.code, Some(0), "{why}: {s}");
        let outcome = s.json()[0]["outcome"].as_str().map(String::from);
        assert!(outcome.is_some(), "{why}: no outcome in {s}");
        assert_eq!(outcome, journal_outcome(&run), "{why}: status and journal");
    }
}

// ----------------------------------------------------- the upgrade matrix

/// How the host is brought back once the fault has cleared.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Then {
    /// berth already did it (rolled back or finished on its own).
    Nothing,
    Resume,
    Rollback,
}

/// One upgrade cell: what to break, what berth must say and do.
struct UpgradeCell {
    test: &'static str,
    /// 6.7.0 (true) or 6.8.0-broken.
    good: bool,
    /// The fault, given the old container's id.
    fault: fn(&str) -> (When, Fault),
    /// The faulted upgrade's exit code (1 aborted, 3 rolled back, 4
    /// rollback incomplete, 0 upgraded anyway).
    code: i32,
    /// The steps whose `failed` lines the journal must hold.
    failed: &'static [&'static str],
    /// Words the message must hold (the step and the cause).
    said: &'static [&'static str],
    then: Then,
    /// The end state: upgraded (true) or back to the old version.
    upgraded: bool,
}

async fn upgrade_cell(u: UpgradeCell) {
    let t0 = Instant::now();
    let c = Cell::up(u.test).await;
    let before = c.indexes().await;
    let (when, fault) = (u.fault)(&c.app_id);
    c.inject(when, fault);
    let r = c.upgrade(u.good, &[]);
    eprintln!(
        "{}: stood up in {:.1}s, faulted upgrade {:.1}s",
        u.test,
        (t0.elapsed() - r.took).as_secs_f64(),
        r.took.as_secs_f64()
    );
    c.assert_faults_fired();
    let ctx = format!("{r}\nrequests:\n{}", c.requests());
    assert_eq!(r.code, Some(u.code), "exit code: {ctx}");
    let said = r.said();
    eprintln!("{}: berth said: {}", u.test, said.trim());
    for w in u.said {
        assert!(said.contains(w), "the message lacks {w:?}: {ctx}");
    }
    let run = c.run_dir();
    for step in u.failed {
        assert!(
            journal_failure(&run, step).is_some_and(|e| !e.is_empty()),
            "the journal has no failed {step} with its error: {:#?}",
            journal(&run)
        );
    }
    // berth says the cause the journal recorded for the first failure.
    if let Some(first) = u.failed.first() {
        let recorded = journal_failure(&run, first).unwrap();
        assert!(
            said.contains(&format!("step {first}: {recorded}")),
            "the message does not carry the journal's {first} error {recorded:?}: {ctx}"
        );
    }
    // What the journal says the run ended as, if it ended.
    let ended = journal_outcome(&run);
    match u.code {
        0 => assert_eq!(ended.as_deref(), Some("upgraded"), "{ctx}"),
        3 => assert_eq!(ended.as_deref(), Some("rolled-back"), "{ctx}"),
        1 if u.then == Then::Nothing => assert_eq!(ended.as_deref(), Some("aborted"), "{ctx}"),
        _ => assert_eq!(ended, None, "a run that did not end has no outcome: {ctx}"),
    }
    if u.code == 4 {
        // Whatever else failed, the secret is not left behind.
        assert!(
            !c.config_file().exists(),
            "rollback incomplete left the config file with the password: {ctx}"
        );
    }
    // The fault clears: the daemon is back and passes everything.
    c.clear();
    if !c.fake.is_up() {
        c.fake.come_back();
    }
    let dir = run.to_str().unwrap();
    let fix = match u.then {
        Then::Nothing => None,
        Then::Resume => Some(c.berth(&["resume", dir, "--json"])),
        Then::Rollback => Some(c.berth(&["rollback", dir, "--json"])),
    };
    if let Some(f) = &fix {
        let outcome = f.json()["outcome"].as_str().unwrap_or("").to_owned();
        assert_eq!(
            outcome == "upgraded",
            u.upgraded,
            "{:?} ended as {outcome:?}: {f}",
            u.then
        );
        // `rollback` asked for and done is a success; `resume` exits with
        // the run's outcome.
        let want = match (u.then, outcome.as_str()) {
            (Then::Rollback, "rolled-back" | "aborted") | (_, "upgraded") => 0,
            (Then::Resume, "rolled-back") => 3,
            (Then::Resume, "aborted") => 1,
            _ => panic!("{:?} ended as {outcome:?}: {f}", u.then),
        };
        assert_eq!(f.code, Some(want), "{:?}: {f}", u.then);
    }
    let why = format!("{} ({:?})", u.test, u.then);
    if u.upgraded {
        assert_upgraded(&c, &why).await;
    } else {
        assert_back_to_old(&c, &before, &why).await;
    }
    eprintln!("{}: {:.1}s in all", u.test, t0.elapsed().as_secs_f64());
}

/// Any container's start, stop, ... by id or name.
const ANY: &str = "[^/]+";

fn archive_of(path: &str) -> String {
    format!(
        r"^/containers/{ANY}/archive\?path={}$",
        berth::docker::transport::enc(path)
    )
}

macro_rules! upgrade_matrix {
    ($($name:ident { $($field:ident: $value:expr),* $(,)? })*) => {$(
        #[tokio::test(flavor = "multi_thread")]
        async fn $name() {
            upgrade_cell(UpgradeCell {
                test: stringify!($name),
                $($field: $value),*
            })
            .await;
        }
    )*};
}

upgrade_matrix! {
    tag_old_answers_500 {
        good: true,
        fault: |_| (on(Method::POST, r"^/images/.+/tag\?"), Fault::Status(500, "fake: layer store locked".into())),
        code: 1, failed: &["tag-old"], said: &["step tag-old", "500", "layer store locked"],
        then: Then::Nothing, upgraded: false,
    }
    stop_stalls_past_the_timeout {
        good: true,
        fault: |id| (on(Method::POST, &format!("^/containers/{id}/stop")), Fault::StallHeaders),
        code: 1, failed: &["stop"], said: &["step stop", "did not answer within"],
        then: Then::Nothing, upgraded: false,
    }
    backup_archive_connection_dropped {
        good: true,
        fault: |_| (on(Method::GET, &archive_of("/etc/likewise")), Fault::DropBody { after: 1500 }),
        code: 1, failed: &["pre-copy"], said: &["step pre-copy", "/etc/likewise", "broke"],
        then: Then::Nothing, upgraded: false,
    }
    backup_archive_without_end_blocks {
        good: true,
        fault: |_| (on(Method::GET, &archive_of("/var/lib/likewise")), Fault::CutTarEnd),
        code: 1, failed: &["pre-copy"], said: &["step pre-copy", "/var/lib/likewise"],
        then: Then::Nothing, upgraded: false,
    }
    backup_answer_stalls_after_headers {
        good: true,
        fault: |_| (on(Method::GET, r"^/version$"), Fault::StallBody { after: 0 }),
        code: 1, failed: &["pre-copy"], said: &["step pre-copy", "version", "nothing for"],
        then: Then::Nothing, upgraded: false,
    }
    daemon_vanishes_during_the_load {
        good: true,
        fault: |_| (on(Method::POST, r"^/images/load"), Fault::Vanish),
        code: 4, failed: &["load", "rename-back"], said: &["step load", "step rename-back", "rollback incomplete", "berth rollback"],
        then: Then::Rollback, upgraded: false,
    }
    load_stream_reports_an_error {
        good: true,
        fault: |_| (on(Method::POST, r"^/images/load"), Fault::StreamError("fake: write /var/lib/docker/tmp/x: no space left on device".into())),
        code: 1, failed: &["load"], said: &["step load", "no space left on device"],
        then: Then::Nothing, upgraded: false,
    }
    rename_old_answers_409 {
        good: true,
        fault: |id| (on(Method::POST, &format!("^/containers/{id}/rename")), Fault::Status(409, "Conflict. The container name is already in use".into())),
        code: 1, failed: &["rename-old"], said: &["step rename-old", "409", "Conflict"],
        then: Then::Nothing, upgraded: false,
    }
    create_new_answer_lost {
        good: true,
        fault: |_| (on(Method::POST, r"^/containers/create\?").unless("name=berth-delta-"), Fault::LoseAnswer),
        code: 1, failed: &["create-new"], said: &["step create-new", "creating container", "broke before it answered"],
        then: Then::Nothing, upgraded: false,
    }
    daemon_vanishes_between_write_config_and_start {
        good: true,
        // The pre-copy's delta helper is the first container started.
        fault: |_| (on(Method::POST, &format!("^/containers/{ANY}/start$")).nth(2), Fault::Vanish),
        code: 4, failed: &["start-new", "remove-new"], said: &["step start-new", "step remove-new", "rollback incomplete", "cannot reach"],
        then: Then::Rollback, upgraded: false,
    }
    start_new_answer_lost {
        good: true,
        fault: |_| (on(Method::POST, &format!("^/containers/{ANY}/start$")).nth(2), Fault::LoseAnswer),
        code: 3, failed: &["start-new"], said: &["step start-new", "starting container", "broke before it answered"],
        then: Then::Nothing, upgraded: false,
    }
    watch_inspect_answers_500 {
        good: true,
        fault: |id| (on(Method::GET, "^/containers/[0-9a-f]{64}/json$").unless(id), Fault::Status(500, "fake: inspect failed".into())),
        code: 3, failed: &["watch"], said: &["step watch", "500", "inspect failed"],
        then: Then::Nothing, upgraded: false,
    }
    watch_exec_output_dropped_is_retried {
        good: true,
        // After the delta helper's eight: a count before the stop and a
        // delta after it, per volume.
        fault: |_| (on(Method::POST, r"^/exec/[^/]+/start$").nth(9), Fault::DropBody { after: 0 }),
        code: 0, failed: &[], said: &[],
        then: Then::Nothing, upgraded: true,
    }
    precopy_count_dropped_falls_back_before_the_stop {
        good: true,
        // The helper's first count: no delta can be had, so the whole
        // backup is taken after the stop and the upgrade goes on.
        fault: |_| (on(Method::POST, r"^/exec/[^/]+/start$"), Fault::DropBody { after: 0 }),
        code: 0, failed: &[], said: &[],
        then: Then::Nothing, upgraded: true,
    }
    delta_exec_output_dropped_after_the_stop {
        good: true,
        // The first delta, after the four counts before the stop.
        fault: |_| (on(Method::POST, r"^/exec/[^/]+/start$").nth(5), Fault::DropBody { after: 0 }),
        code: 1, failed: &["backup"], said: &["step backup", "finding what changed in"],
        then: Then::Nothing, upgraded: false,
    }
    finish_remove_old_answers_500 {
        good: true,
        fault: |id| (on(Method::DELETE, &format!("^/containers/{id}\\?")), Fault::Status(500, "fake: device or resource busy".into())),
        code: 1, failed: &["finish"], said: &["upgraded, but cleaning up failed", "step finish", "device or resource busy", "berth resume"],
        then: Then::Resume, upgraded: true,
    }
    rollback_remove_new_answers_500 {
        good: false,
        // After the pre-copy's delta helper, removed first.
        fault: |id| (on(Method::DELETE, &format!("^/containers/{ANY}\\?")).unless(id).nth(2), Fault::Status(500, "fake: removal in progress".into())),
        code: 4, failed: &["remove-new"], said: &["step remove-new", "removal in progress", "berth rollback"],
        then: Then::Rollback, upgraded: false,
    }
    rollback_restore_upload_dropped {
        good: false,
        fault: |_| (on(Method::PUT, &format!(r"^/containers/{ANY}/archive\?path=%2Fvar%2Flib&")), Fault::DropUpload { after: 1024 }),
        code: 4, failed: &["restore"], said: &["step restore", "/var/lib/vmware", "broke"],
        then: Then::Rollback, upgraded: false,
    }
    rollback_restore_read_back_without_end_blocks {
        good: false,
        fault: |_| (on(Method::GET, &archive_of("/etc/vmware-sso")).nth(2), Fault::CutTarEnd),
        code: 4, failed: &["restore"], said: &["step restore", "/etc/vmware-sso", "ended early"],
        then: Then::Rollback, upgraded: false,
    }
    rollback_rename_back_answers_409 {
        good: false,
        fault: |id| (on(Method::POST, &format!("^/containers/{id}/rename")).nth(2), Fault::Status(409, "Conflict. The container name is already in use".into())),
        code: 4, failed: &["rename-back"], said: &["step rename-back", "409"],
        then: Then::Rollback, upgraded: false,
    }
    rollback_start_old_answers_500 {
        good: false,
        fault: |id| (on(Method::POST, &format!("^/containers/{id}/start$")), Fault::Status(500, "fake: cgroup busy".into())),
        code: 4, failed: &["start-old"], said: &["step start-old", "cgroup busy", "berth rollback"],
        then: Then::Resume, upgraded: false,
    }
}

// ------------------------------------------------------ backup and restore

/// `berth backup` through the fake with one fault: it fails naming the
/// path and the cause, leaves no backup directory (not even a partial one),
/// and the container is as it was (running; started again when berth
/// stopped it). After the fault clears, a second backup verifies deep.
async fn backup_cell(test: &str, path: &str, fault: Fault, stop: bool, code: i32, said: &[&str]) {
    let t0 = Instant::now();
    let c = Cell::up(test).await;
    c.inject(on(Method::GET, &archive_of(path)), fault);
    let out = c.root.to_str().unwrap();
    let mut args = vec!["backup", &c.app, "--out", out, "--json"];
    if stop {
        args.extend(["--stop", "--stop-timeout", "3"]);
    }
    let r = c.berth(&args);
    c.assert_faults_fired();
    let ctx = format!("{r}\nrequests:\n{}", c.requests());
    assert_eq!(r.code, Some(code), "{ctx}");
    for w in said.iter().chain(&[path]) {
        assert!(r.said().contains(w), "the message lacks {w:?}: {ctx}");
    }
    assert!(
        c.dirs().is_empty(),
        "a backup directory is left: {:?}",
        c.dirs()
    );
    let app = c.inspect(&c.app).await.unwrap();
    assert_eq!(app["Id"], c.app_id.as_str());
    assert!(running(&app), "{test}: not running after the failed backup");

    c.clear();
    let again = c.berth(&["backup", &c.app, "--out", out, "--json"]);
    assert_eq!(again.code, Some(0), "{again}");
    let dir = again.json()["dir"].as_str().unwrap().to_owned();
    let v = berth(&c.real, &["verify", &dir, "--deep"]);
    assert_eq!(v.code, Some(0), "{v}");
    assert_equal_to_backup(&c, Path::new(&dir), test).await;
    eprintln!("{test}: {:.1}s in all", t0.elapsed().as_secs_f64());
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_archive_dropped_mid_stream() {
    let f = Fault::DropBody { after: 1500 };
    backup_cell("bk-drop", "/etc/vmware-sso", f, false, 1, &["broke"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_tar_without_end_blocks() {
    // The scanner cannot tell a daemon that gave up from a cut connection:
    // an archive that ends early is an integrity failure (exit 5).
    let said = ["ended early", "end-of-archive"];
    backup_cell(
        "bk-cut",
        "/var/lib/likewise",
        Fault::CutTarEnd,
        false,
        5,
        &said,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_archive_answers_500() {
    let f = Fault::Status(500, "fake: mount namespace gone".into());
    backup_cell(
        "bk-500",
        "/var/lib/vmware",
        f,
        false,
        1,
        &["500", "mount namespace gone"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_archive_stalls_while_stopped() {
    let f = Fault::StallBody { after: 512 };
    backup_cell("bk-stall", "/etc/likewise", f, true, 1, &["nothing for"]).await;
}

/// `berth restore` of a backup taken before the data changed, through the
/// fake with one fault: it fails naming the path and the cause; the
/// volume is then either untouched or put right by running the restore
/// again, which verifies.
async fn restore_cell(test: &str, when: When, fault: Fault, said: &[&str]) {
    let t0 = Instant::now();
    let c = Cell::up(test).await;
    let out = c.root.to_str().unwrap();
    let b = berth(&c.real, &["backup", &c.app, "--out", out, "--json"]);
    assert_eq!(b.code, Some(0), "{b}");
    let dir = b.json()["dir"].as_str().unwrap().to_owned();
    // The data moves on after the backup (as an upgrade would move it):
    // a file changed, files added. The restore goes into the stopped app.
    c.d().container_stop(&c.app, 3).await.unwrap();
    change_data(c.d(), &c.data).await;
    let changed = c.indexes().await;

    c.inject(when, fault);
    let r = c.berth(&["restore", &dir, "--container", &c.app, "--json"]);
    c.assert_faults_fired();
    let ctx = format!("{r}\nrequests:\n{}", c.requests());
    assert!(matches!(r.code, Some(1) | Some(5)), "{ctx}");
    for w in said {
        assert!(r.said().contains(w), "the message lacks {w:?}: {ctx}");
    }
    // What the failed restore left (either kind is fine: the second run
    // must put it right).
    let now = c.indexes().await;
    let touched: Vec<&String> = now.keys().filter(|p| now[*p] != changed[*p]).collect();
    eprintln!("{test}: paths changed by the failed restore: {touched:?}");

    c.clear();
    let again = c.berth(&["restore", &dir, "--container", &c.app, "--json"]);
    assert_eq!(again.code, Some(0), "{again}");
    eprintln!(
        "{test}: faulted restore {:.1}s, second restore {:.1}s",
        r.took.as_secs_f64(),
        again.took.as_secs_f64()
    );
    assert_equal_to_backup(&c, Path::new(&dir), test).await;
    assert_eq!(
        appliance::installed_version(c.d(), &c.data)
            .await
            .as_deref(),
        Some("6.6.0")
    );
    // The old version runs on what was restored.
    c.d().container_start(&c.app).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let app = c.inspect(&c.app).await.unwrap();
    assert!(running(&app), "{test}: the restored app does not run");
    eprintln!("{test}: {:.1}s in all", t0.elapsed().as_secs_f64());
}

/// Through the data container: installed-version says 6.7.0, and a file
/// the backup does not have in two volumes.
async fn change_data(d: &Docker, data: &str) {
    let lib = tar_of(&[
        ("likewise/installed-version", "6.7.0\n"),
        ("likewise/added-after-backup", "new\n"),
    ]);
    let etc = tar_of(&[("vmware-sso/added-after-backup", "new\n")]);
    d.archive_put(data, "/var/lib", body::full(lib))
        .await
        .unwrap();
    d.archive_put(data, "/etc", body::full(etc)).await.unwrap();
}

/// A tar of small regular files.
fn tar_of(files: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, text) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(text.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, path, text.as_bytes()).unwrap();
    }
    b.into_inner().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_upload_dropped() {
    let when = on(
        Method::PUT,
        &format!(r"^/containers/{ANY}/archive\?path=%2Fvar%2Flib&"),
    );
    restore_cell(
        "rs-drop",
        when,
        Fault::DropUpload { after: 1024 },
        &["/var/lib/likewise", "broke"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_read_back_without_end_blocks() {
    let when = on(Method::GET, &archive_of("/etc/vmware-sso"));
    restore_cell("rs-cut", when, Fault::CutTarEnd, &["/etc/vmware-sso"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_upload_answers_500() {
    let when = on(
        Method::PUT,
        &format!(r"^/containers/{ANY}/archive\?path=%2Fetc&"),
    );
    let f = Fault::Status(500, "fake: no space left on device".into());
    restore_cell(
        "rs-500",
        when,
        f,
        &["/etc/likewise", "500", "no space left"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_read_back_stalls() {
    let when = on(Method::GET, &archive_of("/var/lib/likewise"));
    let f = Fault::StallBody { after: 512 };
    restore_cell("rs-stall", when, f, &["/var/lib/likewise", "nothing for"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_upload_answer_stalls() {
    let when = on(
        Method::PUT,
        &format!(r"^/containers/{ANY}/archive\?path=%2Fvar%2Flib&"),
    );
    let said = ["/var/lib/likewise", "did not answer within"];
    restore_cell("rs-put-stall", when, Fault::StallHeaders, &said).await;
}
