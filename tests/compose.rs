//! A compose service upgraded by berth, then handed back to compose, with
//! both compose versions hosts run: Debian's `docker-compose` 1.29 (the
//! Python v1, installed by `.ci/run`) and Compose v2 (the Go
//! `docker compose`, sid's docker-compose 2.40, fetched by
//! `scripts/docker-up --compose-v2`). The appliance (lightwave-sim 6.6.0)
//! is a service with its data in named volumes and its config directory
//! bind mounted, on compose's default network.
//!
//! After `berth upgrade` to 6.7.0 the service's container keeps every
//! compose label as it was, and berth warns that the compose file still
//! names 6.6.0 (file and line). `up -d` then leaves the 6.7.0 container
//! running (v1 compares its config hash, which covers the image the file
//! names; v2 compares the hash and `com.docker.compose.image` with the id
//! of the image the file names); after the image line is changed as the
//! warning says, `up -d` re-creates it on 6.7.0 with the migrated data.
//! Never the old image.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use berth::docker::Docker;
use serde_json::Value;
use support::appliance::{self, SETUP_COMPLETE, SETUP_TIMEOUT, STARTED};
use support::cli::Run;
use support::engine::engine;
use support::fixtures::{self, DATA_PATHS};
use support::scene::Scene;
use support::tools::tool_path;

const BERTH: &str = env!("CARGO_BIN_EXE_berth");

/// One compose program and how it names a service's container.
struct Compose {
    program: PathBuf,
    v2: bool,
}

impl Compose {
    fn v1() -> Compose {
        Compose {
            program: "docker-compose".into(),
            v2: false,
        }
    }

    /// Compose v2, fetched by `scripts/docker-up --compose-v2` (which
    /// prints its path) when it is not there yet. No skip.
    fn v2() -> Compose {
        let program = tool_path("docker-up", &["--compose-v2"])
            .unwrap_or_else(|why| panic!("`scripts/docker-up --compose-v2`: {why}"));
        Compose { program, v2: true }
    }

    /// v1 names it `PROJECT_SERVICE_1`, v2 `PROJECT-SERVICE-1`.
    fn container(&self, project: &str, service: &str) -> String {
        let sep = if self.v2 { '-' } else { '_' };
        format!("{project}{sep}{service}{sep}1")
    }

    /// `COMPOSE -p PROJECT -f FILE ARGS...` against the engine `d`.
    fn run(&self, d: &Docker, project: &str, file: &Path, args: &[&str]) -> Run {
        let t = Instant::now();
        let out = Command::new(&self.program)
            .arg("-p")
            .arg(project)
            .arg("-f")
            .arg(file)
            .args(args)
            .env("DOCKER_HOST", format!("unix://{}", d.socket().display()))
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", self.program.display()));
        Run::from(out, t.elapsed())
    }
}

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
        .filter(|(k, _)| k.starts_with("com.docker.compose."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn compose_v1_service_upgraded_by_berth_stays_on_the_new_image() {
    service_upgraded_by_berth_stays_on_the_new_image(Compose::v1(), "compose-v1").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn compose_v2_service_upgraded_by_berth_stays_on_the_new_image() {
    service_upgraded_by_berth_stays_on_the_new_image(Compose::v2(), "compose-v2").await;
}

async fn service_upgraded_by_berth_stays_on_the_new_image(compose: Compose, test: &str) {
    let scene = Scene::on(engine().await, test);
    let scope = &scene.scope;
    let d = &scope.docker;
    let fx = fixtures::ensure(d).await;
    let project = scope.prefix.clone();
    let app = compose.container(&project, "lw");
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

    let up = compose.run(d, &project, &file, &["up", "-d"]);
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

    // compose's `up -d` leaves it be: still 6.7.0, still running.
    let up = compose.run(d, &project, &file, &["up", "-d"]);
    assert_eq!(up.code, Some(0), "{up}");
    let ps = compose.run(d, &project, &file, &["ps"]);
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
    let up = compose.run(d, &project, &file, &["up", "-d"]);
    assert_eq!(up.code, Some(0), "{up}");
    let re = inspect(d, &app).await;
    assert_eq!(re["Image"], fx.good.id.as_str(), "{up}");
    assert_eq!(
        appliance::installed_version(d, &app).await.as_deref(),
        Some("6.7.0")
    );
    let down = compose.run(d, &project, &file, &["down", "-v"]);
    assert_eq!(down.code, Some(0), "{down}");
}
