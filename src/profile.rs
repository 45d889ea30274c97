//! Upgrade settings and where they come from: flags > container labels
//! (`berth.*`) > profile (built-in `lightwave`, or a file) > defaults.
//!
//! A profile file and the labels use the same keys (docs/upgrade.md):
//! `path` (repeatable; label `berth.paths`, comma-separated), `config-path`
//! (the config file's path inside the container; berth writes it through
//! the bind mount that holds it), `success`, `failure` (regexes; repeatable
//! in a file), `watch` (`logs` or `exec:CMD ARG...`), `timeout` (`90s`,
//! `5m`), `profile` (labels only: a built-in profile to start from).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Watch {
    /// Follow the container's logs.
    Logs,
    /// Run this command in the container every couple of seconds.
    Exec(Vec<String>),
}

impl std::fmt::Display for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Watch::Logs => f.write_str("logs"),
            Watch::Exec(cmd) => write!(f, "exec:{}", cmd.join(" ")),
        }
    }
}

/// One layer of settings; `None`/empty means "not said here".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    pub paths: Vec<String>,
    pub config_path: Option<String>,
    pub success: Vec<String>,
    pub failure: Vec<String>,
    pub watch: Option<Watch>,
    pub timeout: Option<Duration>,
    /// A command run in the container before its volumes are copied.
    #[serde(default)]
    pub exec_before_backup: Option<Vec<String>>,
    /// A command run on the restored volumes before the container starts.
    #[serde(default)]
    pub exec_after_restore: Option<Vec<String>>,
}

/// The hooks an operation runs (docs/upgrade.md, Hooks); the first layer
/// that names one wins, as for the other settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hooks {
    pub(crate) before_backup: Option<Vec<String>>,
    pub(crate) after_restore: Option<Vec<String>>,
}

pub fn hooks(layers: &[Layer]) -> Hooks {
    Hooks {
        before_backup: layers.iter().find_map(|l| l.exec_before_backup.clone()),
        after_restore: layers.iter().find_map(|l| l.exec_after_restore.clone()),
    }
}

/// The settings an upgrade runs with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Paths to back up and restore; empty: every volume.
    pub paths: Vec<String>,
    /// The config file's path inside the container, if any.
    pub config_path: Option<String>,
    pub success: Vec<String>,
    pub failure: Vec<String>,
    pub watch: Watch,
    pub timeout_s: u64,
}

pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// The built-in profile for the Lightwave identity server (the reference
/// procedure).
pub(crate) fn lightwave() -> Layer {
    Layer {
        paths: [
            "/var/lib/vmware",
            "/var/lib/likewise",
            "/etc/likewise",
            "/etc/vmware-sso",
        ]
        .map(String::from)
        .to_vec(),
        config_path: Some("/var/lib/vmware/config/lightwave-server.cfg".into()),
        success: vec![r"Upgrade complete\.".into()],
        failure: vec![r"Upgrade failed\.|Directory upgrade failure\.".into()],
        watch: Some(Watch::Exec(vec!["journalctl".into()])),
        timeout: Some(Duration::from_secs(600)),
        ..Layer::default()
    }
}

pub fn builtin(name: &str) -> Option<Layer> {
    (name == "lightwave").then(lightwave)
}

/// `--profile NAME|FILE`.
pub fn load(spec: &str) -> Result<Layer> {
    if let Some(l) = builtin(spec) {
        return Ok(l);
    }
    let text = std::fs::read_to_string(spec).map_err(|e| {
        Error::usage(format!(
            "--profile {spec}: not a built-in profile (lightwave) and not a readable file: {e}"
        ))
    })?;
    parse_file(&text).ctx(format!("profile {spec}"))
}

/// The keys of a profile file.
const KEYS: &str = "path, config-path, success, failure, watch, timeout";

/// Errors name the line and the key, never the text: a file given by
/// mistake (a config file with a password) must not be echoed.
pub(crate) fn parse_file(text: &str) -> Result<Layer> {
    let mut l = Layer::default();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |why: &str| Error::usage(format!("line {}: {why}", i + 1));
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| at("expected key=value"))?;
        let (k, v) = (k.trim(), v.trim().to_owned());
        let bad = |what: &str| at(&format!("{k}: not a valid {what}"));
        match k {
            "path" => l.paths.push(v),
            "config-path" => l.config_path = Some(v),
            "success" | "failure" => {
                regex::Regex::new(&v).map_err(|_| bad("regular expression"))?;
                if k == "success" {
                    &mut l.success
                } else {
                    &mut l.failure
                }
                .push(v)
            }
            "watch" => {
                l.watch = Some(parse_watch(&v).map_err(|_| bad("watch (logs or exec:CMD ARG...)"))?)
            }
            "timeout" => {
                l.timeout = Some(parse_duration(&v).map_err(|_| bad("duration (90s, 5m, 1h)"))?)
            }
            "exec-before-backup" => {
                l.exec_before_backup = Some(parse_command(&v).map_err(|_| bad("command"))?)
            }
            "exec-after-restore" => {
                l.exec_after_restore = Some(parse_command(&v).map_err(|_| bad("command"))?)
            }
            _ => {
                return Err(at(&format!(
                    "unknown key (the keys are {KEYS}, exec-before-backup, exec-after-restore)"
                )))
            }
        }
    }
    Ok(l)
}

/// Settings from a container's `berth.*` labels (and the built-in profile
/// that `berth.profile` names, underneath them).
pub(crate) fn from_labels(labels: &BTreeMap<String, String>) -> Result<(Layer, Option<Layer>)> {
    let get = |k: &str| {
        labels
            .get(&format!("berth.{k}"))
            .map(|s| s.trim().to_owned())
    };
    let profile = match get("profile") {
        Some(p) => Some(builtin(&p).ok_or_else(|| {
            Error::usage(format!("label berth.profile={p}: no such built-in profile"))
        })?),
        None => None,
    };
    let l = Layer {
        paths: get("paths")
            .map(|p| {
                p.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default(),
        config_path: get("config-path"),
        success: get("success").into_iter().collect(),
        failure: get("failure").into_iter().collect(),
        watch: get("watch").map(|w| parse_watch(&w)).transpose()?,
        timeout: get("timeout").map(|t| parse_duration(&t)).transpose()?,
        exec_before_backup: get("exec-before-backup")
            .map(|c| label_command("exec-before-backup", &c))
            .transpose()?,
        exec_after_restore: get("exec-after-restore")
            .map(|c| label_command("exec-after-restore", &c))
            .transpose()?,
    };
    Ok((l, profile))
}

/// Merge layers, the first that says something wins.
pub(crate) fn merge(layers: &[Layer]) -> Result<Settings> {
    let first_vec = |f: fn(&Layer) -> &Vec<String>| {
        layers
            .iter()
            .map(f)
            .find(|v| !v.is_empty())
            .cloned()
            .unwrap_or_default()
    };
    let s = Settings {
        paths: first_vec(|l| &l.paths),
        config_path: layers.iter().find_map(|l| l.config_path.clone()),
        success: first_vec(|l| &l.success),
        failure: first_vec(|l| &l.failure),
        watch: layers
            .iter()
            .find_map(|l| l.watch.clone())
            .unwrap_or(Watch::Logs),
        timeout_s: layers
            .iter()
            .find_map(|l| l.timeout)
            .unwrap_or(DEFAULT_TIMEOUT)
            .as_secs(),
    };
    for r in s.success.iter().chain(&s.failure) {
        regex::Regex::new(r).map_err(|e| Error::usage(format!("bad regex {r:?}: {e}")))?;
    }
    Ok(s)
}

/// `logs` or `exec:CMD ARG...`.
pub fn parse_watch(s: &str) -> Result<Watch> {
    if s == "logs" {
        return Ok(Watch::Logs);
    }
    match s.strip_prefix("exec:") {
        Some(cmd) if !cmd.trim().is_empty() => Ok(Watch::Exec(
            cmd.split_whitespace().map(String::from).collect(),
        )),
        _ => Err(Error::usage(format!(
            "--watch {s:?}: use logs or exec:CMD [ARG...]"
        ))),
    }
}

fn label_command(key: &str, c: &str) -> Result<Vec<String>> {
    parse_command(c).map_err(|e| Error::usage(format!("label berth.{key}: {}", e.msg)))
}

/// A hook's command line, split without a shell: words are separated by
/// whitespace; '...' keeps everything up to the next ' as it is; "..."
/// too, except that \" and \\ stand for " and \; a \ outside quotes
/// keeps the next character. Nothing else is special ($, *, ;, | are
/// plain characters: run `sh -c '...'` for a shell).
pub fn parse_command(s: &str) -> Result<Vec<String>> {
    let mut words = vec![];
    let mut cur: Option<String> = None;
    let mut chars = s.chars();
    let unclosed = |q: char| Error::usage(format!("command {s:?}: unclosed {q}"));
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => words.extend(cur.take()),
            '\'' => {
                let w = cur.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(x) => w.push(x),
                        None => return Err(unclosed('\'')),
                    }
                }
            }
            '"' => {
                let w = cur.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(x @ ('"' | '\\')) => w.push(x),
                            Some(x) => {
                                w.push('\\');
                                w.push(x)
                            }
                            None => return Err(unclosed('"')),
                        },
                        Some(x) => w.push(x),
                        None => return Err(unclosed('"')),
                    }
                }
            }
            '\\' => {
                let w = cur.get_or_insert_with(String::new);
                w.extend(chars.next());
            }
            c => cur.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(cur);
    if words.is_empty() {
        return Err(Error::usage("an empty command"));
    }
    Ok(words)
}

/// `90`, `90s`, `5m`, `1h`.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    let (num, mul) = match s.char_indices().last() {
        Some((i, 's')) => (&s[..i], 1),
        Some((i, 'm')) => (&s[..i], 60),
        Some((i, 'h')) => (&s[..i], 3600),
        _ => (s, 1),
    };
    num.trim()
        .parse::<u64>()
        .map(|n| Duration::from_secs(n * mul))
        .map_err(|_| Error::usage(format!("bad duration {s:?}: use e.g. 90s, 5m, 1h")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_flags_labels_profile() {
        let flags = Layer {
            success: vec!["flag-ok".into()],
            ..Default::default()
        };
        let mut labels = BTreeMap::new();
        labels.insert("berth.success".to_owned(), "label-ok".to_owned());
        labels.insert("berth.timeout".to_owned(), "2m".to_owned());
        labels.insert("berth.profile".to_owned(), "lightwave".to_owned());
        let (l, p) = from_labels(&labels).unwrap();
        let s = merge(&[flags, l, p.unwrap()]).unwrap();
        assert_eq!(s.success, vec!["flag-ok"]);
        assert_eq!(s.timeout_s, 120);
        assert_eq!(s.failure, lightwave().failure);
        assert_eq!(s.paths.len(), 4);
        assert_eq!(s.watch, Watch::Exec(vec!["journalctl".into()]));
    }

    #[test]
    fn commands_split_without_a_shell() {
        let p = |s: &str| parse_command(s).unwrap();
        assert_eq!(p("sync"), vec!["sync"]);
        assert_eq!(p("  a  b\tc "), vec!["a", "b", "c"]);
        assert_eq!(
            p(r#"sh -c 'echo "x y" > /d/m; exit 0'"#),
            vec!["sh", "-c", r#"echo "x y" > /d/m; exit 0"#]
        );
        assert_eq!(p(r#"a "b \"c\" \\ \n" d"#), vec!["a", r#"b "c" \ \n"#, "d"]);
        assert_eq!(p(r"a\ b ''"), vec!["a b", ""]);
        assert_eq!(p("x$HOME*;|"), vec!["x$HOME*;|"]);
        for bad in ["", "   ", "a 'b", "a \"b"] {
            assert!(parse_command(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hooks_flags_over_labels_over_profile() {
        let mut labels = BTreeMap::new();
        labels.insert(
            "berth.exec-before-backup".to_owned(),
            "label 'a b'".to_owned(),
        );
        labels.insert(
            "berth.exec-after-restore".to_owned(),
            "label-after".to_owned(),
        );
        let (l, _) = from_labels(&labels).unwrap();
        let flags = Layer {
            exec_before_backup: Some(vec!["flag".into()]),
            ..Default::default()
        };
        let profile = parse_file("exec-after-restore=profile x\n").unwrap();
        let h = hooks(&[flags, l.clone(), profile.clone()]);
        assert_eq!(h.before_backup, Some(vec!["flag".to_owned()]));
        assert_eq!(h.after_restore, Some(vec!["label-after".to_owned()]));
        assert_eq!(
            l.exec_before_backup,
            Some(vec!["label".into(), "a b".into()])
        );
        assert_eq!(
            hooks(&[Layer::default(), profile]).after_restore,
            Some(vec!["profile".to_owned(), "x".to_owned()])
        );
    }

    #[test]
    fn profile_errors_do_not_quote_the_file() {
        for text in [
            "password Admin!23-secret",
            "password=Admin!23-secret",
            "watch=Admin!23-secret",
            "timeout=Admin!23-secret",
            "success=(Admin!23-secret",
            "exec-before-backup='Admin!23-secret",
        ] {
            let e = parse_file(text).unwrap_err();
            assert!(!e.msg.contains("Admin!23"), "{}", e.msg);
            assert!(e.msg.starts_with("line 1: "), "{}", e.msg);
        }
    }

    #[test]
    fn files_and_values() {
        let l =
            parse_file("# c\nsuccess=ready\nwatch=exec:cat /log\ntimeout=90s\npath=/a\npath=/b\n")
                .unwrap();
        assert_eq!(l.paths, vec!["/a", "/b"]);
        assert_eq!(
            l.watch,
            Some(Watch::Exec(vec!["cat".into(), "/log".into()]))
        );
        assert_eq!(l.timeout, Some(Duration::from_secs(90)));
        assert!(parse_file("nonsense").is_err());
        assert!(parse_file("colour=blue").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(merge(&[Layer {
            success: vec!["(".into()],
            ..Default::default()
        }])
        .is_err());
        assert_eq!(merge(&[]).unwrap().watch, Watch::Logs);
    }
}
