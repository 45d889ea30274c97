//! `berth upgrade`, `resume`, `rollback` and `status`: the reference
//! procedure as a journaled state machine.
//!
//! A run directory `<backup-root>/<container>-<stamp>-upgrade/` holds plan.json
//! (what to do and what to put back), journal.jsonl (every step boundary,
//! fsynced), backup/ (an ordinary berth backup), new-container.log and,
//! while an encrypting run is unfinished, its own key (see `runkey`).

pub mod compose;
pub(crate) mod configfile;
pub(crate) mod decide;
pub(crate) mod dependents;
pub(crate) mod downtime;
pub mod endpoints;
pub mod env;
pub mod flow;
pub(crate) mod imagefile;
pub mod journal;
pub mod plan;
pub(crate) mod reconcile;
pub mod recreate;
pub mod rollback;
pub mod runkey;
pub mod steps;
pub mod waits;
pub mod watch;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Context, Error, Result};
use crate::exit::ExitStatus;
use crate::report::Reporter;
use journal::Outcome;
use plan::Plan;
use watch::Verdict;

pub(crate) const PLAN: &str = "plan.json";
pub const BACKUP: &str = "backup";
/// The pre-copy's directory in a run, until the backup is assembled.
pub const PRECOPY: &str = "precopy";
pub(crate) const NEW_LOG: &str = "new-container.log";

/// How to talk while running: step lines and meters go to the caller's
/// reporter.
#[derive(Debug, Clone, Copy)]
pub struct Say {
    pub report: &'static dyn Reporter,
}

impl Say {
    pub fn step(&self, msg: impl std::fmt::Display) {
        self.report.step(&msg.to_string());
    }
}

/// What a run ended as; `outcome` None for a dry run.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub container: String,
    pub outcome: Option<Outcome>,
    pub old_image: String,
    pub new_image: String,
    pub run_dir: PathBuf,
    pub backup_dir: PathBuf,
    /// Whether the old container ran before (and so runs again after a rollback).
    pub was_running: bool,
    pub verdict: Option<Verdict>,
    /// Why the upgrade failed, when it did.
    pub cause: Option<String>,
    pub seconds: f64,
    /// From the old container's stop to the start of the one that serves
    /// now, as the engine recorded them; None when the run stopped nothing.
    pub downtime_s: Option<f64>,
    /// What the backup took in the stop window, after a pre-copy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta: Option<crate::archive::precopy::Carried>,
    /// What the user should know and change (compose files).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
}

impl Summary {
    pub fn exit_status(&self) -> ExitStatus {
        match self.outcome {
            None | Some(Outcome::Upgraded) => ExitStatus::Success,
            Some(Outcome::RolledBack) => ExitStatus::RolledBack,
            Some(Outcome::Aborted) => ExitStatus::Failed,
        }
    }

    pub fn new(
        plan: &Plan,
        outcome: Option<Outcome>,
        verdict: Option<Verdict>,
        cause: Option<String>,
        t0: std::time::Instant,
    ) -> Summary {
        Summary {
            container: plan.container.clone(),
            outcome,
            old_image: plan.old_image_ref.clone(),
            new_image: plan.new_image_ref.clone(),
            run_dir: plan.run_dir.clone(),
            backup_dir: plan.run_dir.join(BACKUP),
            was_running: plan.was_running,
            verdict,
            cause,
            seconds: t0.elapsed().as_secs_f64(),
            downtime_s: None,
            delta: None,
            warnings: plan.warnings.clone(),
            plan: None,
        }
    }
}

pub(crate) fn load_plan(run: &Path) -> Result<Plan> {
    let p = run.join(PLAN);
    let bytes = std::fs::read(&p).map_err(|e| {
        Error::usage(format!(
            "{}: not an upgrade run directory ({e})",
            run.display()
        ))
    })?;
    serde_json::from_slice(&bytes).map_err(|e| Error::integrity(format!("{}: {e}", p.display())))
}

/// Create the run directory (it must not exist yet) and write plan.json.
pub(crate) fn save_plan(plan: &Plan) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if let Some(root) = plan.run_dir.parent() {
        crate::files::create_private_dir(root)?;
    }
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&plan.run_dir)
        .ctx(format!(
            "creating the run directory {}",
            plan.run_dir.display()
        ))?;
    let bytes = serde_json::to_vec_pretty(plan).expect("serializable");
    crate::files::write_atomic(&plan.run_dir.join(PLAN), &bytes, 0o600).ctx("saving the plan")
}

/// The human form of a plan (`--dry-run`).
pub fn render_plan(p: &Plan) -> String {
    let mut s = format!("plan for {} (nothing was changed):\n", p.container);
    s += &format!(
        "  image      {} ({}) -> {} ({})\n",
        p.old_image_ref,
        crate::docker::short_id(&p.old_image_id),
        p.new_image_ref,
        crate::docker::short_id(&p.new_image_id)
    );
    s += &format!(
        "  keep old   tag {}; container renamed {} until the new one proves itself\n",
        p.rollback_tag, p.aside_name
    );
    s += &format!(
        "  backup     {} ({}) into {}/{BACKUP}, about {} ({} free)\n",
        p.paths.join(", "),
        if p.online_backup {
            "while running"
        } else if p.precopy && p.was_running {
            "a pre-copy while running, then what changed once stopped"
        } else {
            "while stopped"
        },
        p.run_dir.display(),
        crate::progress::human(p.backup_bytes_estimate as f64),
        crate::progress::human(p.free_bytes as f64)
    );
    if !p.encrypt_to.is_empty() {
        s += &format!(
            "  encrypt    to {} recipient(s) and a key of the run's own, removed when the run ends\n",
            p.encrypt_to.len()
        );
    }
    for (path, ex) in &p.excluded {
        for e in ex {
            s += &format!("  left out   {path}/{e} (another mount)\n");
        }
    }
    if let Some(d) = &p.config_dest {
        s += &format!(
            "  config     written to {} (0600) before start, removed after\n",
            d.display()
        );
    }
    s += &format!(
        "  watch      {}, success {}, failure {}, timeout {}s\n",
        p.settings.watch,
        patterns(&p.settings.success),
        patterns(&p.settings.failure),
        p.settings.timeout_s
    );
    for (group, what) in recreate::describe(&p.create, &p.connect) {
        s += &format!("  {group:<10} {what}\n");
    }
    for n in &p.not_carried {
        s += &format!("  NOT CARRIED {n}\n");
    }
    for u in &p.dependents {
        s += &format!("  USED BY    {u}: the upgrade refuses while it is\n");
    }
    for w in &p.warnings {
        s += &format!("  WARNING    {w}\n");
    }
    s
}

/// Log patterns for a human: quoted, "or" between them.
fn patterns(p: &[String]) -> String {
    if p.is_empty() {
        return "none".into();
    }
    let quoted: Vec<String> = p.iter().map(|x| format!("{x:?}")).collect();
    quoted.join(" or ")
}

/// Where a run stands.
#[derive(Debug, Serialize)]
pub struct Status {
    pub run_dir: PathBuf,
    pub container: String,
    pub old_image: String,
    pub new_image: String,
    pub outcome: Option<Outcome>,
    pub(crate) last_step: Option<(journal::Step, journal::Phase)>,
    /// The step berth was in when it stopped (a `begin` with nothing after).
    pub in_flight: Option<journal::Step>,
    /// What `berth resume` would do now (`status RUN_DIR` only, once the
    /// engine was looked at; the in-flight step is first brought to an end).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resume: Option<decide::Next>,
    /// What the engine showed (`status RUN_DIR` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<decide::Observed>,
    pub events: Vec<journal::Event>,
}

impl Status {
    pub fn render(&self) -> String {
        let state = match (self.outcome, self.last_step) {
            (Some(o), _) => o.to_string(),
            (None, Some((s, p))) => format!(
                "stopped at {s} ({p}): run `berth resume {}`",
                self.run_dir.display()
            ),
            (None, None) => "planned, nothing done".into(),
        };
        let mut out = format!(
            "{}  {}  {} -> {}  {}\n",
            self.run_dir.display(),
            self.container,
            self.old_image,
            self.new_image,
            state
        );
        if self.outcome.is_none() {
            if let Some(s) = self.in_flight {
                out += &format!("  in flight when berth stopped: {s} (its engine action is brought to an end first)\n");
            }
        }
        if let Some(n) = &self.resume {
            out += &format!("  berth resume will: {n}\n");
        }
        out
    }
}

pub fn status(run: &Path) -> Result<Status> {
    let p = load_plan(run)?;
    let events = journal::read(&run.join(journal::JOURNAL)).unwrap_or_default();
    Ok(Status {
        run_dir: run.to_owned(),
        container: p.container,
        old_image: p.old_image_ref,
        new_image: p.new_image_ref,
        outcome: events.iter().rev().find_map(|e| e.outcome),
        last_step: journal::last(&events),
        in_flight: journal::in_flight(&events),
        resume: None,
        engine: None,
        events,
    })
}

/// `status` of one run with what the engine shows now and what `resume`
/// would do (the decision, without bringing anything to an end: a step in
/// flight is settled by `resume` itself before it decides).
pub async fn status_now(d: &crate::docker::Docker, run: &Path) -> Result<Status> {
    let mut s = status(run)?;
    let p = load_plan(run)?;
    let seen = reconcile::observe(d, &p, &s.events).await?;
    s.resume = Some(decide::next(&decide::Facts::of(&s.events), &seen));
    s.engine = Some(seen);
    Ok(s)
}
