//! Before `resume` or `rollback` decides anything: bring the step berth was
//! in when it died to a known end against the engine, then look.
//!
//! A killed berth does not stop what it asked the engine to do: a stop, a
//! start, a remove or an image load goes on inside the engine after berth
//! is gone. Deciding from a state the engine is still changing is how a
//! resumed rollback started a container that the engine then stopped. So
//! the step in flight (a `begin` with nothing after it) is re-issued, which
//! is idempotent, and waited for until the engine no longer changes it.

use std::time::Duration;

use serde_json::json;

use super::decide::{Observed, Seen};
use super::journal::{Event, Journal, Step};
use super::plan::Plan;
use super::rollback::{new_container, stand_in_prefix};
use super::waits::{remove_and_wait, soft, stop_and_wait};
use super::Say;
use crate::docker::model::ContainerInspect;
use crate::docker::Docker;
use crate::error::Result;

/// How long the engine may take to register a container it was creating.
const CREATE_GRACE: Duration = Duration::from_secs(1);

/// Bring the in-flight step, if any, to a known end.
pub(crate) async fn settle(d: &Docker, p: &Plan, j: &Journal, say: Say) -> Result<()> {
    let Some(step) = j.in_flight() else {
        return Ok(());
    };
    say.step(format!(
        "berth had stopped during {step}: bringing it to an end first"
    ));
    let r = match step {
        // The engine may still be stopping it: stop again and wait.
        Step::Stop => stop_and_wait(d, &p.container_id, p.stop_timeout).await,
        // A start may be queued in the engine: a stop waits behind it, and
        // the rollback that follows wants the new container stopped anyway.
        Step::StartNew | Step::RemoveNew => match new_container(d, p, &j.events).await? {
            Some(id) if step == Step::RemoveNew => remove_and_wait(d, &id, p.stop_timeout).await,
            Some(id) => stop_and_wait(d, &id, p.stop_timeout).await,
            None => Ok(()),
        },
        // Started again (a no-op when it runs): the start has ended.
        Step::StartOld => soft(d.container_start(&p.container_id).await),
        // A create still in the engine shows up under the name shortly.
        Step::CreateNew => {
            if new_container(d, p, &j.events).await?.is_none() {
                tokio::time::sleep(CREATE_GRACE).await;
            }
            Ok(())
        }
        Step::Finish if !p.keep_old => remove_and_wait(d, &p.container_id, 0).await,
        // An interrupted restore is done again from the start; helpers a
        // killed berth left (a wipe may still be running) go first.
        Step::Restore => remove_helpers(d, p).await,
        // Tag, rename, load, backup reads: atomic in the engine or not
        // needed by what follows (a late load leaves an unused image).
        _ => Ok(()),
    };
    r.map_err(|e| e.context(format!("bringing the interrupted step {step} to an end")))
}

/// Wipe helpers on this run's volumes and restore stand-ins for this
/// container: removed, and waited for until they are gone.
async fn remove_helpers(d: &Docker, p: &Plan) -> Result<()> {
    for id in helpers(d, p).await? {
        remove_and_wait(d, &id, 0).await?;
    }
    Ok(())
}

/// The helper containers of this run: wipe helpers labelled with one of
/// the old container's volumes, and stand-ins named after the container.
pub(crate) async fn helpers(d: &Docker, p: &Plan) -> Result<Vec<String>> {
    let volumes: Vec<String> = match d.container_inspect(&p.container_id).await {
        Ok(c) => c
            .mounts
            .into_iter()
            .map(|m| m.name)
            .filter(|n| !n.is_empty())
            .collect(),
        Err(e) if e.is_not_found() => vec![],
        Err(e) => return Err(e),
    };
    let prefix = stand_in_prefix(p);
    let list = d
        .container_list(&json!({"label": ["berth.helper"]}))
        .await?;
    Ok(list
        .iter()
        .filter(|c| {
            let volume = c.labels.get("berth.volume");
            c.name().starts_with(&prefix) || volume.is_some_and(|v| volumes.contains(v))
        })
        .map(|c| c.id.clone())
        .collect())
}

/// The engine state the decision reads.
pub(crate) async fn observe(d: &Docker, p: &Plan, events: &[Event]) -> Result<Observed> {
    let (old, old_has_name) = match d.container_inspect(&p.container_id).await {
        Ok(c) => (seen(&c), c.name() == p.container),
        Err(e) if e.is_not_found() => (Seen::Gone, false),
        Err(e) => return Err(e),
    };
    let new = match new_container(d, p, events).await? {
        Some(id) => match d.container_inspect(&id).await {
            Ok(c) => seen(&c),
            Err(e) if e.is_not_found() => Seen::Gone,
            Err(e) => return Err(e),
        },
        None => Seen::Gone,
    };
    let new_image = match d.image_inspect(&p.new_image_id).await {
        Ok(_) => true,
        Err(e) if e.is_not_found() => false,
        Err(e) => return Err(e),
    };
    Ok(Observed {
        old,
        old_has_name,
        new,
        helpers: helpers(d, p).await?.len(),
        new_image,
    })
}

fn seen(c: &ContainerInspect) -> Seen {
    if c.state.is_going() {
        Seen::Gone
    } else if c.state.running {
        Seen::Running
    } else {
        Seen::Stopped
    }
}
