//! What `berth resume` does next: a pure function of the journal and of the
//! engine state berth observed after it brought the step that was in
//! flight to an end (`reconcile`). No I/O here, so every (journal x engine
//! state) pair is a unit test.

use serde::Serialize;

use super::journal::{self, Event, Outcome, Phase, Step};
use super::watch::Verdict;

/// A container as berth found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Seen {
    /// The engine does not know it, or is removing it.
    Gone,
    Running,
    /// Created, exited or paused: there, not running.
    Stopped,
}

/// The engine state that matters to `resume`, observed once no engine
/// action berth asked for is still running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Observed {
    /// The old container, by its id.
    pub old: Seen,
    /// Whether the old container carries the original name (it is not
    /// renamed aside).
    pub(crate) old_has_name: bool,
    /// The new container: the id the journal recorded, or else the one
    /// holding the name on the new image once `create-new` had begun.
    pub new: Seen,
    /// Helper containers berth left (wipe helpers, restore stand-ins).
    pub helpers: usize,
    /// Whether the engine has the new image (the plan's image id).
    pub new_image: bool,
}

/// What the journal says, reduced to what the decision reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Facts {
    pub outcome: Option<Outcome>,
    pub(crate) rollback_begun: bool,
    pub verdict: Option<Verdict>,
    pub(crate) start_new_begun: bool,
    pub(crate) start_new_done: bool,
    /// The step whose `begin` is the last line, if any.
    pub in_flight: Option<Step>,
}

impl Facts {
    pub fn of(events: &[Event]) -> Facts {
        let has = |s: Step, p: Phase| {
            events
                .iter()
                .any(|e| e.step == Some(s) && e.phase == Some(p))
        };
        let verdict = events
            .iter()
            .rev()
            .find(|e| e.step == Some(Step::Watch) && e.phase == Some(Phase::Done))
            .and_then(|e| serde_json::from_value(e.data.clone()).ok());
        Facts {
            outcome: events.iter().rev().find_map(|e| e.outcome),
            rollback_begun: has(Step::Rollback, Phase::Begin),
            verdict,
            start_new_begun: has(Step::StartNew, Phase::Begin),
            start_new_done: has(Step::StartNew, Phase::Done),
            in_flight: journal::in_flight(events),
        }
    }
}

/// The next thing `resume` does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Next {
    /// The run had ended: only remove the config file if it is still
    /// there, and report that outcome.
    Report { outcome: Outcome },
    /// The application said success and the new container runs: finish.
    Finish,
    /// The application said success but the new container stopped since
    /// (an engine restart): start it, check it stays up, then finish.
    StartNewThenFinish,
    /// The new container was started and has not been judged yet: watch it
    /// again for what is left of the timeout.
    WatchAgain,
    /// Put the host back; `restore`: the volumes are restored and compared
    /// too (the new version may have changed them).
    RollBack { cause: String, restore: bool },
}

impl std::fmt::Display for Next {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Next::Report { outcome } => write!(f, "report the outcome ({outcome})"),
            Next::Finish => {
                f.write_str("finish the upgrade (remove the config file and the old container)")
            }
            Next::StartNewThenFinish => {
                f.write_str("start the new container again, then finish the upgrade")
            }
            Next::WatchAgain => {
                f.write_str("watch the new container again for the rest of the timeout")
            }
            Next::RollBack {
                cause,
                restore: true,
            } => {
                write!(
                    f,
                    "roll back, restoring the volumes from the backup ({cause})"
                )
            }
            Next::RollBack {
                cause,
                restore: false,
            } => {
                write!(f, "roll back; the volumes are left as they are, the new version never ran ({cause})")
            }
        }
    }
}

pub(crate) const STOPPED_EARLY: &str = "berth was stopped before the upgrade finished";
pub(crate) const RESUMING_ROLLBACK: &str = "resuming an interrupted rollback";
pub(crate) const NEW_GONE: &str = "the new container is gone";

/// The decision. Order matters: an ended run stays ended, a rollback once
/// begun is always finished, a success verdict is honoured only while the
/// new container exists, and anything unjudged is rolled back.
pub(crate) fn next(f: &Facts, seen: &Observed) -> Next {
    let back = |cause: &str| Next::RollBack {
        cause: cause.to_owned(),
        restore: f.start_new_begun,
    };
    if let Some(outcome) = f.outcome {
        return Next::Report { outcome };
    }
    if f.rollback_begun {
        return back(RESUMING_ROLLBACK);
    }
    match (&f.verdict, seen.new) {
        (Some(Verdict::Failure(why)), _) => back(why),
        (Some(Verdict::Success(_)), Seen::Running) => Next::Finish,
        (Some(Verdict::Success(_)), Seen::Stopped) => Next::StartNewThenFinish,
        (Some(Verdict::Success(_)), Seen::Gone) => back(NEW_GONE),
        // Started and not judged: the application may still say success.
        (None, Seen::Running | Seen::Stopped) if f.start_new_done => Next::WatchAgain,
        (None, _) => back(STOPPED_EARLY),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// The forward journal lines in order (default order, with a config
    /// file), each step begin then done.
    const FORWARD: [Step; 11] = [
        Step::TagOld,
        Step::Load,
        Step::Stop,
        Step::Backup,
        Step::Verify,
        Step::RenameOld,
        Step::CreateNew,
        Step::WriteConfig,
        Step::StartNew,
        Step::Watch,
        Step::Finish,
    ];
    const UNDO: [Step; 6] = [
        Step::Rollback,
        Step::RemoveConfig,
        Step::RemoveNew,
        Step::Restore,
        Step::RenameBack,
        Step::StartOld,
    ];

    fn ev(step: Step, phase: Phase, data: Value) -> Event {
        Event {
            t: 0,
            step: Some(step),
            phase: Some(phase),
            outcome: None,
            data,
        }
    }

    fn done_data(s: Step, success: bool) -> Value {
        match s {
            Step::Watch if success => json!({"verdict": "success", "why": "Upgrade complete."}),
            Step::Watch => json!({"verdict": "failure", "why": "Upgrade failed."}),
            Step::CreateNew => json!({"id": "new"}),
            _ => Value::Null,
        }
    }

    /// A journal that ran forward up to `upto` (its `phase` the last line),
    /// with a watch verdict of `success` if it got that far.
    fn forward_until(upto: Step, phase: Phase, success: bool) -> Vec<Event> {
        let mut out = vec![];
        for s in FORWARD {
            out.push(ev(s, Phase::Begin, Value::Null));
            if s == upto {
                if phase != Phase::Begin {
                    out.push(ev(s, phase, done_data(s, success)));
                }
                return out;
            }
            out.push(ev(s, Phase::Done, done_data(s, success)));
        }
        unreachable!("{upto} is a forward step")
    }

    /// Every observed state: the old and new containers in each state.
    fn all_observed() -> Vec<Observed> {
        let seen = [Seen::Gone, Seen::Running, Seen::Stopped];
        let mut out = vec![];
        for old in seen {
            for new in seen {
                for old_has_name in [true, false] {
                    out.push(Observed {
                        old,
                        old_has_name,
                        new,
                        helpers: usize::from(!old_has_name),
                        new_image: new != Seen::Gone,
                    });
                }
            }
        }
        out
    }

    fn rb(cause: &str, restore: bool) -> Next {
        Next::RollBack {
            cause: cause.into(),
            restore,
        }
    }

    /// What resume must do after the last forward line, given the new
    /// container's state (the old one's never changes the decision: a gone
    /// old container is reported by the rollback itself).
    fn expected_forward(s: Step, phase: Phase, success: bool, new: Seen) -> Next {
        let started = FORWARD.iter().position(|x| *x == s)
            >= FORWARD.iter().position(|x| *x == Step::StartNew);
        let judged = matches!((s, phase), (Step::Watch, Phase::Done) | (Step::Finish, _));
        let start_done = started && !(s == Step::StartNew && phase != Phase::Done);
        match (judged, success, new) {
            (true, true, Seen::Running) => Next::Finish,
            (true, true, Seen::Stopped) => Next::StartNewThenFinish,
            (true, true, Seen::Gone) => rb(NEW_GONE, true),
            (true, false, _) => rb("Upgrade failed.", true),
            (false, _, Seen::Running | Seen::Stopped) if start_done => Next::WatchAgain,
            (false, _, _) => rb(STOPPED_EARLY, started),
        }
    }

    /// The table: every forward step x every phase x every observed state.
    #[test]
    fn every_forward_line_and_engine_state() {
        let mut rows = 0;
        for s in FORWARD {
            for phase in [Phase::Begin, Phase::Done, Phase::Failed] {
                for success in [true, false] {
                    let events = forward_until(s, phase, success);
                    let f = Facts::of(&events);
                    assert_eq!(f.in_flight, (phase == Phase::Begin).then_some(s));
                    for seen in all_observed() {
                        let want = expected_forward(s, phase, success, seen.new);
                        assert_eq!(
                            next(&f, &seen),
                            want,
                            "after {s} {phase:?} (success {success}) with {seen:?}"
                        );
                        rows += 1;
                    }
                }
            }
        }
        assert_eq!(rows, 11 * 3 * 2 * 18);
    }

    /// A rollback once begun is finished whatever the engine shows, and it
    /// restores exactly when the new version had been started.
    #[test]
    fn every_rollback_line_and_engine_state() {
        for before in [Step::Load, Step::CreateNew, Step::StartNew, Step::Watch] {
            for s in UNDO {
                for phase in [Phase::Begin, Phase::Done, Phase::Failed] {
                    let mut events = forward_until(before, Phase::Failed, false);
                    for u in UNDO {
                        events.push(ev(u, Phase::Begin, Value::Null));
                        if u == s {
                            if phase != Phase::Begin {
                                events.push(ev(u, phase, Value::Null));
                            }
                            break;
                        }
                        events.push(ev(u, Phase::Done, Value::Null));
                    }
                    let f = Facts::of(&events);
                    let restore = matches!(before, Step::StartNew | Step::Watch);
                    for seen in all_observed() {
                        assert_eq!(
                            next(&f, &seen),
                            rb(RESUMING_ROLLBACK, restore),
                            "rollback at {s} {phase:?} after {before} with {seen:?}"
                        );
                    }
                }
            }
        }
    }

    /// An outcome line ends the run for good, whatever follows or is seen.
    #[test]
    fn an_outcome_is_reported_whatever_the_engine_shows() {
        for outcome in [Outcome::Upgraded, Outcome::RolledBack, Outcome::Aborted] {
            let mut events = forward_until(Step::Finish, Phase::Done, true);
            events.push(Event {
                t: 0,
                step: None,
                phase: None,
                outcome: Some(outcome),
                data: Value::Null,
            });
            let f = Facts::of(&events);
            assert_eq!(f.in_flight, None);
            for seen in all_observed() {
                assert_eq!(next(&f, &seen), Next::Report { outcome });
            }
        }
    }

    /// Killed right after plan.json was written: nothing to undo but the
    /// lock's run; the rollback leaves the data alone.
    #[test]
    fn an_empty_journal_is_rolled_back_without_restore() {
        let f = Facts::of(&[]);
        for seen in all_observed() {
            assert_eq!(next(&f, &seen), rb(STOPPED_EARLY, false));
        }
    }

    /// `berth rollback` after an upgrade kept the old container: a
    /// start-new begin after the outcome is in flight, and is reported.
    #[test]
    fn in_flight_is_only_a_trailing_begin() {
        let mut events = forward_until(Step::Stop, Phase::Begin, true);
        assert_eq!(journal::in_flight(&events), Some(Step::Stop));
        events.push(ev(Step::Stop, Phase::Failed, Value::Null));
        assert_eq!(journal::in_flight(&events), None);
    }
}
