//! `berth prune ROOT --keep-last N [--keep-within AGE]`: retention for what
//! berth leaves. Per container it keeps the newest N backup and finished
//! run directories (and those younger than AGE), and removes the older
//! ones with the rollback tags and kept-aside containers of those runs;
//! it also removes stale `.partial` directories and helper containers no
//! live berth owns.
//!
//! What it never removes, whatever N says: the newest backup of a
//! container that verifies; a run that is unfinished, that a berth is
//! working on, or that `berth rollback` could still use; a `.partial` a
//! running berth holds locked; anything without a valid berth manifest or
//! plan; a tag that is the last name of an image a container uses.
//!
//! [`decide`] is the whole policy, a pure function of the inventory;
//! [`apply`] carries it out, re-checking each run under its container lock.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::docker::Docker;
use crate::error::{Error, Result};
use crate::leftovers::{self, kind_word, Container, Dir, DirKind, Inventory, RunState, Tag};
use crate::upgrade::journal;

pub struct Options {
    pub root: PathBuf,
    pub keep_last: usize,
    /// Keep what is younger than this many seconds.
    pub keep_within: Option<i64>,
    pub dry_run: bool,
}

/// One thing to remove.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Removal {
    /// A backup, run or stale `.partial` directory.
    Dir {
        path: PathBuf,
        what: DirKind,
        bytes: u64,
        /// For a run: its container's name and id, locked while removing.
        #[serde(skip_serializing_if = "Option::is_none")]
        lock: Option<(String, String)>,
    },
    /// A rollback tag; `image_bytes` when it is the image's last name.
    Tag {
        reference: String,
        image_id: String,
        image_bytes: u64,
    },
    /// A kept-aside old container, or a helper.
    Container {
        id: String,
        name: String,
        role: String,
    },
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Item {
    pub container: String,
    #[serde(flatten)]
    pub removal: Removal,
    /// For a tag or container: the run directory it goes with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub with: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Kept {
    pub container: String,
    pub what: String,
    pub target: String,
    pub why: String,
}

/// What removing `items` (in order) and keeping `kept` means.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Decision {
    pub(crate) items: Vec<Item>,
    pub kept: Vec<Kept>,
}

#[derive(Debug, Serialize)]
pub struct Failure {
    pub target: String,
    pub error: String,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub root: PathBuf,
    pub dry_run: bool,
    /// Removed (or, with --dry-run, to be removed).
    pub removed: Vec<Item>,
    pub kept: Vec<Kept>,
    pub failed: Vec<Failure>,
    /// Bytes of the directories removed and of the images that went with
    /// their last name (an image's layers shared with others stay).
    pub freed_bytes: u64,
}

/// `--keep-within`: 90s, 45m, 12h, 30d, 2w (a bare number is seconds).
pub fn parse_age(s: &str) -> Result<i64> {
    let t = s.trim();
    let (num, unit) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], c),
        _ => (t, 's'),
    };
    let mul = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        _ => 0,
    };
    match num.trim().parse::<i64>() {
        Ok(n) if mul > 0 && n >= 0 => Ok(n * mul),
        _ => Err(Error::usage(format!(
            "--keep-within {s:?}: give an age such as 12h, 30d or 2w"
        ))),
    }
}

/// Look, decide, and (unless --dry-run) remove.
pub async fn prune(d: &Docker, o: &Options) -> Result<Report> {
    if !o.root.is_dir() {
        return Err(Error::usage(format!(
            "{}: not a directory (give the backup root berth wrote to)",
            o.root.display()
        )));
    }
    let inv = leftovers::inventory(d, std::slice::from_ref(&o.root)).await?;
    let now = crate::clock::now_unix();
    let (keep_last, keep_within) = (o.keep_last, o.keep_within);
    let decision = tokio::task::spawn_blocking(move || {
        let verified = |p: &Path| crate::archive::verify::verify(p, false).is_ok();
        decide(&inv, keep_last, keep_within, now, &verified)
    })
    .await
    .map_err(|e| Error::failed(format!("prune thread failed: {e}")))?;
    if o.dry_run {
        let freed = decision.items.iter().map(bytes_of).sum();
        return Ok(Report {
            root: o.root.clone(),
            dry_run: true,
            removed: decision.items,
            kept: decision.kept,
            failed: vec![],
            freed_bytes: freed,
        });
    }
    Ok(apply(d, o, decision).await)
}

fn bytes_of(i: &Item) -> u64 {
    match &i.removal {
        Removal::Dir { bytes, .. } => *bytes,
        Removal::Tag { image_bytes, .. } => *image_bytes,
        Removal::Container { .. } => 0,
    }
}

// ---------------------------------------------------------------- policy

/// The policy. `verified(dir)` says whether a backup directory verifies
/// (checksums and manifest); it is asked newest first, per container, until
/// one does.
pub(crate) fn decide(
    inv: &Inventory,
    keep_last: usize,
    keep_within: Option<i64>,
    now: i64,
    verified: &dyn Fn(&Path) -> bool,
) -> Decision {
    let mut out = Decision::default();
    for (c, g) in &inv.by_container {
        let pruned_runs = decide_dirs(&mut out, c, &g.dirs, keep_last, keep_within, now, verified);
        decide_containers(&mut out, c, &g.containers, &pruned_runs);
    }
    // Tags last: whether a tag may go depends on which containers go.
    let leaving: BTreeSet<String> = out
        .items
        .iter()
        .filter_map(|i| match &i.removal {
            Removal::Container { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect();
    let pruned: BTreeSet<PathBuf> = out.items.iter().filter_map(run_path).collect();
    let mut names_left: BTreeMap<String, usize> = BTreeMap::new();
    for (c, g) in &inv.by_container {
        for t in &g.tags {
            let left = names_left
                .entry(t.image_id.clone())
                .or_insert(t.image_names.len());
            decide_tag(&mut out, c, t, &pruned, &leaving, left);
        }
    }
    out
}

/// The run directory a dir removal is, if it is one of a run.
fn run_path(i: &Item) -> Option<PathBuf> {
    match &i.removal {
        Removal::Dir {
            path,
            what: DirKind::Run,
            ..
        } => Some(path.clone()),
        _ => None,
    }
}

/// Backup and run directories (newest first), partials, the rest. Returns
/// the runs it removes.
fn decide_dirs(
    out: &mut Decision,
    c: &str,
    dirs: &[Dir],
    keep_last: usize,
    keep_within: Option<i64>,
    now: i64,
    verified: &dyn Fn(&Path) -> bool,
) -> BTreeSet<PathBuf> {
    let kept_items: Vec<&Dir> = dirs
        .iter()
        .filter(|d| matches!(d.kind, DirKind::Backup | DirKind::Run))
        .collect();
    let newest_good = kept_items
        .iter()
        .find(|d| d.backup.as_deref().is_some_and(verified))
        .map(|d| d.path.clone());
    let mut pruned = BTreeSet::new();
    for (i, d) in kept_items.iter().enumerate() {
        let why = keep_reason(d, newest_good.as_deref(), i, keep_last, keep_within, now);
        match why {
            Some(why) => out.kept.push(kept_dir(c, d, why)),
            None => {
                if d.kind == DirKind::Run {
                    pruned.insert(d.path.clone());
                }
                out.items.push(dir_item(c, d));
            }
        }
    }
    for d in dirs
        .iter()
        .filter(|d| !matches!(d.kind, DirKind::Backup | DirKind::Run))
    {
        match d.kind {
            DirKind::Partial if !d.owned => out.items.push(dir_item(c, d)),
            DirKind::Partial => out.kept.push(kept_dir(
                c,
                d,
                "a running berth is writing it (it holds its lock)".into(),
            )),
            // An ended rehearsal's copy was taken while the app ran: not a
            // restore point, so it goes whatever --keep-last says.
            DirKind::Rehearsal if !d.owned => out.items.push(dir_item(c, d)),
            _ => out.kept.push(kept_dir(
                c,
                d,
                d.note.clone().unwrap_or_else(|| "not berth's".into()),
            )),
        }
    }
    pruned
}

fn keep_reason(
    d: &Dir,
    newest_good: Option<&Path>,
    i: usize,
    keep_last: usize,
    keep_within: Option<i64>,
    now: i64,
) -> Option<String> {
    if let Some(r) = &d.run {
        if r.state == RunState::Unfinished {
            return Some(format!(
                "its upgrade is unfinished: `berth resume {}` (or `berth rollback`) first",
                d.path.display()
            ));
        }
        if r.rollback_possible {
            return Some(format!(
                "`berth rollback {}` can still use it (the old container is kept aside)",
                d.path.display()
            ));
        }
        if r.busy {
            return Some("a berth is working on its container".into());
        }
    }
    if newest_good == Some(d.path.as_path()) {
        return Some("the newest backup of this container that verifies".into());
    }
    if i < keep_last {
        return Some(format!("one of the newest {keep_last} (--keep-last)"));
    }
    if keep_within.is_some_and(|age| now - d.created < age) {
        return Some("younger than --keep-within".into());
    }
    None
}

fn dir_item(c: &str, d: &Dir) -> Item {
    Item {
        container: c.to_owned(),
        removal: Removal::Dir {
            path: d.path.clone(),
            what: d.kind,
            bytes: d.bytes,
            lock: d
                .run
                .as_ref()
                .map(|r| (c.to_owned(), r.container_id.clone())),
        },
        with: None,
    }
}

fn kept_dir(c: &str, d: &Dir, why: String) -> Kept {
    Kept {
        container: c.to_owned(),
        what: kind_word(d.kind).into(),
        target: d.path.display().to_string(),
        why,
    }
}

/// Aside containers go with their pruned run; helpers when no live berth
/// owns them.
fn decide_containers(
    out: &mut Decision,
    c: &str,
    containers: &[Container],
    pruned: &BTreeSet<PathBuf>,
) {
    for k in containers {
        let run_pruned = k.run.as_ref().is_some_and(|r| pruned.contains(r));
        let go = match k.role.as_str() {
            "aside" => run_pruned && !k.owned,
            _ => !k.owned,
        };
        if go {
            out.items.push(Item {
                container: c.to_owned(),
                removal: Removal::Container {
                    id: k.id.clone(),
                    name: k.name.clone(),
                    role: k.role.clone(),
                },
                with: k.run.clone().filter(|_| run_pruned),
            });
        } else {
            let why = match (&k.run, k.role.as_str()) {
                (_, "aside") if k.owned => k.note.clone(),
                (Some(r), "aside") => format!("its run {} is kept", r.display()),
                _ => k.note.clone(),
            };
            out.kept.push(Kept {
                container: c.to_owned(),
                what: if k.role == "aside" { "aside" } else { "helper" }.into(),
                target: k.name.clone(),
                why,
            });
        }
    }
}

/// A tag goes with its pruned run, unless it is the last name of an image
/// a container (that stays) uses. `names_left` counts the image's names
/// not yet removed.
fn decide_tag(
    out: &mut Decision,
    c: &str,
    t: &Tag,
    pruned: &BTreeSet<PathBuf>,
    leaving: &BTreeSet<String>,
    names_left: &mut usize,
) {
    let users: Vec<&String> = t.used_by.iter().filter(|u| !leaving.contains(*u)).collect();
    let why = match &t.run {
        None => Some("no run directory under ROOT made it (another root may need it)".into()),
        Some(r) if !pruned.contains(r) => Some(format!("its run {} is kept", r.display())),
        Some(_) if *names_left <= 1 && !users.is_empty() => Some(format!(
            "the last name of an image that {} uses",
            users
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Some(_) => None,
    };
    match why {
        Some(why) => out.kept.push(Kept {
            container: c.to_owned(),
            what: "tag".into(),
            target: t.reference.clone(),
            why,
        }),
        None => {
            let last = *names_left <= 1;
            *names_left -= 1;
            out.items.push(Item {
                container: c.to_owned(),
                removal: Removal::Tag {
                    reference: t.reference.clone(),
                    image_id: t.image_id.clone(),
                    image_bytes: if last { t.image_bytes } else { 0 },
                },
                with: t.run.clone(),
            });
        }
    }
}

// ----------------------------------------------------------------- apply

/// Remove, in an order that never leaves a tag or container without the
/// run that names it: helpers; then per pruned run its aside container,
/// its tag and last its directory (a failure on the engine keeps the
/// directory, so the next prune tries again); then backups and partials.
async fn apply(d: &Docker, o: &Options, decision: Decision) -> Report {
    let mut r = Report {
        root: o.root.clone(),
        dry_run: false,
        removed: vec![],
        kept: decision.kept,
        failed: vec![],
        freed_bytes: 0,
    };
    let (engine_items, dir_items): (Vec<Item>, Vec<Item>) = decision
        .items
        .into_iter()
        .partition(|i| !matches!(i.removal, Removal::Dir { .. }));
    let mut failed_runs: BTreeSet<PathBuf> = BTreeSet::new();
    for i in engine_items {
        match remove_on_engine(d, &i).await {
            Ok(freed) => {
                r.freed_bytes += freed;
                r.removed.push(i);
            }
            Err(e) => {
                failed_runs.extend(i.with.clone());
                r.failed.push(failure(&i, e));
            }
        }
    }
    for i in dir_items {
        let Removal::Dir {
            path, bytes, lock, ..
        } = &i.removal
        else {
            continue;
        };
        if failed_runs.contains(path) {
            r.kept.push(Kept {
                container: i.container.clone(),
                what: "run".into(),
                target: path.display().to_string(),
                why: "removing its tag or old container failed (see failed)".into(),
            });
            continue;
        }
        match remove_dir(d.socket(), path, lock.as_ref()) {
            Ok(true) => {
                r.freed_bytes += bytes;
                r.removed.push(i);
            }
            Ok(false) => r.kept.push(Kept {
                container: i.container.clone(),
                what: "dir".into(),
                target: path.display().to_string(),
                why: "a berth took it up while prune ran".into(),
            }),
            Err(e) => r.failed.push(failure(&i, e)),
        }
    }
    r
}

fn failure(i: &Item, e: Error) -> Failure {
    Failure {
        target: target_of(&i.removal),
        error: e.msg,
    }
}

pub(crate) fn target_of(r: &Removal) -> String {
    match r {
        Removal::Dir { path, .. } => path.display().to_string(),
        Removal::Tag { reference, .. } => reference.clone(),
        Removal::Container { name, .. } => name.clone(),
    }
}

/// Returns the bytes freed (an image gone with its last name).
async fn remove_on_engine(d: &Docker, i: &Item) -> Result<u64> {
    match &i.removal {
        Removal::Container { id, role, .. } => {
            // Never the volumes: an aside container's are the data the new
            // container runs on. A helper is forced (it may be stuck
            // running); an aside container is not (a running one stays).
            let force = role != "aside";
            match d.container_remove(id, force, false).await {
                Err(e) if !e.is_not_found() => Err(e),
                _ => Ok(0),
            }
        }
        Removal::Tag {
            reference,
            image_id,
            image_bytes,
        } => {
            // Not forced: the engine refuses to drop an image in use.
            match d.image_remove(reference, false).await {
                Err(e) if !e.is_not_found() => return Err(e),
                _ => {}
            }
            let gone = matches!(d.image_inspect(image_id).await, Err(e) if e.is_not_found());
            Ok(if gone { *image_bytes } else { 0 })
        }
        Removal::Dir { .. } => Ok(0),
    }
}

/// Remove a directory. A run's is removed under its container's locks
/// and only if it is still finished; a partial only while prune holds its
/// lock. Ok(false): someone took it up meanwhile, it stays.
fn remove_dir(socket: &Path, path: &Path, lock: Option<&(String, String)>) -> Result<bool> {
    let _locks = match lock {
        Some((name, id)) => match journal::lock_container(socket, id, name) {
            Ok(l) => Some(l),
            Err(_) => return Ok(false),
        },
        None => None,
    };
    if lock.is_some() {
        let events = journal::read(&path.join(journal::JOURNAL)).unwrap_or_default();
        if events.iter().all(|e| e.outcome.is_none()) {
            return Ok(false);
        }
    }
    let _partial = if path.extension().is_some_and(|e| e == "partial") {
        match crate::files::try_lock_dir(path)? {
            Some(f) => Some(f),
            None => return Ok(false),
        }
    } else {
        None
    };
    std::fs::remove_dir_all(path)
        .map_err(|e| Error::failed(format!("removing {}: {e}", path.display())))?;
    Ok(true)
}

// ---------------------------------------------------------------- render

/// The text form.
pub fn render(r: &Report) -> String {
    use crate::progress::human;
    let verb = if r.dry_run { "would remove" } else { "removed" };
    let mut s = String::new();
    for i in &r.removed {
        let (what, size) = match &i.removal {
            Removal::Dir { what, bytes, .. } => (kind_word(*what), human(*bytes as f64)),
            Removal::Tag { image_bytes, .. } if *image_bytes > 0 => {
                ("tag", format!("image {}", human(*image_bytes as f64)))
            }
            Removal::Tag { .. } => ("tag", String::new()),
            Removal::Container { role, .. } if role == "aside" => ("aside", String::new()),
            Removal::Container { .. } => ("helper", String::new()),
        };
        s += &format!("{verb:<12}  {what:<7}  {}  {size}\n", target_of(&i.removal));
    }
    for k in &r.kept {
        s += &format!("{:<12}  {:<7}  {}  {}\n", "kept", k.what, k.target, k.why);
    }
    for f in &r.failed {
        s += &format!("{:<12}  {}: {}\n", "FAILED", f.target, f.error);
    }
    s += &format!(
        "{} {} under {} and on the engine\n",
        if r.dry_run { "would free" } else { "freed" },
        human(r.freed_bytes as f64),
        r.root.display()
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leftovers::{Group, Run};

    const DAY: i64 = 86_400;

    fn dir(path: &str, kind: DirKind, created: i64, run: Option<Run>) -> Dir {
        Dir {
            path: PathBuf::from(path),
            kind,
            container: "app".into(),
            created,
            bytes: 10,
            backup: matches!(kind, DirKind::Backup | DirKind::Run).then(|| {
                PathBuf::from(path).join(if kind == DirKind::Run { "backup" } else { "" })
            }),
            run,
            owned: false,
            note: None,
        }
    }

    fn run(state: RunState, rollback_possible: bool) -> Run {
        Run {
            state,
            last_step: None,
            keep_old: rollback_possible,
            container_id: "cid".into(),
            rollback_tag: String::new(),
            aside_name: String::new(),
            new_id: None,
            rollback_possible,
            busy: false,
        }
    }

    fn inv(g: Group) -> Inventory {
        Inventory {
            roots: vec![],
            socket: PathBuf::new(),
            by_container: [("app".to_owned(), g)].into(),
        }
    }

    fn removed(d: &Decision) -> Vec<String> {
        d.items.iter().map(|i| target_of(&i.removal)).collect()
    }

    #[test]
    fn keeps_the_newest_n_and_what_is_still_needed() {
        let now = 100 * DAY;
        let g = Group {
            dirs: vec![
                // Killed before its backup: it has none.
                Dir {
                    backup: None,
                    ..dir(
                        "/r/unfinished",
                        DirKind::Run,
                        now - DAY,
                        Some(run(RunState::Unfinished, false)),
                    )
                },
                dir(
                    "/r/keep-old",
                    DirKind::Run,
                    now - 2 * DAY,
                    Some(run(RunState::Upgraded, true)),
                ),
                dir("/r/b3", DirKind::Backup, now - 3 * DAY, None),
                dir(
                    "/r/old-run",
                    DirKind::Run,
                    now - 4 * DAY,
                    Some(run(RunState::RolledBack, false)),
                ),
                dir("/r/b1", DirKind::Backup, now - 5 * DAY, None),
                dir("/r/x.partial", DirKind::Partial, now, None),
                dir("/r/junk", DirKind::Unknown, 0, None),
            ],
            ..Group::default()
        };
        // keep-last 1: the unfinished run is the newest; the keep-old run
        // stays, and its backup is the newest that verifies.
        let d = decide(&inv(g.clone()), 1, None, now, &|_| true);
        assert_eq!(
            removed(&d),
            ["/r/b3", "/r/old-run", "/r/b1", "/r/x.partial"]
        );
        // The newest backup that verifies is protected even when newer ones do not.
        let d = decide(&inv(g.clone()), 0, None, now, &|p| p == Path::new("/r/b1"));
        assert_eq!(removed(&d), ["/r/b3", "/r/old-run", "/r/x.partial"]);
        // --keep-within keeps what is younger.
        let d = decide(&inv(g), 0, Some(4 * DAY + 1), now, &|_| true);
        assert_eq!(removed(&d), ["/r/b1", "/r/x.partial"]);
    }

    #[test]
    fn owned_partials_and_unknown_dirs_stay() {
        let mut p = dir("/r/y.partial", DirKind::Partial, 0, None);
        p.owned = true;
        let g = Group {
            dirs: vec![p, dir("/r/junk", DirKind::Unknown, 0, None)],
            ..Group::default()
        };
        let d = decide(&inv(g), 0, None, 0, &|_| true);
        assert!(d.items.is_empty());
        assert_eq!(d.kept.len(), 2);
    }

    fn tag(reference: &str, run: Option<&str>, names: usize, used_by: &[&str]) -> Tag {
        Tag {
            reference: reference.into(),
            image_id: "sha256:old".into(),
            image_bytes: 5,
            image_names: (0..names).map(|n| format!("n{n}")).collect(),
            container: "app".into(),
            run: run.map(PathBuf::from),
            used_by: used_by.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn aside(name: &str, run: &str) -> Container {
        Container {
            id: format!("id-{name}"),
            name: name.into(),
            role: "aside".into(),
            state: "exited".into(),
            container: "app".into(),
            run: Some(run.into()),
            owned: false,
            note: String::new(),
        }
    }

    #[test]
    fn tags_and_asides_go_with_their_runs_but_never_an_image_in_use() {
        let now = 100 * DAY;
        let g = Group {
            dirs: vec![
                dir(
                    "/r/new",
                    DirKind::Run,
                    now,
                    Some(run(RunState::Upgraded, false)),
                ),
                dir(
                    "/r/mid",
                    DirKind::Run,
                    now - DAY,
                    Some(run(RunState::Upgraded, false)),
                ),
                dir(
                    "/r/old",
                    DirKind::Run,
                    now - 2 * DAY,
                    Some(run(RunState::RolledBack, false)),
                ),
            ],
            tags: vec![
                tag("a:berth-rollback-new", Some("/r/new"), 1, &[]),
                // Used only by the aside container that goes with it.
                tag(
                    "a:berth-rollback-mid",
                    Some("/r/mid"),
                    1,
                    &["app-berth-old-mid"],
                ),
                // The last name of the image the rolled-back app runs again.
                tag("a:berth-rollback-old", Some("/r/old"), 1, &["app"]),
                tag("a:berth-rollback-orphan", None, 1, &[]),
            ],
            containers: vec![aside("app-berth-old-mid", "/r/mid")],
            ..Group::default()
        };
        let d = decide(&inv(g), 1, None, now, &|_| true);
        assert_eq!(
            removed(&d),
            [
                "/r/mid",
                "/r/old",
                "app-berth-old-mid",
                "a:berth-rollback-mid"
            ]
        );
        let kept: Vec<&str> = d.kept.iter().map(|k| k.target.as_str()).collect();
        assert!(kept.contains(&"a:berth-rollback-old"), "{kept:?}");
        assert!(kept.contains(&"a:berth-rollback-orphan"), "{kept:?}");
        assert!(kept.contains(&"a:berth-rollback-new"), "{kept:?}");
    }

    #[test]
    fn ages() {
        assert_eq!(parse_age("90").unwrap(), 90);
        assert_eq!(parse_age("12h").unwrap(), 12 * 3600);
        assert_eq!(parse_age("30d").unwrap(), 30 * DAY);
        assert_eq!(parse_age("2w").unwrap(), 14 * DAY);
        assert!(parse_age("soon").is_err());
        assert!(parse_age("3y").is_err());
    }
}
