//! `berth rollout` over two real engines on one machine: the default engine
//! and the second dockerd (its own socket, data root, exec root and pid
//! file; no bridge, no iptables), one lightwave-sim appliance on each.
//!
//! Every test asserts the end state on both engines (which container runs
//! under the app's name, its image, the version recorded in its volumes,
//! whether it was restarted) and in the rollout directory, not only what
//! berth printed.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use berth::archive::index::{compare, IndexEntry};
use berth::docker::Docker;
use serde_json::Value;
use support::appliance::{self, Appliance, CONFIG_NAME};
use support::cli::Run;
use support::dockerd::second_engine;
use support::engine::{engine, Scope};
use support::fixtures::{self, Fixtures};
use support::journal::journal;

const BERTH: &str = env!("CARGO_BIN_EXE_berth");

// ------------------------------------------------------------------ the CLI

/// Run berth with `env` (the kill hooks are removed unless given).
fn berth_env(args: &[String], env: &[(&str, &str)]) -> Run {
    let t = Instant::now();
    let mut c = Command::new(BERTH);
    c.args(args)
        .env_remove("BERTH_TEST_KILL_AT")
        .env_remove("BERTH_TEST_ROLLOUT_KILL_AT");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("running berth");
    Run::from(out, t.elapsed())
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------- the nodes

/// One node: an engine and the appliance on it.
struct Node {
    /// The `--node` name.
    name: &'static str,
    lw: Appliance,
    /// The app container's id as stood up.
    app_id: String,
    /// The per-test reference of the 6.6.0 fixture the appliance runs (so
    /// the rollback tag berth makes is per test, removed with the scope).
    image: String,
    scope: Scope,
}

impl Node {
    /// Stand up the appliance on 6.6.0 on `d`, its app container named
    /// `app` (the same name on every node is the common case).
    async fn up(d: Docker, test: &str, name: &'static str, app: Option<&str>) -> (Node, Fixtures) {
        let scope = Scope::on(d.clone(), test);
        let fx = fixtures::ensure(&d).await;
        let repo = format!("{}/lightwave-sts", scope.prefix);
        let image = format!("{repo}:6.6.0");
        scope.track_image(&image);
        d.image_tag(&fx.old.id, &repo, "6.6.0").await.unwrap();
        let app = app.map(String::from).unwrap_or_else(|| scope.name("lw"));
        let data = format!("{app}_data");
        scope.track_container(&data);
        scope.track_container(&app);
        let dir = scope.dir("lw-config");
        let lw = appliance::up_named(&d, &data, &app, &dir, &image)
            .await
            .unwrap_or_else(|e| panic!("node {name}: {e}"));
        let app_id = d.container_inspect_raw(&app).await.unwrap()["Id"]
            .as_str()
            .unwrap()
            .to_owned();
        let node = Node {
            name,
            lw,
            app_id,
            image,
            scope,
        };
        (node, fx)
    }

    fn d(&self) -> &Docker {
        &self.scope.docker
    }

    /// `NAME=unix:///socket[:CONTAINER]`.
    fn spec(&self, with_container: bool) -> String {
        let mut s = format!("{}=unix://{}", self.name, self.d().socket().display());
        if with_container {
            s += &format!(":{}", self.lw.app);
        }
        s
    }

    async fn app(&self) -> Value {
        self.d()
            .container_inspect_raw(&self.lw.app)
            .await
            .unwrap_or_else(|e| panic!("node {}: {e}", self.name))
    }

    async fn installed_version(&self) -> Option<String> {
        self.lw.installed_version(self.d()).await
    }

    /// The content index of every data path (the config bind cut out).
    async fn indexes(&self) -> BTreeMap<String, Vec<IndexEntry>> {
        appliance::data_indexes(self.d(), &self.lw.app).await
    }

    /// Images of this test's repository on the node's engine.
    async fn test_tags(&self) -> Vec<String> {
        let want = format!("{}/lightwave-sts:", self.scope.prefix);
        let list = self
            .d()
            .get_json("/images/json", "listing images")
            .await
            .unwrap();
        let mut tags: Vec<String> = list
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|i| i["RepoTags"].as_array().cloned().unwrap_or_default())
            .filter_map(|t| t.as_str().map(String::from))
            .filter(|t| t.starts_with(&want))
            .collect();
        tags.sort();
        tags
    }

    /// Containers berth renamed aside on this engine.
    async fn aside(&self) -> usize {
        let filter = serde_json::json!({"name": [format!("{}-berth-old-", self.lw.app)]});
        self.d().container_list(&filter).await.unwrap().len()
    }

    /// The node is on 6.7.0: a new container under the name, running, the
    /// data migrated, the config file gone, nothing aside.
    async fn assert_upgraded(&self, fx: &Fixtures, why: &str) {
        let c = self.app().await;
        let why = format!("{why}, node {}", self.name);
        assert_eq!(c["Image"], fx.good.id.as_str(), "{why}: image");
        assert_ne!(c["Id"], self.app_id.as_str(), "{why}: the old container");
        assert_eq!(c["State"]["Running"], true, "{why}: {}", c["State"]);
        assert_eq!(
            self.installed_version().await.as_deref(),
            Some("6.7.0"),
            "{why}"
        );
        assert!(!self.lw.config_file.exists(), "{why}: config file left");
        assert_eq!(self.aside().await, 0, "{why}: a container left aside");
    }
}

/// Two nodes stood up at the same time: `a` on the default engine, `b` on
/// the second one. `same_name`: the app container has one name on both.
async fn two_nodes(test: &str, same_name: bool) -> (Node, Node, Fixtures) {
    let (d1, d2) = (engine().await, second_engine().await);
    let app = same_name.then(|| format!("berth-test-{test}-{}-lw", std::process::id()));
    let ((a, fx), (b, _)) = tokio::join!(
        Node::up(d1, test, "a", app.as_deref()),
        Node::up(d2, test, "b", app.as_deref())
    );
    (a, b, fx)
}

/// `--config-file` source (0600) and `--backup-root`, in `a`'s scope.
fn run_paths(a: &Node) -> (PathBuf, PathBuf) {
    let secret = a.scope.dir("secret").join(CONFIG_NAME);
    fs::write(&secret, appliance::config_text("standalone")).unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    (secret, a.scope.dir("runs"))
}

/// `berth rollout [CONTAINER] --node ... --image-file F --profile lightwave
/// --config-file SRC --backup-root ROOT --json EXTRA...`.
fn rollout_args(
    container: &str,
    nodes: &[String],
    file: &Path,
    secret: &Path,
    root: &Path,
    extra: &[&str],
) -> Vec<String> {
    let mut v = args(&["rollout", container]);
    for n in nodes {
        v.extend(args(&["--node", n]));
    }
    v.extend(args(&[
        "--image-file",
        file.to_str().unwrap(),
        "--profile",
        "lightwave",
        "--config-file",
        secret.to_str().unwrap(),
        "--backup-root",
        root.to_str().unwrap(),
    ]));
    v.extend(args(extra));
    v
}

/// The one rollout directory under the backup root.
fn rollout_dir(root: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = fs::read_dir(root)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    assert_eq!(dirs.len(), 1, "one rollout directory expected: {dirs:?}");
    assert!(
        dirs[0].join("rollout.json").is_file(),
        "{}",
        dirs[0].display()
    );
    dirs.into_iter().next().unwrap()
}

fn state(dir: &Path) -> Value {
    serde_json::from_slice(&fs::read(dir.join("rollout.json")).unwrap()).unwrap()
}

/// The upgrade run directories of one node in a rollout directory.
fn node_runs(dir: &Path, node: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir.join(node))
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Remove the rollback tags berth made (read from the nodes' plans) with
/// each node's scope.
fn track_rollback_tags(dir: &Path, nodes: &[&Node]) {
    for n in nodes {
        for run in node_runs(dir, n.name) {
            if let Ok(b) = fs::read(run.join("plan.json")) {
                let p: Value = serde_json::from_slice(&b).unwrap();
                if let Some(t) = p["rollback_tag"].as_str() {
                    n.scope.track_image(t);
                }
            }
        }
    }
}

// -------------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread")]
async fn rollout_to_6_7_upgrades_both_nodes_one_after_another() {
    let (a, b, fx) = two_nodes("ro-good", true).await;
    let (secret, root) = run_paths(&a);
    let nodes = [a.spec(false), b.spec(false)];
    let cmd = rollout_args(
        &a.lw.app,
        &nodes,
        &fx.good_tarballs.tar,
        &secret,
        &root,
        &["--json"],
    );
    let r = berth_env(&cmd, &[]);
    let dir = rollout_dir(&root);
    track_rollback_tags(&dir, &[&a, &b]);
    eprintln!("rollout took {:.1}s", r.took.as_secs_f64());
    assert_eq!(r.code, Some(0), "{r}");
    let v = r.json();
    assert_eq!(v["exit_code"], 0);
    assert_eq!(v["finished"], true, "{v}");
    assert_eq!(v["dir"], dir.to_str().unwrap());
    for (i, n) in [&a, &b].iter().enumerate() {
        let j = &v["nodes"][i];
        assert_eq!(j["name"], n.name, "{v}");
        assert_eq!(j["outcome"], "upgraded", "{v}");
        assert_eq!(j["old_image"], n.image.as_str());
        assert_eq!(j["new_image"], fixtures::GOOD);
        assert_eq!(j["socket"], n.d().socket().to_str().unwrap());
        let runs = node_runs(&dir, n.name);
        assert_eq!(runs.len(), 1, "node {}: {runs:?}", n.name);
        assert_eq!(j["run_dir"], runs[0].to_str().unwrap());
        assert!(runs[0].join("backup/manifest.json").is_file());
        assert_eq!(j["backup_dir"], runs[0].join("backup").to_str().unwrap());
        assert!(j["seconds"].as_f64().unwrap() > 0.0);
        n.assert_upgraded(&fx, "rollout to 6.7.0").await;
    }
    assert_eq!(state(&dir)["finished"], true);
    // Strictly one after another: b's first step after a's outcome.
    let ja = journal(&node_runs(&dir, "a")[0]);
    let jb = journal(&node_runs(&dir, "b")[0]);
    assert_eq!(ja.last().unwrap()["outcome"], "upgraded");
    assert!(
        jb[0]["t"].as_i64() >= ja.last().unwrap()["t"].as_i64(),
        "b began before a ended"
    );

    // Resuming a finished rollout redoes nothing and prints the table.
    let res = berth_env(&args(&["resume", dir.to_str().unwrap()]), &[]);
    assert_eq!(res.code, Some(0), "{res}");
    eprint!("{}", res.stdout);
    let header = res.stdout.lines().next().unwrap_or_default();
    for col in [
        "NODE",
        "OLD IMAGE",
        "NEW IMAGE",
        "OUTCOME",
        "BACKUP",
        "TIME",
    ] {
        assert!(header.contains(col), "{res}");
    }
    for n in ["a", "b"] {
        let row = res.stdout.lines().find(|l| l.starts_with(&format!("{n} ")));
        let row = row.unwrap_or_else(|| panic!("no row for {n}: {res}"));
        assert!(
            row.contains("upgraded") && row.contains(fixtures::GOOD),
            "{row}"
        );
        assert_eq!(node_runs(&dir, n).len(), 1, "node {n} redone");
    }

    // The same command again: both are current, nothing is touched.
    let ids = (a.app().await["Id"].clone(), b.app().await["Id"].clone());
    let again = berth_env(&cmd, &[]);
    assert_eq!(again.code, Some(0), "{again}");
    let v = again.json();
    assert_eq!(v["nodes"][0]["outcome"], "current", "{v}");
    assert_eq!(v["nodes"][1]["outcome"], "current", "{v}");
    assert_eq!(
        (a.app().await["Id"].clone(), b.app().await["Id"].clone()),
        ids
    );
    let again_dir = PathBuf::from(v["dir"].as_str().unwrap());
    for n in ["a", "b"] {
        assert!(node_runs(&again_dir, n).is_empty(), "{n}: current, yet run");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rollout_to_broken_rolls_back_the_first_and_never_touches_the_second() {
    let (a, b, fx) = two_nodes("ro-broken", false).await;
    let (secret, root) = run_paths(&a);
    let a_before = a.indexes().await;
    let b_before = b.app().await;
    let b_tags = b.test_tags().await;
    let nodes = [a.spec(true), b.spec(true)];
    let cmd = rollout_args(
        "unused-default",
        &nodes,
        &fx.broken_tarballs.tar,
        &secret,
        &root,
        &["--json"],
    );
    let r = berth_env(&cmd, &[]);
    let dir = rollout_dir(&root);
    track_rollback_tags(&dir, &[&a, &b]);
    eprintln!("rollout took {:.1}s", r.took.as_secs_f64());
    assert_eq!(r.code, Some(3), "{r}");
    let v = r.json();
    assert_eq!(v["exit_code"], 3);
    assert_eq!(v["finished"], true);
    assert_eq!(v["nodes"][0]["outcome"], "rolled-back", "{v}");
    assert!(v["nodes"][0]["cause"].is_string(), "{v}");
    assert_eq!(v["nodes"][1]["outcome"], "pending", "{v}");
    assert!(v["nodes"][1]["run_dir"].is_null(), "{v}");

    // As if berth had been killed right after saving a's outcome: a
    // resume must stop at a too.
    let mut st = state(&dir);
    st["finished"] = false.into();
    fs::write(dir.join("rollout.json"), st.to_string()).unwrap();
    let res = berth_env(&args(&["resume", dir.to_str().unwrap(), "--json"]), &[]);
    assert_eq!(res.code, Some(3), "{res}");
    let v = res.json();
    assert_eq!(v["finished"], true, "{v}");
    assert_eq!(v["nodes"][1]["outcome"], "pending", "{v}");

    // a: the old container, running, its data as before.
    let c = a.app().await;
    assert_eq!(c["Id"], a.app_id.as_str(), "a: not the old container");
    assert_eq!(c["Image"], fx.old.id.as_str());
    assert_eq!(c["State"]["Running"], true, "{}", c["State"]);
    assert_eq!(a.installed_version().await.as_deref(), Some("6.6.0"));
    let now = a.indexes().await;
    for (p, idx) in &a_before {
        let diffs = compare(idx, &now[p]);
        assert!(diffs.is_empty(), "a: {p} differs: {:?}", &diffs[..1]);
    }
    assert!(!a.lw.config_file.exists(), "a: config file left");
    assert_eq!(a.aside().await, 0);

    // b: never touched: the same container, never restarted, no run, no
    // tag, no image loaded under its name.
    assert!(node_runs(&dir, "b").is_empty(), "b has a run directory");
    let c = b.app().await;
    assert_eq!(c["Id"], b.app_id.as_str());
    assert_eq!(c["Image"], fx.old.id.as_str());
    assert_eq!(c["State"]["StartedAt"], b_before["State"]["StartedAt"]);
    assert_eq!(c["State"]["Running"], true);
    assert_eq!(b.installed_version().await.as_deref(), Some("6.6.0"));
    assert_eq!(b.test_tags().await, b_tags, "b: a rollback tag was made");
    assert_eq!(b.aside().await, 0);
    assert!(!b.lw.config_file.exists(), "b: config file written");
}

/// Killed after node a (rollout hook), resumed and killed inside node b's
/// upgrade (journal hook), resumed again: a is never redone, b is finished
/// through its run directory.
#[tokio::test(flavor = "multi_thread")]
async fn killed_rollout_resumes_without_redoing_done_nodes() {
    let (a, b, fx) = two_nodes("ro-kill", true).await;
    let (secret, root) = run_paths(&a);
    let nodes = [a.spec(false), b.spec(false)];
    let cmd = rollout_args(
        &a.lw.app,
        &nodes,
        &fx.good_tarballs.tar,
        &secret,
        &root,
        &["--json"],
    );
    let r = berth_env(&cmd, &[("BERTH_TEST_ROLLOUT_KILL_AT", "a:done")]);
    let dir = rollout_dir(&root);
    track_rollback_tags(&dir, &[&a, &b]);
    assert_eq!(r.signal, Some(9), "not killed after a: {r}");
    let s = state(&dir);
    assert_eq!(s["finished"], false);
    assert_eq!(s["nodes"][0]["outcome"], "upgraded", "{s}");
    assert_eq!(s["nodes"][1]["outcome"], "pending", "{s}");
    let a_run = node_runs(&dir, "a");
    assert_eq!(a_run.len(), 1);

    let dir_arg = args(&["resume", dir.to_str().unwrap(), "--json"]);
    let r = berth_env(&dir_arg, &[("BERTH_TEST_KILL_AT", "watch:begin")]);
    track_rollback_tags(&dir, &[&a, &b]);
    assert_eq!(r.signal, Some(9), "not killed in b's watch: {r}");
    assert_eq!(node_runs(&dir, "a"), a_run, "a was redone");
    let b_run = node_runs(&dir, "b");
    assert_eq!(b_run.len(), 1, "{b_run:?}");
    let last = journal(&b_run[0]).last().cloned().unwrap();
    assert_eq!(
        (last["step"].as_str(), last["phase"].as_str()),
        (Some("watch"), Some("begin"))
    );
    assert_eq!(state(&dir)["nodes"][1]["outcome"], "running");

    let r = berth_env(&dir_arg, &[]);
    eprintln!("last resume took {:.1}s", r.took.as_secs_f64());
    assert_eq!(r.code, Some(0), "{r}");
    let v = r.json();
    assert_eq!(v["finished"], true, "{v}");
    assert_eq!(v["nodes"][0]["outcome"], "upgraded", "{v}");
    assert_eq!(v["nodes"][1]["outcome"], "upgraded", "{v}");
    assert_eq!(node_runs(&dir, "a"), a_run, "a was redone");
    assert_eq!(node_runs(&dir, "b"), b_run, "b was started over");
    assert_eq!(v["nodes"][1]["run_dir"], b_run[0].to_str().unwrap());
    assert_eq!(
        journal(&b_run[0]).last().unwrap()["outcome"],
        "upgraded",
        "b's journal"
    );
    a.assert_upgraded(&fx, "killed and resumed").await;
    b.assert_upgraded(&fx, "killed and resumed").await;
}

/// A node that cannot be upgraded is found before the first node is
/// touched; a bad --node is a usage error.
#[tokio::test(flavor = "multi_thread")]
async fn a_bad_node_is_refused_before_any_node_is_touched() {
    let (a, fx) = Node::up(engine().await, "ro-check", "a", None).await;
    let before = a.app().await;
    let (secret, root) = run_paths(&a);
    let missing = format!(
        "b=unix://{}:{}",
        second_engine().await.socket().display(),
        a.scope.name("missing")
    );
    let cmd = rollout_args(
        &a.lw.app,
        &[a.spec(false), missing],
        &fx.good_tarballs.tar,
        &secret,
        &root,
        &[],
    );
    let r = berth_env(&cmd, &[]);
    assert_eq!(r.code, Some(1), "{r}");
    assert!(r.stderr.contains("node b"), "{r}");
    assert_eq!(
        fs::read_dir(&root).unwrap().count(),
        0,
        "a rollout directory was made"
    );
    let c = a.app().await;
    assert_eq!(c["Id"], before["Id"]);
    assert_eq!(c["State"]["StartedAt"], before["State"]["StartedAt"]);
    assert_eq!(a.installed_version().await.as_deref(), Some("6.6.0"));
    assert_eq!(a.test_tags().await, vec![a.image.clone()]);

    // A file that is not the one --sha256 names: refused once, up front.
    let wrong = rollout_args(
        &a.lw.app,
        &[a.spec(false)],
        &fx.good_tarballs.tar,
        &secret,
        &root,
        &["--sha256", &"0".repeat(64)],
    );
    let r = berth_env(&wrong, &[]);
    assert_eq!(r.code, Some(2), "{r}");
    assert!(r.stderr.contains("--sha256"), "{r}");
    assert_eq!(fs::read_dir(&root).unwrap().count(), 0, "a directory made");

    // --dry-run: every node's plan, nothing written.
    let dry = rollout_args(
        &a.lw.app,
        &[a.spec(false)],
        &fx.good_tarballs.tar,
        &secret,
        &root,
        &["--dry-run"],
    );
    let r = berth_env(&dry, &[]);
    assert_eq!(r.code, Some(0), "{r}");
    assert!(
        r.stdout.starts_with("rollout plan (nothing was changed):"),
        "{r}"
    );
    assert!(r.stdout.contains(&format!("plan for {}", a.lw.app)), "{r}");
    assert_eq!(fs::read_dir(&root).unwrap().count(), 0, "dry run wrote");
    assert_eq!(a.app().await["Id"], before["Id"]);

    let bad = rollout_args(
        &a.lw.app,
        &[a.spec(false), "b=tcp://10.0.0.2:2375".into()],
        &fx.good_tarballs.tar,
        &secret,
        &root,
        &[],
    );
    let r = berth_env(&bad, &[]);
    assert_eq!(r.code, Some(2), "{r}");
    assert!(r.stderr.contains("ssh -L"), "{r}");
}

#[tokio::test(flavor = "multi_thread")]
async fn continue_on_failure_goes_on_to_the_next_node() {
    let (a, b, fx) = two_nodes("ro-continue", true).await;
    let (secret, root) = run_paths(&a);
    let nodes = [a.spec(false), b.spec(false)];
    let cmd = rollout_args(
        &a.lw.app,
        &nodes,
        &fx.broken_tarballs.tar,
        &secret,
        &root,
        &["--continue-on-failure"],
    );
    let r = berth_env(&cmd, &[]);
    let dir = rollout_dir(&root);
    track_rollback_tags(&dir, &[&a, &b]);
    eprint!("{}", r.stdout);
    assert_eq!(r.code, Some(3), "{r}");
    for n in [&a, &b] {
        let row = r
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("{} ", n.name)));
        let row = row.unwrap_or_else(|| panic!("no row for {}: {r}", n.name));
        assert!(row.contains("ROLLED BACK"), "{row}");
        assert_eq!(node_runs(&dir, n.name).len(), 1, "node {}", n.name);
        let c = n.app().await;
        assert_eq!(c["Id"], n.app_id.as_str(), "node {}", n.name);
        assert_eq!(c["Image"], fx.old.id.as_str(), "node {}", n.name);
        assert_eq!(c["State"]["Running"], true, "node {}", n.name);
        assert_eq!(n.installed_version().await.as_deref(), Some("6.6.0"));
    }
    // `berth status` reads the rollout directory without acting on it.
    let st = berth_env(&args(&["status", dir.to_str().unwrap(), "--json"]), &[]);
    assert_eq!(st.code, Some(0), "{st}");
    let v = st.json();
    assert_eq!(v["continue_on_failure"], true);
    assert_eq!(v["nodes"][0]["outcome"], "rolled-back", "{v}");
    assert_eq!(v["nodes"][1]["outcome"], "rolled-back", "{v}");
}

/// SIGINT while node a upgrades: a ends put back (or upgraded, if the
/// signal came after its last step), b is not started, exit 130; a resume
/// upgrades what is left.
#[tokio::test(flavor = "multi_thread")]
async fn sigint_stops_before_the_next_node_and_resume_goes_on() {
    let (a, b, fx) = two_nodes("ro-sigint", true).await;
    let (secret, root) = run_paths(&a);
    let nodes = [a.spec(false), b.spec(false)];
    let cmd = rollout_args(
        &a.lw.app,
        &nodes,
        &fx.good_tarballs.tar,
        &secret,
        &root,
        &["--json"],
    );
    let child = Command::new(BERTH)
        .args(&cmd)
        .env_remove("BERTH_TEST_KILL_AT")
        .env_remove("BERTH_TEST_ROLLOUT_KILL_AT")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // As soon as a's upgrade has journaled its first step.
    let t = Instant::now();
    loop {
        let dir = fs::read_dir(&root).ok().and_then(|mut d| d.next());
        let began = dir
            .and_then(|e| e.ok())
            .map(|e| node_runs(&e.path(), "a"))
            .and_then(|runs| runs.first().map(|r| !journal(r).is_empty()))
            .unwrap_or(false);
        if began {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "a never began");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // SAFETY: kill(2) on the berth child this test spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let dir = rollout_dir(&root);
    track_rollback_tags(&dir, &[&a, &b]);
    assert_eq!(out.status.code(), Some(130), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["finished"], false, "{v}");
    assert_eq!(v["interrupted"], true, "{v}");
    let a_outcome = v["nodes"][0]["outcome"].as_str().unwrap().to_owned();
    eprintln!("a after SIGINT: {a_outcome}");
    match a_outcome.as_str() {
        "interrupted" => {
            let c = a.app().await;
            assert_eq!(c["Id"], a.app_id.as_str(), "a is not put back");
            assert_eq!(c["State"]["Running"], true);
            assert_eq!(a.installed_version().await.as_deref(), Some("6.6.0"));
        }
        "upgraded" => a.assert_upgraded(&fx, "signal after a's last step").await,
        other => panic!("a: {other}: {v}"),
    }
    assert_eq!(v["nodes"][1]["outcome"], "pending", "{v}");
    assert!(node_runs(&dir, "b").is_empty(), "b was started");
    assert_eq!(b.app().await["Id"], b.app_id.as_str());

    let r = berth_env(&args(&["resume", dir.to_str().unwrap(), "--json"]), &[]);
    track_rollback_tags(&dir, &[&a, &b]);
    assert_eq!(r.code, Some(0), "{r}");
    let v = r.json();
    assert_eq!(v["finished"], true, "{v}");
    // An interrupted a is upgraded again in a new run; an upgraded one is
    // left alone.
    let want_runs = if a_outcome == "interrupted" { 2 } else { 1 };
    assert_eq!(node_runs(&dir, "a").len(), want_runs, "a ({a_outcome})");
    assert_eq!(node_runs(&dir, "b").len(), 1);
    a.assert_upgraded(&fx, "resumed after SIGINT").await;
    b.assert_upgraded(&fx, "resumed after SIGINT").await;
}

/// Killed inside node a's upgrade, then that run resumed by hand with
/// `berth resume RUN_DIR`: the rollout's resume takes its outcome from the
/// run's journal and does not upgrade a again.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_run_resumed_by_hand_is_not_redone() {
    let (a, b, fx) = two_nodes("ro-by-hand", true).await;
    let (secret, root) = run_paths(&a);
    let nodes = [a.spec(false), b.spec(false)];
    let cmd = rollout_args(
        &a.lw.app,
        &nodes,
        &fx.good_tarballs.tar,
        &secret,
        &root,
        &["--json"],
    );
    let r = berth_env(&cmd, &[("BERTH_TEST_KILL_AT", "watch:begin")]);
    let dir = rollout_dir(&root);
    track_rollback_tags(&dir, &[&a, &b]);
    assert_eq!(r.signal, Some(9), "not killed in a's watch: {r}");
    assert_eq!(state(&dir)["nodes"][0]["outcome"], "running");
    let a_run = node_runs(&dir, "a");
    assert_eq!(a_run.len(), 1);

    let host = format!("unix://{}", a.d().socket().display());
    let by_hand = args(&[
        "--host",
        &host,
        "resume",
        a_run[0].to_str().unwrap(),
        "--json",
    ]);
    let r = berth_env(&by_hand, &[]);
    assert_eq!(r.code, Some(0), "{r}");
    assert_eq!(r.json()["outcome"], "upgraded", "{r}");

    let r = berth_env(&args(&["resume", dir.to_str().unwrap(), "--json"]), &[]);
    track_rollback_tags(&dir, &[&a, &b]);
    assert_eq!(r.code, Some(0), "{r}");
    let v = r.json();
    assert_eq!(v["nodes"][0]["outcome"], "upgraded", "{v}");
    assert_eq!(v["nodes"][0]["run_dir"], a_run[0].to_str().unwrap());
    assert_eq!(v["nodes"][1]["outcome"], "upgraded", "{v}");
    assert_eq!(node_runs(&dir, "a"), a_run, "a was redone");
    assert_eq!(node_runs(&dir, "b").len(), 1);
    a.assert_upgraded(&fx, "resumed by hand").await;
    b.assert_upgraded(&fx, "after a resumed by hand").await;
}
