//! Waiting for the engine to finish what berth asked: a container that is
//! stopped until it no longer runs, one that is removed until it is gone
//! (and its name free). Used by the undo steps and by `reconcile`.

use std::time::{Duration, Instant};

use crate::docker::Docker;
use crate::error::{Error, Kind, Result};

const POLL: Duration = Duration::from_millis(200);
/// How long a container may take to go, beyond its stop timeout.
const GRACE: Duration = Duration::from_secs(60);

/// An engine refusal is not fatal here: the step that follows does the
/// same again and reports it. A broken engine is.
pub(crate) fn soft(r: Result<()>) -> Result<()> {
    match r {
        Err(e) if e.kind == Kind::Connection || e.status().is_some_and(|s| s >= 500) => Err(e),
        _ => Ok(()),
    }
}

/// Stop a container and wait until the engine says it is not running.
pub(crate) async fn stop_and_wait(d: &Docker, id: &str, timeout_s: u32) -> Result<()> {
    soft(d.container_stop(id, timeout_s).await)?;
    let limit = Duration::from_secs(timeout_s.into()) + GRACE;
    let t = Instant::now();
    loop {
        match d.container_inspect(id).await {
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
            Ok(c) if !c.state.running => return Ok(()),
            Ok(_) if t.elapsed() > limit => {
                return Err(Error::failed(format!(
                    "container {id} still runs {}s after it was stopped",
                    limit.as_secs()
                )))
            }
            Ok(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// Remove a container (by force) and wait until the engine no longer
/// knows it, so that its name is free.
pub(crate) async fn remove_and_wait(d: &Docker, id: &str, timeout_s: u32) -> Result<()> {
    soft(d.container_remove(id, true, false).await)?;
    let limit = Duration::from_secs(timeout_s.into()) + GRACE;
    let t = Instant::now();
    loop {
        match d.container_inspect(id).await {
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
            Ok(_) if t.elapsed() > limit => {
                return Err(Error::failed(format!(
                    "container {id} is still there {}s after it was removed",
                    limit.as_secs()
                )))
            }
            // Still removing, or a remove that lost its race: again.
            Ok(c) => {
                if c.state.status != "removing" {
                    soft(d.container_remove(id, true, false).await)?;
                }
                tokio::time::sleep(POLL).await
            }
        }
    }
}
