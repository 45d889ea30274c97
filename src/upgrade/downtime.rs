//! The downtime of a run as the engine recorded it: from the old
//! container's stop (its `State.FinishedAt`) to the start of the container
//! that serves after the run (`State.StartedAt` of the new one after an
//! upgrade, of the old one after a rollback). The same instants as the
//! engine's `die` and `start` events, without a second stream to follow.
//!
//! A figure for the report: an engine that cannot say gives none, and
//! nothing fails over it.

use super::journal::{Journal, Phase, Step};
use super::plan::Plan;
use crate::clock::parse_rfc3339;
use crate::docker::Docker;

/// Seconds the service was down, when this run stopped it and `serving`
/// has started since.
pub(crate) async fn measure(d: &Docker, p: &Plan, j: &Journal, serving: &str) -> Option<f64> {
    if !p.was_running || !j.has(Step::Stop, Phase::Begin) {
        return None;
    }
    let old = d.container_inspect(&p.container_id).await.ok()?;
    let started = if serving == p.container_id {
        old.state.started_at.clone()
    } else {
        d.container_inspect(serving).await.ok()?.state.started_at
    };
    between(&old.state.finished_at, &started)
}

/// From `stop` to `start`, two engine times; None unless the start came
/// after the stop (a container that never started again).
fn between(stop: &str, start: &str) -> Option<f64> {
    let (a, b) = (parse_rfc3339(stop)?, parse_rfc3339(start)?);
    (a > 0 && b > a).then(|| (b - a) as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_the_stop_to_the_start() {
        let s = between(
            "2026-12-06T22:52:09.978726232Z",
            "2026-12-06T22:52:12.478726232Z",
        );
        assert_eq!(s, Some(2.5));
        assert_eq!(
            between("2026-12-06T22:52:09Z", "2026-12-06T22:52:08Z"),
            None
        );
        assert_eq!(
            between("0001-01-01T00:00:00Z", "2026-12-06T22:52:08Z"),
            None
        );
        assert_eq!(between("", "2026-12-06T22:52:08Z"), None);
    }
}
