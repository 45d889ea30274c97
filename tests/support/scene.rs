//! Scenes for the network tests: user networks a test makes (removed after
//! its containers), the appliance on networks instead of the host's, and a
//! container's network attachments as berth must carry them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use berth::docker::Docker;
use serde_json::{json, Value};

use super::appliance::{self, Appliance, SETUP_COMPLETE, SETUP_TIMEOUT, STARTED};
use super::engine::Scope;
use super::fixtures;
use super::stage;

/// Which Podman the tests use: the host's (Podman 4.3, `scripts/podman-up`)
/// or, with `BERTH_PODMAN_RELEASE=5`, Podman 5 in its own root filesystem
/// (`scripts/podman-up --release 5`).
fn podman_release() -> Option<String> {
    std::env::var("BERTH_PODMAN_RELEASE")
        .ok()
        .filter(|r| !r.is_empty())
}

/// Where `scripts/podman-up` serves that Podman's API.
pub fn podman_socket() -> PathBuf {
    match podman_release() {
        None => "/run/berth-podman/podman.sock".into(),
        Some(r) => format!("/run/berth-podman{r}/podman.sock").into(),
    }
}

/// A client for the Podman service, started by `scripts/podman-up` when it
/// does not answer. No skip: a test that cannot reach it fails.
pub async fn podman() -> Docker {
    let sock = podman_socket();
    if let Ok(d) = Docker::connect(&sock).await {
        return d;
    }
    let mut script = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/podman-up"));
    if let Some(r) = podman_release() {
        script.args(["--release", &r]);
    }
    let status = tokio::task::spawn_blocking(move || script.stdin(Stdio::null()).status())
        .await
        .unwrap();
    if !matches!(&status, Ok(s) if s.success()) {
        panic!(
            "`scripts/podman-up` failed ({status:?}); these tests need Podman's API on {}",
            sock.display()
        );
    }
    Docker::connect(&sock)
        .await
        .unwrap_or_else(|e| panic!("Podman on {}: {e}", sock.display()))
}

/// User networks of one test. Declare it after the [`Scope`] in a struct
/// (fields drop in order): networks go after the containers on them.
pub struct Nets {
    docker: Docker,
    names: Mutex<Vec<String>>,
}

impl Nets {
    pub fn new(docker: &Docker) -> Nets {
        Nets {
            docker: docker.clone(),
            names: Mutex::default(),
        }
    }

    /// Remove network `name` (made by someone else, e.g. compose) with the
    /// others.
    pub fn track(&self, name: &str) {
        self.names.lock().unwrap().push(name.to_owned());
    }

    /// Create network `name` with a /24 subnet of its own (static
    /// addresses need one); returns the subnet's first three octets. A
    /// subnet another network holds is skipped.
    pub async fn create(&self, name: &str) -> String {
        let start = std::process::id() as usize + self.names.lock().unwrap().len() * 37;
        let mut last = String::new();
        for n in 0..64 {
            let third = (start + n * 7) % 250 + 1;
            // Docker's and Podman's bridges share the host: apart.
            let second = if self.docker.podman().is_some() {
                214
            } else {
                213
            };
            let base = format!("10.{second}.{third}");
            let body = json!({"Name": name, "CheckDuplicate": true,
                "IPAM": {"Config": [{"Subnet": format!("{base}.0/24"), "Gateway": format!("{base}.1")}]}});
            match self
                .docker
                .post_json("/networks/create", Some(&body), "creating a network")
                .await
            {
                Ok(_) => {
                    self.names.lock().unwrap().push(name.to_owned());
                    return base;
                }
                Err(e) => last = e.msg,
            }
        }
        panic!("creating network {name}: {last}");
    }
}

impl Drop for Nets {
    fn drop(&mut self) {
        let docker = self.docker.clone();
        let names = std::mem::take(&mut *self.names.lock().unwrap());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                for n in names {
                    let _ = docker
                        .delete(&format!("/networks/{n}"), "removing a network")
                        .await;
                }
            })
        })
        .join()
        .unwrap();
    }
}

/// A scope and its networks, dropped in that order.
pub struct Scene {
    pub scope: Scope,
    pub nets: Nets,
}

impl Scene {
    pub fn on(docker: Docker, test: &str) -> Scene {
        let nets = Nets::new(&docker);
        Scene {
            scope: Scope::on(docker, test),
            nets,
        }
    }
}

/// The appliance on fixture `version`, its app container created with
/// `network` (`HostConfig.NetworkMode`, None: not given) and `endpoints`
/// (NetworkingConfig.EndpointsConfig), then connected to `connect`
/// (network, EndpointConfig) before it starts, as `docker run --network A`
/// followed by `docker network connect B` makes it.
pub async fn appliance_on(
    scope: &Scope,
    version: &str,
    network: Option<&str>,
    endpoints: Value,
    connect: &[(&str, Value)],
) -> Appliance {
    appliance_with(scope, version, network, endpoints, connect, json!({})).await
}

/// [`appliance_on`] with more settings: `patch`'s keys replace the app
/// config's, its `HostConfig` keys those of the HostConfig.
pub async fn appliance_with(
    scope: &Scope,
    version: &str,
    network: Option<&str>,
    endpoints: Value,
    connect: &[(&str, Value)],
    patch: Value,
) -> Appliance {
    let d = &scope.docker;
    fixtures::ensure(d).await;
    let data = scope.name("lw_data");
    let app = scope.name("lw");
    scope.track_container(&data);
    scope.track_container(&app);
    let dir = scope.dir("lw-config");
    let privileged = appliance::privileged(d).await;
    let image = appliance::image_ref(version);
    let config_file = appliance::write_config_file(&dir, &appliance::config_text("standalone"));
    d.container_create(&data, &appliance::data_config(&image))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut config = appliance::app_config(&image, &data, &dir, privileged);
    let host = config["HostConfig"].as_object_mut().unwrap();
    match network {
        Some(n) => host.insert("NetworkMode".into(), json!(n)),
        None => host.remove("NetworkMode"),
    };
    if endpoints != json!({}) {
        config["NetworkingConfig"] = json!({ "EndpointsConfig": endpoints });
    }
    stage::patch_config(&mut config, &patch);
    d.container_create(&app, &config)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for (net, ep) in connect {
        d.network_connect(net, &app, ep)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    d.container_start(&app)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    appliance::wait_for_lines(d, &app, &[SETUP_COMPLETE, STARTED], SETUP_TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let lw = Appliance {
        data,
        app,
        config_dir: dir,
        config_file,
        image,
        privileged,
    };
    lw.remove_config();
    lw
}

/// A container's network attachments as berth must carry them: per
/// network, its aliases (less the container's own short id, sorted), its
/// static addresses, links and driver options; on Podman, which reports no
/// static addresses, the addresses and MAC in use (berth carries those).
pub fn attachments(c: &Value, podman: bool) -> BTreeMap<String, Value> {
    let id = c["Id"].as_str().unwrap_or_default();
    let nets = c
        .pointer("/NetworkSettings/Networks")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    nets.into_iter()
        .map(|(name, ep)| {
            let mut aliases: Vec<String> = ep["Aliases"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str())
                .filter(|a| !(a.len() >= 12 && id.starts_with(a)))
                .map(String::from)
                .collect();
            aliases.sort();
            let mut a = json!({
                "aliases": aliases,
                "static": clean(&ep["IPAMConfig"]),
                "links": clean(&ep["Links"]),
                "driver_opts": clean(&ep["DriverOpts"]),
            });
            if podman {
                a["address"] = ep["IPAddress"].clone();
                a["mac"] = ep["MacAddress"].clone();
            }
            (name, a)
        })
        .collect()
}

/// Null, empty strings, lists and objects all mean "none".
fn clean(v: &Value) -> Value {
    match v {
        Value::Object(o) => {
            let kept: serde_json::Map<String, Value> = o
                .iter()
                .map(|(k, v)| (k.clone(), clean(v)))
                .filter(|(_, v)| !v.is_null())
                .collect();
            if kept.is_empty() {
                Value::Null
            } else {
                Value::Object(kept)
            }
        }
        Value::Array(a) if a.is_empty() => Value::Null,
        Value::String(s) if s.is_empty() => Value::Null,
        v => v.clone(),
    }
}
