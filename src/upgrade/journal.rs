//! The upgrade journal: one JSON line per step boundary, fsynced before
//! berth goes on, so a berth killed at any point (kill -9, power loss) can
//! be resumed or rolled back from what the journal says.
//!
//! Test hook (debug builds only, never in the release binary): with
//! BERTH_TEST_KILL_AT=<step>:<begin|done>, berth kills itself with SIGKILL
//! right after writing that line (the tests kill berth at every boundary).

use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::clock;
use crate::error::{Context, Error, Result};

pub(crate) const JOURNAL: &str = "journal.jsonl";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    TagOld,
    /// The pre-copy: a full backup while the old version serves.
    PreCopy,
    Stop,
    Backup,
    Verify,
    Load,
    RenameOld,
    CreateNew,
    WriteConfig,
    StartNew,
    Watch,
    Finish,
    Rollback,
    RemoveNew,
    Restore,
    RenameBack,
    StartOld,
    RemoveConfig,
}

/// The step's journal name ("rename-old").
impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = serde_json::to_value(self).expect("serializable");
        f.write_str(v.as_str().unwrap_or("?"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Begin,
    Done,
    Failed,
}

/// "begun", "done", "failed": how far a step got, in words.
impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::Begin => "begun",
            Phase::Done => "done",
            Phase::Failed => "failed",
        })
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The new container runs; the upgrade is complete.
    Upgraded,
    /// The upgrade failed and everything was put back and verified.
    RolledBack,
    /// It failed before the new version ran; everything was put back.
    Aborted,
}

/// The outcome in words ("rolled back"); JSON and the journal keep the
/// kebab-case name ("rolled-back").
impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::Upgraded => "upgraded",
            Outcome::RolledBack => "rolled back",
            Outcome::Aborted => "aborted (put back)",
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    pub t: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<Step>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// What a step learned (a new container's id) or why it failed.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub data: Value,
}

pub struct Journal {
    path: PathBuf,
    file: File,
    pub events: Vec<Event>,
}

impl Journal {
    /// Open (or create) the journal of a run directory and read it.
    pub fn open(run: &Path) -> Result<Journal> {
        let path = run.join(JOURNAL);
        let events = if path.exists() { read(&path)? } else { vec![] };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .ctx(format!("opening {}", path.display()))?;
        Ok(Journal { path, file, events })
    }

    fn write(&mut self, e: Event) -> Result<()> {
        let mut line = serde_json::to_vec(&e).expect("serializable");
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|_| self.file.sync_data())
            .ctx(format!("writing the journal {}", self.path.display()))?;
        if let (Some(s), Some(p)) = (e.step, e.phase) {
            test_kill_hook(s, p);
        }
        self.events.push(e);
        Ok(())
    }

    pub fn record(&mut self, step: Step, phase: Phase, data: Value) -> Result<()> {
        self.write(Event {
            t: clock::now_unix(),
            step: Some(step),
            phase: Some(phase),
            outcome: None,
            data,
        })
    }

    pub fn finish(&mut self, outcome: Outcome, data: Value) -> Result<()> {
        self.write(Event {
            t: clock::now_unix(),
            step: None,
            phase: None,
            outcome: Some(outcome),
            data,
        })
    }

    pub fn has(&self, step: Step, phase: Phase) -> bool {
        self.events
            .iter()
            .any(|e| e.step == Some(step) && e.phase == Some(phase))
    }

    /// Data recorded with a step's `done`.
    pub fn data(&self, step: Step) -> Option<&Value> {
        self.events
            .iter()
            .rev()
            .find(|e| e.step == Some(step) && e.phase == Some(Phase::Done))
            .map(|e| &e.data)
    }

    pub fn outcome(&self) -> Option<Outcome> {
        self.events.iter().rev().find_map(|e| e.outcome)
    }

    /// The step berth was in when it stopped: a `begin` with nothing after
    /// it. Its engine action may still be running (see `reconcile`).
    pub fn in_flight(&self) -> Option<Step> {
        in_flight(&self.events)
    }
}

/// The last step boundary of a list of events.
pub(crate) fn last(events: &[Event]) -> Option<(Step, Phase)> {
    events.iter().rev().find_map(|e| Some((e.step?, e.phase?)))
}

/// The step whose `begin` is the last line (no outcome after it).
pub(crate) fn in_flight(events: &[Event]) -> Option<Step> {
    match events.last() {
        Some(Event {
            step: Some(s),
            phase: Some(Phase::Begin),
            outcome: None,
            ..
        }) => Some(*s),
        _ => None,
    }
}

/// Run one step: `begin` in the journal, the work, then `done` (with what
/// the step learned) or `failed` (with why). A failure names the step, so
/// every message that carries it says where the upgrade stopped.
pub(crate) async fn step<F>(j: &mut Journal, s: Step, work: F) -> Result<Value>
where
    F: Future<Output = Result<Value>>,
{
    j.record(s, Phase::Begin, Value::Null)?;
    match work.await {
        Ok(v) => {
            j.record(s, Phase::Done, v.clone())?;
            Ok(v)
        }
        Err(e) => {
            j.record(s, Phase::Failed, json!({ "error": e.msg }))?;
            Err(e.context(format!("step {s}")))
        }
    }
}

/// Read a journal; a torn last line (a crash in mid-write) is ignored.
pub fn read(path: &Path) -> Result<Vec<Event>> {
    let f = File::open(path).ctx(format!("reading {}", path.display()))?;
    let lines: Vec<String> = BufReader::new(f)
        .lines()
        .collect::<std::io::Result<_>>()
        .ctx(format!("reading {}", path.display()))?;
    let mut out = vec![];
    for (i, l) in lines.iter().enumerate() {
        match serde_json::from_str(l) {
            Ok(e) => out.push(e),
            Err(_) if i + 1 == lines.len() => {}
            Err(e) => {
                return Err(Error::integrity(format!(
                    "{} line {}: {e}",
                    path.display(),
                    i + 1
                )))
            }
        }
    }
    Ok(out)
}

#[cfg(not(debug_assertions))]
fn test_kill_hook(_: Step, _: Phase) {}

#[cfg(debug_assertions)]
fn test_kill_hook(step: Step, phase: Phase) {
    let Ok(want) = std::env::var("BERTH_TEST_KILL_AT") else {
        return;
    };
    let name = serde_json::to_value(step).ok();
    let ph = serde_json::to_value(phase).ok();
    let here = format!(
        "{}:{}",
        name.as_ref().and_then(Value::as_str).unwrap_or(""),
        ph.as_ref().and_then(Value::as_str).unwrap_or("")
    );
    if here == want {
        // SAFETY: kill(2) on our own pid; nothing else is touched.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

/// One berth per container per engine: an exclusive lock that the kernel
/// drops when berth dies (so a killed berth never blocks `resume`).
pub struct Lock {
    _file: File,
}

/// Lock a container by its id AND its name. The id stays the same while
/// the old container is renamed aside, and the name passes to the new
/// container: whichever of them a second berth is given, it meets a lock.
pub(crate) fn lock_container(socket: &Path, id: &str, name: &str) -> Result<(Lock, Lock)> {
    let by_name = lock(socket, name)?;
    let by_id = lock(socket, id).map_err(|_| {
        Error::failed(format!(
            "another berth is working on container {name} ({}): wait for it to finish",
            crate::docker::short_id(id)
        ))
    })?;
    Ok((by_name, by_id))
}

/// The name of container `key`'s lock file on the engine at `socket`, in
/// /run/berth (else $TMPDIR/berth): `berth status` reads the same names.
pub(crate) fn lock_file_name(socket: &Path, key: &str) -> String {
    let name: String = format!("{key}@{}", socket.display())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{name}.lock")
}

pub fn lock(socket: &Path, container: &str) -> Result<Lock> {
    let base = if Path::new("/run").is_dir() && is_writable("/run") {
        PathBuf::from("/run/berth")
    } else {
        std::env::temp_dir().join("berth")
    };
    std::fs::create_dir_all(&base).ctx(format!("creating {}", base.display()))?;
    let path = base.join(lock_file_name(socket, container));
    let file = crate::files::try_lock(&path, || {
        format!(
            "another berth is working on container {container} (lock {}): wait for it to finish",
            path.display()
        )
    })?;
    Ok(Lock { _file: file })
}

fn is_writable(p: &str) -> bool {
    let c = std::ffi::CString::new(p).expect("no NUL");
    // SAFETY: access(2) with a valid C string.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}
