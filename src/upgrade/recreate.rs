//! The create request for the new container: the old container's own
//! configuration on the new image.
//!
//! The whole inspect JSON is the source, so fields berth does not model are
//! carried as they are. What the old container merely inherited from the
//! old image (its Env entries, labels, command, entrypoint, ...) is left
//! out, so that the new image's defaults apply: otherwise the new container
//! would run with, say, the old image's VERSION variable. Volumes that were
//! attached anonymously are reattached by name, so the data stays.

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::endpoints::{self, Connect, Engine};
use crate::docker::Docker;
use crate::error::{Error, Result};
use crate::mounts::DataMap;

/// The label compose puts on every container of a project.
pub(crate) const COMPOSE_PROJECT: &str = "com.docker.compose.project";

/// Config fields that come from the image unless the user set them.
const IMAGE_DEFAULTS: &[&str] = &[
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "ExposedPorts",
    "Volumes",
    "StopSignal",
    "Healthcheck",
    "Shell",
    "OnBuild",
];

#[derive(Debug, Clone, Serialize)]
pub struct Recreate {
    /// The body of POST /containers/create.
    pub request: Value,
    /// Networks attached after the create, before the start (API < 1.44).
    pub connect: Vec<Connect>,
    /// What of the old configuration cannot be carried over.
    pub(crate) not_carried: Vec<String>,
}

/// `old`: the container's inspect; `old_image`: its image's inspect;
/// `new_image`: the reference the new container is created from.
pub(crate) fn request(
    old: &Value,
    old_image: &Value,
    new_image: &str,
    data: &DataMap,
    engine: Engine,
) -> Recreate {
    let mut cfg = old
        .get("Config")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let img = old_image.get("Config").cloned().unwrap_or(Value::Null);
    cfg.insert("Image".into(), json!(new_image));
    // Since API 1.44 a MAC is an endpoint's (endpoints.rs carries the
    // user's there); the container-wide field is deprecated.
    if !engine.podman && engine.api >= endpoints::MULTI_ENDPOINT_API {
        cfg.remove("MacAddress");
    }
    for f in IMAGE_DEFAULTS {
        if cfg.get(*f) == img.get(*f) {
            cfg.remove(*f);
        }
    }
    // Env and labels, entry by entry.
    let img_env: Vec<&Value> = img
        .get("Env")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    if let Some(Value::Array(env)) = cfg.get_mut("Env") {
        env.retain(|e| !img_env.contains(&e));
    }
    if let (Some(Value::Object(labels)), Some(il)) = (
        cfg.get_mut("Labels"),
        img.get("Labels").and_then(Value::as_object),
    ) {
        labels.retain(|k, v| il.get(k) != Some(v));
    }
    // Compose's labels stay as compose wrote them, com.docker.compose.image
    // too: v2's `up -d` re-creates a container whose label is not the id of
    // the image its file names, and the file still names the old one (see
    // compose.rs), so the new id there would make it start the old image
    // on the migrated data.
    let mut host = old
        .get("HostConfig")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let network = host
        .get("NetworkMode")
        .and_then(Value::as_str)
        .unwrap_or("default")
        .to_owned();
    // The engine names the container's host by its id unless told; with the
    // host's network (or another container's) it must not be set at all.
    let id = old.get("Id").and_then(Value::as_str).unwrap_or("");
    let generated = cfg
        .get("Hostname")
        .and_then(Value::as_str)
        .is_some_and(|h| !h.is_empty() && id.starts_with(h));
    if generated || network == "host" || network.starts_with("container:") {
        // Podman also reports the hostname it chose as HOSTNAME in Env.
        if let (Some(Value::String(h)), Some(Value::Array(env))) =
            (cfg.remove("Hostname"), cfg.get_mut("Env"))
        {
            env.retain(|e| e.as_str() != Some(&format!("HOSTNAME={h}")));
        }
        cfg.remove("Domainname");
    }
    reattach_anonymous(&mut host, data);
    // Inspect names links `/other:/self/alias`; a create takes `other:alias`.
    if let Some(Value::Array(links)) = host.get_mut("Links") {
        for l in links.iter_mut() {
            if let Some(s) = l.as_str() {
                *l = json!(endpoints::create_link(s));
            }
        }
    }
    let mut request = Value::Object(cfg);
    request["HostConfig"] = Value::Object(host);
    let nets = endpoints::carry(old, engine);
    if !nets.at_create.is_empty() {
        request["NetworkingConfig"] = json!({ "EndpointsConfig": nets.at_create });
    }
    Recreate {
        request,
        connect: nets.connect,
        not_carried: nets.not_carried,
    }
}

/// Limits `describe` shows when set (zero and absent mean "none").
const LIMITS: &[&str] = &[
    "Memory",
    "MemoryReservation",
    "MemorySwap",
    "NanoCpus",
    "CpuShares",
    "CpuQuota",
    "CpusetCpus",
    "PidsLimit",
    "ShmSize",
    "Ulimits",
];

/// What the create carries, by group, for `--dry-run`: (group, line).
pub(crate) fn describe(create: &Value, connect: &[Connect]) -> Vec<(&'static str, String)> {
    let host = &create["HostConfig"];
    let mut out = vec![];
    let mode = host["NetworkMode"].as_str().unwrap_or("default");
    let at_create = create
        .pointer("/NetworkingConfig/EndpointsConfig")
        .and_then(Value::as_object);
    out.push(("networks", format!("mode {mode}")));
    for (name, ep) in at_create.into_iter().flatten() {
        out.push(("networks", format!("{name} {ep} (at create)")));
    }
    for c in connect {
        out.push((
            "networks",
            format!("{} {} (connected before start)", c.network, c.endpoint),
        ));
    }
    for (field, what) in [
        ("Binds", "bind"),
        ("Mounts", "mount"),
        ("VolumesFrom", "volumes from"),
        ("Tmpfs", "tmpfs"),
        ("Devices", "device"),
    ] {
        match &host[field] {
            Value::Array(a) => a
                .iter()
                .for_each(|m| out.push(("mounts", format!("{what} {m}")))),
            Value::Object(o) => o
                .iter()
                .for_each(|(k, v)| out.push(("mounts", format!("{what} {k} {v}")))),
            _ => {}
        }
    }
    for l in LIMITS {
        let v = &host[*l];
        if !(v.is_null() || *v == json!(0) || *v == json!("") || *v == json!([])) {
            out.push(("limits", format!("{l} {v}")));
        }
    }
    let labels = create["Labels"].as_object();
    let (compose, own): (Vec<_>, Vec<_>) = labels
        .into_iter()
        .flatten()
        .partition(|(k, _)| k.starts_with("com.docker.compose."));
    if !own.is_empty() {
        let keys: Vec<&str> = own.iter().map(|(k, _)| k.as_str()).collect();
        out.push(("labels", keys.join(", ")));
    }
    for (k, v) in compose {
        out.push(("compose", format!("{k}={v}")));
    }
    out
}

/// Create the new container and attach the networks its create could not
/// take, so that it is whole before it starts. When an attach fails the
/// half-made container is removed again (the old one is still renamed
/// aside: the rollback puts it back under its name).
pub async fn create(
    d: &Docker,
    name: &str,
    request: &Value,
    connect: &[Connect],
) -> Result<String> {
    let id = d.container_create(name, request).await?;
    for c in connect {
        if let Err(e) = d.network_connect(&c.network, &id, &c.endpoint).await {
            let removed = match d.container_remove(&id, true, false).await {
                Ok(()) => "removed the new container again".to_owned(),
                Err(r) if r.is_not_found() => "the new container is gone".to_owned(),
                Err(r) => format!("removing the new container failed too: {}", r.msg),
            };
            return Err(Error::new(e.kind, format!("{} ({removed})", e.msg)));
        }
    }
    Ok(id)
}

/// Volumes the old container got anonymously (not by --volumes-from, not
/// named in Binds or Mounts) become explicit mounts of the same volumes.
fn reattach_anonymous(host: &mut Map<String, Value>, data: &DataMap) {
    let named_dests: Vec<String> = host
        .get("Binds")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|b| b.split(':').nth(1).map(String::from))
        .chain(
            host.get("Mounts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|m| m.get("Target").and_then(Value::as_str).map(String::from)),
        )
        .collect();
    let extra: Vec<Value> = data
        .mounts
        .iter()
        .filter(|m| m.kind == "volume" && m.from.is_none() && !named_dests.contains(&m.destination))
        .filter_map(|m| {
            Some(json!({"Type": "volume", "Source": m.name.clone()?, "Target": m.destination, "ReadOnly": !m.rw}))
        })
        .collect();
    if !extra.is_empty() {
        let mounts = host.entry("Mounts").or_insert_with(|| json!([]));
        if !mounts.is_array() {
            *mounts = json!([]);
        }
        mounts.as_array_mut().expect("array").extend(extra);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::model::ContainerInspect;
    use crate::docker::ApiVersion;
    use crate::mounts::classify;

    const NEW: &str = "app:2";
    const DOCKER_20_10: Engine = Engine {
        api: ApiVersion(1, 41),
        podman: false,
    };

    #[test]
    fn image_defaults_are_left_to_the_new_image() {
        let old = json!({
            "Id": "abcdef1234567890",
            "Config": {"Hostname": "abcdef123456", "Image": "app:1", "Env": ["VERSION=1", "MINE=x"],
                       "Cmd": ["serve"], "Entrypoint": ["/app"], "Labels": {"from.image": "1", "mine": "y"}},
            "HostConfig": {"NetworkMode": "host", "Privileged": true, "VolumesFrom": ["data"], "Binds": ["/h:/c"]},
            "Mounts": [
                {"Type": "volume", "Name": "anon1", "Source": "/v/anon1", "Destination": "/anon", "RW": true},
                {"Type": "bind", "Source": "/h", "Destination": "/c", "RW": true}
            ],
            "NetworkSettings": {"Networks": {"host": {}}}
        });
        let img = json!({"Config": {"Env": ["VERSION=1"], "Cmd": ["run"], "Entrypoint": ["/app"], "Labels": {"from.image": "1"}}});
        let data = classify(&ContainerInspect::from_raw(&old).unwrap(), &[]);
        let r = request(&old, &img, NEW, &data, DOCKER_20_10);
        let q = &r.request;
        assert_eq!(q["Image"], "app:2");
        assert_eq!(q["Env"], json!(["MINE=x"]));
        assert_eq!(
            q["Cmd"],
            json!(["serve"]),
            "a command the user gave is kept"
        );
        assert!(
            q.get("Entrypoint").is_none(),
            "the image's entrypoint comes from the new image"
        );
        assert_eq!(q["Labels"], json!({"mine": "y"}));
        assert!(q.get("Hostname").is_none());
        assert_eq!(q["HostConfig"]["Privileged"], true);
        assert_eq!(q["HostConfig"]["VolumesFrom"], json!(["data"]));
        assert_eq!(
            q["HostConfig"]["Mounts"],
            json!([{"Type": "volume", "Source": "anon1", "Target": "/anon", "ReadOnly": false}])
        );
        assert!(r.not_carried.is_empty());
    }

    #[test]
    fn engine_bookkeeping_is_not_copied_and_compose_labels_stay() {
        let old = json!({
            "Id": "abcdef1234567890",
            "Config": {"Hostname": "abcdef123456", "Image": "app:1",
                       "Env": ["HOSTNAME=abcdef123456", "container=podman", "HOSTNAME2=abcdef123456"],
                       "Labels": {"com.docker.compose.project": "p", "com.docker.compose.service": "s",
                                  "com.docker.compose.image": "sha256:1111"}},
            "HostConfig": {"NetworkMode": "default", "Links": ["/db:/app/database", "/c:/app/c"]},
            "NetworkSettings": {"Networks": {"bridge": {"Aliases": null, "MacAddress": "02:42:ac:11:00:02"}}}
        });
        let data = classify(&ContainerInspect::from_raw(&old).unwrap(), &[]);
        let r = request(&old, &json!({}), NEW, &data, DOCKER_20_10);
        let q = &r.request;
        assert!(q.get("Hostname").is_none(), "the old id as hostname");
        assert_eq!(
            q["Env"],
            json!(["container=podman", "HOSTNAME2=abcdef123456"]),
            "Podman's HOSTNAME=<old id> entry goes with it"
        );
        assert_eq!(q["HostConfig"]["Links"], json!(["db:database", "c:c"]));
        assert_eq!(
            q["Labels"],
            json!({"com.docker.compose.project": "p", "com.docker.compose.service": "s",
                   "com.docker.compose.image": "sha256:1111"})
        );
        assert!(q.get("NetworkingConfig").is_none());
        assert!(r.connect.is_empty() && r.not_carried.is_empty());
    }
}
