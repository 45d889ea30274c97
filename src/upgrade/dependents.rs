//! Other containers that use the one being upgraded: its network stack
//! (`--network container:C`), its IPC or PID namespace, its volumes
//! (`--volumes-from C`) or a link to it. They hold on to the old
//! container's id, so recreating it would leave them pointing at a
//! container that is then removed: the upgrade refuses while they exist.

use serde_json::Value;

use crate::docker::Docker;
use crate::error::Result;
use crate::inspect::{name_of, str_at};

/// "NAME (how)" for every container that uses `c` (its inspect).
pub async fn of(d: &Docker, c: &Value) -> Result<Vec<String>> {
    let id = str_at(c, "/Id").to_owned();
    let name = name_of(c);
    let mut users = vec![];
    for s in d.container_list(&serde_json::json!({})).await? {
        let other = s["Id"].as_str().unwrap_or_default();
        if other == id {
            continue;
        }
        // By name where it has one, so that a fault aimed at the upgrade's
        // own inspects by id (tests/faults.rs) does not land in the plan.
        let by = s
            .pointer("/Names/0")
            .and_then(Value::as_str)
            .map(|n| n.trim_start_matches('/'))
            .unwrap_or(other);
        let o = match d.container_inspect(by).await {
            Ok(o) => o,
            // Removed since the list: it uses nothing any more.
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e),
        };
        let hows = uses(&o, &id, &name);
        if !hows.is_empty() {
            users.push(format!("{} ({})", name_of(&o), hows.join(", ")));
        }
    }
    users.sort();
    Ok(users)
}

/// How container `o` (its inspect) uses the container `id` named `name`.
pub fn uses(o: &Value, id: &str, name: &str) -> Vec<&'static str> {
    let is_it = |r: &str| r == name || (r.len() >= 12 && id.starts_with(r));
    let host = &o["HostConfig"];
    let mut hows = vec![];
    for (field, how) in [
        ("NetworkMode", "--network container:"),
        ("IpcMode", "--ipc container:"),
        ("PidMode", "--pid container:"),
    ] {
        let mode = host[field].as_str().unwrap_or("");
        if mode.strip_prefix("container:").is_some_and(is_it) {
            hows.push(how);
        }
    }
    let strings = |f: &str| -> Vec<String> {
        host[f]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(String::from))
            .collect()
    };
    if strings("VolumesFrom")
        .iter()
        .any(|v| is_it(v.split(':').next().unwrap_or(v)))
    {
        hows.push("--volumes-from");
    }
    if strings("Links").iter().any(|l| {
        let target = l.split(':').next().unwrap_or(l);
        is_it(target.trim_start_matches('/'))
    }) {
        hows.push("--link");
    }
    hows
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ID: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn every_way_of_using_a_container_is_found() {
        let o = json!({"HostConfig": {"NetworkMode": "container:0123456789abcdef0123456789abcdef",
            "VolumesFrom": ["app:ro"], "Links": ["/app:/other/db"], "IpcMode": "private"}});
        assert_eq!(
            uses(&o, ID, "app"),
            vec!["--network container:", "--volumes-from", "--link"]
        );
        let unrelated = json!({"HostConfig": {"NetworkMode": "container:appx",
            "VolumesFrom": ["app-data"], "Links": ["/application:/other/db"]}});
        assert!(uses(&unrelated, ID, "app").is_empty());
        let by_short_id = json!({"HostConfig": {"PidMode": "container:0123456789ab"}});
        assert_eq!(uses(&by_short_id, ID, "app"), vec!["--pid container:"]);
    }
}
