//! The undo steps that put the host back: after a failed upgrade, on
//! `berth rollback`, and on `berth resume` when finishing is not safe.
//! The flow (`flow.rs`) drives them. Every step looks at the engine's real
//! state first, so running it again after a crash is safe.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::configfile::{remove_config_if, wrote_config};
use super::journal::{step, Event, Journal, Phase, Step};
use super::plan::Plan;
use super::waits::remove_and_wait;
use super::{Say, BACKUP};
use crate::archive::restore;
use crate::archive::seal::Keys;
use crate::docker::Docker;
use crate::error::{Error, Kind, Result};
use crate::hooks::Hook;

/// How long the restored old container must keep running to count as up.
const OLD_SETTLE: Duration = Duration::from_secs(3);

/// The undo steps, in order; each looks at the engine first, so running
/// them again after a crash is safe. `keys` open an encrypted backup.
pub(crate) async fn undo(
    d: &Docker,
    p: &Plan,
    j: &mut Journal,
    say: Say,
    started_new: bool,
    keys: &Keys,
) -> Result<()> {
    step(j, Step::Rollback, async { Ok(Value::Null) }).await?;
    // A delta helper of a berth killed around the stop holds the volumes
    // open; it is of no use any more. Best effort: `prune` finds it too.
    let label = ("berth.container", p.container.as_str());
    let _ = crate::archive::helper::remove_helpers(d, "delta", label).await;
    // The secret goes first, before any step that needs the engine: an
    // engine that is gone or failing must not leave it behind.
    let wrote = wrote_config(j);
    step(j, Step::RemoveConfig, async move {
        remove_config_if(p, wrote)?;
        Ok(Value::Null)
    })
    .await?;
    let new_id = match new_container(d, p, &j.events).await {
        Ok(id) => id,
        // Looking is remove-new's first part: its failure (an engine that
        // is gone) goes into the journal as remove-new's.
        Err(e) => return step(j, Step::RemoveNew, async { Err(e) }).await.map(drop),
    };
    if let Some(id) = &new_id {
        say.step(format!(
            "removing the new container {}",
            crate::docker::short_id(id)
        ));
        step(j, Step::RemoveNew, async {
            d.container_stop(id, p.stop_timeout)
                .await
                .or_else(not_found_ok)?;
            // Until it is gone: its name must be free for rename-back.
            remove_and_wait(d, id, p.stop_timeout).await?;
            Ok(Value::Null)
        })
        .await?;
    }
    let _ = std::fs::remove_dir_all(p.run_dir.join(format!("{BACKUP}.partial")));
    let old_exists = match d.container_exists(&p.container_id).await {
        Ok(exists) => exists,
        // Looking is the next step's first part: its failure (an engine
        // that is gone) goes into the journal as that step's.
        Err(e) => {
            let next = if started_new {
                Step::Restore
            } else {
                Step::RenameBack
            };
            return step(j, next, async { Err(e) }).await.map(drop);
        }
    };
    if started_new {
        say.step("restoring every volume exactly and comparing it with the backup");
        step(j, Step::Restore, async {
            let restored = restore_all(d, p, say, old_exists, keys).await?;
            let after = p.hooks.after_restore.as_deref().filter(|_| old_exists);
            crate::hooks::run(d, &p.container_id, Hook::AfterRestore, after).await?;
            Ok(restored)
        })
        .await?;
    }
    if !old_exists {
        return Err(old_removed(p, started_new));
    }
    step(j, Step::RenameBack, async {
        let old = d.container_inspect(&p.container_id).await?;
        if old.name() != p.container {
            d.container_rename(&p.container_id, &p.container).await?;
        }
        Ok(Value::Null)
    })
    .await?;
    if p.was_running {
        say.step(format!("starting the old {} again", p.container));
        step(
            j,
            Step::StartOld,
            start_and_settle(d, &p.container_id, "the old container"),
        )
        .await?;
    }
    Ok(())
}

/// Put every path back, through the old container, or through a stand-in
/// for it when someone removed it (its volumes outlive it).
async fn restore_all(
    d: &Docker,
    p: &Plan,
    say: Say,
    old_exists: bool,
    keys: &Keys,
) -> Result<Value> {
    if old_exists {
        return restore_into(d, p, &p.container_id, say, keys).await;
    }
    remove_stale_stand_ins(d, p).await?;
    let stand_in = create_stand_in(d, p).await?;
    let restored = restore_into(d, p, &stand_in, say, keys).await;
    let removed = d
        .container_remove(&stand_in, true, false)
        .await
        .or_else(not_found_ok);
    let v = restored?;
    removed?;
    Ok(v)
}

/// Stand-ins a killed berth left (we hold the container's lock: no other
/// berth is using them). They hold the volumes, so they must not linger.
async fn remove_stale_stand_ins(d: &Docker, p: &Plan) -> Result<()> {
    let prefix = stand_in_prefix(p);
    let filters = json!({"label": ["berth.helper=restore"], "name": [prefix.clone()]});
    for c in d.container_list(&filters).await? {
        // The name filter matches substrings: check the prefix ourselves.
        if c.name().starts_with(&prefix) {
            d.container_remove(&c.id, true, false)
                .await
                .or_else(not_found_ok)?;
        }
    }
    Ok(())
}

pub(crate) fn stand_in_prefix(p: &Plan) -> String {
    format!("{}-berth-restore-", p.container)
}

/// A container that is never started: the old image with the old
/// container's own mounts (the create request of the plan), so that the
/// restore reaches the same volumes at the same paths. A volume that is
/// gone too must not be created again empty under its name: that is refused.
async fn create_stand_in(d: &Docker, p: &Plan) -> Result<String> {
    let mut req = p.create.clone();
    let doing = "creating a stand-in for the removed old container to restore its volumes";
    for v in named_volumes(&req["HostConfig"]) {
        match d.volume_inspect(&v).await {
            Err(e) if e.is_not_found() => {
                return Err(Error::failed(format!(
                    "{doing}: its volume {v} is gone too; its data is only in the backup {}",
                    p.run_dir.join(BACKUP).display()
                )))
            }
            r => r.map(drop).map_err(|e| e.context(doing))?,
        }
    }
    req["Image"] = json!(p.old_image_id);
    if !req["Labels"].is_object() {
        req["Labels"] = json!({});
    }
    req["Labels"]["berth.helper"] = json!("restore");
    let name = format!("{}{}", stand_in_prefix(p), crate::clock::now_unix());
    d.container_create(&name, &req)
        .await
        .map_err(|e| e.context(doing))
}

/// The volumes a HostConfig names: `Mounts` of type volume and `Binds`
/// whose source is a name, not a host path.
fn named_volumes(host: &Value) -> Vec<String> {
    let mounts = host["Mounts"].as_array().into_iter().flatten();
    let from_mounts = mounts
        .filter(|m| m["Type"] == "volume")
        .filter_map(|m| m["Source"].as_str());
    let binds = host["Binds"].as_array().into_iter().flatten();
    let from_binds = binds
        .filter_map(Value::as_str)
        .filter_map(|b| b.split(':').next())
        .filter(|src| !src.starts_with('/'));
    from_mounts
        .chain(from_binds)
        .filter(|v| !v.is_empty())
        .map(String::from)
        .collect()
}

/// The exit-4 message when the old container was removed behind berth's
/// back: what berth did to the data, and what it cannot do.
fn old_removed(p: &Plan, started_new: bool) -> Error {
    let data = if started_new {
        format!(
            "its data volumes were restored and verified equal to the backup {}",
            p.run_dir.join(BACKUP).display()
        )
    } else {
        "berth did not touch its data volumes (the new version never ran)".to_owned()
    };
    Error::new(
        Kind::RollbackIncomplete,
        format!(
            "the old container {} was removed by someone else during the upgrade; {data}, and no new container is left. berth cannot bring back the container itself: recreate {} from {}/{} (its `create` request, with \"Image\": \"{}\"){}",
            crate::docker::short_id(&p.container_id),
            p.container,
            p.run_dir.display(),
            super::PLAN,
            p.rollback_tag,
            super::env::recreate_note(p)
        ),
    )
}

/// Put every path back into `target`. A path the old container mounts
/// read-only cannot have been changed through it and cannot be written
/// through it either: it is read back and compared instead.
async fn restore_into(d: &Docker, p: &Plan, target: &str, say: Say, keys: &Keys) -> Result<Value> {
    let dir = p.run_dir.join(BACKUP);
    let old = d.container_inspect(target).await?;
    let data = crate::mounts::resolve(d, &old).await?;
    let ro = |path: &String| data.mounts.iter().any(|m| &m.destination == path && !m.rw);
    let (read_only, writable): (Vec<String>, Vec<String>) = p.paths.iter().cloned().partition(ro);
    if !writable.is_empty() {
        let o = restore::Options {
            container: Some(target.to_owned()),
            paths: writable.clone(),
            merge: false,
            report: say.report,
            keys: keys.clone(),
        };
        restore::restore(d, &dir, &o).await?;
    }
    if !read_only.is_empty() {
        let m = crate::manifest::Manifest::load(&dir)?;
        let name = old.name();
        for path in &read_only {
            let e = m
                .entry(path)
                .ok_or_else(|| Error::integrity(format!("the backup has no {path}")))?;
            restore::read_back_and_compare(d, name, &dir, e, false, keys).await?;
        }
    }
    Ok(json!({ "restored": writable, "compared_read_only": read_only }))
}

/// The new container, if one exists: the id the journal recorded, or a
/// container holding the name that is not the old one (created just
/// before a crash, before the journal could say so).
pub(crate) async fn new_container(
    d: &Docker,
    p: &Plan,
    events: &[Event],
) -> Result<Option<String>> {
    let at = |phase| {
        events
            .iter()
            .rev()
            .find(|e| e.step == Some(Step::CreateNew) && e.phase == Some(phase))
    };
    if let Some(id) = at(Phase::Done).and_then(|e| e.data["id"].as_str()) {
        return match d.container_inspect(id).await {
            Ok(_) => Ok(Some(id.to_owned())),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        };
    }
    if at(Phase::Begin).is_none() {
        return Ok(None);
    }
    match d.container_inspect(&p.container).await {
        Ok(c) if c.id != p.container_id && c.image == p.new_image_id => Ok(Some(c.id)),
        Ok(_) => Ok(None),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

fn not_found_ok(e: Error) -> Result<()> {
    if e.is_not_found() {
        Ok(())
    } else {
        Err(e)
    }
}

/// Start a container (`what` names it in errors) and check that it is
/// still running a few seconds later.
pub(crate) async fn start_and_settle(d: &Docker, id: &str, what: &str) -> Result<Value> {
    d.container_start(id).await?;
    let t = Instant::now();
    while t.elapsed() < OLD_SETTLE {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let st = d.container_inspect(id).await?;
        if !st.state.running {
            return Err(Error::failed(format!(
                "{what} exited with code {} after it was started again",
                st.state.exit_code
            )));
        }
    }
    Ok(Value::Null)
}

/// The one message for exit 4: what state the host is in, what to run.
pub(crate) async fn incomplete(
    d: &Docker,
    p: &Plan,
    cause: Option<String>,
    backed_up: bool,
    e: Error,
) -> Error {
    let old = match d.container_inspect(&p.container_id).await {
        Ok(c) => format!(
            "the old container {} is named {} and is {}",
            crate::docker::short_id(&p.container_id),
            c.name(),
            c.state.status
        ),
        Err(err) if err.is_not_found() => format!(
            "the old container {} was removed by someone else",
            crate::docker::short_id(&p.container_id)
        ),
        Err(err) => format!(
            "the old container {} cannot be inspected ({})",
            crate::docker::short_id(&p.container_id),
            err.msg
        ),
    };
    let config = match &p.config_dest {
        Some(c) if c.exists() => format!(
            "; the config file {} is still there (it holds a password)",
            c.display()
        ),
        _ => String::new(),
    };
    // Only a backup that passed `verify` is one to point at.
    let backup = if backed_up {
        format!(
            "the verified backup is {}",
            p.run_dir.join(BACKUP).display()
        )
    } else {
        "no backup was completed (the new version never ran: the data was not touched)".to_owned()
    };
    // An engine that broke the connection or answered 5xx is usually one
    // going down (restart, upgrade, crash): say that first, not its symptom.
    let (what, fix) = if engine_failed(&e) {
        (
            format!(
                "the Docker engine at {} stopped answering or failed during the rollback ({})",
                d.socket().display(),
                e.msg
            ),
            "Once the engine runs again, run",
        )
    } else {
        (e.msg, "Fix the cause, then run")
    };
    Error::new(
        Kind::RollbackIncomplete,
        format!(
            "rollback incomplete: {what}{}. State: {old}; {backup}{config}. {fix} `berth rollback {}`",
            cause.map(|c| format!(" (the upgrade had failed: {c})")).unwrap_or_default(),
            p.run_dir.display()
        ),
    )
}

fn engine_failed(e: &Error) -> bool {
    e.kind == Kind::Connection || e.status().is_some_and(|s| s >= 500)
}
