//! The new container's environment: the plan keeps the names of the
//! variables to carry over (plan.json is a file anyone with the run
//! directory reads); the values are read again from the old container when
//! the new one is created. The old container exists (renamed aside) until
//! the upgrade has succeeded, so every create finds it.
//!
//! A plan written by an older berth has the values inline in its create
//! request and no names list: it is used as it is.

use serde_json::{json, Value};

use super::plan::Plan;
use crate::docker::Docker;
use crate::error::{Error, Result};
use crate::secrets;

/// The create request of the new container, with the values of its
/// environment read from the old container.
pub(crate) async fn create_request(d: &Docker, p: &Plan) -> Result<Value> {
    let mut req = p.create.clone();
    let Some(names) = p.env_names.as_ref().filter(|n| !n.is_empty()) else {
        return Ok(req);
    };
    let old = d.container_inspect(&p.container_id).await.map_err(|e| {
        if e.is_not_found() {
            gone(p, names)
        } else {
            e.context("reading the old container's environment")
        }
    })?;
    let got = secrets::select(&old.config.env, names);
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !got.iter().any(|e| secrets::name_of(e) == n.as_str()))
        .collect();
    if !missing.is_empty() {
        return Err(Error::failed(format!(
            "the old container {} no longer has the environment variables {missing:?} that the plan carries over",
            crate::docker::short_id(&p.container_id)
        )));
    }
    req["Env"] = json!(got);
    Ok(req)
}

/// The old container is gone: the values were never written anywhere.
fn gone(p: &Plan, names: &[String]) -> Error {
    Error::failed(format!(
        "the old container {} is gone, and with it the values of its environment ({}): berth never writes them to a file, so it cannot create the new container; its data is in the backup",
        crate::docker::short_id(&p.container_id),
        names.join(", ")
    ))
}

/// For a message telling the user to recreate the container from the
/// plan: what the plan does not hold.
pub(crate) fn recreate_note(p: &Plan) -> String {
    match &p.env_names {
        Some(n) if !n.is_empty() => format!(
            "; plan.json holds the names of its environment variables, not their values: give {} again",
            n.join(", ")
        ),
        _ => String::new(),
    }
}
