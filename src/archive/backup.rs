//! `berth backup`: every data volume of a container into a checksummed
//! .tar.gz with a content index, in one pass per path and flat memory.
//!
//! Per path: GET archive -> scan (checks the tar, cuts nested mounts out,
//! indexes every entry) -> sha256 of the tar -> parallel gzip -> sha256 of
//! the file -> `<slug>.tar.gz`. The directory is written as `.partial` and
//! renamed only when every file, the manifest and SHA256SUMS are fsynced:
//! a backup directory is whole or absent.

use std::collections::HashMap;
use std::fs;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use super::deflate::Method;
use super::hashio::HashWriter;
use super::index::{write_line, ContentHash};
use super::pargz::ParGzWriter;
use super::seal::{self, SealWriter};
use super::tarscan::scan;
use crate::docker::model::ContainerInspect;
use crate::docker::Docker;
use crate::error::{Context, Error, Result};
use crate::files::{create_new, create_private_dir, sync_dir, NamedFile};
use crate::manifest::{self, Manifest, PathEntry};
use crate::mounts::{self, DataMap, Mount};
use crate::progress::Meter;
use crate::report::Reporter;
use crate::{cancel, clock};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Fast,
    Default,
    Best,
}

impl Level {
    /// The deflate back end and level (measured in `deflate`'s table): fast
    /// is ISA-L 1, default ISA-L 2 (1.9% larger than ISA-L 3 for 44% less
    /// deflate CPU: its hash table, not ISA-L 3's matcher), best zlib-rs 9
    /// (about 10% smaller than the default, several times slower).
    pub fn method(self) -> Method {
        match self {
            Level::Fast => Method::Igzip(1),
            Level::Default => Method::Igzip(2),
            Level::Best => Method::Zlib(9),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Paths to back up; empty: every volume mount.
    pub paths: Vec<String>,
    /// Where backup directories go.
    pub out: PathBuf,
    pub level: Level,
    /// Stop the container for a consistent copy (started again after).
    pub stop: bool,
    pub stop_timeout: u32,
    /// Where the progress meter goes.
    pub report: &'static dyn Reporter,
    /// age X25519 recipients (`age1...`) to encrypt every archive and index
    /// to (see `seal`); empty: plain files.
    pub encrypt_to: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub dir: PathBuf,
    pub seconds: f64,
    pub warnings: Vec<String>,
    pub manifest: Manifest,
}

/// What to copy for one path.
#[derive(Debug, Clone)]
pub struct Target {
    pub path: String,
    pub mount: Option<Mount>,
    /// Paths relative to `path` to leave out.
    pub excluded: Vec<String>,
}

/// Choose the paths: the given ones, or every volume mount. Mounts nested
/// inside a chosen path are cut out of it when they are host files (binds,
/// tmpfs) or are backed up on their own.
pub(crate) fn targets(container: &str, data: &DataMap, paths: &[String]) -> Result<Vec<Target>> {
    let chosen: Vec<String> = if paths.is_empty() {
        data.backed_up().map(|m| m.destination.clone()).collect()
    } else {
        paths.iter().map(|p| normalise(p)).collect::<Result<_>>()?
    };
    if chosen.is_empty() {
        return Err(Error::failed(format!(
            "container {container} has no volumes: there is nothing to back up (name a path with --path)"
        )));
    }
    chosen
        .iter()
        .map(|p| {
            let mount = data.mounts.iter().find(|m| &m.destination == p).cloned();
            if let Some(m) = mount.as_ref().filter(|m| !m.backup) {
                return Err(Error::usage(format!(
                    "{p} in {container} is a {} mount ({}): berth does not back it up",
                    m.kind,
                    m.reason.clone().unwrap_or_default()
                )));
            }
            let excluded = data
                .mounts
                .iter()
                .filter(|m| !m.backup || chosen.contains(&m.destination))
                .filter_map(|m| mounts::nested_rel(p, &m.destination))
                .collect();
            Ok(Target {
                path: p.clone(),
                mount,
                excluded,
            })
        })
        .collect()
}

fn normalise(p: &str) -> Result<String> {
    let t = p.trim_end_matches('/');
    if !p.starts_with('/') || t.split('/').any(|c| c == "..") {
        return Err(Error::usage(format!(
            "--path {p:?}: give an absolute path inside the container"
        )));
    }
    Ok(if t.is_empty() { "/".into() } else { t.into() })
}

/// Back up a container. On any failure nothing is left in `out` and a
/// container that berth stopped is started again.
pub async fn backup(d: &Docker, container: &str, o: &Options) -> Result<Report> {
    let t0 = Instant::now();
    // The manifest keeps the whole inspect.
    let raw = d.container_inspect_raw(container).await?;
    let c = ContainerInspect::from_raw(&raw)
        .map_err(|e| e.context(format!("inspecting container {container}")))?;
    let (id, name) = (c.id.clone(), c.name().to_owned());
    let data = mounts::resolve(d, &c).await?;
    let targets = targets(&name, &data, &o.paths)?;
    let running = c.state.running;
    let mut warnings = vec![];
    if running && !o.stop {
        warnings.push(format!(
            "{name} is running: its data may change under the copy (use --stop for a consistent backup)"
        ));
    }
    let stopped = running && o.stop;
    if stopped {
        d.container_stop(&id, o.stop_timeout).await?;
    }
    let result = write_backup(d, &raw, &data, &targets, stopped, o, None).await;
    if stopped {
        if let Err(e) = d.container_start(&id).await {
            let restart = format!("and starting {name} again failed: {e}");
            return Err(match result {
                Ok(_) => Error::failed(format!("the backup succeeded, {restart}")),
                Err(b) => b.context("").context(restart),
            });
        }
    }
    let (dir, manifest) = result?;
    Ok(Report {
        dir,
        seconds: t0.elapsed().as_secs_f64(),
        warnings,
        manifest,
    })
}

/// The backup directory: written as `.partial`, renamed when complete.
/// Named `<container>-<UTC timestamp>`, or `dir_name` when given. `raw`
/// is the container's whole inspect, which the manifest keeps.
pub(crate) async fn write_backup(
    d: &Docker,
    raw: &serde_json::Value,
    data: &DataMap,
    targets: &[Target],
    stopped: bool,
    o: &Options,
    dir_name: Option<&str>,
) -> Result<(PathBuf, Manifest)> {
    let inspect = &ContainerInspect::from_raw(raw)?;
    let name = inspect.name();
    create_private_dir(&o.out)?;
    let (partial, fin) = match dir_name {
        Some(n) => {
            let (partial, fin) = (o.out.join(format!("{n}.partial")), o.out.join(n));
            // A partial left by a killed berth is garbage: start over.
            let _ = fs::remove_dir_all(&partial);
            create_private_dir(&partial)?;
            (partial, fin)
        }
        None => new_dir(&o.out, name)?,
    };
    // Held until the rename: `berth prune` leaves a locked .partial alone.
    let _writer = crate::files::lock_dir(&partial)?;
    let container = (raw, inspect);
    let result = fill_dir(d, container, data, targets, stopped, o, &partial).await;
    let result = result.and_then(|m| {
        fs::rename(&partial, &fin).ctx(format!("renaming {} into place", partial.display()))?;
        sync_dir(&o.out)?;
        Ok(m)
    });
    match result {
        Ok(m) => Ok((fin, m)),
        Err(e) => {
            let _ = fs::remove_dir_all(&partial);
            Err(e)
        }
    }
}

/// A fresh `<name>-<UTC timestamp>` (with a counter on a clash).
fn new_dir(out: &Path, name: &str) -> Result<(PathBuf, PathBuf)> {
    let stamp = clock::compact(clock::now_unix());
    for n in 0..1000 {
        let base = if n == 0 {
            format!("{name}-{stamp}")
        } else {
            format!("{name}-{stamp}-{n}")
        };
        let fin = out.join(&base);
        let partial = out.join(format!("{base}.partial"));
        if fin.exists() {
            continue;
        }
        match fs::create_dir(&partial) {
            Ok(()) => {
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(&partial, fs::Permissions::from_mode(0o700))
                    .ctx(format!("creating {}", partial.display()))?;
                return Ok((partial, fin));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).ctx(format!("creating {}", partial.display())),
        }
    }
    Err(Error::failed(format!(
        "no free backup directory name for {name} in {}",
        out.display()
    )))
}

/// `container`: its whole inspect and what berth reads of it.
async fn fill_dir(
    d: &Docker,
    container: (&serde_json::Value, &ContainerInspect),
    data: &DataMap,
    targets: &[Target],
    stopped: bool,
    o: &Options,
    dir: &Path,
) -> Result<Manifest> {
    let (raw, inspect) = container;
    let name = inspect.name().to_owned();
    let id = inspect.id.clone();
    let mut paths = vec![];
    let sizes = if o.report.meters() {
        volume_sizes(d).await
    } else {
        HashMap::new()
    };
    for t in targets {
        cancel::check()?;
        let label = format!("backing up {name}:{}", t.path);
        let volume = t.mount.as_ref().and_then(|m| m.name.as_ref());
        let total = volume.and_then(|v| sizes.get(v)).copied().unwrap_or(0);
        let meter = Meter::with_total(label, o.report, total);
        let entry = copy_path(d, &id, t, dir, o, meter)
            .await
            .map_err(|e| e.context(format!("backing up {name}:{}", t.path)))?;
        paths.push(entry);
    }
    let version = d.version().await?;
    let image_id = inspect.image.clone();
    let tags = match d.image_inspect(&image_id).await {
        Ok(i) => serde_json::from_value(i["RepoTags"].clone()).unwrap_or_default(),
        Err(e) if e.is_not_found() => vec![],
        Err(e) => return Err(e),
    };
    let targeted: Vec<&str> = targets.iter().map(|t| t.path.as_str()).collect();
    let encryption = (!o.encrypt_to.is_empty()).then(|| manifest::Encryption {
        format: "age".into(),
        recipients: o.encrypt_to.clone(),
    });
    let m = Manifest {
        schema: manifest::SCHEMA_PLAIN,
        berth_version: env!("CARGO_PKG_VERSION").into(),
        created: clock::rfc3339(clock::now_unix()),
        engine: manifest::Engine {
            version: version.version,
            api: d.api().to_string(),
        },
        container: manifest::Container {
            id,
            name,
            was_running: inspect.state.running,
            stopped_for_backup: stopped,
            inspect: raw.clone(),
        },
        image: manifest::Image {
            id: image_id,
            reference: inspect.config.image.clone(),
            tags,
        },
        compression: manifest::Compression {
            format: "gzip".into(),
            level: o.level.method().level(),
            deflate: Some(o.level.method().to_string()),
        },
        paths,
        encryption,
        excluded: data
            .excluded
            .iter()
            .filter(|e| targeted.contains(&e.inside.as_str()))
            .cloned()
            .collect(),
    };
    write_manifest(dir, &m)?;
    Ok(m)
}

/// manifest.json and SHA256SUMS over it and every file of its paths,
/// durably: the last files of a backup directory.
pub(crate) fn write_manifest(dir: &Path, m: &Manifest) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(m).expect("serializable");
    let (msha, _) = write_file(&dir.join(manifest::MANIFEST), &bytes)?;
    let mut sums = vec![];
    for p in &m.paths {
        for (name, sha) in p.files() {
            sums.push((name.to_owned(), sha.to_owned()));
        }
    }
    sums.push((manifest::MANIFEST.to_owned(), msha));
    write_file(
        &dir.join(manifest::SUMS),
        manifest::sums_text(&sums).as_bytes(),
    )?;
    sync_dir(dir)
}

/// The engine's sizes of its volumes (bytes of their files), for the
/// progress meter's total: an estimate (the tar adds headers), fetched only
/// when a meter is drawn, and given up after two seconds (the engine walks
/// every volume to answer) or on any error: it only feeds the meter.
async fn volume_sizes(d: &Docker) -> HashMap<String, u64> {
    let ask = d.system_df();
    let Ok(Ok(df)) = tokio::time::timeout(std::time::Duration::from_secs(2), ask).await else {
        return HashMap::new();
    };
    df.volumes
        .into_iter()
        .filter_map(|v| Some((v.name, u64::try_from(v.usage_data?.size).ok()?)))
        .collect()
}

/// Write a small file durably; returns its sha256 and size.
fn write_file(path: &Path, bytes: &[u8]) -> Result<(String, u64)> {
    let mut w = HashWriter::new(create_new(path, 0o600)?);
    w.write_all(bytes)
        .ctx(format!("writing {}", path.display()))?;
    let (f, sha, n) = w.finish();
    f.sync_all().ctx(format!("syncing {}", path.display()))?;
    Ok((sha, n))
}

/// One path: GET archive, streamed into `<slug>.tar.gz` and `<slug>.index.gz`
/// (each `.age` when encrypted).
async fn copy_path(
    d: &Docker,
    id: &str,
    t: &Target,
    dir: &Path,
    o: &Options,
    meter: Meter,
) -> Result<PathEntry> {
    let t0 = Instant::now();
    let (_, reader) = match d.archive_get(id, &t.path).await {
        Ok(r) => r,
        // 404 is also the answer when the container itself is gone.
        Err(e) if e.is_not_found() => {
            let gone = matches!(d.container_exists(id).await, Ok(false));
            return Err(Error::failed(if gone {
                "the container was removed while berth was backing it up".to_owned()
            } else {
                format!("{} does not exist in the container", t.path)
            }));
        }
        Err(e) => return Err(e),
    };
    let roots = super::tar_roots(&t.path, &t.excluded);
    let slug = manifest::slug(&t.path);
    let (t, dir) = (t.clone(), dir.to_owned());
    let method = o.level.method();
    let to = o.encrypt_to.clone();
    tokio::task::spawn_blocking(move || {
        let input = meter.reader(reader);
        let mut e = stream_to_files(input, &dir, &slug, &roots, method, &to)?;
        e.path = t.path;
        e.mount = t.mount;
        e.excluded = t.excluded;
        e.seconds = t0.elapsed().as_secs_f64();
        Ok(e)
    })
    .await
    .map_err(|e| Error::failed(format!("the copy thread failed: {e}")))?
}

/// The synchronous data path of one archive. Fills every field of the
/// entry but `path`, `mount`, `excluded` and `seconds`. With recipients in
/// `encrypt_to`, both files are sealed to them (`.age`) and their sha256
/// and size are those of the sealed files.
pub fn stream_to_files(
    input: impl Read,
    dir: &Path,
    slug: &str,
    roots: &[String],
    method: Method,
    encrypt_to: &[String],
) -> Result<PathEntry> {
    // The scan thread hashes each entry's content; the gzip writer thread
    // counts the tar, seals and hashes the file.
    let (archive, apath, sealed) =
        sealed_file(dir, &format!("{slug}.tar.gz"), 1 << 20, encrypt_to)?;
    let mut gz = ParGzWriter::new(sealed, method, 0);
    // The index is gzipped on a thread of its own, off the scan thread: the
    // scan thread only copies each line into a buffer.
    let (index, ipath, isealed) =
        sealed_file(dir, &format!("{slug}.index.gz"), 8 << 10, encrypt_to)?;
    let mut idx = ParGzWriter::new(isealed, INDEX_METHOD, 1);
    let summary = scan(input, &mut gz, roots, ContentHash::NEW, |e| {
        write_line(&mut idx, e)
    })?;
    let writing = || format!("writing {}", apath.display());
    let (file, tar_bytes) = gz.finish_sized().map_err(|e| e.context(writing()))?;
    let (sha256, bytes) = sync_hashed(file).ctx(writing())?;
    let iwriting = || format!("writing {}", ipath.display());
    let ifile = idx.finish().map_err(|e| e.context(iwriting()))?;
    let (index_sha256, index_bytes) = sync_hashed(ifile).ctx(iwriting())?;
    Ok(PathEntry {
        path: String::new(),
        mount: None,
        archive,
        index,
        sha256,
        bytes,
        tar_sha256: None,
        tar_bytes,
        index_sha256,
        index_bytes,
        content_hash: ContentHash::NEW,
        entries: summary.entries,
        excluded: vec![],
        seconds: 0.0,
        delta: None,
    })
}

/// A backup file written through [`sealed_file`].
pub(crate) type Sealed = SealWriter<HashWriter<BufWriter<NamedFile>>>;

/// A new file of a backup directory, `plain` (`.age` after it when
/// sealing to `encrypt_to`), mode 0600, buffered by `capacity` bytes and
/// hashed as it is written: its name, its path and the writer, which
/// [`sync_hashed`] ends.
pub(crate) fn sealed_file(
    dir: &Path,
    plain: &str,
    capacity: usize,
    encrypt_to: &[String],
) -> Result<(String, PathBuf, Sealed)> {
    let name = seal::sealed_name(plain, !encrypt_to.is_empty());
    let path = dir.join(&name);
    let file = BufWriter::with_capacity(capacity, NamedFile::create_new(&path, 0o600)?);
    let w = SealWriter::new(HashWriter::new(file), encrypt_to)?;
    Ok((name, path, w))
}

/// How the index is deflated: zlib-rs level 3. Measured on 200,000 distinct small files: 37.8
/// MB of JSON lines become 8.17 MB at level 3, 0.3% more than `gzip -6`
/// (each line's sha256 is 32 random bytes: no level does much better than 4.6x);
/// level 3 deflates text several times faster than 6, on a thread of its
/// own, so the scan thread only copies lines.
pub(crate) const INDEX_METHOD: Method = Method::Zlib(3);

/// Ends the sealing, flushes, fsyncs and closes a file written through a
/// [`HashWriter`]; its sha256 and size.
pub(crate) fn sync_hashed(w: Sealed) -> io::Result<(String, u64)> {
    let (file, sha, n) = w.finish()?.finish();
    file.into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.into_file().sync_all())?;
    Ok((sha, n))
}
