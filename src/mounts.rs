//! What a container's data is: which mounts hold it, where they come from,
//! and which must never be backed up.
//!
//! Volumes (named, anonymous, or inherited through `--volumes-from`) are
//! data. Bind mounts are host files (the appliance's config file with the
//! admin password lives in one) and are never backed up; a bind mount
//! nested inside a backed-up volume is cut out of that volume's archive.

use serde::{Deserialize, Serialize};

use crate::docker::model::{ContainerInspect, MountPoint};
use crate::docker::Docker;
use crate::error::Result;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Mount {
    /// "volume", "bind", "tmpfs", ...
    #[serde(rename = "type")]
    pub kind: String,
    /// Volume name (volumes only).
    pub name: Option<String>,
    /// Host path (bind) or the volume's mountpoint on the host.
    pub source: String,
    /// Path inside the container.
    pub destination: String,
    pub rw: bool,
    /// The container this mount is inherited from through --volumes-from.
    pub from: Option<String>,
    /// Whether a backup takes this mount.
    pub backup: bool,
    /// Why not, when it does not.
    pub reason: Option<String>,
}

/// A path cut out of a backed-up mount because another mount sits there.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Excluded {
    pub path: String,
    pub inside: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DataMap {
    pub mounts: Vec<Mount>,
    pub excluded: Vec<Excluded>,
}

impl DataMap {
    pub(crate) fn backed_up(&self) -> impl Iterator<Item = &Mount> {
        self.mounts.iter().filter(|m| m.backup)
    }

    /// Paths under `dest` that its archive must leave out (other mounts
    /// nested inside it), relative to `dest`.
    pub(crate) fn exclusions_under(&self, dest: &str) -> Vec<String> {
        self.mounts
            .iter()
            .filter(|m| m.destination != dest)
            .filter_map(|m| nested_rel(dest, &m.destination))
            .collect()
    }
}

/// `inner` relative to `outer` when it lies strictly below it.
pub(crate) fn nested_rel(outer: &str, inner: &str) -> Option<String> {
    let outer = outer.trim_end_matches('/');
    let rest = inner.strip_prefix(outer)?.strip_prefix('/')?;
    (!rest.is_empty()).then(|| rest.trim_end_matches('/').to_owned())
}

/// Resolve the mounts of an inspected container. Inherited mounts are
/// attributed by asking each --volumes-from container for its own mounts.
pub(crate) async fn resolve(docker: &Docker, inspect: &ContainerInspect) -> Result<DataMap> {
    let mut sources: Vec<(String, Vec<MountPoint>)> = vec![];
    for f in &inspect.host_config.volumes_from {
        let name = f.split(':').next().unwrap_or(f).to_owned();
        let other = docker.container_inspect(&name).await?;
        sources.push((name, other.mounts));
    }
    Ok(classify(inspect, &sources))
}

/// The pure part of `resolve`, given the --volumes-from containers' mounts.
pub(crate) fn classify(
    inspect: &ContainerInspect,
    sources: &[(String, Vec<MountPoint>)],
) -> DataMap {
    let mut mounts: Vec<Mount> = inspect
        .mounts
        .iter()
        .map(|m| {
            let from = sources
                .iter()
                .find(|(_, ms)| {
                    ms.iter()
                        .any(|o| o.destination == m.destination && o.source == m.source)
                })
                .map(|(n, _)| n.clone());
            let (backup, reason) = match m.kind.as_str() {
                "volume" => (true, None),
                "bind" => (
                    false,
                    Some("host bind mount: host files are never backed up".to_owned()),
                ),
                "tmpfs" => (
                    false,
                    Some("tmpfs: memory only, nothing to keep".to_owned()),
                ),
                other => (false, Some(format!("{other} mount: not supported"))),
            };
            Mount {
                kind: m.kind.clone(),
                name: Some(m.name.clone()).filter(|n| !n.is_empty()),
                source: m.source.clone(),
                destination: m.destination.clone(),
                rw: m.rw,
                from,
                backup,
                reason,
            }
        })
        .collect();
    mounts.sort_by(|a, b| a.destination.cmp(&b.destination));
    let mut excluded = vec![];
    for outer in mounts.iter().filter(|m| m.backup) {
        for inner in &mounts {
            if let Some(rel) = nested_rel(&outer.destination, &inner.destination) {
                let what = if inner.backup {
                    "backed up on its own"
                } else {
                    "never backed up"
                };
                excluded.push(Excluded {
                    path: inner.destination.clone(),
                    inside: outer.destination.clone(),
                    reason: format!("{} mount nested at {rel}: {what}", inner.kind),
                });
            }
        }
    }
    DataMap { mounts, excluded }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nesting() {
        assert_eq!(
            nested_rel("/var/lib/vmware", "/var/lib/vmware/config").as_deref(),
            Some("config")
        );
        assert_eq!(
            nested_rel("/var/lib/vmware/", "/var/lib/vmware/a/b/").as_deref(),
            Some("a/b")
        );
        assert_eq!(nested_rel("/var/lib/vmware", "/var/lib/vmware"), None);
        assert_eq!(nested_rel("/var/lib/vm", "/var/lib/vmware"), None);
    }

    #[test]
    fn volumes_from_and_binds() {
        let inspect = ContainerInspect::from_raw(&json!({"Mounts": [
            {"Type":"volume","Name":"v1","Source":"/d/v1","Destination":"/var/lib/vmware","RW":true},
            {"Type":"bind","Source":"/host/cfg","Destination":"/var/lib/vmware/config","RW":true},
            {"Type":"volume","Name":"v2","Source":"/d/v2","Destination":"/own","RW":false},
        ]}))
        .unwrap();
        let src = vec![(
            "lw_data".to_owned(),
            vec![MountPoint {
                destination: "/var/lib/vmware".into(),
                source: "/d/v1".into(),
                ..Default::default()
            }],
        )];
        let m = classify(&inspect, &src);
        assert_eq!(m.mounts.len(), 3);
        let vm = m
            .mounts
            .iter()
            .find(|x| x.destination == "/var/lib/vmware")
            .unwrap();
        assert_eq!(vm.from.as_deref(), Some("lw_data"));
        assert!(vm.backup);
        let b = m.mounts.iter().find(|x| x.kind == "bind").unwrap();
        assert!(!b.backup && b.from.is_none());
        assert_eq!(m.excluded.len(), 1);
        assert_eq!(m.exclusions_under("/var/lib/vmware"), vec!["config"]);
        assert_eq!(m.backed_up().count(), 2);
    }
}
