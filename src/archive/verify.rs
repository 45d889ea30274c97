//! `berth verify`: is a backup directory exactly what berth wrote?
//!
//! Fast check: every file listed in SHA256SUMS hashes to its sum (files are
//! hashed in parallel; sha2 uses the CPU's SHA extensions), the manifest is
//! listed, readable, of a known schema and agrees with SHA256SUMS on every
//! archive and index. Deep check: also decompress every archive, re-scan
//! the tar and compare its content index and tar digest with the stored ones.
//!
//! An encrypted backup (see `seal`) passes the fast check without a key:
//! SHA256SUMS covers the encrypted files. The deep check opens them with
//! the keys given.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;
use serde::Serialize;

use super::hashio::{sha256_file, HashReader};
use super::index::{compare, read_index_within, IndexEntry};
use super::seal::{self, Keys};
use super::tarscan::scan;
use super::untrusted::{Bounded, Confined};
use super::{deltafiles, merge};
use crate::error::{Error, Kind, Result};
use crate::manifest::{self, Manifest, PathEntry};
use crate::progress::Meter;
use crate::report::{Reporter, SILENT};

#[derive(Debug, Serialize)]
pub struct Report {
    pub files: usize,
    pub bytes: u64,
    pub deep: bool,
    pub seconds: f64,
}

/// Verify `dir`; Ok gives the checked manifest. Every problem found is
/// named in one Integrity error.
pub fn verify(dir: &Path, deep: bool) -> Result<(Manifest, Report)> {
    verify_shown(dir, deep, &SILENT, &Keys::none())
}

/// [`verify`], with a progress meter of the deep check through `report`;
/// the deep check opens encrypted files with `keys`.
pub fn verify_shown(
    dir: &Path,
    deep: bool,
    report: &'static dyn Reporter,
    keys: &Keys,
) -> Result<(Manifest, Report)> {
    verify_vouched(dir, deep, report, keys, &Vouched::default())
}

/// Files of a backup already hashed in another directory: the pre-copy's,
/// hard-linked into the backup assembled from it. Such a file (the same
/// inode as in `dir`, listed there with its sum) is taken at that sum
/// without being read again.
#[derive(Default)]
struct Vouched {
    dir: std::path::PathBuf,
    sums: std::collections::HashMap<String, String>,
}

impl Vouched {
    /// The fast-checked backup in `dir`'s SHA256SUMS.
    fn of(dir: &Path) -> Result<Vouched> {
        let path = dir.join(manifest::SUMS);
        let text = open_in_backup(dir, manifest::SUMS).and_then(|f| read_small_text(f, &path))?;
        Ok(Vouched {
            dir: dir.to_owned(),
            sums: manifest::parse_sums(&text)?.into_iter().collect(),
        })
    }

    /// The sum and size of `name` in `dir` when it is the vouched file.
    fn sum(&self, name: &str, md: &std::fs::Metadata) -> Option<(String, u64)> {
        use std::os::unix::fs::MetadataExt;
        let hex = self.sums.get(name)?;
        let theirs = std::fs::symlink_metadata(self.dir.join(name)).ok()?;
        let same = theirs.is_file() && theirs.dev() == md.dev() && theirs.ino() == md.ino();
        same.then(|| (hex.clone(), md.len()))
    }
}

fn verify_vouched(
    dir: &Path,
    deep: bool,
    report: &'static dyn Reporter,
    keys: &Keys,
    vouched: &Vouched,
) -> Result<(Manifest, Report)> {
    let t0 = std::time::Instant::now();
    if !dir.is_dir() {
        return Err(Error::usage(format!(
            "{} is not a backup directory",
            dir.display()
        )));
    }
    let sums_path = dir.join(manifest::SUMS);
    let text = open_in_backup(dir, manifest::SUMS).and_then(|f| read_small_text(f, &sums_path))?;
    let sums = manifest::parse_sums(&text)?;
    let mut problems = vec![];
    let hashed = hash_all(dir, &sums, vouched);
    let mut bytes = 0;
    for ((name, want), got) in sums.iter().zip(&hashed) {
        match got {
            Ok((hex, n)) if hex == want => bytes += n,
            Ok(_) => problems.push(format!(
                "{name}: checksum mismatch (the file was changed or is corrupt)"
            )),
            Err(e) => problems.push(format!("{name}: {e}")),
        }
    }
    let listed = |n: &str| {
        sums.iter()
            .find(|(name, _)| name == n)
            .map(|(_, h)| h.as_str())
    };
    if listed(manifest::MANIFEST).is_none() {
        problems.push(format!(
            "{}: not listed in {}",
            manifest::MANIFEST,
            manifest::SUMS
        ));
    }
    fail_if(dir, &problems)?;
    let m = Manifest::load(dir)?;
    for p in &m.paths {
        for (file, sha) in p.files() {
            if listed(file) != Some(sha) {
                problems.push(format!(
                    "{file}: the manifest and {} disagree on its checksum",
                    manifest::SUMS
                ));
            }
        }
    }
    fail_if(dir, &problems)?;
    if deep {
        let all: Vec<&PathEntry> = m.paths.iter().collect();
        deep_check_all(dir, &all, report, keys)?;
    }
    let report = Report {
        files: sums.len(),
        bytes,
        deep,
        seconds: t0.elapsed().as_secs_f64(),
    };
    Ok((m, report))
}

fn fail_if(dir: &Path, problems: &[String]) -> Result<()> {
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::integrity(format!(
        "backup {} failed verification: {}",
        dir.display(),
        problems.join("; ")
    )))
}

/// SHA256SUMS lists a handful of files: anything over 1 MiB is not one.
fn read_small_text(f: File, path: &Path) -> Result<String> {
    const MAX: u64 = 1 << 20;
    let mut text = String::new();
    f.take(MAX + 1)
        .read_to_string(&mut text)
        .map_err(|e| Error::integrity(format!("{}: {e}", path.display())))?;
    if text.len() as u64 > MAX {
        return Err(Error::integrity(format!(
            "{}: more than {MAX} bytes: not a berth checksum file",
            path.display()
        )));
    }
    Ok(text)
}

fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "missing".into(),
        _ if e.raw_os_error() == Some(libc::ELOOP) => "is a symlink".into(),
        _ => e.to_string(),
    }
}

/// A file's sha256 and size, or why it could not be read.
type Hashed = std::result::Result<(String, u64), String>;

/// Hash the listed files on all cores, in list order.
fn hash_all(dir: &Path, sums: &[(String, String)], vouched: &Vouched) -> Vec<Hashed> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(sums.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let slots: Vec<std::sync::Mutex<Option<Hashed>>> =
        sums.iter().map(|_| Default::default()).collect();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((name, _)) = sums.get(i) else { return };
                let p = dir.join(name);
                let r = match std::fs::symlink_metadata(&p) {
                    Err(e) => Err(io_reason(&e)),
                    Ok(md) if !md.is_file() => Err("not a regular file".into()),
                    Ok(md) => match vouched.sum(name, &md) {
                        Some(known) => Ok(known),
                        None => sha256_file(&p).map_err(|e| e.msg),
                    },
                };
                *slots[i].lock().unwrap() = Some(r);
            });
        }
    });
    slots
        .into_iter()
        .map(|m| m.into_inner().unwrap().expect("every slot filled"))
        .collect()
}

/// The deep check of the given paths of a fast-checked backup, one thread
/// per path; every problem is named in one Integrity error. Nothing is
/// written; a signal stops it (Interrupted). One meter for all paths,
/// through `report`, out of the archives' total size. Encrypted files
/// are opened with `keys`: none at all is a Usage error, before any read.
pub fn deep_check_all(
    dir: &Path,
    paths: &[&PathEntry],
    report: &'static dyn Reporter,
    keys: &Keys,
) -> Result<()> {
    check_keys_given(paths, keys)?;
    // A pre-copy's delta is an archive with an index of its own, checked
    // as one; then the two must give the final index.
    let whole = paths;
    let paths: Vec<&PathEntry> = whole
        .iter()
        .flat_map(|p| std::iter::once(*p).chain(p.delta.as_ref().map(|d| &d.changes)))
        .collect();
    let total = paths.iter().map(|p| p.bytes).sum();
    let label = format!("checking {}", dir.display());
    // Also the readers' one place to notice a signal.
    let meter = Meter::with_total(label, report, total);
    let results: Vec<Result<()>> = std::thread::scope(|s| {
        let hs: Vec<_> = paths
            .iter()
            .map(|p| s.spawn(|| deep_check(dir, p, &meter, keys)))
            .collect();
        hs.into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::failed("deep check thread panicked")))
            })
            .collect()
    });
    let mut problems = vec![];
    for r in results {
        match r {
            Err(e) if e.kind == Kind::Interrupted => return Err(e),
            Err(e) => problems.push(e.msg),
            Ok(()) => {}
        }
    }
    fail_if(dir, &problems)?;
    for p in whole.iter().filter(|p| p.delta.is_some()) {
        if let Err(e) = restore_drops(dir, p, keys) {
            problems.push(e.msg);
        }
    }
    fail_if(dir, &problems)
}

/// The check of a backup assembled from the pre-copy in `precopy`, which
/// was deep-checked (every file hashed, every archive re-read) while the
/// container ran: every other file's checksum, the pre-copy's files proven
/// to be the very files checked (hard links: the same inodes, listed with
/// the same sums), the deltas' archives against their indexes, and each
/// path's final index against its pre-copy and delta. What the stop window
/// needs, without reading the pre-copy again.
pub fn verify_deltas(dir: &Path, precopy: &Path, keys: &Keys) -> Result<Manifest> {
    let (m, _) = verify_vouched(dir, false, &SILENT, keys, &Vouched::of(precopy)?)?;
    let deltas: Vec<&PathEntry> = m
        .paths
        .iter()
        .filter_map(|p| p.delta.as_ref())
        .map(|d| &d.changes)
        .collect();
    deep_check_all(dir, &deltas, &SILENT, keys)?;
    let mut problems = vec![];
    for p in m.paths.iter().filter(|p| p.delta.is_some()) {
        if let Err(e) = restore_drops(dir, p, keys) {
            problems.push(e.msg);
        }
    }
    fail_if(dir, &problems)?;
    Ok(m)
}

/// For a path with a pre-copy's delta: the paths a restore leaves out of
/// the pre-copy's archive (see [`merge::Merged::drops`]), once the pre-copy's
/// index, the delta's and the removed names are proven to give the final
/// index, entry for entry. Nothing else is read; the archives are checked
/// against their own indexes apart.
pub fn restore_drops(dir: &Path, p: &PathEntry, keys: &Keys) -> Result<Vec<String>> {
    let Some(d) = &p.delta else {
        return Ok(vec![]);
    };
    let before = read_stored_index(dir, p, keys)?;
    let delta = read_stored_index(dir, &d.changes, keys)?;
    let removed = read_removed(dir, d, p.tar_bytes, keys)?;
    let root = super::tar_base(&p.path);
    let merged = merge::merged(root, &before, &delta, &removed)?;
    let stored = read_state_index(dir, p, keys)?;
    let diffs = compare(&stored, &merged.state);
    let count = stored.len();
    if !diffs.is_empty() || count != merged.state.len() || count as u64 != d.final_entries {
        let shown: Vec<String> = diffs.iter().take(5).map(|d| d.to_string()).collect();
        return Err(Error::integrity(format!(
            "{}: the pre-copy and its delta do not give this final state ({} differences: {})",
            d.final_index,
            diffs.len(),
            shown.join(", ")
        )));
    }
    Ok(merged.drops)
}

/// The removed names of a delta; each took a tar header in the pre-copy's
/// `tar_bytes`, which bounds the list.
fn read_removed(
    dir: &Path,
    d: &manifest::Delta,
    tar_bytes: u64,
    keys: &Keys,
) -> Result<Vec<String>> {
    let plain = open_plain(dir, &d.removed, keys, |r| r)?;
    let mut bytes = vec![];
    Bounded::new(plain, tar_bytes)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::integrity(format!("{}: {e}", d.removed)))?;
    let names = deltafiles::parse_removed(&d.removed, &bytes)?;
    if names.len() as u64 != d.removed_count {
        return Err(Error::integrity(format!(
            "{}: {} names, the manifest says {}",
            d.removed,
            names.len(),
            d.removed_count
        )));
    }
    Ok(names)
}

/// Open a file of the backup directory, never through a symlink: the
/// fast check saw regular files, and a link swapped in since must not
/// lead berth outside the directory.
pub(crate) fn open_in_backup(dir: &Path, name: &str) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(dir.join(manifest::plain_name(name)?))
        .map_err(|e| Error::integrity(format!("opening {name}: {}", io_reason(&e))))
}

/// A file of the backup directory as plain bytes: opened with `keys` when
/// it is encrypted. `wrap` sees the file's own bytes (a progress meter).
pub fn open_plain<R: Read>(
    dir: &Path,
    name: &str,
    keys: &Keys,
    wrap: impl FnOnce(BufReader<File>) -> R,
) -> Result<seal::Opened<R>> {
    let f = open_in_backup(dir, name)?;
    seal::open(wrap(BufReader::with_capacity(1 << 20, f)), name, keys)
}

/// Encrypted files and no key at all: say so once, before reading.
fn check_keys_given(paths: &[&PathEntry], keys: &Keys) -> Result<()> {
    match paths.iter().find(|p| seal::is_sealed(&p.archive)) {
        Some(p) if keys.is_empty() => Err(seal::no_key(&p.archive)),
        _ => Ok(()),
    }
}

/// Whether `keys` open every encrypted file of the backup: only their
/// headers are read (a fraction of a second), so a command that would
/// need them later (a rollback's restore) refuses before it changes
/// anything.
pub fn check_keys(dir: &Path, m: &Manifest, keys: &Keys) -> Result<()> {
    let all: Vec<&PathEntry> = m.paths.iter().collect();
    check_keys_given(&all, keys)?;
    for p in &m.paths {
        for (name, _) in p.files().into_iter().filter(|(n, _)| seal::is_sealed(n)) {
            open_plain(dir, name, keys, |r| r)?;
        }
    }
    Ok(())
}

/// Decompress one archive, re-index it and compare with what was stored.
/// The archive is untrusted (see `untrusted`): its names must stay inside
/// its root and it may not inflate past the declared `tar_bytes`.
fn deep_check(dir: &Path, p: &PathEntry, meter: &Meter, keys: &Keys) -> Result<()> {
    let plain = open_plain(dir, &p.archive, keys, |r| meter.reader(r))?;
    let tar = Bounded::new(MultiGzDecoder::new(plain), p.tar_bytes);
    // The tar's own sha256 only where the manifest has one (schemas 1, 2).
    let (found, n, sha) = match &p.tar_sha256 {
        Some(_) => {
            let mut tar = HashReader::new(tar);
            let found = index_archive(&mut tar, p)?;
            let (_, sha, n) = tar.finish();
            (found, n, Some(sha))
        }
        None => {
            let mut tar = tar;
            let found = index_archive(&mut tar, p)?;
            (found, tar.count(), None)
        }
    };
    if sha != p.tar_sha256 || n != p.tar_bytes {
        return Err(Error::integrity(format!(
            "{}: the tar inside differs from the one backed up ({n} bytes, sha256 {}; expected {} bytes, {})",
            p.archive,
            sha.as_deref().unwrap_or("not computed"),
            p.tar_bytes,
            p.tar_sha256.as_deref().unwrap_or("no sha256 in the manifest")
        )));
    }
    let stored = read_stored_index(dir, p, keys)
        .map_err(|e| Error::integrity(format!("{}: {}", p.index, e.msg)))?;
    let diffs = compare(&stored, &found);
    if !diffs.is_empty() || stored.len() as u64 != p.entries {
        let shown: Vec<String> = diffs.iter().take(5).map(|d| d.to_string()).collect();
        return Err(Error::integrity(format!(
            "{}: the archive's content does not match its index ({} differences: {})",
            p.archive,
            diffs.len(),
            shown.join(", ")
        )));
    }
    Ok(())
}

/// Every entry of an untrusted tar, each confined to the path's root.
fn index_archive(tar: &mut impl Read, p: &PathEntry) -> Result<Vec<IndexEntry>> {
    let mut confined = Confined::new(&p.path);
    let mut found: Vec<IndexEntry> = vec![];
    scan(tar, io::sink(), &[], p.content_hash, |e| {
        confined.check(e)?;
        found.push(e.clone());
        Ok(())
    })
    .map_err(|e| match e.kind {
        Kind::Interrupted => e,
        _ => Error::integrity(format!("{}: {}", p.archive, e.msg)),
    })?;
    Ok(found)
}

/// The stored index of a path (gzipped, or plain in older backups), read
/// as untrusted: its text may not exceed what the archive can explain.
/// Each tar entry takes at least 512 bytes of `tar_bytes` and its line
/// holds its name (in the tar too), xattrs as hex (twice their bytes in
/// the tar) and under 300 bytes of fields: three times `tar_bytes` is a
/// generous bound.
pub fn read_stored_index(dir: &Path, p: &PathEntry, keys: &Keys) -> Result<Vec<IndexEntry>> {
    read_index_file(dir, &p.index, p.tar_bytes, keys)
}

/// The content index of the path's state in the backup: the final index
/// of a pre-copy with a delta (bounded by both archives), the archive's
/// own otherwise.
pub fn read_state_index(dir: &Path, p: &PathEntry, keys: &Keys) -> Result<Vec<IndexEntry>> {
    let (name, _) = p.state_index();
    let tar_bytes = p.tar_bytes + p.delta.as_ref().map_or(0, |d| d.changes.tar_bytes);
    read_index_file(dir, name, tar_bytes, keys)
}

fn read_index_file(dir: &Path, name: &str, tar_bytes: u64, keys: &Keys) -> Result<Vec<IndexEntry>> {
    let limit = tar_bytes.saturating_mul(3).saturating_add(1 << 20);
    let plain = open_plain(dir, name, keys, |r| r)?;
    read_index_within(BufReader::with_capacity(1 << 16, plain), limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only the very file checked in the pre-copy is taken at its sum: a
    /// hard link of it is, a copy (or a file put in its place) is hashed.
    #[test]
    fn vouched_files_are_the_same_inodes_only() {
        let root = std::env::temp_dir().join(format!("berth-vouched-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let (pre, fin) = (root.join("pre"), root.join("fin"));
        std::fs::create_dir_all(&pre).unwrap();
        std::fs::create_dir_all(&fin).unwrap();
        std::fs::write(pre.join("a.tar.gz"), b"archive").unwrap();
        std::fs::write(pre.join("b.tar.gz"), b"archive").unwrap();
        let sum = "ab".repeat(32);
        let sums = manifest::sums_text(&[
            ("a.tar.gz".into(), sum.clone()),
            ("b.tar.gz".into(), sum.clone()),
        ]);
        std::fs::write(pre.join(manifest::SUMS), sums).unwrap();
        std::fs::hard_link(pre.join("a.tar.gz"), fin.join("a.tar.gz")).unwrap();
        std::fs::copy(pre.join("b.tar.gz"), fin.join("b.tar.gz")).unwrap();
        let v = Vouched::of(&pre).unwrap();
        let md = |n: &str| std::fs::symlink_metadata(fin.join(n)).unwrap();
        assert_eq!(v.sum("a.tar.gz", &md("a.tar.gz")), Some((sum, 7)));
        assert_eq!(v.sum("b.tar.gz", &md("b.tar.gz")), None);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
