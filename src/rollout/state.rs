//! The rollout directory `<backup-root>/rollout-<stamp>/`: rollout.json
//! (what was asked and where every node stands, rewritten atomically after
//! every change) and one directory per node holding that node's upgrade
//! run directory (`<node>/<container>-<stamp>-upgrade/`).

use std::fs::File;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::node::NodeSpec;
use crate::error::{Context, Error, Result};
use crate::exit::ExitStatus;
use crate::upgrade::journal::{self, Outcome};
use crate::upgrade::plan::{Plan, Request};
use crate::upgrade::{self, Summary};

pub const STATE: &str = "rollout.json";
const LOCK: &str = "rollout.lock";

/// Where one node stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeState {
    /// Not touched yet (or never: the rollout stopped before it).
    Pending,
    /// Its upgrade began; a resume goes on through its run directory.
    Running,
    Upgraded,
    /// Already on the new image when the rollout was planned: left alone.
    Current,
    /// Its upgrade failed and everything was put back and verified.
    RolledBack,
    /// Its upgrade failed before the new version ran; put back.
    Aborted,
    /// Its upgrade failed before it changed anything (or finished with a
    /// cleanup error); see `cause`.
    Failed,
    /// Its rollback did not complete: manual action needed (see `cause`).
    RollbackIncomplete,
    /// A signal stopped it and it was put back: a resume upgrades it again.
    Interrupted,
}

impl std::fmt::Display for NodeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

impl NodeState {
    /// Whether a resume leaves the node alone.
    pub(crate) fn is_final(self) -> bool {
        !matches!(
            self,
            NodeState::Pending | NodeState::Running | NodeState::Interrupted
        )
    }

    /// Whether the rollout may go on to the next node after this one
    /// (without --continue-on-failure).
    pub(crate) fn is_success(self) -> bool {
        matches!(self, NodeState::Upgraded | NodeState::Current)
    }

    pub fn label(self) -> &'static str {
        match self {
            NodeState::Pending => "not reached",
            NodeState::Running => "interrupted (resume)",
            NodeState::Upgraded => "upgraded",
            NodeState::Current => "already current",
            NodeState::RolledBack => "ROLLED BACK",
            NodeState::Aborted => "ABORTED (put back)",
            NodeState::Failed => "FAILED",
            NodeState::RollbackIncomplete => "ROLLBACK INCOMPLETE",
            NodeState::Interrupted => "interrupted (put back)",
        }
    }
}

/// One node of a rollout.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeRun {
    #[serde(flatten)]
    pub spec: NodeSpec,
    pub outcome: NodeState,
    pub old_image: String,
    pub new_image: String,
    /// The node's upgrade run directory (journal, plan, logs), once made.
    pub run_dir: Option<PathBuf>,
    pub backup_dir: Option<PathBuf>,
    /// Wall time of the node's upgrade (all attempts).
    pub seconds: f64,
    /// Why it did not end upgraded.
    pub cause: Option<String>,
    /// The plan (`--dry-run` only; never saved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
}

/// A whole rollout: rollout.json, and the `--json` document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rollout {
    /// The rollout directory (empty for a dry run: nothing is written).
    pub dir: PathBuf,
    pub created: String,
    pub image_file: PathBuf,
    pub(crate) image_sha256: String,
    /// The id the image loads as: a node whose container runs it is current.
    pub image_id: String,
    pub continue_on_failure: bool,
    /// Every node went through, or the rollout stopped after a failure;
    /// false while running or after a kill or a signal.
    pub finished: bool,
    /// Stopped by a signal between nodes (a resume goes on).
    #[serde(default)]
    pub interrupted: bool,
    pub nodes: Vec<NodeRun>,
    /// The upgrade flags every node runs with (its container and backup
    /// root are set per node).
    pub request: Request,
}

impl Rollout {
    pub fn save(&self) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self).expect("serializable");
        crate::files::write_atomic(&self.dir.join(STATE), &bytes, 0o600)
            .ctx("saving the rollout state")
    }

    pub fn load(dir: &Path) -> Result<Rollout> {
        let p = dir.join(STATE);
        let bytes = std::fs::read(&p).map_err(|e| {
            Error::usage(format!("{}: not a rollout directory ({e})", dir.display()))
        })?;
        let mut r: Rollout = serde_json::from_slice(&bytes)
            .map_err(|e| Error::integrity(format!("{}: {e}", p.display())))?;
        // Moved or reached through another path: trust where it is now.
        r.dir = std::path::absolute(dir).unwrap_or(dir.to_owned());
        Ok(r)
    }

    /// The directory a node's upgrade run directories go under.
    pub(crate) fn node_root(&self, i: usize) -> PathBuf {
        self.dir.join(&self.nodes[i].spec.name)
    }

    /// The request for one node.
    pub(crate) fn request_for(&self, i: usize) -> Request {
        Request {
            container: self.nodes[i].spec.container.clone(),
            backup_root: self.node_root(i),
            ..self.request.clone()
        }
    }

    /// RollbackIncomplete (4) if a rollback is incomplete; else Interrupted
    /// (130) if a signal stopped the rollout; else RolledBack (3) if a node
    /// was rolled back; else Failed (1) if one failed; else Success (every
    /// node reached is upgraded or was already current).
    pub fn exit_status(&self) -> ExitStatus {
        let any = |s: &[NodeState]| self.nodes.iter().any(|n| s.contains(&n.outcome));
        if any(&[NodeState::RollbackIncomplete]) {
            ExitStatus::RollbackIncomplete
        } else if self.interrupted || any(&[NodeState::Interrupted]) {
            ExitStatus::Interrupted
        } else if any(&[NodeState::RolledBack]) {
            ExitStatus::RolledBack
        } else if any(&[NodeState::Aborted, NodeState::Failed]) {
            ExitStatus::Failed
        } else {
            ExitStatus::Success
        }
    }
}

impl NodeRun {
    pub fn new(spec: NodeSpec) -> NodeRun {
        NodeRun {
            spec,
            outcome: NodeState::Pending,
            old_image: String::new(),
            new_image: String::new(),
            run_dir: None,
            backup_dir: None,
            seconds: 0.0,
            cause: None,
            plan: None,
        }
    }

    /// Take what an upgrade run ended with.
    pub fn record(&mut self, s: &Summary) {
        self.outcome = match s.outcome {
            Some(Outcome::Upgraded) | None => NodeState::Upgraded,
            Some(Outcome::RolledBack) => NodeState::RolledBack,
            Some(Outcome::Aborted) => NodeState::Aborted,
        };
        self.old_image = s.old_image.clone();
        self.new_image = s.new_image.clone();
        self.run_dir = Some(s.run_dir.clone());
        self.backup_dir = Some(s.backup_dir.clone());
        self.cause = s.cause.clone();
    }
}

/// `<root>/rollout-<stamp>`, created exclusively (0700), with a counter
/// when another rollout took that second.
pub fn create_dir(root: &Path, stamp: &str) -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    crate::files::create_private_dir(root)?;
    let root = std::path::absolute(root).unwrap_or(root.to_owned());
    for n in 0.. {
        let dir = root.join(if n == 0 {
            format!("rollout-{stamp}")
        } else {
            format!("rollout-{stamp}-{n}")
        });
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).ctx(format!("creating {}", dir.display())),
        }
    }
    unreachable!("an unused name")
}

/// One berth per rollout directory; the kernel drops the lock when berth
/// dies, so a killed rollout never blocks its resume.
pub struct DirLock {
    _file: File,
}

pub fn lock(dir: &Path) -> Result<DirLock> {
    let path = dir.join(LOCK);
    let file = crate::files::try_lock(&path, || {
        format!(
            "another berth is running the rollout {}: wait for it to finish",
            dir.display()
        )
    })?;
    Ok(DirLock { _file: file })
}

/// A node's upgrade run directories, oldest first (their names carry a
/// UTC stamp).
fn runs(node_root: &Path) -> Vec<PathBuf> {
    let mut runs: Vec<PathBuf> = std::fs::read_dir(node_root)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.join(upgrade::PLAN).is_file())
                .collect()
        })
        .unwrap_or_default();
    runs.sort();
    runs
}

/// The node's last upgrade run, ended or not.
pub(crate) fn latest_run(node_root: &Path) -> Option<PathBuf> {
    runs(node_root).pop()
}

/// The upgrade run under a node's directory that has not ended (killed
/// mid-way): a resume finishes it or rolls it back through its journal.
pub(crate) fn unfinished_run(node_root: &Path) -> Option<PathBuf> {
    runs(node_root).into_iter().rev().find(|run| {
        journal::read(&run.join(journal::JOURNAL))
            .map(|events| events.iter().all(|e| e.outcome.is_none()))
            // No journal yet: planned, nothing done; resume handles it.
            .unwrap_or(true)
    })
}
