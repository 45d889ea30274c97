//! `berth rehearse` on the lightwave-sim appliance, on Docker and on
//! Podman: the new version runs on a copy of the data while the old one
//! keeps serving, and nothing of the rehearsal is left afterwards.
//!
//! Every test checks end states: the old container (same id, same start
//! time, never restarted, running), its data (content index of every data
//! path), the engine (no container or volume labelled with the run), the
//! host (no config file, bind mounts unchanged).

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use berth::archive::index::{compare, IndexEntry};
use berth::docker::Docker;
use serde_json::{json, Value};
use support::appliance::{self, Appliance};
use support::cli::Run;
use support::engine::Scope;
use support::fixtures::{self, Fixtures};
use support::scene;
use support::stage::{self, track_rollback_tags};

const BERTH: &str = env!("CARGO_BIN_EXE_berth");

/// `berth --host <scope's engine> ARGS...`, with `env` set.
fn berth(d: &Docker, args: &[&str], env: &[(&str, &str)]) -> Run {
    let t = Instant::now();
    let out = Command::new(BERTH)
        .arg("--host")
        .arg(format!("unix://{}", d.socket().display()))
        .args(args)
        .env_remove("BERTH_TEST_KILL_AT")
        .envs(env.iter().copied())
        .output()
        .expect("running berth");
    let run = Run::from(out, t.elapsed());
    eprintln!("berth {args:?}: {:.1}s", run.took.as_secs_f64());
    run
}

/// `berth rollout ARGS...`: its engines come from --node, not --host.
fn rollout(args: &[&str]) -> Run {
    let t = Instant::now();
    let out = Command::new(BERTH)
        .args(args)
        .env_remove("BERTH_TEST_KILL_AT")
        .output()
        .expect("running berth");
    Run::from(out, t.elapsed())
}

/// The rehearsal (or upgrade) arguments of the lightwave appliance.
fn args<'a>(
    verb: &'a str,
    lw: &'a Appliance,
    file: &'a Path,
    root: &'a Path,
    config: &'a Path,
) -> Vec<&'a str> {
    vec![
        verb,
        &lw.app,
        "--image-file",
        file.to_str().unwrap(),
        "--profile",
        "lightwave",
        "--config-file",
        config.to_str().unwrap(),
        "--backup-root",
        root.to_str().unwrap(),
        "--timeout",
        "60s",
        "--json",
    ]
}

/// What must not change while a rehearsal runs: the old container's id,
/// start time and restart count, and the content of its data.
struct OldState {
    id: String,
    started: String,
    restarts: i64,
    data: BTreeMap<String, Vec<IndexEntry>>,
}

impl OldState {
    async fn of(d: &Docker, lw: &Appliance) -> OldState {
        let c = d.container_inspect(&lw.app).await.unwrap();
        OldState {
            id: c.id,
            started: c.state.started_at,
            restarts: c.restart_count,
            data: appliance::data_indexes(d, &lw.app).await,
        }
    }

    /// The old container ran the whole time, on data nobody wrote.
    async fn assert_untouched(&self, d: &Docker, lw: &Appliance) {
        let c = d.container_inspect(&lw.app).await.unwrap();
        assert_eq!(c.id, self.id, "not the old container");
        assert!(c.state.running, "{:?}", c.state);
        assert_eq!(c.state.started_at, self.started, "it was restarted");
        assert_eq!(c.restart_count, self.restarts);
        let now = appliance::data_indexes(d, &lw.app).await;
        for (path, idx) in &self.data {
            let diffs = compare(idx, &now[path]);
            assert!(diffs.is_empty(), "{path} changed: {diffs:?}");
        }
        assert!(
            !lw.config_file.exists(),
            "a config file landed in the host's bind"
        );
    }
}

/// Nothing labelled with the run is left on the engine, and the private
/// config directory is gone.
async fn assert_nothing_left(d: &Docker, run_dir: &Path) {
    let run_id = run_dir.file_name().unwrap().to_str().unwrap();
    let filter = json!({"label": [format!("berth.run={run_id}")]});
    let containers = d.container_list(&filter).await.unwrap();
    assert!(containers.is_empty(), "containers left: {containers:?}");
    let volumes = d.volume_list(&filter).await.unwrap();
    assert!(volumes.is_empty(), "volumes left: {volumes:?}");
    assert!(
        !run_dir.join("config").exists(),
        "the config directory is left"
    );
}

fn run_dir(j: &Value) -> PathBuf {
    PathBuf::from(
        j["run_dir"]
            .as_str()
            .unwrap_or_else(|| panic!("no run_dir in {j}")),
    )
}

struct Setup {
    scope: Scope,
    lw: Appliance,
    fx: Fixtures,
    root: PathBuf,
    config: PathBuf,
}

impl Setup {
    async fn new(scope: Scope, lw: Appliance) -> Setup {
        let fx = fixtures::ensure(&scope.docker).await;
        let root = scope.dir("runs");
        let config = scope.dir("secret").join(appliance::CONFIG_NAME);
        std::fs::write(&config, appliance::config_text("standalone")).unwrap();
        Setup {
            scope,
            lw,
            fx,
            root,
            config,
        }
    }
}

/// 6.6.0 -> 6.8.0-broken: exit 3, the old container untouched, nothing
/// left; 6.6.0 -> 6.7.0: exit 0; then `upgrade --rehearse-first` upgrades.
async fn broken_then_good_then_upgrade(s: Setup) {
    let (d, lw) = (&s.scope.docker, &s.lw);
    let old = OldState::of(d, lw).await;

    let r = berth(
        d,
        &args(
            "rehearse",
            lw,
            &s.fx.broken_tarballs.tar,
            &s.root,
            &s.config,
        ),
        &[],
    );
    assert_eq!(r.code, Some(3), "{r}");
    let j = r.json();
    assert_eq!(j["outcome"], "failed", "{j}");
    assert_eq!(j["verdict"]["verdict"], "failure", "{j}");
    let why = j["verdict"]["why"].as_str().unwrap().to_lowercase();
    assert!(why.contains("upgrade fail"), "{j}");
    assert!(j["durations"]["copy_s"].as_f64().unwrap() > 0.0, "{j}");
    assert!(
        j["durations"]["start_to_verdict_s"].as_f64().unwrap() > 0.0,
        "{j}"
    );
    let diffs = j["differences"].to_string();
    assert!(
        diffs.contains("no network") && diffs.contains("private directory"),
        "{diffs}"
    );
    let dir = run_dir(&j);
    let kept: Value =
        serde_json::from_slice(&std::fs::read(dir.join("verdict.json")).unwrap()).unwrap();
    let tail = kept["last_lines"].to_string();
    assert!(tail.contains("vdcupgrade failed"), "{tail}");
    old.assert_untouched(d, lw).await;
    assert_nothing_left(d, &dir).await;

    // A rollout that rehearses first ends before it touches the node.
    let node = format!("a=unix://{}:{}", d.socket().display(), lw.app);
    let mut a = args("rollout", lw, &s.fx.broken_tarballs.tar, &s.root, &s.config);
    a.extend(["--node", node.as_str(), "--rehearse-first"]);
    let r = rollout(&a);
    assert_eq!(r.code, Some(3), "{r}");
    assert_eq!(r.json()["outcome"], "failed", "{r}");
    let rollouts = std::fs::read_dir(&s.root).unwrap().flatten();
    let names: Vec<String> = rollouts
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.starts_with("rollout-")),
        "{names:?}"
    );
    old.assert_untouched(d, lw).await;

    let r = berth(
        d,
        &args("rehearse", lw, &s.fx.good_tarballs.tar, &s.root, &s.config),
        &[],
    );
    assert_eq!(r.code, Some(0), "{r}");
    assert_eq!(r.json()["outcome"], "passed", "{r}");
    old.assert_untouched(d, lw).await;
    assert_nothing_left(d, &run_dir(&r.json())).await;

    let mut a = args("upgrade", lw, &s.fx.good_tarballs.tar, &s.root, &s.config);
    a.push("--rehearse-first");
    let r = berth(d, &a, &[]);
    track_rollback_tags(&s.scope, &s.root);
    assert_eq!(r.code, Some(0), "{r}");
    let j = r.json();
    assert_eq!(j["outcome"], "upgraded", "{j}");
    assert_eq!(j["rehearsal"]["outcome"], "passed", "{j}");
    // The old container ran during the rehearsal: its copy was not reused.
    let plan: Value =
        serde_json::from_slice(&std::fs::read(run_dir(&j).join("plan.json")).unwrap()).unwrap();
    assert!(plan.get("reuse_backup").is_none(), "{plan}");
    assert_eq!(lw.installed_version(d).await.as_deref(), Some("6.7.0"));
    assert_nothing_left(d, &run_dir(&j["rehearsal"])).await;
}

/// Kill berth while the rehearsal container runs, then `berth resume`:
/// everything of the rehearsal is gone, the old container untouched.
async fn killed_then_resumed(s: Setup) {
    let (d, lw) = (&s.scope.docker, &s.lw);
    let old = OldState::of(d, lw).await;
    let a = args("rehearse", lw, &s.fx.good_tarballs.tar, &s.root, &s.config);
    let r = berth(d, &a, &[("BERTH_TEST_KILL_AT", "watch:begin")]);
    assert_eq!(r.signal, Some(9), "{r}");
    let dir = stage::run_dirs(&s.root)
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with("-rehearsal"))
        .expect("a rehearsal run directory");
    let all = berth(d, &["status", "--root", s.root.to_str().unwrap()], &[]);
    assert!(all.stdout.contains("UNFINISHED rehearsal"), "{all}");
    assert!(all.stdout.contains("a rehearsal's container"), "{all}");
    let st = berth(d, &["status", dir.to_str().unwrap()], &[]);
    assert_eq!(st.code, Some(0), "{st}");
    assert!(
        st.stdout.contains("UNFINISHED") && st.stdout.contains("volume "),
        "{st}"
    );
    assert!(
        dir.join("config").join(appliance::CONFIG_NAME).exists(),
        "the kill came too early"
    );

    let r = berth(d, &["resume", dir.to_str().unwrap(), "--json"], &[]);
    assert_eq!(r.code, Some(1), "{r}");
    assert_eq!(r.json()["outcome"], "incomplete", "{r}");
    assert_nothing_left(d, &dir).await;
    old.assert_untouched(d, lw).await;
    let st = berth(d, &["status", dir.to_str().unwrap()], &[]);
    assert!(st.stdout.contains("nothing of it is left"), "{st}");
}

/// Every file under `dir` with its size, mode and mtime.
fn snapshot(dir: &Path) -> BTreeMap<String, (u64, u32, i64)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let md = std::fs::symlink_metadata(&d).unwrap();
        let rel = d.strip_prefix(dir).unwrap().display().to_string();
        out.insert(rel, (md.len(), md.mode(), md.mtime()));
        if md.is_dir() {
            stack.extend(std::fs::read_dir(&d).unwrap().flatten().map(|e| e.path()));
        }
    }
    out
}

/// The appliance on the default bridge with a published port and a second
/// host bind: the rehearsal publishes nothing (no collision: it runs) and
/// writes nothing into either bind.
async fn published_port_and_binds(scope: Scope) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let plugins = scope.dir("plugins");
    std::fs::write(plugins.join("plugin.conf"), b"enabled=1\n").unwrap();
    let config_dir = std::env::temp_dir().join(scope.name("lw-config"));
    let patch = json!({
        "ExposedPorts": {"8443/tcp": {}},
        "HostConfig": {
            "PortBindings": {"8443/tcp": [{"HostIp": "127.0.0.1", "HostPort": port}]},
            "Binds": [
                format!("{}:{}", config_dir.display(), appliance::CONFIG_MOUNT),
                format!("{}:/opt/plugins", plugins.display()),
            ],
        },
    });
    let lw = scene::appliance_with(&scope, "6.6.0", None, json!({}), &[], patch).await;
    let s = Setup::new(scope, lw).await;
    let (d, lw) = (&s.scope.docker, &s.lw);
    let old = OldState::of(d, lw).await;
    let before = (snapshot(&lw.config_dir), snapshot(&plugins));
    let ports = |c: &Value| c["NetworkSettings"]["Ports"]["8443/tcp"].clone();
    let published = ports(&d.container_inspect_raw(&lw.app).await.unwrap());
    assert_eq!(published[0]["HostPort"], port.as_str(), "{published}");

    // A dry run makes nothing; then the rehearsal restores a backup taken
    // before (--from-backup) instead of taking one.
    let mut a = args("rehearse", lw, &s.fx.good_tarballs.tar, &s.root, &s.config);
    a.push("--dry-run");
    let r = berth(d, &a, &[]);
    assert_eq!(r.code, Some(0), "{r}");
    assert_eq!(r.json()["outcome"], "planned", "{r}");
    assert_eq!(
        r.json()["plan"]["scratch"].as_array().unwrap().len(),
        4,
        "{r}"
    );
    assert_eq!(
        std::fs::read_dir(&s.root).unwrap().count(),
        0,
        "a dry run wrote"
    );
    let backups = s.scope.dir("backups");
    let b = berth(
        d,
        &[
            "backup",
            &lw.app,
            "--out",
            backups.to_str().unwrap(),
            "--json",
        ],
        &[],
    );
    assert_eq!(b.code, Some(0), "{b}");
    let backup = b.json()["dir"].as_str().unwrap().to_owned();
    let mut a = args("rehearse", lw, &s.fx.good_tarballs.tar, &s.root, &s.config);
    a.extend(["--from-backup", backup.as_str()]);
    let r = berth(d, &a, &[]);
    assert_eq!(r.code, Some(0), "{r}");
    let j = r.json();
    assert_eq!(j["backup_dir"], backup.as_str(), "{j}");
    assert!(
        !run_dir(&j).join("backup").exists(),
        "a second backup was taken"
    );
    let diffs = j["differences"].to_string();
    assert!(diffs.contains("no published ports"), "{diffs}");
    assert!(
        diffs.contains("read-only") && diffs.contains("/opt/plugins"),
        "{diffs}"
    );
    assert_eq!(
        before,
        (snapshot(&lw.config_dir), snapshot(&plugins)),
        "a bind was written"
    );
    assert_eq!(
        ports(&d.container_inspect_raw(&lw.app).await.unwrap()),
        published
    );
    old.assert_untouched(d, lw).await;
    assert_nothing_left(d, &run_dir(&j)).await;
}

/// A stopped container cannot have written its data since the
/// rehearsal's copy: `upgrade --rehearse-first` reuses that copy (and
/// deep-verifies it in its own run directory).
async fn stopped_container_reuses_the_copy(s: Setup) {
    let (d, lw) = (&s.scope.docker, &s.lw);
    d.container_stop(&lw.app, 10).await.unwrap();
    let mut a = args("upgrade", lw, &s.fx.good_tarballs.tar, &s.root, &s.config);
    a.push("--rehearse-first");
    let r = berth(d, &a, &[]);
    track_rollback_tags(&s.scope, &s.root);
    assert_eq!(r.code, Some(0), "{r}");
    let j = r.json();
    assert_eq!(j["outcome"], "upgraded", "{j}");
    let rehearsal = run_dir(&j["rehearsal"]);
    let plan: Value =
        serde_json::from_slice(&std::fs::read(run_dir(&j).join("plan.json")).unwrap()).unwrap();
    assert_eq!(
        plan["reuse_backup"],
        rehearsal.join("backup").to_str().unwrap(),
        "{plan}"
    );
    let sums = |dir: &Path| std::fs::read(dir.join("backup/SHA256SUMS")).unwrap();
    assert_eq!(sums(&run_dir(&j)), sums(&rehearsal));
    assert_eq!(lw.installed_version(d).await.as_deref(), Some("6.7.0"));
    assert_nothing_left(d, &rehearsal).await;
}

/// The appliance on 6.6.0 in `scope`, with the files the tests give berth.
async fn lw_on(scope: Scope) -> Setup {
    let lw = appliance::up(&scope, "6.6.0").await;
    Setup::new(scope, lw).await
}

async fn docker(test: &str) -> Scope {
    Scope::new(test).await
}

async fn podman(test: &str) -> Scope {
    Scope::on(scene::podman().await, test)
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_rehearsals_judge_without_touching_the_old_container() {
    broken_then_good_then_upgrade(lw_on(docker("rh-judge").await).await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_a_killed_rehearsal_is_cleaned_up_by_resume() {
    killed_then_resumed(lw_on(docker("rh-kill").await).await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_rehearse_first_reuses_the_copy_of_a_stopped_container() {
    stopped_container_reuses_the_copy(lw_on(docker("rh-reuse").await).await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_rehearsal_beside_a_published_port_and_host_binds() {
    published_port_and_binds(docker("rh-port").await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn podman_rehearsals_judge_without_touching_the_old_container() {
    broken_then_good_then_upgrade(lw_on(podman("rh-pm-judge").await).await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn podman_a_killed_rehearsal_is_cleaned_up_by_resume() {
    killed_then_resumed(lw_on(podman("rh-pm-kill").await).await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn podman_rehearsal_beside_a_published_port_and_host_binds() {
    published_port_and_binds(podman("rh-pm-port").await).await;
}
