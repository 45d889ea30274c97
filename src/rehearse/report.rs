//! How a rehearsal ended: the verdict, its exit status (0 passed, 3 failed,
//! 1 could not be completed; 130 comes as an interrupted error), the durations, what differed from the real
//! upgrade, and the last lines of the rehearsal container's log.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::record::{Record, VERDICT};
use crate::error::Result;
use crate::exit::ExitStatus;
use crate::upgrade::watch::Verdict;
use crate::upgrade::NEW_LOG;

/// How many lines of the log the report and verdict.json keep.
pub(crate) const LAST_LINES: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// `--dry-run`: nothing was done.
    Planned,
    /// The new version said it upgraded the copy.
    Passed,
    /// It did not (a failure line, an exit, a crash loop, unhealthy, no word in time).
    Failed,
    /// Interrupted before a verdict; everything of it was removed.
    Incomplete,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Durations {
    /// Backup (or verifying --from-backup) and restore into the scratch volumes.
    pub copy_s: f64,
    /// From the start of the rehearsal container to the verdict.
    pub start_to_verdict_s: f64,
    pub total_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub container: String,
    pub old_image: String,
    pub new_image: String,
    pub outcome: Outcome,
    pub verdict: Option<Verdict>,
    /// The outcome's exit status (a number in JSON).
    pub exit_code: ExitStatus,
    pub run_dir: PathBuf,
    /// The backup the copy was made from.
    pub backup_dir: PathBuf,
    pub durations: Durations,
    /// What differed from the real upgrade.
    pub differences: Vec<String>,
    /// The rehearsal container's whole log.
    pub log: PathBuf,
    pub last_lines: Vec<String>,
    /// What `--keep` left for inspection.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// `--dry-run`: what would be made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Record>,
}

impl Report {
    pub(crate) fn new(r: &Record, verdict: Option<Verdict>, durations: Durations) -> Report {
        let outcome = match &verdict {
            Some(Verdict::Success(_)) => Outcome::Passed,
            Some(Verdict::Failure(_)) => Outcome::Failed,
            None => Outcome::Incomplete,
        };
        let log = r.run_dir().join(NEW_LOG);
        Report {
            container: r.plan.container.clone(),
            old_image: r.plan.old_image_ref.clone(),
            new_image: r.plan.new_image_ref.clone(),
            outcome,
            verdict,
            exit_code: exit_status(outcome),
            run_dir: r.run_dir().to_owned(),
            backup_dir: r.backup_dir(),
            durations,
            differences: r.differences.clone(),
            last_lines: last_lines(&log),
            log,
            kept: vec![],
            cause: None,
            plan: None,
        }
    }

    pub(crate) fn planned(r: Record) -> Report {
        let mut rep = Report::new(&r, None, Durations::default());
        rep.outcome = Outcome::Planned;
        rep.exit_code = exit_status(rep.outcome);
        rep.plan = Some(r);
        rep
    }

    /// verdict.json: the verdict (with the line that decided it) and the
    /// last lines of the log, beside the whole log.
    pub(crate) fn save_verdict(&self) -> Result<()> {
        let v = serde_json::json!({
            "outcome": self.outcome,
            "verdict": self.verdict,
            "last_lines": self.last_lines,
        });
        let bytes = serde_json::to_vec_pretty(&v).expect("serializable");
        crate::files::write_atomic(&self.run_dir.join(VERDICT), &bytes, 0o600)
    }

    pub fn render(&self) -> String {
        if let Some(r) = &self.plan {
            return render_planned(r);
        }
        let why = match &self.verdict {
            Some(Verdict::Success(w) | Verdict::Failure(w)) => w.clone(),
            None => self.cause.clone().unwrap_or_default(),
        };
        let word = match self.outcome {
            Outcome::Passed => "passed",
            Outcome::Failed => "FAILED",
            _ => "did not finish",
        };
        let mut s = format!(
            "rehearsal of {} {} -> {} {word}: {why}\n",
            self.container, self.old_image, self.new_image
        );
        s += &format!(
            "  {} ran throughout, untouched; copy {:.1}s, start to verdict {:.1}s\n",
            self.container, self.durations.copy_s, self.durations.start_to_verdict_s
        );
        if self.kept.is_empty() {
            s += "  removed: the rehearsal container, its scratch volumes and config directory\n";
        } else {
            s += &format!("  kept (--keep): {}\n", self.kept.join(", "));
        }
        for d in &self.differences {
            s += &format!("  unlike the upgrade: {d}\n");
        }
        if self.outcome == Outcome::Failed {
            s += &format!("  last lines of its log ({}):\n", self.log.display());
            for l in &self.last_lines {
                s += &format!("    {l}\n");
            }
        }
        s += &format!("  run directory: {}\n", self.run_dir.display());
        s
    }
}

/// Success (0) if it passed or was only planned; RolledBack (3) if the new
/// version failed on the copy (as after an upgrade that failed, the host is
/// as it was); Failed (1) if it ended without a verdict.
fn exit_status(outcome: Outcome) -> ExitStatus {
    match outcome {
        Outcome::Planned | Outcome::Passed => ExitStatus::Success,
        Outcome::Failed => ExitStatus::RolledBack,
        Outcome::Incomplete => ExitStatus::Failed,
    }
}

fn render_planned(r: &Record) -> String {
    let mut s = format!(
        "rehearsal plan for {} (nothing was changed): {} -> {}\n",
        r.plan.container, r.plan.old_image_ref, r.plan.new_image_ref
    );
    match &r.from_backup {
        Some(b) => {
            s += &format!(
                "  copy       from the backup {} (verified first)\n",
                b.display()
            )
        }
        None => {
            s += &format!(
                "  copy       online backup of {} into {}/backup\n",
                r.plan.paths.join(", "),
                r.run_dir().display()
            )
        }
    }
    for v in &r.scratch {
        let what = if v.restored {
            "restored, then compared"
        } else {
            "empty"
        };
        s += &format!("  scratch    {} at {} ({what})\n", v.volume, v.path);
    }
    s += &format!("  container  {} on {}\n", r.name, r.plan.new_image_ref);
    s += &format!(
        "  watch      {:?}, success {:?}, failure {:?}, timeout {}s\n",
        r.plan.settings.watch,
        r.plan.settings.success,
        r.plan.settings.failure,
        r.plan.settings.timeout_s
    );
    for d in &r.differences {
        s += &format!("  unlike the upgrade: {d}\n");
    }
    s
}

/// The last lines of a log file (none when it is missing).
fn last_lines(log: &Path) -> Vec<String> {
    let text = std::fs::read(log).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(LAST_LINES);
    lines[from..].iter().map(|l| l.to_string()).collect()
}
