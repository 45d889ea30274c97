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

use crate::mounts::DataMap;

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
    /// What of the old configuration cannot be carried over.
    pub not_carried: Vec<String>,
}

/// `old`: the container's inspect; `old_image`: its image's inspect.
pub fn request(old: &Value, old_image: &Value, new_image: &str, data: &DataMap) -> Recreate {
    let mut cfg = old
        .get("Config")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let img = old_image.get("Config").cloned().unwrap_or(Value::Null);
    cfg.insert("Image".into(), json!(new_image));
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
        cfg.remove("Hostname");
        cfg.remove("Domainname");
    }
    reattach_anonymous(&mut host, data);
    let mut not_carried = vec![];
    let mut request = Value::Object(cfg);
    request["HostConfig"] = Value::Object(host);
    if let Some(nets) = old
        .pointer("/NetworkSettings/Networks")
        .and_then(Value::as_object)
    {
        carry_network(&mut request, nets, &network, &mut not_carried);
    }
    Recreate {
        request,
        not_carried,
    }
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

/// The network of NetworkMode keeps its aliases and fixed addresses; more
/// networks cannot be given at create on older engines: report them.
fn carry_network(
    request: &mut Value,
    nets: &Map<String, Value>,
    mode: &str,
    not_carried: &mut Vec<String>,
) {
    let builtin =
        ["default", "bridge", "host", "none"].contains(&mode) || mode.starts_with("container:");
    for (name, ep) in nets {
        if name == mode && !builtin {
            let mut e = json!({});
            for k in ["Aliases", "IPAMConfig", "Links", "DriverOpts"] {
                if let Some(v) = ep.get(k).filter(|v| !v.is_null()) {
                    e[k] = v.clone();
                }
            }
            request["NetworkingConfig"] = json!({ "EndpointsConfig": { name.clone(): e } });
        } else if name != mode && !(mode == "default" && name == "bridge") {
            not_carried.push(format!("network {name}: the container is also connected to it; connect the new container by hand"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mounts::classify;

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
        let data = classify(&old, &[]);
        let r = request(&old, &img, "app:2", &data);
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
}
