//! rehearsal.json: everything a rehearsal run sets up, written before the
//! first thing is made, so that `berth resume` and `berth status` find it
//! all again after a kill. Everything on the engine also carries the run's
//! labels (`berth.helper=rehearsal`, `berth.run=<run id>`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::docker::model::ContainerInspect;
use crate::error::{Context, Error, Result};
use crate::upgrade::plan::Plan;

pub(crate) const RECORD: &str = "rehearsal.json";
/// The verdict and the last lines of the rehearsal container's log.
pub(crate) const VERDICT: &str = "verdict.json";
/// The private directory the config file is written into.
pub(crate) const CONFIG_DIR: &str = "config";

/// The value of `berth.helper` on the rehearsal's containers and volumes.
pub(crate) const ROLE: &str = "rehearsal";
pub(crate) const RUN_LABEL: &str = "berth.run";

/// One data path of the container and the scratch volume in its place.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Scratch {
    pub path: String,
    pub volume: String,
    /// Whether the backup holds this path (else the volume stays empty).
    pub restored: bool,
}

/// Where the config file goes: a private directory of the run directory,
/// bound at `target` (the directory that holds the config path).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConfigPlace {
    pub host_dir: PathBuf,
    pub file_name: String,
    pub target: String,
}

/// The container's state when the copy was taken: `--rehearse-first`
/// reuses the copy only if the container has not run since.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Clock {
    pub running: bool,
    pub started_at: String,
    pub finished_at: String,
}

impl Clock {
    pub(crate) fn of(inspect: &ContainerInspect) -> Clock {
        let s = &inspect.state;
        Clock {
            running: s.running,
            started_at: s.started_at.clone(),
            finished_at: s.finished_at.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// The upgrade's plan, with this rehearsal's run directory.
    pub plan: Plan,
    /// The run directory's name: the `berth.run` label's value.
    pub run_id: String,
    /// The rehearsal container's name.
    pub name: String,
    /// The never-started container the copy is restored through.
    pub holder: String,
    pub scratch: Vec<Scratch>,
    pub config: Option<ConfigPlace>,
    /// `--rehearse-network`; None: no network at all.
    pub network: Option<String>,
    /// `--from-backup`, else the run directory's own backup.
    pub from_backup: Option<PathBuf>,
    pub keep: bool,
    pub at_copy: Clock,
    /// What differs from the real upgrade (also in --json).
    pub differences: Vec<String>,
}

impl Record {
    pub(crate) fn run_dir(&self) -> &Path {
        &self.plan.run_dir
    }

    /// The backup the scratch volumes are restored from.
    pub(crate) fn backup_dir(&self) -> PathBuf {
        self.from_backup
            .clone()
            .unwrap_or_else(|| self.run_dir().join(crate::upgrade::BACKUP))
    }

    /// The labels of everything this run makes on the engine.
    pub(crate) fn labels(&self) -> Value {
        json!({
            "berth.helper": ROLE,
            "berth.container": self.plan.container,
            RUN_LABEL: self.run_id,
        })
    }

    /// The engine filter that finds them.
    pub(crate) fn filter(&self) -> Value {
        json!({ "label": [format!("{RUN_LABEL}={}", self.run_id)] })
    }

    /// Create the run directory (it must not exist yet) and write the record.
    pub(crate) fn save(&self) -> Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        if let Some(root) = self.run_dir().parent() {
            crate::files::create_private_dir(root)?;
        }
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(self.run_dir())
            .ctx(format!(
                "creating the run directory {}",
                self.run_dir().display()
            ))?;
        let bytes = serde_json::to_vec_pretty(self).expect("serializable");
        crate::files::write_atomic(&self.run_dir().join(RECORD), &bytes, 0o600)
            .ctx("saving the rehearsal's record")
    }

    pub(crate) fn load(run: &Path) -> Result<Record> {
        let p = run.join(RECORD);
        let bytes = std::fs::read(&p).map_err(|e| {
            Error::usage(format!(
                "{}: not a rehearsal run directory ({e})",
                run.display()
            ))
        })?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::integrity(format!("{}: {e}", p.display())))
    }
}

/// Whether `dir` is a rehearsal's run directory.
pub fn is_rehearsal_dir(dir: &Path) -> bool {
    dir.join(RECORD).is_file()
}
