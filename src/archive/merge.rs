//! The final state of a volume from its pre-copy and its delta (issue 25):
//! the pre-copy's index without the removed paths and those the delta
//! wrote again, then the delta's entries, in the order a restore writes
//! them (the pre-copy's archive, then the delta's, then the removals).
//!
//! A delta comes from a helper, or later from a backup on disk that may
//! have been tampered with, so it is checked before anything is written:
//! every path it names lies inside the volume and is well formed, a
//! removal names something the pre-copy had, and the result hangs
//! together (each entry's directory is in it, nothing is left under a
//! removed directory).

use std::collections::{HashMap, HashSet};

use super::index::{path_to_bytes, EntryKind, IndexEntry};
use crate::error::{Error, Result};

/// What a delta gives, once checked: the final index, and what a restore
/// leaves out of the pre-copy's archive to get there.
#[derive(Debug)]
pub struct Merged {
    /// The pre-copy's index without the removed paths and those written
    /// again, then the delta's entries.
    pub state: Vec<IndexEntry>,
    /// The paths a restore leaves out of the pre-copy's archive, so that
    /// the engine, extracting it and then the delta's as one archive, ends
    /// in `state`: each removed path, and each path the delta writes as
    /// another kind of entry (a directory become a file, a file become a
    /// hard link), with what lies below it; only the topmost of such paths.
    pub drops: Vec<String>,
}

/// `before` merged with `delta` and `removed` (paths in index form), for
/// the volume whose archive's top entry is `root` (`vmware`). A delta that
/// names a path outside `root`, a path with `.`, `..` or empty components,
/// the same path twice, a removal of something the pre-copy lacks (or of
/// `root`, or of what the delta writes), or that leaves an entry without
/// its directory, is refused: an integrity error naming the first such
/// path. So is one a restore could not write (see [`drops`]).
pub fn merged(
    root: &str,
    before: &[IndexEntry],
    delta: &[IndexEntry],
    removed: &[String],
) -> Result<Merged> {
    let had: HashSet<&str> = before.iter().map(|e| e.path.as_str()).collect();
    let mut written = HashSet::with_capacity(delta.len());
    for e in delta {
        if let Some(why) = outside(root, &e.path) {
            return refused(root, "", &e.path, why);
        }
        if !written.insert(e.path.as_str()) {
            return refused(root, "", &e.path, "is written twice");
        }
    }
    let mut gone = HashSet::with_capacity(removed.len());
    for p in removed {
        if let Some(why) = outside(root, p) {
            return refused(root, "", p, why);
        }
        if p == root {
            return refused(root, "", p, "is the volume itself");
        }
        if !had.contains(p.as_str()) {
            return refused(root, "", p, "is removed but the pre-copy did not have it");
        }
        if written.contains(p.as_str()) {
            return refused(root, "", p, "is both removed and written");
        }
        gone.insert(p.as_str());
    }
    let state: Vec<IndexEntry> = before
        .iter()
        .filter(|e| !gone.contains(e.path.as_str()) && !written.contains(e.path.as_str()))
        .chain(delta)
        .cloned()
        .collect();
    let kinds: HashMap<&str, EntryKind> = state.iter().map(|e| (e.path.as_str(), e.kind)).collect();
    for e in &state {
        let Some((dir, _)) = e.path.rsplit_once('/') else {
            continue;
        };
        if kinds.get(dir) != Some(&EntryKind::Dir) {
            let why = if ancestors(&e.path).any(|a| gone.contains(a)) {
                "is left under a removed path"
            } else {
                "has no directory to go in"
            };
            return refused(root, "", &e.path, why);
        }
    }
    let drops = drops(root, before, delta, gone, &written)?;
    Ok(Merged { state, drops })
}

/// [`Merged::drops`], from the removed paths (`cut`) and the paths the
/// delta writes (`rewritten`).
///
/// A hard link is written as a link to a path extracted before it, and it
/// must stay one: a link kept from the pre-copy (and not written again)
/// whose target is dropped or written again by the delta (a new file, no
/// longer the same inode), or a link in the delta to a path not written
/// before it, is refused, as an integrity error naming the link, before
/// anything is written.
fn drops<'a>(
    root: &str,
    before: &'a [IndexEntry],
    delta: &'a [IndexEntry],
    mut cut: HashSet<&'a str>,
    rewritten: &HashSet<&str>,
) -> Result<Vec<String>> {
    let link = "the hard link ";
    let kinds: HashMap<&str, EntryKind> =
        before.iter().map(|e| (e.path.as_str(), e.kind)).collect();
    for e in delta {
        if kinds.get(e.path.as_str()).is_some_and(|k| *k != e.kind) {
            cut.insert(&e.path);
        }
    }
    let is_cut = |p: &str| cut.contains(p) || ancestors(p).any(|a| cut.contains(a));
    let mut written: HashSet<&str> = HashSet::with_capacity(before.len() + delta.len());
    for e in before.iter().filter(|e| !is_cut(&e.path)) {
        if let Some(t) = hard_link(e) {
            let relinked = rewritten.contains(e.path.as_str());
            if !written.contains(t) || (rewritten.contains(t) && !relinked) {
                let why = "kept from the pre-copy would not keep its target";
                return refused(root, link, &e.path, why);
            }
        }
        written.insert(&e.path);
    }
    for e in delta {
        if let Some(t) = hard_link(e) {
            if !written.contains(t) {
                return refused(
                    root,
                    link,
                    &e.path,
                    "points to a path not written before it",
                );
            }
        }
        written.insert(&e.path);
    }
    let mut out: Vec<String> = cut
        .iter()
        .filter(|p| !ancestors(p).any(|a| cut.contains(a)))
        .map(|p| (*p).to_owned())
        .collect();
    out.sort();
    Ok(out)
}

/// The integrity error refusing the delta of `root` over path `p`
/// (`what`: "" or "the hard link ").
fn refused<T>(root: &str, what: &str, p: &str, why: &str) -> Result<T> {
    Err(Error::integrity(format!(
        "the delta of {root} is refused: {what}{p:?} {why}"
    )))
}

/// A hard link's target, in index form.
fn hard_link(e: &IndexEntry) -> Option<&str> {
    (e.kind == EntryKind::Hardlink).then(|| e.link.as_deref().unwrap_or_default())
}

/// `a/b/c` -> `a`, `a/b`.
fn ancestors(p: &str) -> impl Iterator<Item = &str> {
    p.match_indices('/').map(move |(i, _)| &p[..i])
}

/// Why index path `p` is not a path inside the volume `root`, if it is not.
fn outside(root: &str, p: &str) -> Option<&'static str> {
    if path_to_bytes(p).is_err() {
        return Some("is not an index path");
    }
    let Some(rest) = p.strip_prefix(root) else {
        return Some("is outside the volume");
    };
    if rest.is_empty() {
        return None;
    }
    let Some(rest) = rest.strip_prefix('/') else {
        return Some("is outside the volume");
    };
    if rest
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Some("has an empty, `.` or `..` component");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(path: &str, kind: EntryKind) -> IndexEntry {
        serde_json::from_value(serde_json::json!({
            "path": path, "type": kind.as_str(), "mode": 0o644, "uid": 0, "gid": 0,
            "size": 0, "mtime": 0,
        }))
        .unwrap()
    }

    fn before() -> Vec<IndexEntry> {
        vec![
            e("v", EntryKind::Dir),
            e("v/a", EntryKind::Dir),
            e("v/a/x", EntryKind::File),
            e("v/b", EntryKind::File),
        ]
    }

    fn paths(i: &[IndexEntry]) -> Vec<&str> {
        i.iter().map(|e| e.path.as_str()).collect()
    }

    #[test]
    fn the_pre_copy_less_removals_then_the_delta() {
        let delta = [e("v/b", EntryKind::Dir), e("v/b/new", EntryKind::File)];
        let gone = ["v/a/x".to_owned(), "v/a".to_owned()];
        let m = merged("v", &before(), &delta, &gone).unwrap().state;
        assert_eq!(paths(&m), ["v", "v/b", "v/b/new"]);
        assert_eq!(m[1].kind, EntryKind::Dir);
        assert_eq!(
            paths(&merged("v", &before(), &[], &[]).unwrap().state),
            paths(&before())
        );
    }

    fn drops_of(
        root: &str,
        b: &[IndexEntry],
        d: &[IndexEntry],
        r: &[String],
    ) -> Result<Vec<String>> {
        merged(root, b, d, r).map(|m| m.drops)
    }

    fn link(path: &str, to: &str) -> IndexEntry {
        let mut l = e(path, EntryKind::Hardlink);
        l.link = Some(to.into());
        l
    }

    #[test]
    fn a_restore_drops_removals_and_changed_kinds_topmost_only() {
        let delta = [e("v/b", EntryKind::Dir), e("v/b/new", EntryKind::File)];
        let gone = ["v/a/x".to_owned(), "v/a".to_owned()];
        assert_eq!(
            drops_of("v", &before(), &delta, &gone).unwrap(),
            ["v/a", "v/b"]
        );
        // Same kinds are written over, not dropped.
        let same = [e("v/a", EntryKind::Dir), e("v/b", EntryKind::File)];
        assert!(drops_of("v", &before(), &same, &[]).unwrap().is_empty());
    }

    #[test]
    fn a_hard_link_that_would_not_stay_one_is_refused() {
        let mut with_link = before();
        with_link.push(link("v/l", "v/b"));
        // Kept link, target written again by the delta: a new inode.
        let delta = [e("v/b", EntryKind::File)];
        let err = drops_of("v", &with_link, &delta, &[]).unwrap_err();
        assert!(
            err.to_string().contains("would not keep its target"),
            "{err}"
        );
        // Both written again: fine.
        let both = [e("v/b", EntryKind::File), link("v/l", "v/b")];
        assert!(drops_of("v", &with_link, &both, &[]).unwrap().is_empty());
        // A link in the delta to a removed path, or to one written later.
        for (delta, gone) in [
            (vec![link("v/n", "v/a/x")], vec!["v/a/x".to_owned()]),
            (vec![link("v/n", "v/z"), e("v/z", EntryKind::File)], vec![]),
        ] {
            let err = drops_of("v", &before(), &delta, &gone).unwrap_err();
            assert!(err.to_string().contains("not written before it"), "{err}");
            assert_eq!(err.kind, crate::error::Kind::Integrity);
        }
    }

    #[test]
    fn a_hostile_or_inconsistent_delta_is_refused() {
        let f = |p: &str| e(p, EntryKind::File);
        let cases: Vec<(Vec<IndexEntry>, Vec<&str>, &str)> = vec![
            (vec![f("w/x")], vec![], "outside the volume"),
            (vec![f("vx")], vec![], "outside the volume"),
            (vec![f("v/../etc/passwd")], vec![], "component"),
            (vec![f("v/a/./x")], vec![], "component"),
            (vec![f("v//x")], vec![], "component"),
            (vec![f("v/")], vec![], "component"),
            (vec![f("v/n"), f("v/n")], vec![], "written twice"),
            (vec![], vec!["../v/b"], "outside the volume"),
            (vec![], vec!["v"], "the volume itself"),
            (vec![], vec!["v/never"], "did not have it"),
            (vec![f("v/b")], vec!["v/b"], "both removed and written"),
            (vec![], vec!["v/a"], "left under a removed path"),
            (vec![f("v/q/r")], vec![], "no directory to go in"),
            (vec![f("v/b/under-a-file")], vec![], "no directory to go in"),
        ];
        for (delta, gone, want) in cases {
            let gone: Vec<String> = gone.into_iter().map(String::from).collect();
            let err = merged("v", &before(), &delta, &gone).unwrap_err();
            assert!(
                err.to_string().contains(want),
                "{:?} {gone:?}: {err}",
                paths(&delta)
            );
            assert_eq!(err.kind, crate::error::Kind::Integrity);
        }
    }
}
