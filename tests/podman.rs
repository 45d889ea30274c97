//! berth against Podman's Docker-compatible API (`podman system service`,
//! Debian's podman 4.3), on the lightwave-sim appliance: backup, deep
//! verify, exact restore, a good upgrade and a broken one that rolls back;
//! and image import through berth's client.
//! What differs from Docker and what berth does about it: docs/podman.md.
//!
//! The service is `scripts/podman-up`'s, on /run/berth-podman/podman.sock;
//! when it does not answer the tests start it, and fail (never skip) when
//! that does not work. The fixture images come from the default Docker
//! engine by save and load (`fixtures::ensure`), so that engine is needed
//! too.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Instant;

use berth::archive::index::{compare, IndexEntry};
use berth::docker::{body, Docker};
use serde_json::{json, Value};
use support::appliance::{self, Appliance, DATA_MDB};
use support::engine::Scope;
use support::fixtures::{self, Fixtures};
use support::images::RootFs;
use support::scene::{podman, podman_socket};

const BERTH: &str = env!("CARGO_BIN_EXE_berth");
/// `berth --host unix://<podman> ARGS...`; panics when it cannot run.
fn berth(args: &[&str]) -> Output {
    let t = Instant::now();
    let out = Command::new(BERTH)
        .arg("--host")
        .arg(format!("unix://{}", podman_socket().display()))
        .args(args)
        .env_remove("BERTH_TEST_KILL_AT")
        .output()
        .expect("running berth");
    eprintln!("berth {args:?}: {:.1}s", t.elapsed().as_secs_f64());
    out
}

fn show(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", show(o)))
}

/// The content index of every data path, read through `container` (the
/// config bind mount cut out of /var/lib/vmware, as berth does).
async fn indexes(d: &Docker, container: &str) -> BTreeMap<String, Vec<IndexEntry>> {
    appliance::data_indexes(d, container).await
}

fn assert_same(
    want: &BTreeMap<String, Vec<IndexEntry>>,
    got: &BTreeMap<String, Vec<IndexEntry>>,
    why: &str,
) {
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>()
    );
    for (path, idx) in want {
        let diffs = compare(idx, &got[path]);
        let text: Vec<String> = diffs.iter().map(|d| format!("{d:?}")).collect();
        assert!(
            diffs.is_empty(),
            "{why}: {path} differs:\n{}",
            text.join("\n")
        );
    }
}

async fn inspect(d: &Docker, name: &str) -> Value {
    d.container_inspect_raw(name)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn running(c: &Value) -> bool {
    c["State"]["Running"] == true
}

/// The appliance on 6.6.0 on Podman, with the fixtures loaded there.
async fn stand_up(test: &str) -> (Scope, Appliance, Fixtures) {
    let t = Instant::now();
    let scope = Scope::on(podman().await, test);
    let fx = fixtures::ensure(&scope.docker).await;
    let lw = appliance::up(&scope, "6.6.0").await;
    eprintln!(
        "appliance up on Podman in {:.1}s (fixtures {:.1}s, privileged {})",
        t.elapsed().as_secs_f64(),
        fx.elapsed.as_secs_f64(),
        lw.privileged
    );
    (scope, lw, fx)
}

#[tokio::test(flavor = "multi_thread")]
async fn podman_backup_verify_and_exact_restore() {
    let (scope, lw, _fx) = stand_up("podman-br").await;
    let d = &scope.docker;
    let before = indexes(d, &lw.app).await;
    let out = scope.dir("backups");

    let b = berth(&["backup", &lw.app, "--out", out.to_str().unwrap(), "--json"]);
    assert_eq!(b.status.code(), Some(0), "{}", show(&b));
    let dir = json_of(&b)["dir"]
        .as_str()
        .unwrap_or_else(|| panic!("no dir in {}", show(&b)))
        .to_owned();
    let v = berth(&["verify", &dir, "--deep"]);
    assert_eq!(v.status.code(), Some(0), "{}", show(&v));

    // Damage the data, stop the app, restore exactly.
    let mdb = appliance::read_file(d, &lw.data, DATA_MDB).await.unwrap();
    d.container_stop(&lw.app, 10).await.unwrap();
    let r = berth(&["restore", &dir, "--json"]);
    assert_eq!(r.status.code(), Some(0), "{}", show(&r));
    let after = indexes(d, &lw.app).await;
    assert_same(&before, &after, "after restore");
    assert_eq!(
        appliance::read_file(d, &lw.data, DATA_MDB).await.unwrap(),
        mdb
    );
}

/// `berth upgrade APP --image-file FILE EXTRA...` with the lightwave
/// profile, the reference config file and a backup root of the scope.
fn upgrade(
    scope: &Scope,
    lw: &Appliance,
    file: &Path,
    root: &Path,
    config: &Path,
    extra: &[&str],
) -> Output {
    let mut args = vec![
        "upgrade",
        &lw.app,
        "--image-file",
        file.to_str().unwrap(),
        "--profile",
        "lightwave",
        "--config-file",
        config.to_str().unwrap(),
        "--backup-root",
        root.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(extra);
    let out = berth(&args);
    // The rollback tags berth made go with the scope.
    for run in std::fs::read_dir(root).unwrap().flatten() {
        if let Ok(b) = std::fs::read(run.path().join("plan.json")) {
            let plan: Value = serde_json::from_slice(&b).unwrap();
            if let Some(t) = plan["rollback_tag"].as_str() {
                scope.track_image(t);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn podman_upgrade_succeeds_then_a_broken_one_rolls_back() {
    let (scope, lw, fx) = stand_up("podman-up").await;
    let d = &scope.docker;
    let root = scope.dir("runs");
    let config = scope.dir("secret").join(appliance::CONFIG_NAME);
    std::fs::write(&config, appliance::config_text("standalone")).unwrap();

    // 6.6.0 -> 6.7.0: upgraded, the data migrated.
    let r = upgrade(&scope, &lw, &fx.good_tarballs.tar, &root, &config, &[]);
    assert_eq!(r.status.code(), Some(0), "{}", show(&r));
    let s = json_of(&r);
    assert_eq!(s["outcome"], "upgraded", "{s}");
    assert!(s["downtime_s"].as_f64().is_some_and(|t| t > 0.0), "{s}");
    // Backed up while it served; only the delta while stopped.
    assert!(s["delta"]["entries"].as_u64().is_some(), "no pre-copy: {s}");
    let new = inspect(d, &lw.app).await;
    assert_eq!(new["Image"], fx.good.id.as_str());
    assert!(running(&new), "{}", new["State"]);
    assert_eq!(lw.installed_version(d).await.as_deref(), Some("6.7.0"));
    let mdb = lw.data_mdb(d).await.unwrap();
    assert!(mdb.starts_with(b"schema=2\n"), "{mdb:?}");
    assert!(!lw.config_file.exists(), "the config file was left behind");

    // 6.7.0 -> 6.8.0-broken: the upgrade fails, berth rolls back to the
    // 6.7.0 container with the data as it was.
    let before = indexes(d, &lw.app).await;
    let r = upgrade(&scope, &lw, &fx.broken_tarballs.tar, &root, &config, &[]);
    assert_eq!(r.status.code(), Some(3), "{}", show(&r));
    let s = json_of(&r);
    assert_eq!(s["outcome"], "rolled-back", "{s}");
    assert!(s["delta"]["entries"].as_u64().is_some(), "no pre-copy: {s}");
    let old = inspect(d, &lw.app).await;
    assert_eq!(old["Id"], new["Id"], "not the 6.7.0 container");
    assert_eq!(old["Image"], fx.good.id.as_str());
    assert!(running(&old), "{}", old["State"]);
    // Down from the stop of the 6.7.0 container to its start again.
    let down = s["downtime_s"].as_f64().expect("the rollback's downtime");
    let engine = support::engine::engine_downtime(&old, &old);
    assert!(
        (down - engine).abs() < 1e-6,
        "{down} s, the engine's {engine} s"
    );
    assert_same(&before, &indexes(d, &lw.app).await, "after the rollback");
    assert_eq!(lw.data_mdb(d).await.unwrap(), mdb);
    assert_eq!(lw.installed_version(d).await.as_deref(), Some("6.7.0"));
    // Only the appliance's two containers are left.
    let mut names: Vec<String> = d
        .container_list(&json!({"name": [scope.prefix.clone()]}))
        .await
        .unwrap()
        .iter()
        .map(|c| c.name().to_owned())
        .filter(|n| !n.is_empty())
        .collect();
    names.sort();
    assert_eq!(names, vec![lw.app.clone(), lw.data.clone()]);
}

/// `berth upgrade --keep-old` to 6.7.0, then `berth rollback RUN_DIR`:
/// the 6.6.0 container runs again on the data of the backup.
#[tokio::test(flavor = "multi_thread")]
async fn podman_rollback_after_keep_old_puts_6_6_back() {
    let (scope, lw, fx) = stand_up("podman-rb").await;
    let d = &scope.docker;
    let root = scope.dir("runs");
    let config = scope.dir("secret").join(appliance::CONFIG_NAME);
    std::fs::write(&config, appliance::config_text("standalone")).unwrap();
    let old = inspect(d, &lw.app).await;
    let before = indexes(d, &lw.app).await;
    let mdb = lw.data_mdb(d).await.unwrap();

    let r = upgrade(
        &scope,
        &lw,
        &fx.good_tarballs.tar,
        &root,
        &config,
        &["--keep-old"],
    );
    assert_eq!(r.status.code(), Some(0), "{}", show(&r));
    let s = json_of(&r);
    assert_eq!(s["outcome"], "upgraded", "{s}");
    assert_eq!(lw.installed_version(d).await.as_deref(), Some("6.7.0"));

    let run = s["run_dir"].as_str().unwrap().to_owned();
    let rb = berth(&["rollback", &run, "--json"]);
    assert_eq!(rb.status.code(), Some(0), "{}", show(&rb));
    assert_eq!(json_of(&rb)["outcome"], "rolled-back", "{}", show(&rb));
    let back = inspect(d, &lw.app).await;
    assert_eq!(back["Id"], old["Id"], "not the 6.6.0 container");
    assert_eq!(back["Image"], fx.old.id.as_str());
    assert!(running(&back), "{}", back["State"]);
    assert_same(&before, &indexes(d, &lw.app).await, "after berth rollback");
    assert_eq!(lw.data_mdb(d).await.unwrap(), mdb);
    assert_eq!(lw.installed_version(d).await.as_deref(), Some("6.6.0"));
}

/// berth names the engine it talks to.
#[test]
fn podman_version_names_podman() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(podman());
    let v = berth(&["version", "--json"]);
    assert_eq!(v.status.code(), Some(0), "{}", show(&v));
    let j = json_of(&v);
    assert_eq!(j["product"], "Podman", "{j}");
    assert_eq!(j["api"], "1.41", "{j}");
}

/// Podman's import takes the repo but not the tag (it names the image
/// `repo:latest`): berth's client tags it as asked and leaves no `latest`.
#[tokio::test(flavor = "multi_thread")]
async fn podman_import_names_the_image_as_asked() {
    let scope = Scope::on(podman().await, "podman-import");
    let d = &scope.docker;
    let repo = scope.name("img");
    scope.track_image(&format!("{repo}:7"));
    scope.track_image(&format!("{repo}:latest"));
    let mut tar = RootFs::new();
    tar.file("hello", b"hi\n", 0o644);
    let changes = ["CMD [\"/hello\"]".to_owned()];
    let id = d
        .image_import(body::full(tar.finish()), &repo, "7", &changes)
        .await
        .unwrap();
    let img = d.image_inspect(&format!("{repo}:7")).await.unwrap();
    assert_eq!(img["Id"], id.as_str());
    assert_eq!(img["Config"]["Cmd"], json!(["/hello"]));
    let latest = d.image_inspect(&format!("{repo}:latest")).await;
    assert!(
        latest.as_ref().is_err_and(|e| e.is_not_found()),
        "{repo}:latest is there: {latest:?}"
    );
}
