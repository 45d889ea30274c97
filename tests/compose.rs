//! A compose service upgraded by berth, then handed back to compose
//! (Debian's `docker-compose` 1.29, installed by `.ci/run`): the appliance
//! (lightwave-sim 6.6.0) as a service with its data in named volumes and
//! its config directory bind mounted, on compose's default network.
//!
//! After `berth upgrade` to 6.7.0 the service's container keeps compose's
//! labels, names the new image id in `com.docker.compose.image`, and berth
//! warns that the compose file still names 6.6.0 (file and line).
//! `docker-compose up -d` then leaves the 6.7.0 container running; after
//! the image line is changed as the warning says, `docker-compose up -d`
//! re-creates it on 6.7.0 with the migrated data. Never the old image.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use berth::docker::Docker;
use serde_json::Value;
use support::appliance::{self, SETUP_COMPLETE, SETUP_TIMEOUT, STARTED};
use support::cli::Run;
use support::engine::engine;
use support::fixtures::{self, DATA_PATHS};
use support::scene::Scene;

const BERTH: &str = env!("CARGO_BIN_EXE_berth");

fn compose_file(image: &str, privileged: bool) -> String {
    let mut s = format!(
        "version: \"2.4\"\nservices:\n  lw:\n    image: {image}\n    privileged: {privileged}\n    volumes:\n"
    );
    for (i, p) in DATA_PATHS.iter().enumerate() {
        s += &format!("      - data{i}:{p}\n");
    }
    s += &format!("      - ./config:{}\nvolumes:\n", appliance::CONFIG_MOUNT);
    for i in 0..DATA_PATHS.len() {
        s += &format!("  data{i}: {{}}\n");
    }
    s
}

/// `docker-compose -p PROJECT -f FILE ARGS...` against the engine `d`.
fn compose(d: &Docker, project: &str, file: &Path, args: &[&str]) -> Run {
    let t = Instant::now();
    let out = Command::new("docker-compose")
        .arg("-p")
        .arg(project)
        .arg("-f")
        .arg(file)
        .args(args)
        .env("DOCKER_HOST", format!("unix://{}", d.socket().display()))
        .output()
        .expect("docker-compose (Debian's docker-compose; .ci/run installs it)");
    Run::from(out, t.elapsed())
}

async fn inspect(d: &Docker, name: &str) -> Value {
    d.container_inspect_raw(name)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn compose_labels(c: &Value) -> Vec<(String, Value)> {
    c["Config"]["Labels"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("com.docker.compose.") && *k != "com.docker.compose.image")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn compose_service_upgraded_by_berth_stays_on_the_new_image() {
    let scene = Scene::on(engine().await, "compose");
    let scope = &scene.scope;
    let d = &scope.docker;
    let fx = fixtures::ensure(d).await;
    let project = scope.prefix.clone();
    let app = format!("{project}_lw_1");
    scope.track_container(&app);
    for i in 0..DATA_PATHS.len() {
        scope.track_volume(&format!("{project}_data{i}"));
    }
    scene.nets.track(&format!("{project}_default"));
    let dir = scope.dir("compose");
    let file = dir.join("docker-compose.yml");
    let privileged = appliance::privileged(d).await;
    std::fs::write(&file, compose_file(&fx.old.reference, privileged)).unwrap();
    appliance::write_config_file(&dir.join("config"), &appliance::config_text("standalone"));

    let up = compose(d, &project, &file, &["up", "-d"]);
    assert_eq!(up.code, Some(0), "{up}");
    appliance::wait_for_lines(d, &app, &[SETUP_COMPLETE, STARTED], SETUP_TIMEOUT)
        .await
        .unwrap();
    std::fs::remove_file(dir.join("config").join(appliance::CONFIG_NAME)).unwrap();
    let old = inspect(d, &app).await;

    // berth upgrades the service's container to 6.7.0.
    let root = scope.dir("runs");
    let secret = scope.dir("secret").join(appliance::CONFIG_NAME);
    std::fs::write(&secret, appliance::config_text("standalone")).unwrap();
    let t = Instant::now();
    let out = Command::new(BERTH)
        .args(["--host", &format!("unix://{}", d.socket().display())])
        .args(["upgrade", &app, "--image-file"])
        .arg(&fx.good_tarballs.tar)
        .args(["--profile", "lightwave", "--config-file"])
        .arg(&secret)
        .arg("--backup-root")
        .arg(&root)
        .arg("--json")
        .output()
        .unwrap();
    let r = Run::from(out, t.elapsed());
    for run in std::fs::read_dir(&root).unwrap().flatten() {
        if let Ok(b) = std::fs::read(run.path().join("plan.json")) {
            let plan: Value = serde_json::from_slice(&b).unwrap();
            scope.track_image(plan["rollback_tag"].as_str().unwrap());
        }
    }
    assert_eq!(r.code, Some(0), "{r}");
    let warnings = r.json()["warnings"].to_string();
    assert!(
        warnings.contains(&format!("{} line 4", file.display()))
            && warnings.contains(&fx.good.reference),
        "no warning naming the compose file's image line: {r}"
    );
    let new = inspect(d, &app).await;
    assert_eq!(new["Image"], fx.good.id.as_str());
    assert_eq!(compose_labels(&new), compose_labels(&old));
    assert_eq!(
        new["Config"]["Labels"]["com.docker.compose.image"],
        fx.good.id.as_str()
    );

    // compose's `up -d` leaves it be: still 6.7.0, still running.
    let up = compose(d, &project, &file, &["up", "-d"]);
    assert_eq!(up.code, Some(0), "{up}");
    let ps = compose(d, &project, &file, &["ps"]);
    assert!(ps.stdout.contains(&app) && ps.stdout.contains("Up"), "{ps}");
    let now = inspect(d, &app).await;
    assert_eq!(now["Image"], fx.good.id.as_str(), "{up}");
    assert_eq!(now["State"]["Running"], true, "{}", now["State"]);
    assert_eq!(
        appliance::installed_version(d, &app).await.as_deref(),
        Some("6.7.0")
    );

    // The image line changed as the warning says: compose re-creates the
    // service on 6.7.0, on the migrated data.
    std::fs::write(&file, compose_file(&fx.good.reference, privileged)).unwrap();
    let up = compose(d, &project, &file, &["up", "-d"]);
    assert_eq!(up.code, Some(0), "{up}");
    let re = inspect(d, &app).await;
    assert_eq!(re["Image"], fx.good.id.as_str(), "{up}");
    assert_eq!(
        appliance::installed_version(d, &app).await.as_deref(),
        Some("6.7.0")
    );
    let down = compose(d, &project, &file, &["down", "-v"]);
    assert_eq!(down.code, Some(0), "{down}");
}
