//! The rehearsal container's create request: the very request the
//! upgrade would send, turned so that the copy cannot reach the host's
//! data, ports or network. Pure: the flow sends what this returns.
//!
//! What changes: its own name and labels; every volume (named, anonymous,
//! through --volumes-from) replaced by its scratch volume; host bind
//! mounts read-only; the config file's directory replaced by a private
//! one; no published ports, no links, restart policy `no`; network `none`
//! unless --rehearse-network names one. Everything else (image, command,
//! environment, privileges, devices, limits) is the upgrade's.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{json, Map, Value};

use super::record::{ConfigPlace, Record, Scratch, CONFIG_DIR};
use crate::mounts::{self, DataMap};
use crate::upgrade::plan::Plan;

/// Labels of the project's tools that must not see the rehearsal as one of
/// theirs (compose would list it as a service's container).
const FOREIGN_LABELS: &str = "com.docker.compose.";

pub(crate) fn rehearsal_request(create: &Value, r: &Record) -> Value {
    let mut req = create.clone();
    let mut labels = req["Labels"].as_object().cloned().unwrap_or_default();
    labels.retain(|k, _| !k.starts_with(FOREIGN_LABELS));
    if let Value::Object(ours) = r.labels() {
        labels.extend(ours);
    }
    req["Labels"] = Value::Object(labels);
    if let Some(cfg) = req.as_object_mut() {
        cfg.remove("NetworkingConfig");
        cfg.remove("MacAddress");
    }
    if let Some(net) = &r.network {
        req["NetworkingConfig"] = json!({ "EndpointsConfig": { net.as_str(): {} } });
    }
    let mut host = req["HostConfig"].as_object().cloned().unwrap_or_default();
    isolate(&mut host, r.network.as_deref());
    let taken: BTreeSet<&str> = r
        .scratch
        .iter()
        .map(|s| s.path.as_str())
        .chain(r.config.as_ref().map(|c| c.target.as_str()))
        .collect();
    let binds = readonly_binds(&host, &taken);
    host.insert("Binds".into(), json!(binds));
    let mut mounts = readonly_mounts(&host, &taken);
    mounts.extend(r.scratch.iter().map(scratch_mount));
    if let Some(c) = &r.config {
        mounts.push(
            json!({"Type": "bind", "Source": c.host_dir, "Target": c.target, "ReadOnly": false}),
        );
    }
    host.insert("Mounts".into(), json!(mounts));
    req["HostConfig"] = Value::Object(host);
    req
}

/// No ports, no links, no restart, no volumes of another container, and
/// its own network stack.
fn isolate(host: &mut Map<String, Value>, network: Option<&str>) {
    for f in ["PortBindings", "Links", "VolumesFrom"] {
        host.remove(f);
    }
    host.insert("PublishAllPorts".into(), json!(false));
    host.insert("RestartPolicy".into(), json!({"Name": "no"}));
    host.insert("NetworkMode".into(), json!(network.unwrap_or("none")));
}

/// `Binds` less the volumes and what the rehearsal mounts itself; host
/// paths read-only.
fn readonly_binds(host: &Map<String, Value>, taken: &BTreeSet<&str>) -> Vec<String> {
    let binds = host.get("Binds").and_then(Value::as_array);
    binds
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|b| {
            let mut parts = b.splitn(3, ':');
            let (src, dest) = (parts.next()?, parts.next()?);
            if !src.starts_with('/') || taken.contains(dest) {
                return None;
            }
            let mut opts: Vec<&str> = parts
                .next()
                .unwrap_or("")
                .split(',')
                .filter(|o| !o.is_empty() && *o != "rw" && *o != "ro")
                .collect();
            opts.push("ro");
            Some(format!("{src}:{dest}:{}", opts.join(",")))
        })
        .collect()
}

/// `Mounts` less the volumes and what the rehearsal mounts itself; binds
/// read-only; tmpfs and the rest as they are.
fn readonly_mounts(host: &Map<String, Value>, taken: &BTreeSet<&str>) -> Vec<Value> {
    let list = host.get("Mounts").and_then(Value::as_array);
    list.into_iter()
        .flatten()
        .filter(|m| m["Type"] != "volume")
        .filter(|m| !m["Target"].as_str().is_some_and(|t| taken.contains(t)))
        .map(|m| {
            let mut m = m.clone();
            if m["Type"] == "bind" {
                m["ReadOnly"] = json!(true);
            }
            m
        })
        .collect()
}

fn scratch_mount(s: &Scratch) -> Value {
    json!({"Type": "volume", "Source": s.volume, "Target": s.path, "ReadOnly": false})
}

/// The scratch volume of every volume the container has, named after the
/// run (`<run id>-<path slug>`).
pub(crate) fn scratch_volumes(run_id: &str, data: &DataMap, backed_up: &[String]) -> Vec<Scratch> {
    data.mounts
        .iter()
        .filter(|m| m.kind == "volume")
        .map(|m| Scratch {
            path: m.destination.clone(),
            volume: format!("{run_id}-{}", crate::manifest::slug(&m.destination)),
            restored: backed_up.contains(&m.destination),
        })
        .collect()
}

/// Where the config file goes in the rehearsal: the in-container path the
/// upgrade writes it to (the profile's config-path, else --config-dest
/// mapped through the bind mount that holds it); its directory is bound
/// from the run's private config directory.
pub(crate) fn config_place(p: &Plan, data: &DataMap, run_dir: &Path) -> Option<ConfigPlace> {
    p.config_file.as_ref()?;
    let inner = match (&p.settings.config_path, &p.config_dest) {
        (Some(c), _) => c.clone(),
        (None, Some(dest)) => inside_path(data, dest)?,
        (None, None) => return None,
    };
    let (dir, file) = inner.rsplit_once('/')?;
    Some(ConfigPlace {
        host_dir: run_dir.join(CONFIG_DIR),
        file_name: file.to_owned(),
        target: if dir.is_empty() {
            "/".into()
        } else {
            dir.into()
        },
    })
}

/// The container path of host path `dest`, through a bind mount.
fn inside_path(data: &DataMap, dest: &Path) -> Option<String> {
    let dest = dest.to_str()?;
    data.mounts
        .iter()
        .filter(|m| m.kind == "bind")
        .find_map(|m| {
            let rel = mounts::nested_rel(&m.source, dest)?;
            Some(format!("{}/{rel}", m.destination.trim_end_matches('/')))
        })
}

/// What differs from the real upgrade, in words (text output and --json).
pub(crate) fn differences(r: &Record, create: &Value) -> Vec<String> {
    let host = &create["HostConfig"];
    let mut out = vec![format!(
        "its own container {} beside the old one, which keeps running",
        r.name
    )];
    out.push(match &r.network {
        None => "no network (NetworkMode none)".to_owned(),
        Some(n) => format!("only on network {n}, with an address of its own"),
    });
    let published = host["PortBindings"]
        .as_object()
        .is_some_and(|p| !p.is_empty())
        || host["PublishAllPorts"] == true;
    if published {
        out.push("no published ports".into());
    }
    if host["Links"].as_array().is_some_and(|l| !l.is_empty()) {
        out.push("no links".into());
    }
    let policy = host.pointer("/RestartPolicy/Name").and_then(Value::as_str);
    if !matches!(policy, None | Some("") | Some("no")) {
        out.push(format!(
            "restart policy no (the upgrade keeps {})",
            policy.unwrap_or("")
        ));
    }
    let binds = readonly_binds(
        host.as_object().unwrap_or(&Map::new()),
        &r.config.iter().map(|c| c.target.as_str()).collect(),
    );
    for b in binds {
        out.push(format!("host bind mount read-only: {b}"));
    }
    for m in readonly_mounts(host.as_object().unwrap_or(&Map::new()), &BTreeSet::new()) {
        if m["Type"] == "bind" {
            let s = |k: &str| m[k].as_str().unwrap_or("").to_owned();
            out.push(format!(
                "host bind mount read-only: {}:{}",
                s("Source"),
                s("Target")
            ));
        }
    }
    if let Some(c) = &r.config {
        out.push(format!(
            "the config file in a private directory bound at {} (instead of the host's)",
            c.target
        ));
    }
    out.push(match &r.from_backup {
        Some(d) => format!("data from the backup {}", d.display()),
        None => "data copied while the old container ran (the upgrade stops it first)".into(),
    });
    for s in r.scratch.iter().filter(|s| !s.restored) {
        out.push(format!(
            "{} starts empty: the backup does not hold it",
            s.path
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upgrade::plan::Plan;
    use std::path::PathBuf;

    fn record(create: &Value, network: Option<&str>) -> Record {
        let plan: Plan = serde_json::from_value(json!({
            "container": "lw", "container_id": "abc", "was_running": true,
            "old_image_id": "sha256:1", "old_image_ref": "app:1", "rollback_tag": "app:rb",
            "new_image_ref": "app:2", "new_image_id": "sha256:2", "image_file": "/i.tar",
            "image_sha256": "00", "aside_name": "lw-old",
            "settings": {"paths": [], "config_path": "/etc/app/conf/app.cfg", "success": [],
                         "failure": [], "watch": "logs", "timeout_s": 5},
            "config_file": "/secret/app.cfg", "config_dest": null, "paths": ["/data"],
            "excluded": [], "online_backup": true, "keep_old": false, "stop_timeout": 5,
            "create": create, "not_carried": [], "backup_bytes_estimate": 0, "free_bytes": 0,
            "run_dir": "/root/lw-X-rehearsal"
        }))
        .unwrap();
        Record {
            plan,
            run_id: "lw-X-rehearsal".into(),
            name: "lw-X-rehearsal".into(),
            holder: "lw-X-rehearsal-copy".into(),
            scratch: vec![
                Scratch {
                    path: "/data".into(),
                    volume: "lw-X-rehearsal-data".into(),
                    restored: true,
                },
                Scratch {
                    path: "/logs".into(),
                    volume: "lw-X-rehearsal-logs".into(),
                    restored: false,
                },
            ],
            config: Some(ConfigPlace {
                host_dir: PathBuf::from("/root/lw-X-rehearsal/config"),
                file_name: "app.cfg".into(),
                target: "/etc/app/conf".into(),
            }),
            network: network.map(String::from),
            from_backup: None,
            keep: false,
            at_copy: super::super::record::Clock {
                running: true,
                started_at: "t".into(),
                finished_at: "".into(),
            },
            differences: vec![],
        }
    }

    fn old_create() -> Value {
        json!({
            "Image": "app:2",
            "Labels": {"mine": "x", "com.docker.compose.project": "p"},
            "MacAddress": "02:00:00:00:00:01",
            "NetworkingConfig": {"EndpointsConfig": {"front": {"Aliases": ["app"]}}},
            "HostConfig": {
                "NetworkMode": "front",
                "PortBindings": {"8080/tcp": [{"HostPort": "8080"}]},
                "RestartPolicy": {"Name": "always"},
                "VolumesFrom": ["lw_data"],
                "Links": ["db:db"],
                "Binds": ["/srv/conf:/etc/app/conf", "/srv/certs:/certs:rw,z", "named:/named", "/srv/logs:/logs"],
                "Mounts": [
                    {"Type": "volume", "Source": "anon", "Target": "/data"},
                    {"Type": "bind", "Source": "/srv/plugins", "Target": "/plugins"},
                    {"Type": "tmpfs", "Target": "/run"}
                ],
                "Privileged": true
            }
        })
    }

    #[test]
    fn the_copy_reaches_no_data_port_or_network_of_the_host() {
        let create = old_create();
        let r = record(&create, None);
        let q = rehearsal_request(&create, &r);
        let h = &q["HostConfig"];
        assert_eq!(h["NetworkMode"], "none");
        assert!(q.get("NetworkingConfig").is_none() && q.get("MacAddress").is_none());
        assert!(h.get("PortBindings").is_none() && h["PublishAllPorts"] == false);
        assert!(h.get("VolumesFrom").is_none() && h.get("Links").is_none());
        assert_eq!(h["RestartPolicy"], json!({"Name": "no"}));
        assert_eq!(h["Privileged"], true, "the rest is the upgrade's");
        // The config's bind and the scratch paths are replaced; the other
        // host binds are read-only; the named volume goes (not a scratch one).
        assert_eq!(h["Binds"], json!(["/srv/certs:/certs:z,ro"]));
        assert_eq!(
            h["Mounts"],
            json!([
                {"Type": "bind", "Source": "/srv/plugins", "Target": "/plugins", "ReadOnly": true},
                {"Type": "tmpfs", "Target": "/run"},
                {"Type": "volume", "Source": "lw-X-rehearsal-data", "Target": "/data", "ReadOnly": false},
                {"Type": "volume", "Source": "lw-X-rehearsal-logs", "Target": "/logs", "ReadOnly": false},
                {"Type": "bind", "Source": "/root/lw-X-rehearsal/config", "Target": "/etc/app/conf", "ReadOnly": false}
            ])
        );
        assert_eq!(q["Labels"]["mine"], "x");
        assert!(q["Labels"].get("com.docker.compose.project").is_none());
        assert_eq!(q["Labels"]["berth.helper"], "rehearsal");
        assert_eq!(q["Labels"]["berth.run"], "lw-X-rehearsal");
    }

    #[test]
    fn a_network_named_is_the_only_one() {
        let create = old_create();
        let q = rehearsal_request(&create, &record(&create, Some("lab")));
        assert_eq!(q["HostConfig"]["NetworkMode"], "lab");
        assert_eq!(
            q["NetworkingConfig"],
            json!({"EndpointsConfig": {"lab": {}}})
        );
    }

    #[test]
    fn differences_name_what_the_upgrade_does_otherwise() {
        let create = old_create();
        let d = differences(&record(&create, None), &create).join("\n");
        for want in [
            "no network",
            "no published ports",
            "no links",
            "restart policy no (the upgrade keeps always)",
            "read-only: /srv/certs:/certs:z,ro",
            "read-only: /srv/plugins:/plugins",
            "private directory bound at /etc/app/conf",
            "/logs starts empty",
        ] {
            assert!(d.contains(want), "{want:?} not in:\n{d}");
        }
    }

    #[test]
    fn the_config_goes_where_the_upgrade_puts_it() {
        let create = old_create();
        let mut r = record(&create, None);
        let inspect = crate::docker::model::ContainerInspect::from_raw(
            &json!({"Mounts": [{"Type": "bind", "Source": "/srv/conf", "Destination": "/etc/app/conf", "RW": true}]}),
        )
        .unwrap();
        let data = crate::mounts::classify(&inspect, &[]);
        r.plan.settings.config_path = None;
        r.plan.config_dest = Some(PathBuf::from("/srv/conf/x/app.cfg"));
        let c = config_place(&r.plan, &data, Path::new("/run")).unwrap();
        assert_eq!(c.target, "/etc/app/conf/x");
        assert_eq!(c.file_name, "app.cfg");
        r.plan.config_file = None;
        assert_eq!(config_place(&r.plan, &data, Path::new("/run")), None);
    }
}
