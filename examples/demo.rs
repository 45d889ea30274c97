//! `just demo`: berth's main job on a built-in demo appliance (the
//! lightwave-sim fixture images in the reference layout).
//!
//! The demo is a list of steps, each printing a heading; add a step by
//! writing an async fn over [`Demo`] and listing it in [`STEPS`]. It leaves
//! the appliance running so that it can be looked at; running the demo again
//! starts over (the first step removes every `berth-demo-` container and
//! volume).

#[path = "../tests/support/mod.rs"]
mod support;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Command;
use std::time::Instant;

use berth::docker::Docker;
use serde_json::{json, Value};
use support::appliance::{self, Appliance};
use support::fixtures::{self, Fixtures};

const PREFIX: &str = "berth-demo-";
const APP: &str = "berth-demo-lw";
const DATA: &str = "berth-demo-lw_data";
const CONFIG_DIR: &str = "/tmp/berth-demo/config";
const INSTALLED: &str = "6.6.0";

/// What the steps share.
struct Demo {
    d: Docker,
    berth: PathBuf,
    fixtures: Option<Fixtures>,
    appliance: Option<Appliance>,
    summary: Vec<String>,
}

type StepResult = Result<(), String>;
type StepFn = for<'a> fn(&'a mut Demo) -> Pin<Box<dyn Future<Output = StepResult> + 'a>>;

/// The demo, in order.
const STEPS: &[(&str, StepFn)] = &[
    ("Clean up what an earlier demo left", |c| {
        Box::pin(cleanup(c))
    }),
    ("Build the fixture images and tarballs", |c| {
        Box::pin(build_fixtures(c))
    }),
    ("Stand up the appliance: Lightwave 6.6.0", |c| {
        Box::pin(stand_up(c))
    }),
    ("berth inspect berth-demo-lw", |c| Box::pin(inspect(c))),
    (
        "berth backup berth-demo-lw --stop, then berth verify --deep",
        |c| Box::pin(backup(c)),
    ),
    ("berth upgrade to 6.7.0 (succeeds)", |c| {
        Box::pin(upgrade_good(c))
    }),
    (
        "berth rehearse 6.8.0-broken (fails on a copy; 6.7.0 serves throughout)",
        |c| Box::pin(rehearse_broken(c)),
    ),
    (
        "berth upgrade to 6.8.0-broken (fails: automatic rollback)",
        |c| Box::pin(upgrade_broken(c)),
    ),
];

fn heading(n: usize, title: &str) {
    println!();
    println!("== {n}. {title}");
}

#[tokio::main]
async fn main() {
    let start = Instant::now();
    let mut demo = Demo {
        d: support::engine::engine().await,
        berth: Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target/x86_64-unknown-linux-gnu/release/berth"),
        fixtures: None,
        appliance: None,
        summary: vec![],
    };
    for (i, (title, step)) in STEPS.iter().enumerate() {
        heading(i + 1, title);
        let t = Instant::now();
        if let Err(e) = step(&mut demo).await {
            eprintln!("demo: step {} ({title}) failed: {e}", i + 1);
            std::process::exit(1);
        }
        println!("   ({:.2?})", t.elapsed());
    }

    println!();
    println!("== Summary");
    for l in &demo.summary {
        println!("   {l}");
    }
    println!();
    println!(
        "The appliance is left running ({:.2?} in all). Look at it with:",
        start.elapsed()
    );
    println!("   docker logs {APP}");
    println!("   docker exec {APP} journalctl");
    println!("   {} inspect {APP}", demo.berth.display());
    println!("Run the demo again to start over.");
}

/// Remove every `berth-demo-` container (apps before data containers, with
/// their anonymous volumes) and volume, and empty the config directory.
async fn cleanup(c: &mut Demo) -> StepResult {
    let d = &c.d;
    let list = d
        .container_list(&json!({ "name": [PREFIX] }))
        .await
        .map_err(|e| e.to_string())?;
    let mut names: Vec<String> = list
        .iter()
        .map(|v| v.name().to_owned())
        .filter(|n| n.starts_with(PREFIX))
        .collect();
    // Containers that use another's volumes go first.
    names.sort_by_key(|n| (n.ends_with("_data"), n.clone()));
    for n in &names {
        match d.container_remove(n, true, true).await {
            Ok(()) => println!("   removed container {n}"),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    let volumes = d
        .volume_list(&json!({ "name": [PREFIX] }))
        .await
        .map_err(|e| e.to_string())?;
    for v in volumes {
        let Some(n) = v.get("Name").and_then(Value::as_str) else {
            continue;
        };
        if n.starts_with(PREFIX) {
            d.volume_remove(n, true).await.map_err(|e| e.to_string())?;
            println!("   removed volume {n}");
        }
    }
    let dir = Path::new(CONFIG_DIR);
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| format!("{CONFIG_DIR}: {e}"))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{CONFIG_DIR}: {e}"))?;
    if names.is_empty() {
        println!("   nothing to clean up");
    }
    Ok(())
}

async fn build_fixtures(c: &mut Demo) -> StepResult {
    let f = fixtures::ensure(&c.d).await;
    for i in [&f.old, &f.good, &f.broken] {
        println!("   {:<44} {}", i.reference, &i.id[..19.min(i.id.len())]);
    }
    for t in [&f.good_tarballs, &f.broken_tarballs] {
        println!("   {}", t.tar_gz.display());
    }
    if !f.rebuilt.is_empty() {
        println!("   (built {} of them now)", f.rebuilt.len());
    }
    c.fixtures = Some(f);
    Ok(())
}

async fn stand_up(c: &mut Demo) -> StepResult {
    let a = appliance::up_named(&c.d, DATA, APP, Path::new(CONFIG_DIR), INSTALLED).await?;
    println!("   data container  {} (created, never started)", a.data);
    println!("   app container   {} running {}", a.app, a.image);
    println!(
        "   config dir      {} (lightwave-server.cfg removed after setup)",
        a.config_dir.display()
    );
    let version = a.installed_version(&c.d).await.unwrap_or_default();
    println!("   installed version in the volumes: {version}");
    let logs = appliance::logs(&c.d, &a.app).await;
    println!("   its log:");
    for l in logs.lines() {
        println!("   | {l}");
    }
    c.appliance = Some(a);
    Ok(())
}

async fn inspect(c: &mut Demo) -> StepResult {
    if !c.berth.exists() {
        return Err(format!(
            "{} is missing: build it with `cargo build --release -p berth`",
            c.berth.display()
        ));
    }
    println!("   $ berth inspect {APP}");
    let out = Command::new(&c.berth)
        .args(["inspect", APP])
        .output()
        .map_err(|e| format!("running {}: {e}", c.berth.display()))?;
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        println!("   {l}");
    }
    for l in String::from_utf8_lossy(&out.stderr).lines() {
        println!("   ! {l}");
    }
    if !out.status.success() {
        return Err(format!("berth inspect exited with {}", out.status));
    }
    Ok(())
}

const BACKUPS: &str = "/tmp/berth-demo/backups";

/// Run berth, show the command and everything it says, check its exit code.
fn berth(c: &Demo, args: &[&str], want: i32) -> Result<String, String> {
    println!("   $ berth {}", args.join(" "));
    let out = Command::new(&c.berth)
        .args(args)
        .output()
        .map_err(|e| format!("running {}: {e}", c.berth.display()))?;
    for l in String::from_utf8_lossy(&out.stderr).lines() {
        println!("   | {l}");
    }
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    for l in stdout.lines() {
        println!("   > {l}");
    }
    match out.status.code() {
        Some(code) if code == want => Ok(stdout),
        other => Err(format!(
            "berth {} exited with {other:?}, expected {want}",
            args[0]
        )),
    }
}

async fn backup(c: &mut Demo) -> StepResult {
    let out = berth(c, &["backup", APP, "--stop", "--out", BACKUPS], 0)?;
    let dir = out.lines().last().unwrap_or_default().to_owned();
    berth(c, &["verify", "--deep", &dir], 0)?;
    c.summary.push(format!("backup      {dir} (verified)"));
    Ok(())
}

fn tarball(c: &Demo, good: bool) -> String {
    let f = c.fixtures.as_ref().expect("fixtures built");
    let t = if good {
        &f.good_tarballs
    } else {
        &f.broken_tarballs
    };
    t.tar_gz.display().to_string()
}

/// The admin's config file, kept outside the appliance until berth puts it
/// in place for the upgrade (and removes it again).
fn config_file() -> Result<String, String> {
    let p = Path::new("/tmp/berth-demo/lightwave-server.cfg");
    std::fs::write(p, appliance::config_text("standalone")).map_err(|e| e.to_string())?;
    Ok(p.display().to_string())
}

/// `berth VERB` (upgrade, rehearse) of the demo appliance from one of the
/// fixture tarballs, as an operator types it, expecting exit code `want`.
fn upgrade(c: &Demo, verb: &str, good: bool, want: i32) -> StepResult {
    let cfg = config_file()?;
    let img = tarball(c, good);
    let args = [verb, APP, "--image-file", &img, "--profile", "lightwave"];
    let more = [
        "--config-file",
        &cfg,
        "--backup-root",
        BACKUPS,
        "--timeout",
        "60s",
    ];
    berth(c, &[&args[..], &more[..]].concat(), want).map(drop)
}

async fn upgrade_good(c: &mut Demo) -> StepResult {
    upgrade(c, "upgrade", true, 0)?;
    let a = c.appliance.as_ref().expect("stood up");
    let v = a.installed_version(&c.d).await.unwrap_or_default();
    let left = a.config_file.exists();
    println!("   installed version now: {v}; config file left on the host: {left}");
    c.summary.push(format!(
        "upgrade     6.6.0 -> {v}: exit 0, config file removed: {}",
        !left
    ));
    Ok(())
}

/// The id and start time of the running app: the same after a rehearsal.
async fn app_clock(c: &Demo) -> Result<(String, String, bool), String> {
    let v =
        c.d.container_inspect(APP)
            .await
            .map_err(|e| e.to_string())?;
    Ok((v.id, v.state.started_at, v.state.running))
}

async fn rehearse_broken(c: &mut Demo) -> StepResult {
    let a = c.appliance.as_ref().expect("stood up");
    let before = (a.data_mdb(&c.d).await, app_clock(c).await?);
    upgrade(c, "rehearse", false, 3)?;
    let after = (a.data_mdb(&c.d).await, app_clock(c).await?);
    let served = before == after && after.1 .2;
    println!("   {APP}: same container, never restarted, database untouched: {served}");
    c.summary.push(format!(
        "rehearsal   6.8.0-broken: exit 3 on a copy; the old version served throughout: {served}"
    ));
    Ok(())
}

async fn upgrade_broken(c: &mut Demo) -> StepResult {
    let a = c.appliance.as_ref().expect("stood up");
    let before = a.data_mdb(&c.d).await;
    upgrade(c, "upgrade", false, 3)?;
    let after = a.data_mdb(&c.d).await;
    let v = a.installed_version(&c.d).await.unwrap_or_default();
    let running =
        c.d.container_inspect_raw(APP)
            .await
            .map_err(|e| e.to_string())?;
    let image = running
        .pointer("/Config/Image")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_owned();
    let same = before == after;
    println!("   {APP} runs {image}; installed version {v}; directory database as before: {same}");
    c.summary.push(format!(
        "failed      6.8.0-broken: exit 3, rolled back to {image}, data restored and verified (database unchanged: {same})"
    ));
    Ok(())
}
