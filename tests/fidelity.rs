//! Fidelity of the re-created container over a wide flag matrix, on Docker
//! and on Podman's service: the appliance (lightwave-sim 6.6.0) created
//! through the Engine API as `docker run` sends these flags (published
//! ports tcp/udp with a host ip, ulimits, sysctls, tmpfs, cap-add/drop,
//! dns, dns-search, add-host, log options, memory/cpu-shares/pids/shm
//! limits, user, workdir, init, stop signal and timeout, healthcheck,
//! restart policy, hostname and domainname, labels, security options,
//! group-add, a read-only rootfs with writable volumes, a device, two user
//! networks with aliases and a static address), upgraded to 6.7.0; the old
//! and the new inspect are compared field by field: HostConfig, Config
//! less what each image gives, the network attachments. The fields not
//! compared, and why, are in docs/upgrade.md ("Fidelity").

mod support;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Instant;

use berth::docker::Docker;
use serde_json::{json, Value};
use support::appliance::{self, Appliance};
use support::cli::Run;
use support::engine::engine;
use support::fixtures::{self, Fixtures};
use support::scene::{appliance_with, attachments, podman, Scene};

const BERTH: &str = env!("CARGO_BIN_EXE_berth");

/// HostConfig fields not compared: the engine fills them in per container.
const HOST_NOT_COMPARED: &[&str] = &[];

/// Config fields not compared: the image reference is the new one by
/// design; Env, Labels, Cmd and Entrypoint are compared less each image's.
const CONFIG_NOT_COMPARED: &[&str] = &["Image", "Env", "Labels", "Cmd", "Entrypoint"];

/// What `docker run` sends for the matrix (the networks are given apart).
fn matrix(podman: bool) -> Value {
    let mut host = json!({
        "Privileged": false,
        "PortBindings": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}],
                         "8081/udp": [{"HostIp": "", "HostPort": ""}]},
        "Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}],
        "Sysctls": {"net.ipv4.tcp_keepalive_time": "600"},
        "Tmpfs": {"/var/log/lightwave": "rw,size=16m", "/tmp": ""},
        "CapAdd": ["NET_ADMIN"],
        "CapDrop": ["MKNOD"],
        "Dns": ["10.0.0.53"],
        "DnsSearch": ["example.test"],
        "ExtraHosts": ["db.example.test:10.0.0.5"],
        "LogConfig": {"Type": "json-file", "Config": {"max-size": "1m", "max-file": "2"}},
        "Memory": 268435456,
        "CpuShares": 512,
        "PidsLimit": 200,
        "ShmSize": 33554432,
        "Init": true,
        "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2},
        "SecurityOpt": ["no-new-privileges"],
        "GroupAdd": ["1234"],
        "ReadonlyRootfs": true,
        "Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/berth-null", "CgroupPermissions": "rwm"}],
    });
    if podman {
        // Podman's log drivers are k8s-file and journald; json-file is
        // taken as k8s-file.
        host["LogConfig"] = json!({"Type": "k8s-file", "Config": {"max-size": "1m"}});
        // Refused here: "container-init binary not found on the host: stat
        // /usr/libexec/podman/catatonit" (Debian's podman does not pull
        // catatonit in without recommends).
        host.as_object_mut().unwrap().remove("Init");
        // Refused at start: "error setting rlimit type 6 (nproc): operation
        // not permitted" (the sandbox lacks CAP_SYS_RESOURCE; Podman resets
        // nproc when ulimits are given). Its inspect reports the service's
        // default ulimits, which are compared.
        host.as_object_mut().unwrap().remove("Ulimits");
    }
    json!({
        "Hostname": "lw-host",
        "Domainname": "example.test",
        "User": "0:0",
        "WorkingDir": "/var/lib/vmware",
        "StopSignal": "SIGINT",
        "StopTimeout": 17,
        "Healthcheck": {"Test": ["CMD", "/bin/true"], "Interval": 30_000_000_000u64,
                        "Timeout": 5_000_000_000u64, "Retries": 3},
        "Labels": {"fidelity.a": "1", "fidelity.b": "two"},
        "Env": ["FIDELITY=1"],
        "ExposedPorts": {"8080/tcp": {}, "8081/udp": {}},
        "HostConfig": host,
    })
}

async fn appliance(scene: &Scene) -> Appliance {
    let front = scene.scope.name("front");
    let back = scene.scope.name("back");
    let f = scene.nets.create(&front).await;
    let b = scene.nets.create(&back).await;
    let podman = scene.scope.docker.podman().is_some();
    appliance_with(
        &scene.scope,
        "6.6.0",
        Some(&front),
        json!({ &front: {"Aliases": ["web"], "IPAMConfig": {"IPv4Address": format!("{f}.9")}} }),
        &[(
            &back,
            json!({"Aliases": ["db-client"], "IPAMConfig": {"IPv4Address": format!("{b}.9")}}),
        )],
        matrix(podman),
    )
    .await
}

fn upgrade(scene: &Scene, lw: &Appliance, fx: &Fixtures) -> Run {
    let scope = &scene.scope;
    let root = scope.dir("runs");
    let secret = scope.dir("secret").join(appliance::CONFIG_NAME);
    std::fs::write(&secret, appliance::config_text("standalone")).unwrap();
    let t = Instant::now();
    let out = Command::new(BERTH)
        .args([
            "--host",
            &format!("unix://{}", scope.docker.socket().display()),
        ])
        .args(["upgrade", &lw.app, "--image-file"])
        .arg(&fx.good_tarballs.tar)
        .args(["--profile", "lightwave", "--config-file"])
        .arg(&secret)
        .arg("--backup-root")
        .arg(&root)
        .arg("--json")
        .output()
        .unwrap();
    for run in std::fs::read_dir(&root).unwrap().flatten() {
        if let Ok(b) = std::fs::read(run.path().join("plan.json")) {
            let plan: Value = serde_json::from_slice(&b).unwrap();
            scope.track_image(plan["rollback_tag"].as_str().unwrap());
        }
    }
    Run::from(out, t.elapsed())
}

/// Field-by-field differences of two objects, less `skip`.
fn diff(what: &str, old: &Value, new: &Value, skip: &[&str]) -> Vec<String> {
    let keys: BTreeSet<&String> = old
        .as_object()
        .into_iter()
        .chain(new.as_object())
        .flat_map(|o| o.keys())
        .collect();
    keys.into_iter()
        .filter(|k| !skip.contains(&k.as_str()))
        .filter(|k| old[k.as_str()] != new[k.as_str()])
        .map(|k| format!("{what}.{k}: {} -> {}", old[k.as_str()], new[k.as_str()]))
        .collect()
}

/// A list field less what the image gives.
fn less_image(c: &Value, img: &Value, field: &str) -> Value {
    match (&c["Config"][field], &img["Config"][field]) {
        (Value::Array(a), Value::Array(i)) => {
            json!(a.iter().filter(|v| !i.contains(v)).collect::<Vec<_>>())
        }
        (Value::Object(a), Value::Object(i)) => json!(a
            .iter()
            .filter(|(k, v)| i.get(*k) != Some(v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<serde_json::Map<_, _>>()),
        (v, i) if v == i => Value::Null,
        (v, _) => v.clone(),
    }
}

async fn fidelity(d: &Docker, scene: &Scene, fx: &Fixtures) {
    let lw = appliance(scene).await;
    let old = d.container_inspect_raw(&lw.app).await.unwrap();
    let r = upgrade(scene, &lw, fx);
    assert_eq!(r.code, Some(0), "{r}");
    let new = d.container_inspect_raw(&lw.app).await.unwrap();
    assert_eq!(new["Image"], fx.good.id.as_str());
    assert_eq!(new["State"]["Running"], true, "{}", new["State"]);
    let old_img = d.image_inspect(&fx.old.id).await.unwrap();
    let new_img = d.image_inspect(&fx.good.id).await.unwrap();

    let mut diffs = diff(
        "HostConfig",
        &old["HostConfig"],
        &new["HostConfig"],
        HOST_NOT_COMPARED,
    );
    diffs.extend(diff(
        "Config",
        &old["Config"],
        &new["Config"],
        CONFIG_NOT_COMPARED,
    ));
    for f in ["Env", "Labels", "Cmd", "Entrypoint"] {
        let (mut o, mut n) = (less_image(&old, &old_img, f), less_image(&new, &new_img, f));
        if f == "Env" {
            // A set: Podman lists the same entries in another order each time.
            for v in [&mut o, &mut n] {
                if let Value::Array(a) = v {
                    a.sort_by_key(|e| e.to_string());
                }
            }
        }
        if o != n {
            diffs.push(format!("Config.{f} (less the image's): {o} -> {n}"));
        }
    }
    let podman = d.podman().is_some();
    let (o, n) = (attachments(&old, podman), attachments(&new, podman));
    if o != n {
        diffs.push(format!("NetworkSettings.Networks: {o:?} -> {n:?}"));
    }
    assert!(diffs.is_empty(), "not carried:\n{}", diffs.join("\n"));
    // The matrix really was applied (a setting the engine dropped would
    // compare equal on both sides).
    assert_eq!(new["HostConfig"]["ReadonlyRootfs"], true);
    assert_eq!(new["Config"]["Hostname"], "lw-host");
    assert_eq!(new["HostConfig"]["CapAdd"], json!(["NET_ADMIN"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_flag_matrix_is_carried() {
    let scene = Scene::on(engine().await, "fid-docker");
    let fx = fixtures::ensure(&scene.scope.docker).await;
    let d = scene.scope.docker.clone();
    fidelity(&d, &scene, &fx).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn podman_flag_matrix_is_carried() {
    let scene = Scene::on(podman().await, "fid-podman");
    let fx = fixtures::ensure(&scene.scope.docker).await;
    let d = scene.scope.docker.clone();
    fidelity(&d, &scene, &fx).await;
}
