//! The new container's networks: every endpoint of the old one, as the
//! user chose it, not as the engine filled it in.
//!
//! What is carried per endpoint: aliases (less the ones the engine adds
//! by itself: the short id, and on Podman 5 the hostname), static addresses
//! (IPAMConfig), links, driver options, and a MAC address the user set.
//! Docker says which MAC the user set only for the primary network
//! (`Config.MacAddress`; since API 1.44 a mirror of that endpoint's own).
//! For the other endpoints it reports the MAC in use: Docker before 28
//! generated `02:42:...` ones, which are dropped; Docker 28 generates
//! random ones, which cannot be told from a user's and are carried, so the
//! endpoint keeps the address it had. How the endpoints
//! reach the new container depends on the engine:
//!
//! - Docker with API 1.44 or newer takes every endpoint in the create.
//! - Docker below 1.44 takes one: the primary network (the one NetworkMode
//!   names) goes in the create, the others are connected after it and
//!   before the start ([`Networks::connect`]).
//! - Podman (which says 1.41) takes every endpoint in the create. It
//!   reports NetworkMode `bridge` for every container on a network and its
//!   default network under its own name, `podman`; its create refuses the
//!   name `bridge` in EndpointsConfig but takes `podman` with NetworkMode
//!   `bridge`. Podman 4.3 reports no IPAMConfig and random MACs, so a
//!   static address or MAC cannot be told from one it chose: the addresses
//!   and MACs in use are carried (docs/podman.md).

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::docker::{ApiVersion, Docker};

/// The first API version whose create takes more than one endpoint (and a
/// MAC address per endpoint).
pub(crate) const MULTI_ENDPOINT_API: ApiVersion = ApiVersion(1, 44);

/// What the create needs to know about the engine.
#[derive(Debug, Clone, Copy)]
pub struct Engine {
    pub api: ApiVersion,
    pub podman: bool,
}

impl Engine {
    /// The engine `d` berth is connected to.
    pub fn of(d: &Docker) -> Engine {
        Engine {
            api: d.api(),
            podman: d.podman().is_some(),
        }
    }

    /// Whether its create takes every endpoint (below 1.44 Docker's takes
    /// one; the others are connected after it).
    pub fn all_at_create(&self) -> bool {
        self.podman || self.api >= MULTI_ENDPOINT_API
    }
}

/// One network to attach after the create (below API 1.44).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connect {
    pub network: String,
    /// The EndpointConfig of POST /networks/{network}/connect.
    pub endpoint: Value,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Networks {
    /// NetworkingConfig.EndpointsConfig of the create (empty: none).
    pub(crate) at_create: Map<String, Value>,
    /// Endpoints connected after the create, in this order.
    pub connect: Vec<Connect>,
    /// What cannot be carried on this engine.
    pub(crate) not_carried: Vec<String>,
}

/// Modes with no endpoint of their own to carry: the host's stack, none,
/// another container's.
pub(crate) fn shares_a_stack(mode: &str) -> bool {
    mode == "host" || mode == "none" || mode.starts_with("container:")
}

/// The network NetworkMode stands for: Docker's `default` is `bridge`.
fn primary_of(mode: &str) -> &str {
    if mode == "default" || mode.is_empty() {
        "bridge"
    } else {
        mode
    }
}

/// The endpoints of the old container (`old`: its whole inspect), split
/// as `engine` takes them.
pub(crate) fn carry(old: &Value, engine: Engine) -> Networks {
    let mode = old
        .pointer("/HostConfig/NetworkMode")
        .and_then(Value::as_str)
        .unwrap_or("default");
    let mut out = Networks::default();
    if shares_a_stack(mode) {
        return out;
    }
    let id = old.get("Id").and_then(Value::as_str).unwrap_or("");
    let Some(nets) = old
        .pointer("/NetworkSettings/Networks")
        .and_then(Value::as_object)
    else {
        return out;
    };
    let primary = primary_of(mode);
    let primary_mac = old
        .pointer("/Config/MacAddress")
        .and_then(Value::as_str)
        .unwrap_or("");
    for (name, ep) in nets {
        let is_primary = name == primary || names_network(primary, ep);
        let role = if is_primary {
            Role::Primary { mac: primary_mac }
        } else {
            Role::Other
        };
        let (e, lost) = endpoint(name, ep, id, engine, role);
        out.not_carried.extend(lost);
        if engine.all_at_create() || is_primary {
            // Below 1.44 Docker's default bridge takes nothing but its
            // name, and NetworkMode already says it.
            if !(name == "bridge" && e == json!({}) && !engine.all_at_create()) {
                // Keyed as NetworkMode names it (an id), so the engine
                // sees one network, not two.
                let key = if is_primary { primary } else { name.as_str() };
                out.at_create.insert(key.to_owned(), e);
            }
        } else {
            out.connect.push(Connect {
                network: name.clone(),
                endpoint: e,
            });
        }
    }
    out
}

/// `docker run --network <id>` keeps the id in NetworkMode; Networks is
/// keyed by name. Without this the primary would be connected twice.
fn names_network(mode: &str, ep: &Value) -> bool {
    mode.len() >= 12
        && ep
            .get("NetworkID")
            .and_then(Value::as_str)
            .is_some_and(|id| id.starts_with(mode))
}

/// Which endpoint of the old container: the primary one comes with the MAC
/// the user set for it (`Config.MacAddress`, empty when none).
#[derive(Clone, Copy)]
enum Role<'a> {
    Primary { mac: &'a str },
    Other,
}

/// The MAC of endpoint `ep` the user set, as far as `engine` tells.
fn user_mac<'a>(ep: &'a Value, engine: Engine, role: Role<'a>) -> Option<&'a str> {
    let in_use = ep.get("MacAddress").and_then(Value::as_str).unwrap_or("");
    let mac = match role {
        // Podman says nothing of what was set: the MAC in use is kept.
        _ if engine.podman => in_use,
        Role::Primary { mac } => mac,
        Role::Other if in_use.starts_with("02:42:") => "",
        Role::Other => in_use,
    };
    (!mac.is_empty()).then_some(mac)
}

/// One endpoint's settings for the create or a connect, and what of it
/// cannot be carried.
fn endpoint(name: &str, ep: &Value, id: &str, engine: Engine, role: Role) -> (Value, Vec<String>) {
    let mut e = json!({});
    let mut lost = vec![];
    let aliases = user_aliases(ep, id, engine);
    if !aliases.is_empty() {
        e["Aliases"] = json!(aliases);
    }
    if let Some(links) = ep.get("Links").and_then(Value::as_array) {
        if !links.is_empty() {
            e["Links"] = json!(links);
        }
    }
    if let Some(o) = ep.get("DriverOpts").filter(|v| non_empty(v)) {
        e["DriverOpts"] = o.clone();
    }
    if let Some(ipam) = ep.get("IPAMConfig").filter(|v| non_empty(v)) {
        e["IPAMConfig"] = ipam.clone();
    } else if engine.podman {
        let ipam = in_use_addresses(ep);
        if non_empty(&ipam) {
            e["IPAMConfig"] = ipam;
        }
    }
    if let Some(mac) = user_mac(ep, engine, role) {
        if engine.all_at_create() {
            e["MacAddress"] = json!(mac);
        } else if matches!(role, Role::Other) {
            // Below 1.44 only Config.MacAddress sets a MAC, and only the
            // primary network's.
            lost.push(format!(
                "network {name}: MAC address {mac} (an endpoint's own MAC needs API {MULTI_ENDPOINT_API}, the engine speaks {})",
                engine.api
            ));
        }
    }
    (e, lost)
}

/// The aliases of endpoint `ep` the user gave. Docker adds the short id
/// (before API 1.45; DNSNames since). Podman appends what it adds after
/// the user's: the short id, and from 5.0 the hostname as well, so
/// everything from the short id on is its own. An alias the user gave
/// that equals the hostname comes before it and stays; carried blindly,
/// Podman 5 would list the hostname once more each upgrade.
fn user_aliases<'a>(ep: &'a Value, id: &str, engine: Engine) -> Vec<&'a Value> {
    let all = ep.get("Aliases").and_then(Value::as_array);
    let own = |a: &&Value| a.as_str().is_some_and(|a| is_own_id(a, id));
    let all = all.into_iter().flatten();
    if engine.podman {
        all.take_while(|a| !own(a)).collect()
    } else {
        all.filter(|a| !own(a)).collect()
    }
}

/// The addresses an endpoint has, as a static IPAMConfig (Podman).
fn in_use_addresses(ep: &Value) -> Value {
    let mut ipam = json!({});
    for (from, to) in [
        ("IPAddress", "IPv4Address"),
        ("GlobalIPv6Address", "IPv6Address"),
    ] {
        if let Some(a) = ep
            .get(from)
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
        {
            ipam[to] = json!(a);
        }
    }
    ipam
}

/// The engine adds the container's short id (12 hex digits) as an alias.
pub(crate) fn is_own_id(alias: &str, id: &str) -> bool {
    alias.len() >= 12 && id.starts_with(alias)
}

fn non_empty(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => o.values().any(non_empty),
        _ => true,
    }
}

/// HostConfig.Links as inspect reports them (`/other:/self/alias`) in the
/// form a create takes (`other:alias`).
pub(crate) fn create_link(link: &str) -> String {
    match link.split_once(':') {
        Some((other, alias)) if other.starts_with('/') => format!(
            "{}:{}",
            other.trim_start_matches('/'),
            alias.rsplit('/').next().unwrap_or(alias)
        ),
        _ => link.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn docker(api: ApiVersion) -> Engine {
        Engine { api, podman: false }
    }

    const PODMAN: Engine = Engine {
        api: ApiVersion(1, 41),
        podman: true,
    };

    /// A container on two user networks as Docker 20.10 reports it.
    fn two_networks() -> Value {
        json!({
            "Id": ID,
            "HostConfig": {"NetworkMode": "front"},
            "NetworkSettings": {"Networks": {
                "front": {"Aliases": ["web", "0123456789ab"], "IPAMConfig": {"IPv4Address": "10.1.0.9"},
                          "MacAddress": "02:42:0a:01:00:09", "Links": null, "DriverOpts": null,
                          "IPAddress": "10.1.0.9", "NetworkID": "f1", "EndpointID": "e1", "Gateway": "10.1.0.1"},
                "back": {"Aliases": ["0123456789ab", "db-client"], "IPAMConfig": {"IPv6Address": "fd00::9"},
                         "MacAddress": "92:d0:c6:0a:29:33", "Links": ["cache:c"], "DriverOpts": {"o": "1"},
                         "IPAddress": "10.2.0.3", "NetworkID": "b1"}
            }}
        })
    }

    #[test]
    fn below_1_44_the_primary_is_created_and_the_rest_connected() {
        let n = carry(&two_networks(), docker(ApiVersion(1, 41)));
        assert_eq!(
            Value::Object(n.at_create),
            json!({"front": {"Aliases": ["web"], "IPAMConfig": {"IPv4Address": "10.1.0.9"}}})
        );
        assert_eq!(
            n.connect,
            vec![Connect {
                network: "back".into(),
                endpoint: json!({"Aliases": ["db-client"], "Links": ["cache:c"],
                                 "DriverOpts": {"o": "1"}, "IPAMConfig": {"IPv6Address": "fd00::9"}})
            }]
        );
        // The user's MAC on a second network cannot be set below 1.44.
        assert_eq!(n.not_carried.len(), 1, "{:?}", n.not_carried);
        assert!(n.not_carried[0].contains("back") && n.not_carried[0].contains("1.44"));
    }

    /// The request builder of the API >= 1.44 path (no such engine here):
    /// every endpoint in the create, the user's MAC kept, Docker's dropped.
    #[test]
    fn from_1_44_every_endpoint_goes_in_the_create() {
        let n = carry(&two_networks(), docker(ApiVersion(1, 44)));
        assert!(n.connect.is_empty());
        assert!(n.not_carried.is_empty());
        assert_eq!(
            Value::Object(n.at_create),
            json!({
                "front": {"Aliases": ["web"], "IPAMConfig": {"IPv4Address": "10.1.0.9"}},
                "back": {"Aliases": ["db-client"], "Links": ["cache:c"], "DriverOpts": {"o": "1"},
                         "IPAMConfig": {"IPv6Address": "fd00::9"}, "MacAddress": "92:d0:c6:0a:29:33"}
            })
        );
    }

    /// Docker 28.5 as probed: random generated MACs on every endpoint;
    /// `Config.MacAddress` names the primary's only when the user set it.
    #[test]
    fn docker_28_primary_mac_only_when_the_user_set_it() {
        let engine = docker(ApiVersion(1, 51));
        let old = json!({"Id": ID, "Config": {"MacAddress": ""}, "HostConfig": {"NetworkMode": "n1"},
            "NetworkSettings": {"Networks": {
                "n1": {"Aliases": null, "MacAddress": "9a:c7:d3:bc:f8:c9", "DNSNames": ["m1", "0123456789ab"]},
                "n2": {"Aliases": [], "MacAddress": "a6:86:29:a5:76:74", "IPAMConfig": {}}}}});
        let n = carry(&old, engine);
        assert_eq!(
            Value::Object(n.at_create),
            json!({"n1": {}, "n2": {"MacAddress": "a6:86:29:a5:76:74"}})
        );
        let mut set = old.clone();
        set["Config"]["MacAddress"] = json!("02:11:22:33:44:55");
        set["NetworkSettings"]["Networks"]["n1"]["MacAddress"] = json!("02:11:22:33:44:55");
        let n = carry(&set, engine);
        assert_eq!(
            n.at_create["n1"],
            json!({"MacAddress": "02:11:22:33:44:55"})
        );
    }

    #[test]
    fn a_network_mode_by_id_is_the_primary() {
        let mut old = two_networks();
        old["HostConfig"]["NetworkMode"] = json!("f1aaaaaaaaaa");
        old["NetworkSettings"]["Networks"]["front"]["NetworkID"] = json!("f1aaaaaaaaaabbbb");
        let n = carry(&old, docker(ApiVersion(1, 41)));
        assert_eq!(n.at_create.keys().collect::<Vec<_>>(), vec!["f1aaaaaaaaaa"]);
        assert_eq!(n.connect.len(), 1);
        assert_eq!(n.connect[0].network, "back");
    }

    #[test]
    fn docker_default_bridge_needs_no_endpoint() {
        let old = json!({"Id": ID, "HostConfig": {"NetworkMode": "default"},
            "NetworkSettings": {"Networks": {"bridge": {"Aliases": null, "IPAMConfig": null,
                "MacAddress": "02:42:ac:11:00:02", "IPAddress": "172.17.0.2"}}}});
        assert_eq!(carry(&old, docker(ApiVersion(1, 41))), Networks::default());
        // A user network connected to a default-bridge container.
        let mut two = old.clone();
        two["NetworkSettings"]["Networks"]["u"] =
            json!({"Aliases": ["0123456789ab", "u1"], "MacAddress": "02:42:0a:00:00:02"});
        let n = carry(&two, docker(ApiVersion(1, 41)));
        assert!(n.at_create.is_empty());
        assert_eq!(
            n.connect,
            vec![Connect {
                network: "u".into(),
                endpoint: json!({"Aliases": ["u1"]})
            }]
        );
    }

    /// Podman 4.3 as probed: NetworkMode `bridge`, the default network
    /// under `podman`, no IPAMConfig, random MACs.
    #[test]
    fn podman_default_network_is_the_primary() {
        let old = json!({"Id": ID, "HostConfig": {"NetworkMode": "bridge"},
            "NetworkSettings": {"Networks": {
                "podman": {"Aliases": ["0123456789ab"], "IPAMConfig": null, "IPAddress": "10.88.0.4",
                           "MacAddress": "3e:a2:56:63:c2:fd", "GlobalIPv6Address": ""},
                "app-net": {"Aliases": ["x1", "0123456789ab"], "IPAMConfig": null, "IPAddress": "10.99.7.9",
                            "MacAddress": "a6:40:aa:31:62:15"}}}});
        let n = carry(&old, PODMAN);
        assert!(n.not_carried.is_empty(), "{:?}", n.not_carried);
        assert!(n.connect.is_empty());
        assert_eq!(
            Value::Object(n.at_create),
            json!({
                "podman": {"IPAMConfig": {"IPv4Address": "10.88.0.4"}, "MacAddress": "3e:a2:56:63:c2:fd"},
                "app-net": {"Aliases": ["x1"], "IPAMConfig": {"IPv4Address": "10.99.7.9"},
                            "MacAddress": "a6:40:aa:31:62:15"}
            })
        );
    }

    /// Podman 5.4 as probed: `Hostname: hh`, aliases `["x"]` and `["hh"]`
    /// in the create list as `[x, <id>, hh]` and `[hh, <id>, hh]`.
    #[test]
    fn podman_5_hostname_alias_is_its_own() {
        for (listed, given) in [
            (json!(["x", "0123456789ab", "hh"]), json!(["x"])),
            (json!(["hh", "0123456789ab", "hh"]), json!(["hh"])),
        ] {
            let old = json!({"Id": ID, "Config": {"Hostname": "hh"}, "HostConfig": {"NetworkMode": "n"},
                "NetworkSettings": {"Networks": {"n": {"Aliases": listed}}}});
            let n = carry(&old, PODMAN);
            assert_eq!(n.at_create["n"]["Aliases"], given);
        }
        let old = json!({"Id": ID, "HostConfig": {"NetworkMode": "n"},
            "NetworkSettings": {"Networks": {"n": {"Aliases": ["0123456789ab", "hh"]}}}});
        assert_eq!(
            Value::Object(carry(&old, PODMAN).at_create),
            json!({"n": {}})
        );
    }

    #[test]
    fn host_none_and_container_modes_carry_no_endpoint() {
        for mode in ["host", "none", "container:abc"] {
            let old = json!({"Id": ID, "HostConfig": {"NetworkMode": mode},
                "NetworkSettings": {"Networks": {mode: {"Aliases": ["a"]}}}});
            assert_eq!(carry(&old, docker(ApiVersion(1, 41))), Networks::default());
        }
    }

    #[test]
    fn links_in_the_create_form() {
        assert_eq!(create_link("/db:/app/database"), "db:database");
        assert_eq!(create_link("db:database"), "db:database");
        assert_eq!(create_link("/db:/app/db"), "db:db");
    }

    #[test]
    fn only_the_own_id_is_dropped() {
        assert!(is_own_id("0123456789ab", ID));
        assert!(!is_own_id("0123", ID), "a short alias is the user's");
        assert!(!is_own_id("web", ID));
    }
}
