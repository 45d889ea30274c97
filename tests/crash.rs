//! kill -9 at any moment of an upgrade (and of `resume` and `rollback`
//! themselves), then `berth resume`: the host must always end whole.
//!
//! Two kinds of moments, on Docker and on Podman's service:
//! * a sweep: the run's duration is measured once, then berth is killed at
//!   moments spread evenly over it (BERTH_SWEEP=N moments, default 30);
//! * inside each engine action: berth talks to the engine through the
//!   fault proxy (tests/support/fakedaemon.rs), which lets the engine do
//!   the action and holds its answer, so the kill lands while the engine is
//!   still busy (the app ignores its stop signal, so a stop takes
//!   `--stop-timeout` seconds in the engine).
//!
//! After each kill, `berth resume` (twice in a row for some moments, two
//! at once for one: the lock must hold) must end with the container under
//! its name running, on the new image with migrated data, or on the old
//! image with every volume equal to the backup's content index; the config
//! file gone, nothing renamed aside, no helper container, exit 0, 1
//! (aborted: the new version never ran) or 3, never 4.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use berth::archive::index::{compare, read_index, IndexEntry};
use berth::archive::restore::read_index_of;
use berth::docker::{transport, Docker};
use berth::manifest::Manifest;
use hyper::Method;
use serde_json::{json, Value};
use support::appliance::{self, CONFIG_NAME};
use support::cli::Run;
use support::engine::Scope;
use support::fakedaemon::{on, FakeDaemon, Fault, When};
use support::fixtures::Fixtures;
use support::journal::journal;
use support::scene::{podman, podman_socket};
use support::stage::stage;

const BERTH: &str = env!("CARGO_BIN_EXE_berth");
/// The app ignores its stop signal: every stop takes this long in the engine.
const STOP_TIMEOUT: &str = "2";
/// Moments run at once (each on its own appliance).
const PARALLEL: usize = 3;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Engine {
    Docker,
    Podman,
}

impl Engine {
    fn socket(self) -> PathBuf {
        match self {
            Engine::Docker => transport::socket_from(None).expect("DOCKER_HOST"),
            Engine::Podman => podman_socket(),
        }
    }

    async fn connect(self) -> Docker {
        match self {
            Engine::Docker => support::engine::engine().await,
            Engine::Podman => podman().await,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Img {
    Good,
    Broken,
}

/// One appliance of one moment.
struct App {
    fx: Fixtures,
    socket: PathBuf,
    data: String,
    app: String,
    app_id: String,
    config_dir: PathBuf,
    config_src: PathBuf,
    root: PathBuf,
    before: BTreeMap<String, Vec<IndexEntry>>,
    /// Podman: rollback tags to untag (not remove) at the end.
    podman_tags: Mutex<Vec<String>>,
    scope: Scope,
}

impl App {
    /// The appliance on a per-scope tag of 6.6.0, its app ignoring its stop
    /// signal (so stops are slow in the engine).
    async fn up(eng: Engine, what: &str) -> App {
        let d = eng.connect().await;
        let scope = Scope::on(d.clone(), what);
        // Podman removes a whole image (every tag) when one tag is removed
        // by force: there the appliance runs the shared fixture reference.
        // PID 1 has no handler for SIGUSR1: the engine waits, then SIGKILLs.
        let stage = stage().app(json!({"StopSignal": "SIGUSR1"}));
        let stage = if eng == Engine::Docker {
            stage
        } else {
            stage.shared_image()
        };
        let s = stage.up(&scope).await;
        let (fx, app_id, config_src, root) = (s.fx, s.app_id, s.config_src, s.root);
        let (data, app, config_dir) = (s.lw.data, s.lw.app, s.lw.config_dir);
        let before = appliance::data_indexes(&d, &app).await;
        App {
            fx,
            socket: eng.socket(),
            data,
            app,
            app_id,
            config_dir,
            config_src,
            root,
            before,
            podman_tags: Mutex::default(),
            scope,
        }
    }

    fn d(&self) -> &Docker {
        &self.scope.docker
    }

    /// Remove what the moment made. The scope's cleanup blocks its thread
    /// while it talks to the engine on a connection of this runtime: hand
    /// the worker's queue over first, or that connection's task can wait
    /// behind the blocked worker until the client's timeout.
    async fn remove(self) {
        let tags = std::mem::take(&mut *self.podman_tags.lock().unwrap());
        for t in tags {
            let _ = self.d().image_remove(&t, false).await;
        }
        tokio::task::block_in_place(move || drop(self));
    }

    fn file(&self, img: Img) -> &Path {
        match img {
            Img::Good => &self.fx.good_tarballs.tar,
            Img::Broken => &self.fx.broken_tarballs.tar,
        }
    }

    /// `berth upgrade` spawned against `host` (the engine or a proxy).
    fn spawn_upgrade(&self, img: Img, host: &str) -> Child {
        let args = [
            "--host",
            host,
            "upgrade",
            &self.app,
            "--image-file",
            self.file(img).to_str().unwrap(),
            "--profile",
            "lightwave",
            "--config-file",
            self.config_src.to_str().unwrap(),
            "--backup-root",
            self.root.to_str().unwrap(),
            "--stop-timeout",
            STOP_TIMEOUT,
            "--json",
        ];
        spawn(&args)
    }

    fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The one run directory (None when killed before plan.json).
    fn run_dir(&self) -> Option<PathBuf> {
        let dirs: Vec<PathBuf> = fs::read_dir(&self.root)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| p.join("plan.json").exists())
                    .collect()
            })
            .unwrap_or_default();
        assert!(dirs.len() <= 1, "one run directory expected: {dirs:?}");
        let dir = dirs.into_iter().next()?;
        // Rollback tags go with the scope.
        if let Ok(p) = serde_json::from_slice::<Value>(&fs::read(dir.join("plan.json")).unwrap()) {
            if let Some(t) = p["rollback_tag"].as_str() {
                if self.socket == podman_socket() {
                    self.podman_tags.lock().unwrap().push(t.to_owned());
                } else {
                    self.scope.track_image(t);
                }
            }
        }
        Some(dir)
    }

    fn resume(&self, run: &Path) -> Run {
        run_berth(&[
            "--host",
            &self.host(),
            "resume",
            run.to_str().unwrap(),
            "--json",
        ])
    }

    async fn inspect(&self, name: &str) -> Option<Value> {
        match self.d().container_inspect_raw(name).await {
            Ok(v) => Some(v),
            Err(e) if e.is_not_found() => None,
            Err(e) => panic!("{e}"),
        }
    }
}

fn spawn(args: &[&str]) -> Child {
    Command::new(BERTH)
        .args(args)
        .env_remove("BERTH_TEST_KILL_AT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running berth")
}

/// Wait for berth to end. The wait blocks this thread: the runtime's other
/// tasks (moments run side by side) move to another worker meanwhile.
fn finish(child: Child, t: Instant) -> Run {
    let out = tokio::task::block_in_place(|| child.wait_with_output().expect("berth"));
    Run::from(out, t.elapsed())
}

fn run_berth(args: &[&str]) -> Run {
    let t = Instant::now();
    finish(spawn(args), t)
}

/// kill -9 (no-op if it has exited) and collect it.
fn kill(mut child: Child, t: Instant) -> Run {
    let _ = child.kill();
    finish(child, t)
}

/// The journal's last step boundary, "step:phase" (or "plan" / "none").
fn last_line(run: Option<&Path>) -> String {
    let Some(run) = run else {
        return "before plan.json".into();
    };
    match journal(run).last() {
        Some(e) if e["outcome"].is_string() => {
            format!("outcome {}", e["outcome"].as_str().unwrap())
        }
        Some(e) => format!(
            "{}:{}",
            e["step"].as_str().unwrap_or("?"),
            e["phase"].as_str().unwrap_or("?")
        ),
        None => "plan.json only".into(),
    }
}

/// How resume is run after a kill.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Resume {
    Once,
    Twice,
    TwoAtOnce,
}

/// One kill and what came of it, for the table.
#[derive(Debug, Clone)]
struct Record {
    engine: Engine,
    label: String,
    at: String,
    outcome: String,
}

static RECORDS: Mutex<Vec<Record>> = Mutex::new(vec![]);

/// Resume after a kill and check the end state; returns the outcome.
async fn resume_and_check(a: &App, how: Resume, why: &str) -> String {
    let Some(run) = a.run_dir() else {
        // Killed before the plan was written: nothing may have changed.
        assert_old_whole(a, None, why).await;
        return "nothing to resume".into();
    };
    let res = match how {
        Resume::Once | Resume::Twice => a.resume(&run),
        Resume::TwoAtOnce => {
            let args = [
                "--host",
                &a.host(),
                "resume",
                run.to_str().unwrap(),
                "--json",
            ];
            let t = Instant::now();
            let (c1, c2) = (spawn(&args), spawn(&args));
            let (r1, r2) = (finish(c1, t), finish(c2, t));
            let locked = |r: &Run| {
                r.code == Some(1)
                    && r.json()["error"]
                        .as_str()
                        .is_some_and(|e| e.contains("another berth"))
            };
            // One works, the other meets the lock (or, if the first was
            // done already, reports the same ended run).
            match (locked(&r1), locked(&r2)) {
                (true, true) => panic!("{why}: both resumes locked out:\n{r1}\n{r2}"),
                (true, false) => r2,
                (false, true) => r1,
                (false, false) => {
                    assert_eq!(
                        r1.json()["outcome"],
                        r2.json()["outcome"],
                        "{why}:\n{r1}\n{r2}"
                    );
                    r1
                }
            }
        }
    };
    assert_ne!(
        res.code,
        Some(4),
        "{why}: resume needs manual action: {res}"
    );
    let outcome = res.json()["outcome"]
        .as_str()
        .unwrap_or_else(|| panic!("{why}: resume gave no outcome: {res}"))
        .to_owned();
    let want = match outcome.as_str() {
        "upgraded" => 0,
        "rolled-back" => 3,
        "aborted" => 1,
        o => panic!("{why}: outcome {o}"),
    };
    assert_eq!(res.code, Some(want), "{why}: {res}");
    if how == Resume::Twice {
        let again = a.resume(&run);
        assert_eq!(again.code, Some(want), "{why}: second resume: {again}");
        assert_eq!(again.json()["outcome"], outcome.as_str(), "{why}: {again}");
    }
    let why = format!("{why}, resumed as {outcome}");
    if outcome == "upgraded" {
        assert_new_whole(a, &why).await;
    } else {
        assert_old_whole(a, Some(&run), &why).await;
    }
    assert_nothing_left(a, &why).await;
    outcome
}

fn running(c: &Value) -> bool {
    c.pointer("/State/Running").and_then(Value::as_bool) == Some(true)
}

async fn assert_new_whole(a: &App, why: &str) {
    let c = a
        .inspect(&a.app)
        .await
        .unwrap_or_else(|| panic!("{why}: no {}", a.app));
    assert_eq!(c["Image"], a.fx.good.id.as_str(), "{why}: image");
    assert!(running(&c), "{why}: not running: {}", c["State"]);
    assert_eq!(
        appliance::installed_version(a.d(), &a.data)
            .await
            .as_deref(),
        Some("6.7.0"),
        "{why}: data not migrated"
    );
}

/// The old container under its name, running, on the old image, every
/// volume equal to before and to the backup's content index.
async fn assert_old_whole(a: &App, run: Option<&Path>, why: &str) {
    let c = a
        .inspect(&a.app)
        .await
        .unwrap_or_else(|| panic!("{why}: no {}", a.app));
    assert_eq!(c["Id"], a.app_id.as_str(), "{why}: not the old container");
    assert_eq!(c["Image"], a.fx.old.id.as_str(), "{why}: image");
    assert!(running(&c), "{why}: not running: {}", c["State"]);
    let now = appliance::data_indexes(a.d(), &a.app).await;
    for (p, idx) in &a.before {
        let diffs = compare(idx, &now[p]);
        assert!(
            diffs.is_empty(),
            "{why}: {p} differs from before: {:?}",
            &diffs[..diffs.len().min(5)]
        );
    }
    let Some(backup) = run
        .map(|r| r.join("backup"))
        .filter(|b| b.join("manifest.json").exists())
    else {
        return;
    };
    let m = Manifest::load(&backup).unwrap_or_else(|e| panic!("{why}: {e}"));
    for e in &m.paths {
        let stored = read_index(BufReader::new(
            fs::File::open(backup.join(&e.index)).unwrap(),
        ))
        .unwrap();
        let found = read_index_of(a.d(), &a.app, &e.path, &e.excluded)
            .await
            .unwrap();
        let diffs = compare(&stored, &found);
        assert!(
            diffs.is_empty(),
            "{why}: {} differs from the backup: {:?}",
            e.path,
            &diffs[..diffs.len().min(5)]
        );
    }
}

/// No config file, nothing renamed aside, no helper on our volumes.
async fn assert_nothing_left(a: &App, why: &str) {
    let cfg = a.config_dir.join(CONFIG_NAME);
    assert!(
        !cfg.exists(),
        "{why}: the config file {} is still there",
        cfg.display()
    );
    let aside = a
        .d()
        .container_list(&json!({"name": [format!("{}-berth-", a.app)]}))
        .await
        .unwrap();
    assert!(
        aside.is_empty(),
        "{why}: left: {:?}",
        aside.iter().map(|c| c.name()).collect::<Vec<_>>()
    );
    let data = a.inspect(&a.data).await.expect("the data container");
    for m in data["Mounts"].as_array().into_iter().flatten() {
        let Some(v) = m["Name"].as_str() else {
            continue;
        };
        let helpers = a
            .d()
            .container_list(&json!({"label": [format!("berth.volume={v}")]}))
            .await
            .unwrap();
        assert!(
            helpers.is_empty(),
            "{why}: helper containers left on {v}: {helpers:?}"
        );
    }
}

fn record(engine: Engine, label: &str, at: &str, outcome: &str) {
    eprintln!("{engine:?} {label}: killed at {at} -> {outcome}");
    RECORDS.lock().unwrap().push(Record {
        engine,
        label: label.into(),
        at: at.into(),
        outcome: outcome.into(),
    });
}

/// The per-step table of this process's moments, on stderr.
fn print_table(engine: Engine) {
    let mut t: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for r in RECORDS.lock().unwrap().iter() {
        if r.engine == engine {
            let key = (r.label.clone(), r.at.clone(), r.outcome.clone());
            *t.entry(key).or_default() += 1;
        }
    }
    eprintln!("{engine:?}: kill moments by kind, the journal's last line, the outcome of resume");
    for ((label, at, outcome), n) in t {
        eprintln!("  {label:<30} {at:<24} {outcome:<18} {n}");
    }
}

// ------------------------------------------------------------- the sweep

/// How long an upgrade takes here, end to end, with PARALLEL of them at
/// once as the moments run (asserts they end as they should): the mean.
async fn measure(eng: Engine, img: Img) -> Duration {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..PARALLEL {
        tasks.spawn(measure_one(eng, img, i));
    }
    let mut sum = Duration::ZERO;
    while let Some(r) = tasks.join_next().await {
        sum += r.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    }
    let took = sum / PARALLEL as u32;
    eprintln!(
        "{eng:?}: a {img:?} upgrade takes {:.1}s ({PARALLEL} at once)",
        took.as_secs_f64()
    );
    took
}

async fn measure_one(eng: Engine, img: Img, i: usize) -> Duration {
    let a = App::up(eng, &format!("crash-measure-{eng:?}-{i}").to_lowercase()).await;
    let t = Instant::now();
    let r = finish(a.spawn_upgrade(img, &a.host()), t);
    let took = t.elapsed();
    let want = if img == Img::Good { 0 } else { 3 };
    assert_eq!(r.code, Some(want), "the measured run: {r}");
    a.run_dir();
    a.remove().await;
    took
}

/// Kill at `at` after the start, then resume and check.
async fn moment(eng: Engine, img: Img, i: usize, at: Duration, how: Resume) {
    let a = App::up(eng, &format!("crash-{i}")).await;
    let t = Instant::now();
    let child = a.spawn_upgrade(img, &a.host());
    tokio::time::sleep(at).await;
    let r = kill(child, t);
    let run = a.run_dir();
    let line = last_line(run.as_deref());
    let why = format!(
        "{eng:?} {img:?} killed {:.2}s in (signal {:?}, at {line})",
        at.as_secs_f64(),
        r.signal
    );
    let outcome = resume_and_check(&a, how, &why).await;
    eprintln!("{eng:?} {img:?} killed {:.2}s in", at.as_secs_f64());
    record(eng, &format!("sweep {img:?}"), &line, &outcome);
    a.remove().await;
}

/// BERTH_SWEEP moments (default 30) spread over a good upgrade, and a
/// sixth as many over a broken one (its rollback).
async fn sweep(eng: Engine) {
    let n: usize = std::env::var("BERTH_SWEEP")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let good = measure(eng, Img::Good).await;
    let broken = measure(eng, Img::Broken).await;
    let mut moments = vec![];
    for i in 0..n {
        moments.push((Img::Good, good.mul_f64((i as f64 + 0.5) / n as f64)));
    }
    let nb = n.div_ceil(6);
    for i in 0..nb {
        moments.push((Img::Broken, broken.mul_f64((i as f64 + 0.5) / nb as f64)));
    }
    let total = moments.len();
    for (chunk_no, chunk) in moments.chunks(PARALLEL).enumerate() {
        let mut tasks = tokio::task::JoinSet::new();
        for (k, (img, at)) in chunk.iter().enumerate() {
            let i = chunk_no * PARALLEL + k;
            let how = match i {
                _ if i == total / 2 => Resume::TwoAtOnce,
                _ if i % 4 == 1 => Resume::Twice,
                _ => Resume::Once,
            };
            tasks.spawn(moment(eng, *img, i, *at, how));
        }
        while let Some(r) = tasks.join_next().await {
            if let Err(e) = r {
                std::panic::resume_unwind(e.into_panic());
            }
        }
    }
    print_table(eng);
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_anywhere_in_upgrade_docker() {
    sweep(Engine::Docker).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_anywhere_in_upgrade_podman() {
    sweep(Engine::Podman).await;
}

// ----------------------------------------- inside each engine action

/// An engine action to kill berth in: the request the proxy holds the
/// answer of, how long after it reached the engine berth is killed, and
/// which berth command runs (an upgrade, or a resume/rollback after a kill
/// of the upgrade at a journal line).
struct Inside {
    label: &'static str,
    img: Img,
    when: fn(&App) -> When,
    after: Duration,
    /// None: the upgrade is killed. Some((cmd, kill_at)): the upgrade is
    /// killed at that journal line first, then `cmd` is killed inside.
    then: Option<(&'static str, &'static str)>,
}

fn inside_cases() -> Vec<Inside> {
    let ms = Duration::from_millis;
    let case = |label, img, when, after| Inside {
        label,
        img,
        when,
        after,
        then: None,
    };
    vec![
        case(
            "stop",
            Img::Good,
            |_| on(Method::POST, r"^/containers/[^/]+/stop"),
            ms(500),
        ),
        case(
            "load",
            Img::Good,
            |_| on(Method::POST, r"^/images/load"),
            ms(0),
        ),
        case(
            "rename",
            Img::Good,
            |_| on(Method::POST, r"/rename\?"),
            ms(0),
        ),
        case(
            "create",
            Img::Good,
            |_| on(Method::POST, r"^/containers/create"),
            ms(0),
        ),
        case(
            "start",
            Img::Good,
            |_| on(Method::POST, r"^/containers/[^/]+/start"),
            ms(0),
        ),
        case(
            "remove (finish)",
            Img::Good,
            |_| on(Method::DELETE, r"^/containers/"),
            ms(0),
        ),
        case(
            "stop of the new (remove-new)",
            Img::Broken,
            |_| on(Method::POST, r"/stop").nth(2),
            ms(500),
        ),
        case(
            "wipe helper",
            Img::Broken,
            |_| on(Method::POST, r"/wait"),
            ms(0),
        ),
        case(
            "restore upload",
            Img::Broken,
            |_| on(Method::PUT, r"/archive\?path=%2Fvar"),
            ms(0),
        ),
        Inside {
            label: "resume: wipe helper",
            img: Img::Broken,
            when: |_| on(Method::POST, r"/wait"),
            after: ms(0),
            then: Some(("resume", "watch:begin")),
        },
        Inside {
            label: "rollback: restore upload",
            img: Img::Broken,
            when: |_| on(Method::PUT, r"/archive\?path=%2Fetc"),
            after: ms(0),
            then: Some(("rollback", "restore:begin")),
        },
        Inside {
            label: "resume: start of the old",
            img: Img::Broken,
            when: |a| on(Method::POST, &format!("^/containers/{}/start", a.app_id)),
            after: ms(100),
            then: Some(("resume", "rename-back:done")),
        },
    ]
}

/// Wait until the proxy's rule fired (the engine has the request), then
/// a little more; panics if berth ends first.
async fn until_fired(fake: &FakeDaemon, child: &mut Child, what: &str) {
    let t = Instant::now();
    while !fake.unfired().is_empty() {
        if let Ok(Some(st)) = child.try_wait() {
            panic!(
                "{what}: berth ended ({st}) before the engine action; requests: {:#?}",
                fake.log()
            );
        }
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "{what}: the action never came"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn kill_inside(eng: Engine, i: usize, c: &Inside) {
    let a = App::up(eng, &format!("crash-in-{i}")).await;
    let fake = FakeDaemon::start(&a.socket, &format!("crash-{eng:?}-{i}"));
    fake.inject((c.when)(&a), Fault::StallHeaders);
    let t = Instant::now();
    let mut child = match c.then {
        None => a.spawn_upgrade(c.img, &fake.host()),
        Some((cmd, at)) => {
            // First the upgrade, killed at a journal line (debug hook).
            let mut up = Command::new(BERTH);
            up.args(["--host", &a.host(), "upgrade", &a.app, "--image-file"])
                .arg(a.file(c.img))
                .args(["--profile", "lightwave", "--config-file"])
                .arg(&a.config_src)
                .arg("--backup-root")
                .arg(&a.root)
                .args(["--stop-timeout", STOP_TIMEOUT, "--json"])
                .env("BERTH_TEST_KILL_AT", at);
            let r = tokio::task::block_in_place(|| up.output().unwrap());
            assert!(
                !r.status.success(),
                "{}: the upgrade was not killed at {at}",
                c.label
            );
            let run = a.run_dir().expect("a run directory");
            spawn(&["--host", &fake.host(), cmd, run.to_str().unwrap(), "--json"])
        }
    };
    until_fired(&fake, &mut child, c.label).await;
    tokio::time::sleep(c.after).await;
    let r = kill(child, t);
    let line = last_line(a.run_dir().as_deref());
    let why = format!(
        "{eng:?} killed inside {} (signal {:?}, at {line}); proxy saw {:#?}",
        c.label,
        r.signal,
        fake.log()
    );
    tokio::task::block_in_place(move || drop(fake));
    let how = if i.is_multiple_of(2) {
        Resume::Twice
    } else {
        Resume::Once
    };
    let outcome = resume_and_check(&a, how, &why).await;
    record(eng, c.label, &line, &outcome);
    a.remove().await;
}

async fn inside_all(eng: Engine) {
    // BERTH_CRASH_ONLY=WORD: only the cases whose label holds WORD.
    let only = std::env::var("BERTH_CRASH_ONLY").unwrap_or_default();
    let cases: Vec<usize> = (0..inside_cases().len())
        .filter(|i| inside_cases()[*i].label.contains(only.as_str()))
        .collect();
    for chunk in cases.chunks(PARALLEL) {
        let mut tasks = tokio::task::JoinSet::new();
        for &i in chunk {
            tasks.spawn(async move {
                let cases = inside_cases();
                kill_inside(eng, i, &cases[i]).await
            });
        }
        while let Some(r) = tasks.join_next().await {
            if let Err(e) = r {
                std::panic::resume_unwind(e.into_panic());
            }
        }
    }
    print_table(eng);
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_inside_engine_actions_docker() {
    inside_all(Engine::Docker).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_inside_engine_actions_podman() {
    inside_all(Engine::Podman).await;
}

/// `berth status RUN_DIR` after a kill inside the stop: it names the step
/// in flight and what resume will do, and resume then does it.
#[tokio::test(flavor = "multi_thread")]
async fn status_says_what_resume_will_do() {
    let a = App::up(Engine::Docker, "crash-status").await;
    let fake = FakeDaemon::start(&a.socket, "crash-status");
    fake.inject(
        on(Method::POST, r"^/containers/[^/]+/stop"),
        Fault::StallHeaders,
    );
    let t = Instant::now();
    let mut child = a.spawn_upgrade(Img::Good, &fake.host());
    until_fired(&fake, &mut child, "stop").await;
    kill(child, t);
    tokio::task::block_in_place(move || drop(fake));
    let run = a.run_dir().unwrap();
    let st = run_berth(&[
        "--host",
        &a.host(),
        "status",
        run.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(st.code, Some(0), "{st}");
    let v = &st.json()[0];
    assert_eq!(v["in_flight"], "stop", "{st}");
    assert_eq!(v["resume"]["action"], "roll-back", "{st}");
    assert_eq!(v["resume"]["restore"], false, "{st}");
    assert!(v["engine"]["old"].is_string(), "{st}");
    let text = run_berth(&["--host", &a.host(), "status", run.to_str().unwrap()]);
    assert!(
        text.stdout.contains("in flight when berth stopped: stop"),
        "{text}"
    );
    assert!(
        text.stdout.contains("berth resume will: roll back"),
        "{text}"
    );
    let outcome = resume_and_check(&a, Resume::Once, "status test").await;
    assert_eq!(outcome, "aborted");
    a.remove().await;
}
