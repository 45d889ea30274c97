//! Other containers that use the one being upgraded: its network stack
//! (`--network container:C`), its IPC or PID namespace, its volumes
//! (`--volumes-from C`) or a link to it. They hold on to the old
//! container's id, so recreating it would leave them pointing at a
//! container that is then removed: the upgrade refuses while they exist.

use crate::docker::model::{ContainerInspect, HostConfig};
use crate::docker::Docker;
use crate::error::Result;

/// "NAME (how)" for every container that uses `c` (its inspect).
pub(crate) async fn of(d: &Docker, c: &ContainerInspect) -> Result<Vec<String>> {
    let mut users = vec![];
    for s in d.container_list(&serde_json::json!({})).await? {
        if s.id == c.id {
            continue;
        }
        // By name where it has one, so that a fault aimed at the upgrade's
        // own inspects by id (tests/faults.rs) does not land in the plan.
        let by = if s.name().is_empty() { &s.id } else { s.name() };
        let o = match d.container_inspect(by).await {
            Ok(o) => o,
            // Removed since the list: it uses nothing any more.
            Err(e) if e.is_not_found() => continue,
            // Podman 4.3 answers 500, not 404, for a container removed
            // between the list and the inspect: gone if no longer listed.
            Err(_) if !listed(d, &s.id).await? => continue,
            Err(e) => return Err(e),
        };
        let hows = uses(&o.host_config, &c.id, c.name());
        if !hows.is_empty() {
            users.push(format!("{} ({})", o.name(), hows.join(", ")));
        }
    }
    users.sort();
    Ok(users)
}

/// How a container with `host` (its HostConfig) uses the container `id`
/// named `name`.
pub(crate) fn uses(host: &HostConfig, id: &str, name: &str) -> Vec<&'static str> {
    let is_it = |r: &str| r == name || (r.len() >= 12 && id.starts_with(r));
    let mut hows = vec![];
    for (mode, how) in [
        (&host.network_mode, "--network container:"),
        (&host.ipc_mode, "--ipc container:"),
        (&host.pid_mode, "--pid container:"),
    ] {
        if mode.strip_prefix("container:").is_some_and(is_it) {
            hows.push(how);
        }
    }
    if host
        .volumes_from
        .iter()
        .any(|v| is_it(v.split(':').next().unwrap_or(v)))
    {
        hows.push("--volumes-from");
    }
    if host.links.iter().any(|l| {
        let target = l.split(':').next().unwrap_or(l);
        is_it(target.trim_start_matches('/'))
    }) {
        hows.push("--link");
    }
    hows
}

/// Whether the engine still lists the container with this id.
async fn listed(d: &Docker, id: &str) -> Result<bool> {
    let rows = d.container_list(&serde_json::json!({ "id": [id] })).await?;
    Ok(!rows.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn host(v: serde_json::Value) -> HostConfig {
        ContainerInspect::from_raw(&json!({ "HostConfig": v }))
            .unwrap()
            .host_config
    }

    const ID: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn every_way_of_using_a_container_is_found() {
        let o = host(
            json!({"NetworkMode": "container:0123456789abcdef0123456789abcdef",
            "VolumesFrom": ["app:ro"], "Links": ["/app:/other/db"], "IpcMode": "private"}),
        );
        assert_eq!(
            uses(&o, ID, "app"),
            vec!["--network container:", "--volumes-from", "--link"]
        );
        let unrelated = host(json!({"NetworkMode": "container:appx",
            "VolumesFrom": ["app-data"], "Links": ["/application:/other/db"]}));
        assert!(uses(&unrelated, ID, "app").is_empty());
        let by_short_id = host(json!({"PidMode": "container:0123456789ab"}));
        assert_eq!(uses(&by_short_id, ID, "app"), vec!["--pid container:"]);
    }
}
