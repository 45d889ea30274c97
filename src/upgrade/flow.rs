//! The upgrade's flow in one place: `upgrade`, `resume` and `rollback`
//! drive the forward steps (`steps.rs`) and the undo steps (`rollback.rs`),
//! which sit below this module and never import each other.
//!
//! `resume` and `rollback` first bring the step that was in flight to an
//! end against the engine (`reconcile.rs`), then look, then do what the
//! pure decision (`decide.rs`) says.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::configfile::{remove_config, remove_config_if, wrote_config};
use super::decide::{self, Facts, Next};
use super::journal::{self, step, Journal, Outcome, Phase, Step};
use super::plan::{self, Plan, Request};
use super::watch::Verdict;
use super::{
    load_plan, reconcile, rollback as undo, runkey, save_plan, steps, Say, Summary, BACKUP,
};
use crate::archive::seal::Keys;
use crate::archive::verify;
use crate::docker::Docker;
use crate::error::{Error, Kind, Result};
use crate::hooks::Hook;

/// Plan, then run the whole upgrade; on failure roll back.
pub async fn upgrade(d: &Docker, r: &Request, dry_run: bool, say: Say) -> Result<Summary> {
    let t0 = Instant::now();
    let c = d.container_inspect(&r.container).await?;
    let _locks = journal::lock_container(d.socket(), &c.id, c.name())?;
    let plan = plan::plan(d, r).await?;
    if dry_run {
        let mut s = Summary::new(&plan, None, None, None, t0);
        s.plan = Some(plan);
        return Ok(s);
    }
    // Before anything changes: a failing hook leaves no trace.
    let before = plan.hooks.before_backup.as_deref();
    crate::hooks::run(d, &plan.container_id, Hook::BeforeBackup, before).await?;
    save_plan(&plan)?;
    let mut j = Journal::open(&plan.run_dir)?;
    say.step(format!(
        "upgrading {} from {} to {} (run directory {})",
        plan.container,
        plan.old_image_ref,
        plan.new_image_ref,
        plan.run_dir.display()
    ));
    match steps::forward(d, &plan, &mut j, say).await {
        Ok(Verdict::Success(why)) => finish(d, &plan, &mut j, say, why, t0).await,
        Ok(Verdict::Failure(why)) => {
            let v = Some(Verdict::Failure(why.clone()));
            rollback(d, &plan, &mut j, say, Some(why), v, t0, &Keys::none()).await
        }
        Err(e) => {
            let cause = Some(e.msg.clone());
            rollback(d, &plan, &mut j, say, cause, None, t0, &Keys::none()).await
        }
    }
}

/// Run the undo steps and write the outcome. `given`: the user's keys
/// (`--identity`); the run's own key is added while it exists.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn rollback(
    d: &Docker,
    p: &Plan,
    j: &mut Journal,
    say: Say,
    cause: Option<String>,
    verdict: Option<Verdict>,
    t0: Instant,
    given: &Keys,
) -> Result<Summary> {
    // A signal may have started this: the rollback itself must run.
    crate::cancel::reset();
    if let Some(c) = &cause {
        say.step(format!("the upgrade failed: {c}"));
    }
    say.step("rolling back");
    let started_new = j.has(Step::StartNew, Phase::Begin);
    let backed_up = j.has(Step::Verify, Phase::Done);
    let keys = match backup_keys(p, given, started_new) {
        Ok(k) => k,
        Err(e) => return Err(undo::incomplete(d, p, cause, backed_up, e).await),
    };
    match undo::undo(d, p, j, say, started_new, &keys).await {
        Ok(()) => {
            let outcome = if started_new {
                Outcome::RolledBack
            } else {
                Outcome::Aborted
            };
            j.finish(outcome, json!({ "cause": cause }))?;
            let mut s = Summary::new(p, Some(outcome), verdict, cause, t0);
            s.downtime_s = super::downtime::measure(d, p, j, &p.container_id).await;
            s.delta = carried(j);
            Ok(ended(p, s))
        }
        // The old container is gone: `undo` said exactly what it did.
        Err(e) if e.kind == Kind::RollbackIncomplete => Err(e.context(format!(
            "rollback incomplete{}",
            cause
                .map(|c| format!(" (the upgrade had failed: {c})"))
                .unwrap_or_default()
        ))),
        Err(e) => Err(undo::incomplete(d, p, cause, backed_up, e).await),
    }
}

/// Success: remove the config file and (unless kept) the old container.
pub(crate) async fn finish(
    d: &Docker,
    p: &Plan,
    j: &mut Journal,
    say: Say,
    why: String,
    t0: Instant,
) -> Result<Summary> {
    say.step(format!("the new version is up: {why}"));
    // Before the old container can go: its stop time is on it.
    let new_id = undo::new_container(d, p, &j.events).await.ok().flatten();
    let downtime = match &new_id {
        Some(id) => super::downtime::measure(d, p, j, id).await,
        None => None,
    };
    let wrote = wrote_config(j);
    let r = step(j, Step::Finish, async move {
        remove_config_if(p, wrote)?;
        if !p.keep_old {
            match d.container_remove(&p.container_id, false, false).await {
                Err(e) if !e.is_not_found() => return Err(e),
                _ => {}
            }
        }
        Ok(Value::Null)
    })
    .await;
    if let Err(e) = r {
        return Err(Error::new(
            Kind::Failed,
            format!(
                "{} was upgraded, but cleaning up failed: {}; run `berth resume {}` to finish",
                p.container,
                e.msg,
                p.run_dir.display()
            ),
        ));
    }
    j.finish(Outcome::Upgraded, json!({ "why": why }))?;
    let mut s = Summary::new(
        p,
        Some(Outcome::Upgraded),
        Some(Verdict::Success(why)),
        None,
        t0,
    );
    s.downtime_s = downtime;
    s.delta = carried(j);
    Ok(ended(p, s))
}

/// The keys that open the run's backup: the user's and the run's own.
/// When the rollback will restore (`restore`), they must open every
/// encrypted file of the backup: checked before anything is undone.
fn backup_keys(p: &Plan, given: &Keys, restore: bool) -> Result<Keys> {
    let keys = runkey::keys(&p.run_dir, given)?;
    if restore {
        let dir = p.run_dir.join(BACKUP);
        let m = crate::manifest::Manifest::load(&dir)?;
        verify::check_keys(&dir, &m, &keys)
            .map_err(|e| e.context(format!("opening the run's backup {}", dir.display())))?;
    }
    Ok(keys)
}

/// The run has ended: its own key goes (see `runkey`).
/// What the delta carried, as the backup step's journal line says; None
/// when the backup was taken without a pre-copy.
fn carried(j: &Journal) -> Option<crate::archive::precopy::Carried> {
    let done = j
        .events
        .iter()
        .rev()
        .find(|e| e.step == Some(Step::Backup) && e.phase == Some(Phase::Done))?;
    serde_json::from_value(done.data.get("delta")?.clone()).ok()
}

/// The run has ended: its own key goes (see `runkey`), and its pre-copy.
fn ended(p: &Plan, mut s: Summary) -> Summary {
    // A pre-copy whose files are in the backup (hard links), or that a
    // killed berth left (whole or `.partial`): of no use once the run has
    // ended.
    for name in [
        super::PRECOPY.to_owned(),
        format!("{}.partial", super::PRECOPY),
    ] {
        let pre = p.run_dir.join(name);
        if pre.exists() {
            if let Err(e) = std::fs::remove_dir_all(&pre) {
                s.warnings
                    .push(format!("could not remove {}: {e}", pre.display()));
            }
        }
    }
    if let Some(w) = runkey::forget(&p.run_dir) {
        s.warnings.push(w);
    }
    s
}

/// `berth rollback DIR`: put the host back to before the upgrade; `keys`
/// open an encrypted backup whose run has ended (`--identity`).
pub async fn rollback_dir(d: &Docker, run: &Path, say: Say, keys: &Keys) -> Result<Summary> {
    let t0 = Instant::now();
    let p = load_plan(run)?;
    let _locks = journal::lock_container(d.socket(), &p.container_id, &p.container)?;
    let mut j = Journal::open(run)?;
    if j.outcome() == Some(Outcome::Upgraded) && !p.keep_old {
        match d.container_inspect(&p.container_id).await {
            Err(e) if e.is_not_found() => {
                return Err(Error::failed(format!(
                    "{} was upgraded and its old container removed: nothing to roll back to (the backup is {}; `berth restore` puts the data back)",
                    p.container,
                    run.join(BACKUP).display()
                )))
            }
            _ => {}
        }
    }
    if matches!(j.outcome(), Some(Outcome::RolledBack | Outcome::Aborted)) {
        let s = Summary::new(
            &p,
            j.outcome(),
            None,
            Some("already rolled back".into()),
            t0,
        );
        return Ok(ended(&p, s));
    }
    // A restore that cannot open the backup must be refused before the new
    // container is removed: nothing has changed yet.
    let restores = j.has(Step::StartNew, Phase::Begin) || j.outcome() == Some(Outcome::Upgraded);
    backup_keys(&p, keys, restores)?;
    reconcile::settle(d, &p, &j, say).await?;
    // After a finished upgrade the new container started: restore too.
    if j.outcome() == Some(Outcome::Upgraded) {
        j.record(
            Step::StartNew,
            Phase::Begin,
            json!({ "note": "rollback after upgrade" }),
        )?;
    }
    let cause = Some("rollback requested".into());
    rollback(d, &p, &mut j, say, cause, None, t0, keys).await
}

/// `berth resume DIR`: finish or roll back, whichever is safe; `keys`
/// (`--identity`) as for `rollback_dir`.
pub async fn resume(d: &Docker, run: &Path, say: Say, keys: &Keys) -> Result<Summary> {
    let t0 = Instant::now();
    let p = load_plan(run)?;
    let _locks = journal::lock_container(d.socket(), &p.container_id, &p.container)?;
    let mut j = Journal::open(run)?;
    // An ended run needs nothing of the engine.
    if let Some(o) = j.outcome() {
        remove_config(&p, &j)?;
        let cause = Some("the run had already ended".into());
        return Ok(ended(&p, Summary::new(&p, Some(o), None, cause, t0)));
    }
    reconcile::settle(d, &p, &j, say).await?;
    let seen = reconcile::observe(d, &p, &j.events).await?;
    let facts = Facts::of(&j.events);
    let next = decide::next(&facts, &seen);
    say.step(format!("resuming: {next}"));
    match next {
        Next::Report { outcome } => {
            remove_config(&p, &j)?;
            let cause = Some("the run had already ended".into());
            Ok(ended(&p, Summary::new(&p, Some(outcome), None, cause, t0)))
        }
        Next::Finish => finish(d, &p, &mut j, say, SAID_BEFORE.into(), t0).await,
        Next::StartNewThenFinish => match start_new_again(d, &p, &j).await {
            Ok(()) => finish(d, &p, &mut j, say, SAID_BEFORE.into(), t0).await,
            Err(e) => {
                let v = Some(Verdict::Failure(e.msg.clone()));
                rollback(d, &p, &mut j, say, Some(e.msg), v, t0, keys).await
            }
        },
        Next::WatchAgain => watch_again(d, &p, &mut j, say, t0, keys).await,
        Next::RollBack { cause, .. } => {
            let verdict = facts.verdict.filter(|v| matches!(v, Verdict::Failure(_)));
            rollback(d, &p, &mut j, say, Some(cause), verdict, t0, keys).await
        }
    }
}

const SAID_BEFORE: &str = "the application had said so before berth stopped";

/// After a success verdict the new container had stopped (an engine
/// restart or a reboot stops containers without a restart policy): start
/// it again, as the upgrade left it, and check it stays up.
async fn start_new_again(d: &Docker, p: &Plan, j: &Journal) -> Result<()> {
    let id = undo::new_container(d, p, &j.events)
        .await?
        .ok_or_else(|| Error::failed(decide::NEW_GONE))?;
    undo::start_and_settle(d, &id, "the new container")
        .await
        .map(drop)
        .map_err(|e| e.context("the new container had stopped after the upgrade succeeded"))
}

/// The new container was started and not judged: let the application
/// finish its word, within what is left of the timeout.
async fn watch_again(
    d: &Docker,
    p: &Plan,
    j: &mut Journal,
    say: Say,
    t0: Instant,
    keys: &Keys,
) -> Result<Summary> {
    let Some(id) = undo::new_container(d, p, &j.events).await? else {
        let cause = Some(decide::NEW_GONE.into());
        return rollback(d, p, j, say, cause, None, t0, keys).await;
    };
    let began = j
        .events
        .iter()
        .find(|e| e.step == Some(Step::StartNew))
        .map(|e| e.t)
        .unwrap_or(0);
    let left = (p.settings.timeout_s as i64 - (crate::clock::now_unix() - began)).max(5) as u64;
    say.step(format!(
        "the new container was started: watching it again (up to {left}s)"
    ));
    match steps::watch_new(d, p, j, &id, Duration::from_secs(left)).await {
        Ok(Verdict::Success(why)) => finish(d, p, j, say, why, t0).await,
        Ok(Verdict::Failure(why)) => {
            let v = Some(Verdict::Failure(why.clone()));
            rollback(d, p, j, say, Some(why), v, t0, keys).await
        }
        Err(e) => rollback(d, p, j, say, Some(e.msg), None, t0, keys).await,
    }
}
