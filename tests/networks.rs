//! Network attachments through an upgrade and its rollback, on the real
//! engines: the appliance (lightwave-sim) on user networks with aliases
//! and static addresses on Docker (below API 1.44, Docker 20.10: the second
//! network is connected after the create; from 1.44, Docker 26 and 28:
//! every network in the create), and on Podman's service on its default
//! network, on `--network podman`, and on a user network plus the default.
//! Each container is upgraded to 6.7.0 (exit 0) and then to 6.8.0-broken
//! (exit 3, rolled back) with no --force; its attachments (names, aliases
//! less its own id, static addresses) are the same before and after both.
//! Also: an attach that fails (the connect below 1.44, the create from
//! 1.44) leaves the old container running under its name (through the
//! fault-injecting proxy: a real engine does not fail one on demand), and
//! a container another one uses is refused before anything changes.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use berth::docker::Docker;
use berth::upgrade::endpoints::Engine;
use hyper::Method;
use serde_json::{json, Value};
use support::appliance::Appliance;
use support::cli::Run;
use support::engine::{engine, Scope};
use support::fakedaemon::{on, FakeDaemon, Fault};
use support::fixtures::{self, Fixtures};
use support::journal::journal_has;
use support::scene::{appliance_on, attachments, podman, Scene};

const BERTH: &str = env!("CARGO_BIN_EXE_berth");

fn berth(host: &str, args: &[&str]) -> Run {
    let t = Instant::now();
    let out = Command::new(BERTH)
        .arg("--host")
        .arg(host)
        .args(args)
        .env_remove("BERTH_TEST_KILL_AT")
        .output()
        .expect("running berth");
    Run::from(out, t.elapsed())
}

fn host_of(d: &Docker) -> String {
    format!("unix://{}", d.socket().display())
}

/// `berth upgrade` of the appliance with the lightwave profile and the
/// reference config file; the rollback tags it made go with the scope.
fn upgrade(scope: &Scope, host: &str, lw: &Appliance, file: &Path) -> Run {
    let mut root = std::env::temp_dir().join(scope.name("runs"));
    if !root.exists() {
        root = scope.dir("runs");
    }
    let secret = scope.dir("secret").join(support::appliance::CONFIG_NAME);
    std::fs::write(&secret, support::appliance::config_text("standalone")).unwrap();
    let r = berth(
        host,
        &[
            "upgrade",
            &lw.app,
            "--image-file",
            file.to_str().unwrap(),
            "--profile",
            "lightwave",
            "--config-file",
            secret.to_str().unwrap(),
            "--backup-root",
            root.to_str().unwrap(),
            "--json",
        ],
    );
    for run in runs(&root) {
        if let Ok(b) = std::fs::read(run.join("plan.json")) {
            let plan: Value = serde_json::from_slice(&b).unwrap();
            if let Some(t) = plan["rollback_tag"].as_str() {
                scope.track_image(t);
            }
        }
    }
    r
}

fn runs(root: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(root)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

async fn inspect(d: &Docker, name: &str) -> Value {
    d.container_inspect_raw(name)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Upgrade to 6.7.0, then to 6.8.0-broken (rolled back): the attachments
/// stay those of `before` throughout, and the new container does not
/// answer to the old one's id.
async fn upgrade_and_roll_back(scene: &Scene, lw: &Appliance, fx: &Fixtures) {
    let d = &scene.scope.docker;
    let podman = d.podman().is_some();
    let host = host_of(d);
    let old = inspect(d, &lw.app).await;
    let before = attachments(&old, podman);
    assert!(!before.is_empty(), "no network: {}", old["NetworkSettings"]);

    let r = upgrade(&scene.scope, &host, lw, &fx.good_tarballs.tar);
    assert_eq!(r.code, Some(0), "{r}");
    let new = inspect(d, &lw.app).await;
    assert_eq!(new["Image"], fx.good.id.as_str());
    assert_eq!(new["State"]["Running"], true, "{}", new["State"]);
    assert_eq!(attachments(&new, podman), before, "after the upgrade");
    let old_short = &old["Id"].as_str().unwrap()[..12];
    // Nor is it named after it (Podman also puts HOSTNAME=<id> in Env).
    assert!(
        !new["Config"]["Hostname"].to_string().contains(old_short)
            && !new["Config"]["Env"].to_string().contains(old_short),
        "the new container is named after the old id: {}",
        new["Config"]
    );
    for (net, ep) in new["NetworkSettings"]["Networks"].as_object().unwrap() {
        assert!(
            !ep["Aliases"].to_string().contains(old_short),
            "the new container answers to the old id on {net}: {ep}"
        );
    }

    let r = upgrade(&scene.scope, &host, lw, &fx.broken_tarballs.tar);
    assert_eq!(r.code, Some(3), "{r}");
    assert_eq!(r.json()["outcome"], "rolled-back", "{r}");
    let back = inspect(d, &lw.app).await;
    assert_eq!(back["Id"], new["Id"], "not the 6.7.0 container");
    assert_eq!(back["State"]["Running"], true, "{}", back["State"]);
    assert_eq!(attachments(&back, podman), before, "after the rollback");
}

async fn docker_scene(test: &str) -> (Scene, Fixtures) {
    let scene = Scene::on(engine().await, test);
    let fx = fixtures::ensure(&scene.scope.docker).await;
    (scene, fx)
}

async fn podman_scene(test: &str) -> (Scene, Fixtures) {
    let scene = Scene::on(podman().await, test);
    let fx = fixtures::ensure(&scene.scope.docker).await;
    (scene, fx)
}

/// `docker run --network front --ip F.9 --network-alias web`, then
/// `docker network connect --ip B.9 --alias db-client back`.
async fn on_two_networks(scene: &Scene) -> Appliance {
    let front = scene.scope.name("front");
    let back = scene.scope.name("back");
    let f = scene.nets.create(&front).await;
    let b = scene.nets.create(&back).await;
    appliance_on(
        &scene.scope,
        "6.6.0",
        Some(&front),
        json!({ &front: {"Aliases": ["web"], "IPAMConfig": {"IPv4Address": format!("{f}.9")}} }),
        &[(
            &back,
            json!({"Aliases": ["db-client"], "IPAMConfig": {"IPv4Address": format!("{b}.9")}}),
        )],
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_two_user_networks_survive_upgrade_and_rollback() {
    let (scene, fx) = docker_scene("net-two").await;
    let lw = on_two_networks(&scene).await;
    let d = &scene.scope.docker;
    let nets = attachments(&inspect(d, &lw.app).await, false);
    assert_eq!(nets.len(), 2, "{nets:?}");
    // --dry-run shows by group what is carried, and how each network is:
    // the second one connected after the create below API 1.44.
    let second = if Engine::of(d).all_at_create() {
        "at create"
    } else {
        "connected before start"
    };
    let root = scene.scope.dir("dry");
    let dry = berth(
        &host_of(d),
        &[
            "upgrade",
            &lw.app,
            "--image-file",
            fx.good_tarballs.tar.to_str().unwrap(),
            "--profile",
            "lightwave",
            "--backup-root",
            root.to_str().unwrap(),
            "--dry-run",
        ],
    );
    assert_eq!(dry.code, Some(0), "{dry}");
    let back = scene.scope.name("back");
    let front = scene.scope.name("front");
    assert!(
        dry.stdout.lines().any(|l| l.contains("networks")
            && l.contains(&back)
            && l.contains("db-client")
            && l.contains(second)),
        "{dry}"
    );
    assert!(
        dry.stdout
            .lines()
            .any(|l| l.contains("networks") && l.contains(&front) && l.contains("at create")),
        "{dry}"
    );
    assert!(
        dry.stdout.contains("mounts") && dry.stdout.contains("volumes from"),
        "{dry}"
    );
    assert!(!dry.stdout.contains("NOT CARRIED"), "{dry}");
    upgrade_and_roll_back(&scene, &lw, &fx).await;
}

/// Attaching the networks fails (an engine error the proxy injects: the
/// connect of the second network below API 1.44, the create that carries
/// both from 1.44): any half-made container is removed, the rollback
/// renames the old one back and starts it, on both networks as before
/// (exit 1: the new container never started, nothing changed).
#[tokio::test(flavor = "multi_thread")]
async fn docker_failed_attach_leaves_the_old_container_running() {
    let (scene, fx) = docker_scene("net-fail").await;
    let d = &scene.scope.docker;
    let lw = on_two_networks(&scene).await;
    let old = inspect(d, &lw.app).await;
    let before = attachments(&old, false);
    let fake = FakeDaemon::start(d.socket(), &scene.scope.prefix);
    let attach = if Engine::of(d).all_at_create() {
        format!(r"^/containers/create\?name={}$", regex::escape(&lw.app))
    } else {
        r"^/networks/[^/]+/connect$".to_owned()
    };
    fake.inject(
        on(Method::POST, &attach),
        Fault::Status(500, "fake: no free address".into()),
    );

    let r = upgrade(&scene.scope, &fake.host(), &lw, &fx.good_tarballs.tar);
    assert_eq!(fake.unfired(), Vec::<String>::new(), "{r}");
    // The new container never started: nothing changed (exit 1, aborted).
    assert_eq!(r.code, Some(1), "{r}");
    assert_eq!(r.json()["outcome"], "aborted", "{r}");
    assert!(r.said().contains("fake: no free address"), "{r}");
    let back = inspect(d, &lw.app).await;
    assert_eq!(back["Id"], old["Id"], "not the old container");
    assert_eq!(back["Image"], old["Image"]);
    assert_eq!(back["State"]["Running"], true, "{}", back["State"]);
    assert_eq!(attachments(&back, false), before);
    let run = runs(&std::env::temp_dir().join(scene.scope.name("runs")))
        .pop()
        .unwrap();
    assert!(journal_has(&run, "create-new", "failed"), "{r}");
    // Nothing left over: no half-made container, nothing renamed aside.
    let mut names: Vec<String> = d
        .container_list(&json!({"name": [scene.scope.prefix.clone()]}))
        .await
        .unwrap()
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec![lw.app.clone(), lw.data.clone()]);
}

/// A container that shares the app's network stack: the upgrade names it
/// and changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn docker_a_container_that_uses_it_is_refused_before_any_change() {
    let (scene, fx) = docker_scene("net-dep").await;
    let d = &scene.scope.docker;
    let front = scene.scope.name("front");
    scene.nets.create(&front).await;
    let lw = appliance_on(&scene.scope, "6.6.0", Some(&front), json!({}), &[]).await;
    let user = scene
        .scope
        .create(
            "sidecar",
            json!({"Image": fx.old.reference, "Entrypoint": ["/bin/true"],
                   "HostConfig": {"NetworkMode": format!("container:{}", lw.app)}}),
        )
        .await;
    let old = inspect(d, &lw.app).await;

    let r = upgrade(&scene.scope, &host_of(d), &lw, &fx.good_tarballs.tar);
    assert_eq!(r.code, Some(1), "{r}");
    let e = r.error();
    assert!(
        e.contains(&user) && e.contains("--network container:"),
        "{e}"
    );
    let now = inspect(d, &lw.app).await;
    assert_eq!(now["Id"], old["Id"]);
    assert_eq!(now["State"]["StartedAt"], old["State"]["StartedAt"]);
    assert!(runs(&std::env::temp_dir().join(scene.scope.name("runs"))).is_empty());
}

/// `docker run` with no --network on Podman: NetworkMode `bridge`, the
/// endpoint under `podman`.
#[tokio::test(flavor = "multi_thread")]
async fn podman_default_network_upgrades_and_rolls_back() {
    let (scene, fx) = podman_scene("pnet-default").await;
    let lw = appliance_on(&scene.scope, "6.6.0", None, json!({}), &[]).await;
    upgrade_and_roll_back(&scene, &lw, &fx).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn podman_network_podman_upgrades_and_rolls_back() {
    let (scene, fx) = podman_scene("pnet-podman").await;
    let lw = appliance_on(&scene.scope, "6.6.0", Some("podman"), json!({}), &[]).await;
    upgrade_and_roll_back(&scene, &lw, &fx).await;
}

/// A user network with an alias and a static address, plus the default
/// network connected with an alias.
#[tokio::test(flavor = "multi_thread")]
async fn podman_user_network_plus_default_upgrades_and_rolls_back() {
    let (scene, fx) = podman_scene("pnet-user").await;
    let front = scene.scope.name("front");
    let f = scene.nets.create(&front).await;
    let lw = appliance_on(
        &scene.scope,
        "6.6.0",
        Some(&front),
        json!({ &front: {"Aliases": ["web"], "IPAMConfig": {"IPv4Address": format!("{f}.9")}} }),
        &[("podman", json!({"Aliases": ["lw-default"]}))],
    )
    .await;
    let nets = attachments(&inspect(&scene.scope.docker, &lw.app).await, true);
    assert_eq!(
        nets.keys().collect::<Vec<_>>(),
        vec![front.as_str(), "podman"]
    );
    upgrade_and_roll_back(&scene, &lw, &fx).await;
}
