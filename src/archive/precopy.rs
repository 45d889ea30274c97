//! The pre-copy's backup (issue 25; docs/precopy.md): a full backup taken
//! while the container runs, then, once it is stopped, a delta of each
//! path (what changed since the pre-copy began), assembled into one
//! backup directory of schema 5 whose every check proves the stopped
//! state.
//!
//! The pre-copy's files are hard-linked into the new directory (no copy,
//! no second disk's worth), the deltas written beside them, then the
//! manifest and SHA256SUMS; the directory is written as `.partial` and
//! renamed when complete, as every backup is.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::backup::{write_manifest, Level};
use super::delta_helper::{DeltaFiles, DeltaHelper, DeltaOf};
use super::index::IndexEntry;
use super::seal::Keys;
use super::{deltafiles, merge, verify};
use crate::docker::Docker;
use crate::error::{Context, Error, Result};
use crate::files::{create_private_dir, lock_dir, sync_dir};
use crate::manifest::{self, Delta, Manifest};
use crate::mounts::DataMap;

/// A complete backup taken while the container ran, and what a delta of
/// it needs.
pub struct PreCopy {
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// Entries changed at or after this (ns) are taken again by the delta.
    pub since_ns: i128,
    /// Each path's content index as the pre-copy saw it.
    before: Vec<Vec<IndexEntry>>,
    /// The owner Podman names every entry with (see `DeltaOf::owner`).
    owner: Option<(u32, u32)>,
}

/// What the deltas carried, for the summary.
#[derive(Debug, Default, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct Carried {
    /// Entries written again (new or changed).
    pub entries: u64,
    /// The deltas' tar bytes.
    pub tar_bytes: u64,
    /// The deltas' files' bytes (compressed).
    pub bytes: u64,
    pub removed: u64,
}

/// Why the pre-copy cannot serve a container whose backed-up paths are
/// `paths` in `data`, if it cannot: the helper mounts each one as the
/// volume it is.
pub fn unfit(data: &DataMap, paths: &[String]) -> Option<String> {
    let not_volume = paths.iter().find(|p| {
        !data
            .mounts
            .iter()
            .any(|m| &m.destination == *p && m.kind == "volume" && m.name.is_some())
    });
    if let Some(p) = not_volume {
        return Some(format!("{p} is not a volume"));
    }
    // `/data` and `/data.delta` would both want `data.delta.tar.gz`.
    let mut names = std::collections::HashSet::new();
    for p in paths {
        let slug = manifest::slug(p);
        let files = [
            format!("{slug}.tar.gz"),
            format!("{slug}.delta.tar.gz"),
            format!("{slug}.removed"),
            format!("{slug}.final.index.gz"),
        ];
        if files.into_iter().any(|f| !names.insert(f)) {
            return Some(format!(
                "the files of {p} would take the names of another path's"
            ));
        }
    }
    None
}

/// The owner Podman's archive gives every entry of a container that runs
/// as `user` (`Config.User`); None when it cannot be known from the
/// numbers alone (a user name: its ids are in the image's passwd file).
pub fn podman_owner(user: &str) -> Option<(u32, u32)> {
    match user.split_once(':') {
        _ if user.is_empty() || user == "root" => Some((0, 0)),
        None => Some((user.parse().ok()?, 0)).filter(|(u, _)| *u == 0),
        Some((u, g)) => Some((u.parse().ok()?, g.parse().ok()?)),
    }
}

impl PreCopy {
    /// The pre-copy in `dir`, begun at `since_ns` (see `delta::since_of`),
    /// its indexes read with `keys`.
    pub fn load(
        dir: &Path,
        since_ns: i128,
        owner: Option<(u32, u32)>,
        keys: &Keys,
    ) -> Result<Self> {
        let manifest = Manifest::load(dir)?;
        let before = manifest
            .paths
            .iter()
            .map(|p| verify::read_stored_index(dir, p, keys))
            .collect::<Result<_>>()?;
        Ok(PreCopy {
            dir: dir.to_owned(),
            manifest,
            since_ns,
            before,
            owner,
        })
    }

    fn of(&self, i: usize) -> DeltaOf<'_> {
        let p = &self.manifest.paths[i];
        DeltaOf {
            path: &p.path,
            before: &self.before[i],
            excluded: &p.excluded,
            owner: self.owner,
        }
    }

    /// The helper, from `image`, with each path's volume (`data`) mounted
    /// where it is in the container named `label`: started while the
    /// container still runs, so that a helper that cannot run changes
    /// nothing.
    pub async fn start_helper<'d>(
        &self,
        d: &'d Docker,
        image: &str,
        data: &DataMap,
        label: &str,
    ) -> Result<DeltaHelper<'d>> {
        let mut mounts = vec![];
        for p in &self.manifest.paths {
            let m = data.mounts.iter().find(|m| m.destination == p.path);
            let Some(name) = m.and_then(|m| m.name.as_ref()) else {
                return Err(Error::failed(format!("{} is not a volume", p.path)));
            };
            // Read-only, and never filled from the image: an empty volume
            // mounted in a new container gets the image's files at that
            // path, which would change the data of the version serving.
            mounts.push(json!({
                "Type": "volume", "Source": name, "Target": p.path, "ReadOnly": true,
                "VolumeOptions": {"NoCopy": true},
            }));
        }
        let ofs: Vec<DeltaOf> = (0..self.before.len()).map(|i| self.of(i)).collect();
        let berth = super::helper::own_binary()?;
        DeltaHelper::start(d, &berth, image, Value::Array(mounts), &ofs, label).await
    }

    /// The content bytes changed since the pre-copy began, over every
    /// path, as the helper walks them now (nothing is sent): what a delta
    /// taken now would carry, and so about what it will carry after the
    /// stop.
    pub async fn changed_now(&self, helper: &DeltaHelper<'_>) -> Result<u64> {
        let mut bytes = 0;
        for i in 0..self.before.len() {
            bytes += helper.count(i, &self.of(i), self.since_ns).await?.bytes;
        }
        Ok(bytes)
    }

    /// The pre-copy's tar bytes, over every path.
    pub fn tar_bytes(&self) -> u64 {
        self.manifest.paths.iter().map(|p| p.tar_bytes).sum()
    }

    /// Take each path's delta through `helper` and write the whole backup
    /// as `out/name` (its `.partial` first). The pre-copy directory is
    /// left as it is.
    pub async fn finish(
        &self,
        helper: &DeltaHelper<'_>,
        out: &Path,
        name: &str,
        encrypt_to: &[String],
        keys: &Keys,
    ) -> Result<(PathBuf, Manifest, Carried)> {
        let (partial, fin) = (out.join(format!("{name}.partial")), out.join(name));
        // A partial left by a killed berth is garbage: start over.
        let _ = fs::remove_dir_all(&partial);
        create_private_dir(&partial)?;
        let _writer = lock_dir(&partial)?;
        let result = self.fill(helper, &partial, encrypt_to, keys).await;
        let result = result.and_then(|r| {
            fs::rename(&partial, &fin).ctx(format!("renaming {} into place", partial.display()))?;
            sync_dir(out)?;
            Ok(r)
        });
        match result {
            Ok((m, c)) => Ok((fin, m, c)),
            Err(e) => {
                let _ = fs::remove_dir_all(&partial);
                Err(e)
            }
        }
    }

    async fn fill(
        &self,
        helper: &DeltaHelper<'_>,
        dir: &Path,
        encrypt_to: &[String],
        keys: &Keys,
    ) -> Result<(Manifest, Carried)> {
        let mut m = self.manifest.clone();
        let mut carried = Carried::default();
        for (i, p) in m.paths.iter_mut().enumerate() {
            crate::cancel::check()?;
            for (file, _) in p.files() {
                let (from, to) = (self.dir.join(file), dir.join(file));
                // A filesystem without hard links gets a copy, which the
                // stop window's check then hashes again.
                if fs::hard_link(&from, &to).is_err() {
                    fs::copy(&from, &to).ctx(format!("copying {file} of the pre-copy"))?;
                }
            }
            let slug = manifest::slug(&p.path);
            let to = DeltaFiles {
                dir: dir.to_owned(),
                slug: format!("{slug}.delta"),
                method: Level::Default.method(),
                encrypt_to: encrypt_to.to_vec(),
            };
            let t = std::time::Instant::now();
            let (mut changes, report) = helper
                .write_delta(i, &self.of(i), self.since_ns, to)
                .await?;
            changes.path = p.path.clone();
            changes.mount = p.mount.clone();
            changes.excluded = p.excluded.clone();
            changes.seconds = t.elapsed().as_secs_f64();
            let delta = verify::read_stored_index(dir, &changes, keys)?;
            let root = super::tar_base(&p.path);
            let state = merge::merged(root, &self.before[i], &delta, &report.removed)?.state;
            let removed = deltafiles::write_removed(dir, &slug, &report.removed, encrypt_to)?;
            let fin = deltafiles::write_final_index(dir, &slug, &state, encrypt_to)?;
            carried.entries += changes.entries;
            carried.tar_bytes += changes.tar_bytes;
            carried.bytes += changes.bytes;
            carried.removed += report.removed.len() as u64;
            p.delta = Some(Box::new(Delta {
                changes,
                removed: removed.name,
                removed_sha256: removed.sha256,
                removed_bytes: removed.bytes,
                removed_count: report.removed.len() as u64,
                final_index: fin.name,
                final_index_sha256: fin.sha256,
                final_index_bytes: fin.bytes,
                final_entries: state.len() as u64,
                since_ns: i64::try_from(self.since_ns).unwrap_or(i64::MAX),
            }));
        }
        m.schema = manifest::SCHEMA;
        m.created = crate::clock::rfc3339(crate::clock::now_unix());
        m.container.was_running = true;
        m.container.stopped_for_backup = true;
        write_manifest(dir, &m)?;
        Ok((m, carried))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podman_owners_known_from_numbers_only() {
        assert_eq!(podman_owner(""), Some((0, 0)));
        assert_eq!(podman_owner("root"), Some((0, 0)));
        assert_eq!(podman_owner("0"), Some((0, 0)));
        assert_eq!(podman_owner("1000:1000"), Some((1000, 1000)));
        // A uid alone takes its group from the image's passwd file.
        assert_eq!(podman_owner("1000"), None);
        assert_eq!(podman_owner("postgres"), None);
        assert_eq!(podman_owner("postgres:postgres"), None);
    }
}
