//! `--node NAME=unix:///path/docker.sock[:CONTAINER]`: one engine of a
//! rollout and the container to upgrade on it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One node as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSpec {
    /// The node's name: the table's first column and its directory in the
    /// rollout directory.
    pub name: String,
    pub socket: PathBuf,
    pub container: String,
}

/// Parse every `--node` in order; CONTAINER defaults to `default_container`.
/// Names must be unique (they name directories), and no container may be
/// named twice on the same socket (it would be upgraded twice).
pub fn parse_all(specs: &[String], default_container: &str) -> Result<Vec<NodeSpec>> {
    if specs.is_empty() {
        return Err(Error::usage("a rollout needs at least one --node"));
    }
    let nodes = specs
        .iter()
        .map(|s| parse(s, default_container))
        .collect::<Result<Vec<_>>>()?;
    for (i, n) in nodes.iter().enumerate() {
        for m in &nodes[..i] {
            if m.name == n.name {
                return Err(Error::usage(format!(
                    "--node {}: the name is given twice",
                    n.name
                )));
            }
            if m.socket == n.socket && m.container == n.container {
                return Err(Error::usage(format!(
                    "--node {} and --node {} name the same container {} on {}",
                    m.name,
                    n.name,
                    n.container,
                    n.socket.display()
                )));
            }
        }
    }
    Ok(nodes)
}

/// `NAME=unix:///PATH[:CONTAINER]`. The socket path cannot hold a `:`
/// (container names cannot either, so the last `:` is unambiguous).
pub fn parse(spec: &str, default_container: &str) -> Result<NodeSpec> {
    let bad = |why: &str| {
        Error::usage(format!(
            "--node {spec:?}: {why} (expected NAME=unix:///path/docker.sock[:CONTAINER]; for a remote node forward its socket: ssh -L /tmp/NAME.sock:/var/run/docker.sock HOST)"
        ))
    };
    let (name, url) = spec.split_once('=').ok_or_else(|| bad("no '='"))?;
    if !valid_name(name) {
        return Err(bad(
            "the name must be letters, digits, '.', '_' or '-' and not start with '.'",
        ));
    }
    let path = url
        .strip_prefix("unix://")
        .ok_or_else(|| bad("berth reaches engines only over a unix socket"))?;
    let (socket, container) = match path.rsplit_once(':') {
        Some((s, c)) => (s, c),
        None => (path, default_container),
    };
    if !socket.starts_with('/') {
        return Err(bad("the socket path must be absolute"));
    }
    if container.is_empty() {
        return Err(bad("empty container name after ':'"));
    }
    Ok(NodeSpec {
        name: name.to_owned(),
        socket: PathBuf::from(socket),
        container: container.to_owned(),
    })
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_from_the_spec_or_the_default() {
        let n = parse("a=unix:///run/a.sock", "lw").unwrap();
        assert_eq!(n.socket, PathBuf::from("/run/a.sock"));
        assert_eq!(n.container, "lw");
        let n = parse("b-2=unix:///tmp/b.sock:other", "lw").unwrap();
        assert_eq!((n.name.as_str(), n.container.as_str()), ("b-2", "other"));
        assert_eq!(n.socket, PathBuf::from("/tmp/b.sock"));
    }

    #[test]
    fn bad_specs_are_usage_errors() {
        for s in [
            "a",
            "=unix:///x.sock",
            "../a=unix:///x.sock",
            "a=tcp://host:2375",
            "a=unix://relative.sock",
            "a=unix:///x.sock:",
        ] {
            let e = parse(s, "lw").unwrap_err();
            assert_eq!(e.kind, crate::error::Kind::Usage, "{s}");
        }
    }

    #[test]
    fn duplicates_are_refused() {
        let two = |a: &str, b: &str| parse_all(&[a.into(), b.into()], "lw");
        assert!(two("a=unix:///x.sock", "a=unix:///y.sock").is_err());
        assert!(two("a=unix:///x.sock", "b=unix:///x.sock:lw").is_err());
        assert!(two("a=unix:///x.sock", "b=unix:///x.sock:db").is_ok());
        assert!(parse_all(&[], "lw").is_err());
    }
}
