//! `berth restore`: put a backup back exactly and prove it.
//!
//! Verify the backup first; for an exact restore (the default) empty each
//! volume (see `wipe`); PUT the archive, gunzipped as it streams; then GET the
//! path back and compare its content index with the backup's, entry for
//! entry. A restore is reported done only when they are equal.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use flate2::read::MultiGzDecoder;
use serde::Serialize;

use super::index::{compare, ContentHash, IndexEntry};
use super::seal::Keys;
use super::tarscan::{scan, scan_with};
use super::untrusted::Bounded;
use super::{verify, wipe};
use crate::cancel;
use crate::docker::Docker;
use crate::error::{Context, Error, Kind, Result};
use crate::manifest::{Manifest, PathEntry};
use crate::mounts::{self, Mount};
use crate::progress::Meter;
use crate::report::Reporter;

#[derive(Debug, Clone)]
pub struct Options {
    /// Target container; default: the one in the manifest.
    pub container: Option<String>,
    /// Paths to restore; default: all in the backup.
    pub paths: Vec<String>,
    /// Extract over what is there instead of an exact restore.
    pub merge: bool,
    /// Where the progress meters go.
    pub report: &'static dyn Reporter,
    /// Open an encrypted backup (`--identity`).
    pub keys: Keys,
}

#[derive(Debug, Serialize)]
pub struct PathReport {
    pub path: String,
    pub entries: u64,
    pub bytes: u64,
    pub emptied: bool,
    pub seconds: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub dir: PathBuf,
    pub container: String,
    pub merge: bool,
    pub paths: Vec<PathReport>,
    pub warnings: Vec<String>,
    pub seconds: f64,
}

pub async fn restore(d: &Docker, dir: &Path, o: &Options) -> Result<Report> {
    let t0 = Instant::now();
    let owned = dir.to_owned();
    let (m, _) = tokio::task::spawn_blocking(move || verify::verify(&owned, false))
        .await
        .map_err(|e| Error::failed(format!("verify thread failed: {e}")))?
        .map_err(|e| e.context("refusing to restore: nothing was written"))?;
    let target = o
        .container
        .clone()
        .unwrap_or_else(|| m.container.name.clone());
    let inspect = d.container_inspect(&target).await?;
    let name = inspect.name().to_owned();
    let entries = select(&m, &o.paths)?;
    let data = mounts::resolve(d, &inspect).await?;
    let mut plan = vec![];
    for e in &entries {
        plan.push((*e, check_target(d, &name, &data.mounts, e, o.merge).await?));
    }
    deep_check(dir, &entries, o).await?;
    let mut warnings = vec![];
    if inspect.state.running {
        warnings.push(format!(
            "{name} is running: the application may see its data change under it"
        ));
    }
    let image = inspect.image.clone();
    let mut paths = vec![];
    for (e, mount) in plan {
        cancel::check()?;
        let t = Instant::now();
        let emptied = match (&mount, o.merge) {
            (Some(m), false) => {
                let vol = m.name.as_deref().expect("checked: a volume has a name");
                // Every mount nested in this volume keeps its mountpoint.
                let keep = data.exclusions_under(&e.path);
                wipe::wipe_volume(d, &image, vol, &e.path, &keep).await?;
                true
            }
            _ => false,
        };
        let label = format!("restoring {name}:{}", e.path);
        // The meter counts the archive file as it is read.
        let meter = Meter::with_total(label, o.report, e.all_bytes());
        let bytes = upload(d, &name, dir, e, &meter, &o.keys).await?;
        drop(meter);
        read_back_and_compare(d, &name, dir, e, o.merge, &o.keys).await?;
        paths.push(PathReport {
            path: e.path.clone(),
            entries: e.state_index().1,
            bytes,
            emptied,
            seconds: t.elapsed().as_secs_f64(),
        });
    }
    Ok(Report {
        dir: dir.to_owned(),
        container: name,
        merge: o.merge,
        paths,
        warnings,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Read every archive to be restored through before anything is written:
/// the checksums only prove that the directory is what its manifest says,
/// and the manifest may have been rewritten with it. The engine must get
/// no name outside the path, nothing through a symlink, no gzip bomb (see
/// `untrusted`), and the archive must match its index.
async fn deep_check(dir: &Path, entries: &[&PathEntry], o: &Options) -> Result<()> {
    let owned: Vec<PathEntry> = entries.iter().map(|e| (*e).clone()).collect();
    let dir = dir.to_owned();
    let (report, keys) = (o.report, o.keys.clone());
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&PathEntry> = owned.iter().collect();
        verify::deep_check_all(&dir, &refs, report, &keys)
    })
    .await
    .map_err(|e| Error::failed(format!("verify thread failed: {e}")))?
    .map_err(|e| match e.kind {
        Kind::Interrupted => e.context("interrupted before anything was written"),
        _ => e.context("refusing to restore: nothing was written"),
    })
}

fn select<'a>(m: &'a Manifest, paths: &[String]) -> Result<Vec<&'a PathEntry>> {
    if paths.is_empty() {
        return Ok(m.paths.iter().collect());
    }
    paths
        .iter()
        .map(|p| {
            let p = p.trim_end_matches('/');
            m.entry(p).ok_or_else(|| {
                let have: Vec<&str> = m.paths.iter().map(|e| e.path.as_str()).collect();
                Error::usage(format!(
                    "the backup has no path {p} (it has {})",
                    have.join(", ")
                ))
            })
        })
        .collect()
}

/// The target must have the path, writable; an exact restore needs it to
/// be a volume (that is what can be emptied safely).
async fn check_target(
    d: &Docker,
    name: &str,
    mounts: &[Mount],
    e: &PathEntry,
    merge: bool,
) -> Result<Option<Mount>> {
    let mount = mounts.iter().find(|m| m.destination == e.path).cloned();
    match &mount {
        Some(m) if !m.rw => {
            return Err(Error::failed(format!("{} is mounted read-only in {name}: nothing was written", e.path)))
        }
        Some(m) if m.kind != "volume" => {
            return Err(Error::failed(format!("{} is a {} mount in {name}, not a volume: berth does not write host files", e.path, m.kind)))
        }
        None if !merge => {
            return Err(Error::failed(format!(
                "{} is not a volume of {name}: an exact restore empties a volume first; use --merge to extract over the container's own files",
                e.path
            )))
        }
        _ => {}
    }
    d.archive_stat(name, &e.path).await.map_err(|err| {
        if err.is_not_found() {
            Error::failed(format!(
                "{name} has no path {}: nothing was written",
                e.path
            ))
        } else {
            err
        }
    })?;
    Ok(mount)
}

/// PUT the archive so that it lands at the path (into its parent directory
/// on Docker: see `Docker::archive_put_at`), decompressed here: the engine
/// would gunzip it on one core in Go (the 1 GiB bench's restore spent most
/// of its time there), berth does it on its own thread while the engine
/// extracts. The read-back proves the result.
async fn upload(
    d: &Docker,
    name: &str,
    dir: &Path,
    e: &PathEntry,
    meter: &Meter,
    keys: &Keys,
) -> Result<u64> {
    let put = match &e.delta {
        None => {
            let plain = verify::open_plain(dir, &e.archive, keys, |r| meter.reader(r))?;
            // Checked before, bounded again: the file may have changed since.
            let reader = Bounded::new(MultiGzDecoder::new(plain), e.tar_bytes);
            d.archive_put_at(name, &e.path, reader).await
        }
        Some(_) => {
            let reader = with_delta(dir, e, meter, keys)?;
            d.archive_put_at(name, &e.path, reader).await
        }
    };
    put.map_err(|err| {
        // The engine only sees a broken upload; say why it broke.
        let err = if cancel::is_cancelled() {
            Error::new(
                Kind::Interrupted,
                "interrupted by a signal during the upload",
            )
        } else {
            err
        };
        err.context(format!(
            "restoring {name}:{} (it may be partly written: run the restore again)",
            e.path
        ))
    })?;
    Ok(meter.bytes.load(std::sync::atomic::Ordering::Relaxed))
}

/// The tar of a pre-copy's path with its delta, as one archive: the
/// pre-copy's entries less those the delta removed or turned into another
/// kind (see `merge::Merged::drops`), without its end-of-archive marker, then
/// the delta's. One archive, because the engine sets each directory's
/// times once it has extracted everything: a second upload would leave
/// the mtime of each directory it writes into as of the restore.
/// Produced on a thread of its own; a failure there fails the upload,
/// never ends it early as if it were complete.
fn with_delta(dir: &Path, e: &PathEntry, meter: &Meter, keys: &Keys) -> Result<impl io::Read> {
    let d = e.delta.as_ref().expect("a delta");
    let drops = verify::restore_drops(dir, e, keys)?;
    let precopy = verify::open_plain(dir, &e.archive, keys, |r| meter.reader(r))?;
    let precopy = Bounded::new(MultiGzDecoder::new(precopy), e.tar_bytes);
    let delta = verify::open_plain(dir, &d.changes.archive, keys, |r| meter.reader(r))?;
    let mut delta = Bounded::new(MultiGzDecoder::new(delta), d.changes.tar_bytes);
    let hash = e.content_hash;
    let want = d.changes.tar_bytes;
    Ok(Produced::spawn(move |out| {
        scan_with(precopy, &mut *out, &drops, hash, false, |_| Ok(()))?;
        io::copy(&mut delta, out).ctx("reading the delta's archive")?;
        // A delta cut short ends on a block boundary as a whole one would.
        if delta.count() != want {
            return Err(Error::integrity(format!(
                "the delta's archive holds {} bytes of tar, the backup says {want}",
                delta.count()
            )));
        }
        Ok(())
    }))
}

/// A reader of what a thread writes, in pieces through a bounded channel;
/// the thread's error is the reader's. An empty piece is the end: a
/// thread gone without it (a panic) is an error, never a short archive.
struct Produced {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    cur: io::Cursor<Vec<u8>>,
    ended: bool,
}

/// The thread's side of [`Produced`].
struct Pieces {
    tx: std::sync::mpsc::SyncSender<io::Result<Vec<u8>>>,
    buf: Vec<u8>,
}

const PIECE: usize = 256 << 10;

impl Produced {
    fn spawn(f: impl FnOnce(&mut Pieces) -> Result<()> + Send + 'static) -> Produced {
        let (tx, rx) = std::sync::mpsc::sync_channel(8);
        std::thread::spawn(move || {
            let mut w = Pieces {
                tx,
                buf: Vec::with_capacity(PIECE),
            };
            let sent = f(&mut w).and_then(|()| io::Write::flush(&mut w).ctx("sending the archive"));
            // The end (an empty piece) or the error; the reader may be gone.
            let _ = w.tx.send(sent.map(|()| Vec::new()).map_err(Error::into_io));
        });
        Produced {
            rx,
            cur: io::Cursor::new(vec![]),
            ended: false,
        }
    }
}

impl io::Read for Produced {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let n = io::Read::read(&mut self.cur, buf)?;
            if n > 0 || buf.is_empty() || self.ended {
                return Ok(n);
            }
            match self.rx.recv() {
                Ok(piece) => {
                    let piece = piece?;
                    self.ended = piece.is_empty();
                    self.cur = io::Cursor::new(piece);
                }
                Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the thread making the archive ended before it",
                    ))
                }
            }
        }
    }
}

impl io::Write for Pieces {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= PIECE {
            self.flush()?;
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        // Never an empty piece: that is the end.
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = std::mem::replace(&mut self.buf, Vec::with_capacity(PIECE));
        self.tx
            .send(Ok(piece))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the upload stopped reading"))
    }
}

/// GET the path back, index it (cutting out the same nested mounts) and
/// compare with the backup's index. After a merge, entries the backup does
/// not have are expected; everything the backup has must read back equal.
pub(crate) async fn read_back_and_compare(
    d: &Docker,
    name: &str,
    dir: &Path,
    e: &PathEntry,
    merge: bool,
    keys: &Keys,
) -> Result<()> {
    let found = read_index_hashed(d, name, &e.path, &e.excluded, e.content_hash).await?;
    let stored = verify::read_state_index(dir, e, keys)?;
    let mut diffs = compare(&stored, &found);
    if merge {
        diffs.retain(|d| !d.is_extra());
    }
    if diffs.is_empty() {
        return Ok(());
    }
    let shown: Vec<String> = diffs.iter().take(20).map(|d| format!("  {d}")).collect();
    Err(Error::integrity(format!(
        "{name}:{} differs from the backup after the restore ({} differences):\n{}{}",
        e.path,
        diffs.len(),
        shown.join("\n"),
        if diffs.len() > 20 { "\n  ..." } else { "" }
    )))
}

/// The content index of a path in a container, as the engine serves it,
/// hashed as new backups hash it.
pub async fn read_index_of(
    d: &Docker,
    name: &str,
    path: &str,
    excluded: &[String],
) -> Result<Vec<IndexEntry>> {
    read_index_hashed(d, name, path, excluded, ContentHash::NEW).await
}

/// The content index of a tar (the delta helper's, say), hashed as new
/// backups hash the engine's archive.
pub fn index_of_tar(tar: impl io::Read) -> Result<Vec<IndexEntry>> {
    indexed(tar, &[], ContentHash::NEW)
}

/// Every entry of `tar` but those under `roots`, hashed with `hash`.
fn indexed(tar: impl io::Read, roots: &[String], hash: ContentHash) -> Result<Vec<IndexEntry>> {
    let mut found = vec![];
    scan(tar, io::sink(), roots, hash, |x| {
        found.push(x.clone());
        Ok(())
    })?;
    Ok(found)
}

/// [`read_index_of`] with the content hash of the index it is compared
/// with.
pub async fn read_index_hashed(
    d: &Docker,
    name: &str,
    path: &str,
    excluded: &[String],
    hash: ContentHash,
) -> Result<Vec<IndexEntry>> {
    let (_, reader) = d.archive_get(name, path).await?;
    let roots = super::tar_roots(path, excluded);
    let doing = format!("reading {name}:{path} back");
    tokio::task::spawn_blocking(move || indexed(reader, &roots, hash))
        .await
        .map_err(|e| Error::failed(format!("{doing}: {e}")))?
        .map_err(|e: Error| e.context(doing))
}
