//! `--rehearse-first` on `berth upgrade` and `berth rollout`: rehearse,
//! and only on a passing verdict run the real thing.
//!
//! Whether the upgrade reuses the rehearsal's backup: only if nothing can
//! have written the data since. The rehearsal copies while the container
//! runs (it is never stopped), so a running container's copy is stale the
//! moment it is taken and the upgrade takes its own offline backup, as
//! always. A container that was stopped at the copy and is still stopped
//! with the same start and finish times (it has not run since), whose
//! copy the rehearsal made itself (not `--from-backup`), gets that copy:
//! it is copied into the upgrade's run directory and deep-verified there.

use std::path::PathBuf;

use super::record::{Clock, Record};
use super::report::Report;
use super::run::{rehearse, Options};
use crate::docker::Docker;
use crate::error::Result;
use crate::rollout;
use crate::upgrade::plan::Request;
use crate::upgrade::{flow, Say, Summary};

/// The rehearsal's report, and the upgrade's summary when it ran (the
/// rehearsal passed, or both were dry runs).
pub async fn upgrade(
    d: &Docker,
    r: &Request,
    network: Option<String>,
    dry_run: bool,
    say: Say,
) -> Result<(Report, Option<Summary>)> {
    let o = Options {
        request: r.clone(),
        network,
        ..Options::default()
    };
    let rep = rehearse(d, &o, dry_run, say).await?;
    if !rep.exit_code.is_success() {
        return Ok((rep, None));
    }
    let mut r = r.clone();
    if !dry_run {
        r.reuse_backup = reusable(d, &rep, &r).await?;
    }
    let s = flow::upgrade(d, &r, dry_run, say).await?;
    Ok((rep, Some(s)))
}

/// The rehearsal's backup, when nothing can have changed the data since.
async fn reusable(d: &Docker, rep: &Report, r: &Request) -> Result<Option<PathBuf>> {
    let rec = Record::load(&rep.run_dir)?;
    // An encrypted backup is sealed to the rehearsal's own run key, which
    // the upgrade's run (its verify, its rollback) does not have.
    if rec.from_backup.is_some() || rec.at_copy.running || !r.encrypt_to.is_empty() {
        return Ok(None);
    }
    let now = Clock::of(&d.container_inspect(&r.container).await?);
    Ok((now == rec.at_copy).then(|| rec.backup_dir()))
}

/// Rehearse on the first node, before any node is touched. The rollout
/// goes on only if this report says passed.
pub async fn rollout(o: &rollout::Options, network: Option<String>, say: Say) -> Result<Report> {
    let first = &o.nodes[0];
    let d = Docker::connect(&first.socket).await?;
    let opts = Options {
        request: Request {
            container: first.container.clone(),
            ..o.request.clone()
        },
        network,
        ..Options::default()
    };
    say.step(format!(
        "rehearsing on node {} before the rollout touches any node",
        first.name
    ));
    rehearse(&d, &opts, o.dry_run, say).await
}
