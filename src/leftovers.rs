//! What berth has left behind, on disk and on the engine: backup and upgrade
//! run directories under the backup roots, rollback tags, old containers
//! kept aside, helper containers and volumes. `berth status` (no DIR) lists
//! it; `berth prune` decides from it what can go.
//!
//! Read-only: nothing here changes the engine or the disk (the container
//! locks it tries are released at once).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{json, Value};

use crate::docker::model::ContainerSummary;
use crate::docker::Docker;
use crate::error::Result;
use crate::manifest::{Manifest, MANIFEST};
use crate::upgrade::journal::{self, Outcome, Phase, Step};
use crate::upgrade::plan::Plan;
use crate::upgrade::{self, BACKUP, PLAN};

/// Containers renamed aside by an upgrade are named `<name>` + this + stamp.
const ASIDE_MARK: &str = "-berth-old-";
/// Rollback tags are `<repo>:` + this + stamp.
const TAG_MARK: &str = ":berth-rollback-";
/// Label on every helper container (and volume) berth creates.
const HELPER_LABEL: &str = "berth.helper";
/// A key for what belongs to no container berth can name.
pub(crate) const NO_CONTAINER: &str = "(unknown container)";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DirKind {
    /// `berth backup` output: a valid manifest.json.
    Backup,
    /// `berth upgrade` run directory: a valid plan.json.
    Run,
    /// A backup still being written, or left by a killed berth.
    Partial,
    /// A `berth rollout` directory (its node runs are inside).
    Rollout,
    /// A `berth rehearse` run directory: a valid rehearsal.json.
    Rehearsal,
    /// Not identifiable as berth's.
    Unknown,
}

/// Where an upgrade run stands, from its journal and the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunState {
    /// No outcome yet: killed or running. `resume` or `rollback` needs it.
    Unfinished,
    Upgraded,
    RolledBack,
    Aborted,
}

#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub state: RunState,
    /// The last step boundary the journal holds, for an unfinished run.
    pub(crate) last_step: Option<String>,
    pub keep_old: bool,
    pub container_id: String,
    pub rollback_tag: String,
    pub aside_name: String,
    /// The container the run created, as its journal recorded it.
    pub(crate) new_id: Option<String>,
    /// `berth rollback DIR` could still put the old container back: it
    /// was upgraded, its old container is still there, and the name is
    /// free or still held by the container this run made.
    pub rollback_possible: bool,
    /// A berth holds the container's lock right now.
    pub busy: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Dir {
    pub path: PathBuf,
    pub kind: DirKind,
    /// The container it belongs to ([`NO_CONTAINER`] when not known).
    pub container: String,
    /// When it was made (unix seconds): the manifest's `created`, the
    /// journal's first line, else the directory's mtime.
    pub created: i64,
    pub bytes: u64,
    /// The backup it holds (itself, or a run's `backup/`), when complete.
    pub backup: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<Run>,
    /// A `.partial` that a running berth is writing.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub owned: bool,
    /// Why it is not berth's (Unknown), or what it is (Rollout).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Tag {
    pub reference: String,
    pub image_id: String,
    pub(crate) image_bytes: u64,
    /// Every name of that image (this tag included).
    pub(crate) image_names: Vec<String>,
    pub container: String,
    /// The run directory whose plan made it, when one is under the roots.
    pub run: Option<PathBuf>,
    /// Containers (names) that run or hold that image.
    pub(crate) used_by: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Container {
    pub id: String,
    pub name: String,
    /// `aside` (an old container kept by an upgrade), `wipe` or `restore`
    /// (helpers).
    pub(crate) role: String,
    pub state: String,
    pub container: String,
    pub run: Option<PathBuf>,
    /// A live berth owns it (a helper) or may still need it (aside).
    pub owned: bool,
    pub(crate) note: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Volume {
    pub name: String,
    pub(crate) role: String,
}

/// Everything, grouped by the container it belongs to.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Group {
    pub dirs: Vec<Dir>,
    pub tags: Vec<Tag>,
    pub containers: Vec<Container>,
    pub volumes: Vec<Volume>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Inventory {
    pub roots: Vec<PathBuf>,
    pub socket: PathBuf,
    pub by_container: BTreeMap<String, Group>,
}

impl Inventory {
    pub fn dirs(&self) -> impl Iterator<Item = &Dir> {
        self.by_container.values().flat_map(|g| g.dirs.iter())
    }

    /// The run directory whose plan made `tag` or kept container `id` aside.
    fn runs(&self) -> impl Iterator<Item = (&Dir, &Run)> {
        self.dirs().filter_map(|d| Some((d, d.run.as_ref()?)))
    }
}

/// Look at every root and at the engine.
pub async fn inventory(d: &Docker, roots: &[PathBuf]) -> Result<Inventory> {
    let engine = Engine::read(d).await?;
    let mut inv = Inventory {
        roots: roots.iter().map(|r| absolute(r)).collect(),
        socket: d.socket().to_owned(),
        by_container: BTreeMap::new(),
    };
    for root in &inv.roots.clone() {
        for dir in scan_root(root, d.socket(), &engine) {
            inv.by_container
                .entry(dir.container.clone())
                .or_default()
                .dirs
                .push(dir);
        }
    }
    for g in inv.by_container.values_mut() {
        g.dirs.sort_by_key(|d| std::cmp::Reverse(d.created));
    }
    let tags = tags(&inv, &engine);
    let containers = containers(&inv, &engine, d.socket());
    for t in tags {
        inv.by_container
            .entry(t.container.clone())
            .or_default()
            .tags
            .push(t);
    }
    for c in containers {
        inv.by_container
            .entry(c.container.clone())
            .or_default()
            .containers
            .push(c);
    }
    for v in &engine.volumes {
        let (name, role) = (str_of(v, "/Name"), str_of(v, "/Labels/berth.helper"));
        let owner = str_of(v, "/Labels/berth.container");
        let key = if owner.is_empty() {
            NO_CONTAINER
        } else {
            owner
        };
        inv.by_container
            .entry(key.to_owned())
            .or_default()
            .volumes
            .push(Volume {
                name: name.to_owned(),
                role: role.to_owned(),
            });
    }
    Ok(inv)
}

/// What the engine holds, read once.
pub struct Engine {
    pub containers: Vec<ContainerSummary>,
    pub images: Vec<Value>,
    pub volumes: Vec<Value>,
}

impl Engine {
    pub async fn read(d: &Docker) -> Result<Engine> {
        let images = d.get_json("/images/json", "listing images").await?;
        Ok(Engine {
            containers: d.container_list(&json!({})).await?,
            images: images.as_array().cloned().unwrap_or_default(),
            volumes: d.volume_list(&json!({ "label": [HELPER_LABEL] })).await?,
        })
    }

    /// The container holding `name`, or with id `id`.
    fn by_name(&self, name: &str) -> Option<&ContainerSummary> {
        self.containers.iter().find(|c| c.name() == name)
    }

    fn by_id(&self, id: &str) -> Option<&ContainerSummary> {
        self.containers.iter().find(|c| c.id == id)
    }

    /// Names of the containers that use image `id`.
    pub(crate) fn users_of(&self, image_id: &str) -> Vec<String> {
        self.containers
            .iter()
            .filter(|c| c.image_id == image_id)
            .map(|c| c.name().to_owned())
            .collect()
    }
}

fn str_of<'a>(v: &'a Value, ptr: &str) -> &'a str {
    // Label keys hold dots, not slashes: pointers into them work as is.
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or(p.to_owned())
}

// ------------------------------------------------------------------ disk

/// Every directory directly under `root`, identified. A missing root is
/// an empty one.
fn scan_root(root: &Path, socket: &Path, engine: &Engine) -> Vec<Dir> {
    let Ok(rd) = std::fs::read_dir(root) else {
        return vec![];
    };
    let mut out: Vec<Dir> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir() && !p.is_symlink())
        .map(|p| identify(&p, socket, engine))
        .collect();
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

fn identify(path: &Path, socket: &Path, engine: &Engine) -> Dir {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut dir = Dir {
        path: path.to_owned(),
        kind: DirKind::Unknown,
        container: NO_CONTAINER.into(),
        created: mtime(path),
        bytes: du(path),
        backup: None,
        run: None,
        owned: false,
        note: None,
    };
    if let Some(base) = name.strip_suffix(".partial") {
        dir.kind = DirKind::Partial;
        dir.container = container_of_stamped(base).unwrap_or(NO_CONTAINER).into();
        dir.owned = flock_held(path);
    } else if crate::rehearse::record::is_rehearsal_dir(path) {
        rehearsal_dir(&mut dir, socket);
    } else if crate::rollout::is_rollout_dir(path) {
        dir.kind = DirKind::Rollout;
        dir.note = Some("a rollout directory: its node runs are inside it".into());
    } else if path.join(PLAN).exists() {
        match upgrade::load_plan(path) {
            Ok(p) => {
                dir.kind = DirKind::Run;
                dir.container = p.container.clone();
                let events = journal::read(&path.join(journal::JOURNAL)).unwrap_or_default();
                if let Some(t) = events.first().map(|e| e.t) {
                    dir.created = t;
                }
                let b = path.join(BACKUP);
                dir.backup = b.join(MANIFEST).is_file().then_some(b);
                dir.run = Some(run_of(&p, &events, socket, engine));
            }
            Err(e) => dir.note = Some(format!("{PLAN} is not a berth plan: {}", e.msg)),
        }
    } else if path.join(MANIFEST).exists() {
        match Manifest::load(path) {
            Ok(m) => {
                dir.kind = DirKind::Backup;
                dir.container = m.container.name.trim_start_matches('/').to_owned();
                dir.created = parse_rfc3339(&m.created).unwrap_or(dir.created);
                dir.backup = Some(path.to_owned());
            }
            Err(e) => dir.note = Some(format!("{MANIFEST} is not a berth manifest: {}", e.msg)),
        }
    } else {
        dir.note = Some(format!("neither {PLAN} nor {MANIFEST}: not berth's"));
    }
    dir
}

/// A rehearsal's run directory: owned (never pruned) while unfinished
/// (`berth resume` removes what it left) or while its berth runs.
fn rehearsal_dir(dir: &mut Dir, socket: &Path) {
    use crate::rehearse::record::Record;
    let Ok(r) = Record::load(&dir.path) else {
        dir.note = Some("rehearsal.json is not a berth record".into());
        return;
    };
    let events = journal::read(&dir.path.join(journal::JOURNAL)).unwrap_or_default();
    let ended = events
        .iter()
        .any(|e| e.step == Some(Step::Finish) && e.phase == Some(Phase::Done));
    dir.kind = DirKind::Rehearsal;
    dir.container = r.plan.container.clone();
    if let Some(t) = events.first().map(|e| e.t) {
        dir.created = t;
    }
    let busy = locked(socket, &r.plan.container_id);
    dir.owned = !ended || busy;
    dir.note = Some(match (ended, busy) {
        (_, true) => "a rehearsal a running berth is doing".into(),
        (true, false) => "rehearsal ended".into(),
        (false, false) => format!(
            "UNFINISHED rehearsal: run `berth resume {}`",
            dir.path.display()
        ),
    });
}

/// `<container>-<stamp>` or `<container>-<stamp>-<n>` -> `<container>`.
fn container_of_stamped(base: &str) -> Option<&str> {
    let is_stamp = |s: &str| {
        s.len() == 16
            && s.ends_with('Z')
            && s.as_bytes()[8] == b'T'
            && s[..8].bytes().all(|b| b.is_ascii_digit())
    };
    let mut parts: Vec<&str> = base.rsplitn(3, '-').collect();
    parts.reverse();
    match parts.as_slice() {
        [_, s, n] if is_stamp(s) && n.bytes().all(|b| b.is_ascii_digit()) => {
            base.strip_suffix(&format!("-{s}-{n}"))
        }
        [.., s] if is_stamp(s) => base.strip_suffix(&format!("-{s}")),
        _ => None,
    }
}

fn run_of(p: &Plan, events: &[journal::Event], socket: &Path, engine: &Engine) -> Run {
    let state = match events.iter().rev().find_map(|e| e.outcome) {
        None => RunState::Unfinished,
        Some(Outcome::Upgraded) => RunState::Upgraded,
        Some(Outcome::RolledBack) => RunState::RolledBack,
        Some(Outcome::Aborted) => RunState::Aborted,
    };
    let new_id = events
        .iter()
        .rev()
        .find(|e| e.step == Some(Step::CreateNew) && e.phase == Some(Phase::Done))
        .and_then(|e| e.data["id"].as_str().map(String::from));
    let holder = engine.by_name(&p.container).map(|c| c.id.as_str());
    let name_ok = holder.is_none() || holder == new_id.as_deref();
    Run {
        state,
        last_step: events
            .iter()
            .rev()
            .find_map(|e| Some(format!("{} ({})", e.step?, e.phase?))),
        keep_old: p.keep_old,
        container_id: p.container_id.clone(),
        rollback_tag: p.rollback_tag.clone(),
        aside_name: p.aside_name.clone(),
        rollback_possible: state == RunState::Upgraded
            && engine.by_id(&p.container_id).is_some()
            && name_ok,
        busy: locked(socket, &p.container_id) || locked(socket, &p.container),
        new_id,
    }
}

/// Whether a berth holds the lock of container `key` (id or name).
/// Looked up without taking it: a `berth status` must never make a berth
/// that starts at that moment find its container locked.
pub(crate) fn locked(socket: &Path, key: &str) -> bool {
    container_lock_paths(socket, key)
        .iter()
        .any(|p| flock_held(p))
}

/// Where `upgrade::journal::lock` keeps container `key`'s lock file (read
/// only: /run/berth, else $TMPDIR/berth).
fn container_lock_paths(socket: &Path, key: &str) -> Vec<PathBuf> {
    let name = crate::upgrade::journal::lock_file_name(socket, key);
    [
        PathBuf::from("/run/berth"),
        std::env::temp_dir().join("berth"),
    ]
    .iter()
    .map(|b| b.join(&name))
    .collect()
}

/// Whether some process holds a flock on `path`, read from /proc/locks
/// (`N: FLOCK ADVISORY WRITE PID MAJ:MIN:INODE 0 EOF`). Only the inode is
/// compared (overlay and bind mounts report devices differently): a lock
/// on another file system's same inode makes it look held, which errs on
/// the side of keeping. Unreadable /proc/locks: held.
pub(crate) fn flock_held(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(md) = std::fs::metadata(path) else {
        return false;
    };
    let Ok(locks) = std::fs::read_to_string("/proc/locks") else {
        return true;
    };
    let ino = md.ino().to_string();
    locks.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.get(1) == Some(&"FLOCK") && f.get(5).and_then(|d| d.rsplit(':').next()) == Some(&ino)
    })
}

/// Bytes of the files under `path` (symlinks not followed).
pub fn du(path: &Path) -> u64 {
    let Ok(md) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !md.is_dir() {
        return md.len();
    }
    std::fs::read_dir(path)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| du(&e.path())).sum())
        .unwrap_or(0)
}

fn mtime(path: &Path) -> i64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).map(|m| m.mtime()).unwrap_or(0)
}

/// `2026-11-23T21:05:09Z` (what berth writes) -> unix seconds.
fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[10] != b'T' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (h, mi, se) = (n(11..13)?, n(14..16)?, n(17..19)?);
    // Howard Hinnant's days_from_civil.
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + se)
}

// ---------------------------------------------------------------- engine

/// Every image reference berth made as a rollback tag.
fn tags(inv: &Inventory, engine: &Engine) -> Vec<Tag> {
    let mut out = vec![];
    for img in &engine.images {
        let names: Vec<String> = img["RepoTags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(String::from))
            .filter(|t| t != "<none>:<none>")
            .collect();
        let id = str_of(img, "/Id");
        for r in names.iter().filter(|t| t.contains(TAG_MARK)) {
            let made_by = inv.runs().find(|(_, run)| same_ref(&run.rollback_tag, r));
            let container = match made_by {
                Some((d, _)) => d.container.clone(),
                None => container_of_tag(r).unwrap_or(NO_CONTAINER).to_owned(),
            };
            out.push(Tag {
                reference: r.clone(),
                image_id: id.to_owned(),
                image_bytes: img["Size"].as_u64().unwrap_or(0),
                image_names: names.clone(),
                container,
                run: made_by.map(|(d, _)| d.path.clone()),
                used_by: engine.users_of(id),
            });
        }
    }
    out.sort_by(|a, b| a.reference.cmp(&b.reference));
    out
}

/// `berth-rollback/<name>:berth-rollback-...` (an image that had no
/// name) names its container; other repositories do not.
fn container_of_tag(r: &str) -> Option<&str> {
    unqualified(r)
        .strip_prefix("berth-rollback/")?
        .split(':')
        .next()
}

/// Podman lists a short name berth tagged (`repo:tag`) as `localhost/repo:tag`.
fn unqualified(r: &str) -> &str {
    r.strip_prefix("localhost/").unwrap_or(r)
}

fn same_ref(planned: &str, listed: &str) -> bool {
    unqualified(planned) == unqualified(listed)
}

/// Old containers kept aside, and helper containers.
fn containers(inv: &Inventory, engine: &Engine, socket: &Path) -> Vec<Container> {
    let mut out = vec![];
    for c in &engine.containers {
        let name = c.name();
        let id = c.id.as_str();
        let state = c.state.clone();
        let helper = c.labels.get("berth.helper").map_or("", String::as_str);
        let entry = |role: &str, container: &str, run: Option<PathBuf>, owned, note| Container {
            id: id.to_owned(),
            name: name.to_owned(),
            role: role.to_owned(),
            state: state.clone(),
            container: container.to_owned(),
            run,
            owned,
            note,
        };
        if helper == "wipe" || helper == "delta" {
            let pid = helper_pid(helper, name);
            let doing = if helper == "wipe" {
                "emptying a volume"
            } else {
                "finding what changed since a pre-copy"
            };
            // A wipe helper runs only while it works; a running delta
            // helper idles until its berth removes it, so only the pid
            // tells. A berth in another pid namespace has a pid we cannot
            // see: a running wipe helper counts as live whoever started it.
            let live = pid.is_some_and(pid_alive) || (helper == "wipe" && state == "running");
            let note = match pid {
                Some(p) if live => format!("{doing} for berth (pid {p})"),
                Some(p) => format!("left by a berth that is gone (pid {p})"),
                None => format!("a {helper} helper whose berth cannot be told"),
            };
            let owner = c
                .labels
                .get("berth.container")
                .map_or(NO_CONTAINER, String::as_str);
            // One whose pid cannot be read counts as owned: never remove on a doubt.
            out.push(entry(helper, owner, None, live || pid.is_none(), note));
        } else if helper == crate::rehearse::record::ROLE {
            let label = |k: &str| c.labels.get(k).map_or("", String::as_str);
            let owner = label("berth.container");
            let note = format!(
                "a rehearsal's container: `berth resume` of its run {} removes it",
                label("berth.run")
            );
            out.push(entry("rehearsal", owner, None, true, note));
        } else if helper == "restore" {
            let owner = name.split("-berth-restore-").next().unwrap_or(name);
            let live = locked(socket, owner);
            let note = if live {
                "a stand-in a running berth restores through".to_owned()
            } else {
                "a restore stand-in left by a berth that is gone".to_owned()
            };
            out.push(entry("restore", owner, None, live, note));
        } else if let Some((owner, _)) = name.split_once(ASIDE_MARK) {
            let run = inv
                .runs()
                .find(|(_, r)| r.aside_name == name || r.container_id == id);
            let (container, run_dir, needed, note) = match run {
                Some((d, r)) if r.state == RunState::Unfinished => (
                    d.container.clone(),
                    Some(d.path.clone()),
                    true,
                    "its upgrade is unfinished".to_owned(),
                ),
                Some((d, r)) if r.rollback_possible => (
                    d.container.clone(),
                    Some(d.path.clone()),
                    true,
                    format!(
                        "kept by --keep-old: `berth rollback {}` can use it",
                        d.path.display()
                    ),
                ),
                Some((d, _)) => (
                    d.container.clone(),
                    Some(d.path.clone()),
                    false,
                    "kept by --keep-old; a later upgrade replaced its successor".to_owned(),
                ),
                None => (
                    owner.to_owned(),
                    None,
                    true,
                    "no run directory under the roots names it".to_owned(),
                ),
            };
            out.push(entry("aside", &container, run_dir, needed, note));
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// `berth-<kind>-<pid>-<unix time>` (wipe and delta helpers) -> pid.
fn helper_pid(kind: &str, name: &str) -> Option<i32> {
    name.strip_prefix("berth-")?
        .strip_prefix(kind)?
        .strip_prefix('-')?
        .split('-')
        .next()?
        .parse()
        .ok()
}

/// Whether process `pid` exists on this host (a reused pid counts as
/// alive: that errs on the side of keeping).
fn pid_alive(pid: i32) -> bool {
    pid > 0 && Path::new(&format!("/proc/{pid}")).exists()
}

// ---------------------------------------------------------------- render

/// The text form of `berth status` without DIR.
pub fn render(inv: &Inventory) -> String {
    use crate::progress::human;
    let roots: Vec<String> = inv.roots.iter().map(|r| r.display().to_string()).collect();
    let mut s = format!(
        "berth leftovers under {} and on the engine at {}\n",
        roots.join(", "),
        inv.socket.display()
    );
    if inv.by_container.is_empty() {
        s += "nothing: no berth directory, rollback tag, kept-aside or helper container\n";
    }
    let mut total = 0;
    for (c, g) in &inv.by_container {
        s += &format!("\n{c}\n");
        for d in &g.dirs {
            total += d.bytes;
            s += &format!(
                "  {:<8} {}  {}  {}\n",
                kind_word(d.kind),
                d.path.display(),
                human(d.bytes as f64),
                dir_state(d)
            );
        }
        for t in &g.tags {
            let by = t
                .run
                .as_ref()
                .map(|r| format!("made by {}", r.display()))
                .unwrap_or_else(|| "no run directory under the roots made it".into());
            let used = match t.used_by.as_slice() {
                [] => String::new(),
                few @ [_, ..] if few.len() <= 3 => format!("; image used by {}", few.join(", ")),
                many => format!(
                    "; image used by {} and {} more",
                    many[..3].join(", "),
                    many.len() - 3
                ),
            };
            s += &format!(
                "  tag      {}  {}  {by}{used}\n",
                t.reference,
                human(t.image_bytes as f64)
            );
        }
        for k in &g.containers {
            s += &format!(
                "  {:<8} {} ({})  {}\n",
                if k.role == "aside" { "aside" } else { "helper" },
                k.name,
                k.state,
                k.note
            );
        }
        for v in &g.volumes {
            s += &format!("  volume   {} ({})\n", v.name, v.role);
        }
    }
    s += &format!("\ndirectories: {} in all\n", human(total as f64));
    s
}

pub(crate) fn kind_word(k: DirKind) -> &'static str {
    match k {
        DirKind::Backup => "backup",
        DirKind::Run => "run",
        DirKind::Partial => "partial",
        DirKind::Rollout => "rollout",
        DirKind::Rehearsal => "rehearsal",
        DirKind::Unknown => "other",
    }
}

fn dir_state(d: &Dir) -> String {
    if let Some(r) = &d.run {
        return match r.state {
            RunState::Unfinished => format!(
                "UNFINISHED at {}: run `berth resume {}`",
                r.last_step.as_deref().unwrap_or("its start"),
                d.path.display()
            ),
            RunState::Upgraded if r.rollback_possible => {
                "upgraded; old container kept aside (`berth rollback` can use it)".into()
            }
            RunState::Upgraded => "upgraded".into(),
            RunState::RolledBack => "rolled back".into(),
            RunState::Aborted => "aborted (nothing changed)".into(),
        };
    }
    match d.kind {
        DirKind::Partial if d.owned => "being written by a running berth".into(),
        DirKind::Partial => "incomplete, left by a berth that is gone".into(),
        DirKind::Backup => "complete".into(),
        _ => d.note.clone().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamped_names() {
        assert_eq!(container_of_stamped("lw-20261203T071326Z"), Some("lw"));
        assert_eq!(
            container_of_stamped("my-app-20261203T071326Z-2"),
            Some("my-app")
        );
        assert_eq!(container_of_stamped("lw-notastamp"), None);
        assert_eq!(container_of_stamped("20261203T071326Z"), None);
    }

    #[test]
    fn rfc3339_round_trip() {
        for t in [0, 951_782_400, 1_795_467_909] {
            assert_eq!(parse_rfc3339(&crate::clock::rfc3339(t)), Some(t));
        }
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn a_held_flock_is_seen_without_taking_it() {
        let dir = std::env::temp_dir().join(format!("berth-held-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(!flock_held(&dir));
        let held = crate::files::lock_dir(&dir).unwrap();
        assert!(flock_held(&dir));
        drop(held);
        assert!(!flock_held(&dir));
        std::fs::remove_dir(&dir).unwrap();
    }

    #[test]
    fn podman_qualifies_short_names() {
        assert!(same_ref(
            "a/b:berth-rollback-x",
            "localhost/a/b:berth-rollback-x"
        ));
        assert!(!same_ref("a/b:berth-rollback-x", "a/b:berth-rollback-y"));
        assert_eq!(
            container_of_tag("localhost/berth-rollback/lw:berth-rollback-x"),
            Some("lw")
        );
    }

    #[test]
    fn helper_pids() {
        assert_eq!(helper_pid("wipe", "berth-wipe-4242-1795467909"), Some(4242));
        assert_eq!(helper_pid("delta", "berth-delta-17-1795467909"), Some(17));
        assert_eq!(helper_pid("wipe", "berth-delta-17-1795467909"), None);
        assert_eq!(helper_pid("wipe", "lw-berth-restore-1"), None);
    }
}
