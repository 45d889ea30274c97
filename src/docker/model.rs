//! Typed views of what the engine answers about containers: the fields
//! berth reads, under their own names, with the engine's `null`s and
//! missing keys read as empty.
//!
//! A container that berth re-creates is re-created from its whole inspect
//! (`Docker::container_inspect_raw`), so that nothing berth does not know
//! about is dropped; everything else reads these types. Docker 20.10 and
//! Podman 4.3 answer with the same shape (tests/data/engine/ holds
//! answers of both).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::secrets::json_problem;

/// GET /containers/{id}/json, the parts berth reads.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "PascalCase")]
pub struct ContainerInspect {
    pub id: String,
    /// As the engine gives it, with a leading '/': see [`Self::name`].
    #[serde(rename = "Name")]
    raw_name: String,
    /// The id of the image the container runs.
    pub image: String,
    #[serde(deserialize_with = "or_default")]
    pub config: ContainerConfig,
    #[serde(deserialize_with = "or_default")]
    pub state: ContainerState,
    #[serde(deserialize_with = "or_default")]
    pub mounts: Vec<MountPoint>,
    #[serde(deserialize_with = "or_default")]
    pub host_config: HostConfig,
    #[serde(deserialize_with = "or_default")]
    pub network_settings: NetworkSettings,
    pub restart_count: i64,
}

impl ContainerInspect {
    /// Read the typed view out of a whole inspect answer.
    pub fn from_raw(raw: &Value) -> Result<Self> {
        // The inspect holds the environment's values: the error names the
        // problem, never a value.
        Self::deserialize(raw).map_err(|e| {
            Error::failed(format!(
                "the engine's container inspect has an unexpected shape: {}",
                json_problem(&e)
            ))
        })
    }

    /// The container's name without the engine's leading '/'.
    pub fn name(&self) -> &str {
        self.raw_name.trim_start_matches('/')
    }
}

/// `Config`: what the container was created with.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "PascalCase")]
pub struct ContainerConfig {
    /// The reference the container was created from (`docker run IMAGE`).
    pub image: String,
    #[serde(deserialize_with = "or_default")]
    pub labels: BTreeMap<String, String>,
    /// `NAME=value` lines.
    #[serde(deserialize_with = "or_default")]
    pub env: Vec<String>,
    pub tty: bool,
    pub user: String,
    pub working_dir: String,
}

/// `State`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "PascalCase")]
pub struct ContainerState {
    /// "created", "running", "exited", "restarting", "removing", "dead", ...
    pub status: String,
    pub running: bool,
    pub restarting: bool,
    pub exit_code: i64,
    /// RFC 3339; Go's zero time (year 1) before the first start.
    pub started_at: String,
    /// RFC 3339; Go's zero time before the first stop.
    pub finished_at: String,
    /// Only for a container with a health check.
    pub health: Option<Health>,
}

impl ContainerState {
    /// Gone as far as berth is concerned: being removed, or failed to be.
    pub fn is_going(&self) -> bool {
        matches!(self.status.as_str(), "removing" | "dead")
    }
}

/// `State.Health`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "PascalCase")]
pub struct Health {
    /// "starting", "healthy", "unhealthy".
    pub status: String,
}

/// One of `Mounts`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, rename_all = "PascalCase")]
pub struct MountPoint {
    /// "volume", "bind", "tmpfs", ...
    #[serde(rename = "Type")]
    pub kind: String,
    /// The volume's name (volumes only).
    pub name: String,
    /// The host path (bind), or the volume's directory on the host.
    pub source: String,
    /// The path inside the container.
    pub destination: String,
    #[serde(rename = "RW")]
    pub rw: bool,
}

impl Default for MountPoint {
    fn default() -> Self {
        MountPoint {
            kind: String::new(),
            name: String::new(),
            source: String::new(),
            destination: String::new(),
            // An engine that does not say is read as Docker's default.
            rw: true,
        }
    }
}

/// `HostConfig`, the parts that tie a container to others.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "PascalCase")]
pub struct HostConfig {
    /// "default", "bridge", "host", "none", "container:ID", a network.
    pub network_mode: String,
    pub ipc_mode: String,
    pub pid_mode: String,
    /// `CONTAINER[:ro|:rw]`.
    #[serde(deserialize_with = "or_default")]
    pub volumes_from: Vec<String>,
    /// `CONTAINER:ALIAS`.
    #[serde(deserialize_with = "or_default")]
    pub links: Vec<String>,
}

/// `NetworkSettings`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "PascalCase")]
pub struct NetworkSettings {
    /// Endpoints by network name.
    #[serde(deserialize_with = "or_default")]
    pub networks: BTreeMap<String, Endpoint>,
}

/// One of `NetworkSettings.Networks`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "PascalCase")]
pub struct Endpoint {
    /// The network's id (Podman 4.3 gives its name).
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(deserialize_with = "or_default")]
    pub aliases: Vec<String>,
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
}

/// One row of GET /containers/json.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "PascalCase")]
pub struct ContainerSummary {
    pub id: String,
    /// With leading '/': see [`Self::name`].
    #[serde(deserialize_with = "or_default")]
    pub names: Vec<String>,
    /// The reference the container was created from.
    pub image: String,
    #[serde(rename = "ImageID")]
    pub image_id: String,
    #[serde(deserialize_with = "or_default")]
    pub labels: BTreeMap<String, String>,
    /// "running", "exited", ...
    pub state: String,
}

impl ContainerSummary {
    /// Its (first) name without the leading '/'; "" for none.
    pub fn name(&self) -> &str {
        self.names.first().map_or("", |n| n.trim_start_matches('/'))
    }
}

/// The first 12 hex digits of an engine id, as `docker ps` shows it.
pub(crate) fn short_id(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    &id[..id.len().min(12)]
}

/// A `null` read as the type's empty value (the engine writes `null` for
/// an empty list or map).
pub(crate) fn or_default<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fixture(name: &str) -> ContainerInspect {
        let path = format!(
            "{}/tests/data/engine/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let raw: Value = serde_json::from_slice(&text).unwrap();
        ContainerInspect::from_raw(&raw).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// Both engines' answers for the same container, running.
    #[test]
    fn running_on_both_engines() {
        for (engine, image_ref) in [
            ("docker-20.10", "berth-fixture/lightwave-sts:6.7.0"),
            ("podman-4.3", "localhost/berth-fixture/lightwave-sts:6.7.0"),
        ] {
            let c = fixture(&format!("{engine}-running"));
            assert_eq!(c.name(), format!("berth-capture-{engine}"), "{engine}");
            assert_eq!(c.id.len(), 64, "{engine}");
            assert!(c.image.starts_with("sha256:"), "{engine}");
            assert_eq!(c.config.image, image_ref, "{engine}");
            assert_eq!(c.config.labels["com.example.role"], "db", "{engine}");
            assert!(c.config.env.iter().any(|e| e == "A=1"), "{engine}");
            assert!(!c.config.tty, "{engine}");
            assert!(c.state.running && c.state.status == "running", "{engine}");
            assert!(!c.state.restarting && !c.state.is_going(), "{engine}");
            assert!(c.state.started_at.starts_with("20"), "{engine}");
            let health = c.state.health.as_ref().expect("a health check");
            assert_eq!(health.status, "starting", "{engine}");
            assert_eq!(c.restart_count, 0, "{engine}");
            let kinds: Vec<(&str, &str, bool)> = c
                .mounts
                .iter()
                .map(|m| (m.kind.as_str(), m.destination.as_str(), m.rw))
                .collect();
            assert!(
                kinds.contains(&("volume", "/var/lib/vmware", true)),
                "{engine}"
            );
            assert!(
                kinds.contains(&("bind", "/var/lib/vmware/config", true)),
                "{engine}"
            );
            let vol = c.mounts.iter().find(|m| m.kind == "volume").unwrap();
            assert_eq!(vol.name, format!("berth-capture-{engine}-vol"));
            let net = &c.network_settings.networks[&format!("berth-capture-{engine}-net")];
            assert!(net.aliases.iter().any(|a| a == "db"), "{engine}");
            assert!(!net.ip_address.is_empty() && !net.network_id.is_empty());
            assert!(c.host_config.volumes_from.is_empty() && c.host_config.links.is_empty());
        }
    }

    #[test]
    fn created_and_exited() {
        for engine in ["docker-20.10", "podman-4.3"] {
            let c = fixture(&format!("{engine}-created"));
            assert_eq!(c.state.status, "created", "{engine}");
            assert!(!c.state.running, "{engine}");
            let c = fixture(&format!("{engine}-exited"));
            assert_eq!(c.state.status, "exited", "{engine}");
            assert!(!c.state.running, "{engine}");
        }
    }

    /// Docker writes `null` for empty lists and maps; a missing key is
    /// empty too.
    #[test]
    fn nulls_and_missing_keys_are_empty() {
        let c = ContainerInspect::from_raw(&json!({
            "Id": "x", "Name": "/n",
            "Config": {"Labels": null, "Env": null},
            "Mounts": null,
            "HostConfig": {"VolumesFrom": null, "Links": null},
            "NetworkSettings": {"Networks": null},
            "State": {"Health": null},
        }))
        .unwrap();
        assert_eq!(c.name(), "n");
        assert!(c.config.labels.is_empty() && c.config.env.is_empty());
        assert!(c.mounts.is_empty() && c.network_settings.networks.is_empty());
        assert!(c.state.health.is_none() && !c.state.running);
        let m = ContainerInspect::from_raw(&json!({"Mounts": [{"Type": "volume"}]})).unwrap();
        assert!(m.mounts[0].rw, "RW defaults to Docker's default");
        assert!(ContainerInspect::from_raw(&json!({"State": {"Running": "yes"}})).is_err());
    }

    #[test]
    fn summary_names() {
        let s: ContainerSummary = serde_json::from_value(json!({
            "Id": "abc", "Names": ["/app"], "ImageID": "sha256:1", "Labels": null, "State": "running"
        }))
        .unwrap();
        assert_eq!((s.name(), s.image_id.as_str()), ("app", "sha256:1"));
        assert_eq!(ContainerSummary::default().name(), "");
    }
}
