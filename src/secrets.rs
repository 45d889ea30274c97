//! What berth keeps of a container's environment: names, never values;
//! and how it describes a file it cannot read: by the problem, never by
//! the bytes it read (a config file with a password given in the wrong
//! place must not come back on the terminal).
//!
//! `docker run -e SECRET_TOKEN=...` puts the value in the container's
//! `Config.Env`, and so in every inspect answer. Backups get copied off the
//! host, run directories are read by others: whatever berth writes (the
//! backup manifest, plan.json, the journal, `--json` output) holds the
//! names of the variables only. When berth needs the values (to create the
//! new container) it reads them again from the old container, which exists
//! until the upgrade has succeeded.

use serde_json::Value;

/// Where an inspect answer (and a create request) keeps the environment.
const ENV: &str = "Env";
/// What replaces it in what berth writes: the names, in order.
pub(crate) const ENV_NAMES: &str = "EnvNames";

/// The name of one `NAME=value` entry (an entry without `=` is a name).
pub(crate) fn name_of(entry: &str) -> &str {
    entry.split_once('=').map_or(entry, |(n, _)| n)
}

/// The names of an `Env` array (entries that are not strings are skipped).
pub(crate) fn env_names(env: &Value) -> Vec<String> {
    env.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|e| name_of(e).to_owned())
        .collect()
}

/// Take the values out of a config object (`Config` of an inspect, or a
/// create request): `Env` is removed and `EnvNames` lists its names.
/// Returns the names, None when there was no `Env`.
pub(crate) fn strip_env(config: &mut Value) -> Option<Vec<String>> {
    let env = config.as_object_mut()?.remove(ENV)?;
    let names = env_names(&env);
    config[ENV_NAMES] = Value::from(names.clone());
    Some(names)
}

/// Take the values out of a create request for the plan: the names that
/// stay (None when the request carries no environment). The plan keeps
/// them in a field of its own, so the request keeps neither.
pub(crate) fn strip_request_env(create: &mut Value) -> Option<Vec<String>> {
    let names = strip_env(create)?;
    if let Some(o) = create.as_object_mut() {
        o.remove(ENV_NAMES);
    }
    Some(names)
}

/// A whole inspect answer without environment values (`Config.Env`
/// becomes `Config.EnvNames`).
pub(crate) fn redact_inspect(inspect: &Value) -> Value {
    let mut v = inspect.clone();
    if let Some(cfg) = v.get_mut("Config") {
        strip_env(cfg);
    }
    v
}

/// The entries of `env` (an inspect's `Config.Env`) whose names are
/// `names`, in `env`'s order.
pub fn select(env: &[String], names: &[String]) -> Vec<String> {
    env.iter()
        .filter(|e| names.iter().any(|n| n == name_of(e)))
        .cloned()
        .collect()
}

/// A JSON parse error without the text it quotes: serde names a wrong
/// value (`invalid type: string "...", expected u64`); this keeps the
/// kind of problem, what was expected and where.
pub(crate) fn json_problem(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let place = match e.line() {
        0 => String::new(),
        l => format!(" at line {l} column {}", e.column()),
    };
    if text.starts_with("missing field") {
        // `missing field `x``: the name is berth's own, not the file's.
        return text.split(" at line").next().unwrap_or(&text).to_owned();
    }
    let kind = match e.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Eof => "it ends too early",
        serde_json::error::Category::Syntax => "not valid JSON",
        serde_json::error::Category::Data => "a value has the wrong type or is not allowed",
    };
    let expected = text
        .split_once(", expected ")
        .map(|(_, x)| x.split(" at line").next().unwrap_or(x))
        .filter(|x| !x.contains('"') && !x.contains('`') || x.starts_with("one of"))
        .map(|x| format!(" (expected {x})"))
        .unwrap_or_default();
    format!("{kind}{expected}{place}")
}

/// An I/O error while parsing a user's file: the kind only (a parser's
/// InvalidData message may quote what it read).
pub(crate) fn io_problem(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::InvalidData | K::InvalidInput | K::Other => {
            "its content is not in the expected format".into()
        }
        K::UnexpectedEof => "it ends in the middle (truncated)".into(),
        k => k.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_go_names_stay() {
        let inspect = json!({"Id": "x", "Config": {"Env": ["A=1", "SECRET_TOKEN=s3cr3t=x", "BARE"], "Image": "i"}});
        let r = redact_inspect(&inspect);
        assert!(!r.to_string().contains("s3cr3t"), "{r}");
        assert_eq!(
            r["Config"]["EnvNames"],
            json!(["A", "SECRET_TOKEN", "BARE"])
        );
        assert!(r["Config"].get("Env").is_none());
        assert_eq!(r["Config"]["Image"], "i");
        // Nothing to redact: unchanged.
        assert_eq!(redact_inspect(&json!({"Id": "y"})), json!({"Id": "y"}));
    }

    #[test]
    fn parse_errors_do_not_quote_the_file() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct S {
            n: u64,
            k: Kind,
        }
        #[derive(serde::Deserialize, Debug)]
        enum Kind {
            A,
        }
        for text in [
            r#"{"n": "password=hunter2", "k": "A"}"#,
            r#"{"n": 1, "k": "hunter2"}"#,
            "password=hunter2",
            r#"{"n": 1, "k": "A", "#,
        ] {
            let e = serde_json::from_str::<S>(text).unwrap_err();
            let m = json_problem(&e);
            assert!(!m.contains("hunter2"), "{m} (from {e})");
        }
        let e = serde_json::from_str::<S>(r#"{"k": "A"}"#).unwrap_err();
        assert_eq!(json_problem(&e), "missing field `n`");
    }

    #[test]
    fn select_by_name_keeps_the_containers_order() {
        let env = ["PATH=/bin", "B=2=2", "A=1", "C"].map(String::from);
        let got = select(&env, &["A".into(), "B".into(), "C".into()]);
        assert_eq!(got, ["B=2=2", "A=1", "C"]);
        assert!(select(&[], &["A".into()]).is_empty());
    }

    #[test]
    fn a_plan_request_keeps_no_environment() {
        let mut req = json!({"Image": "x", "Env": ["A=1", "SECRET=v"], "HostConfig": {}});
        let names = strip_request_env(&mut req);
        assert_eq!(names, Some(vec!["A".into(), "SECRET".into()]));
        assert_eq!(req, json!({"Image": "x", "HostConfig": {}}));
        let mut none = json!({"Image": "x"});
        assert_eq!(strip_request_env(&mut none), None);
        assert_eq!(none, json!({"Image": "x"}));
    }
}
