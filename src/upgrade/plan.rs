//! Step 1 of an upgrade: look at everything, change nothing. The plan is
//! what `--dry-run` prints and what the run directory keeps (plan.json) so
//! that `resume` and `rollback` know what to put back.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::endpoints::{Connect, Engine};
use super::imagefile::{self, ImageFile};
use super::recreate;
use super::{compose, dependents};
use crate::archive::backup::{self, Target};
use crate::clock;
use crate::docker::model::ContainerInspect;
use crate::docker::Docker;
use crate::error::{Error, Result};
use crate::mounts::{self, DataMap};
use crate::profile::{self, Hooks, Layer, Settings};

/// What the user asked for (serializable: a rollout keeps it to resume).
/// Its paths (image and config files, a profile file, the backup root) are
/// absolute: the caller makes them so (the CLI, in cli/upgrade.rs), since
/// plan.json and rollout.json keep them for a resume from anywhere.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Request {
    pub container: String,
    pub image_file: PathBuf,
    pub image: Option<String>,
    pub sha256: Option<String>,
    pub profile: Option<String>,
    pub config_file: Option<PathBuf>,
    pub config_dest: Option<PathBuf>,
    /// Settings given as flags (the top layer).
    pub flags: Layer,
    pub backup_root: PathBuf,
    pub online_backup: bool,
    /// Take the whole backup while stopped, without a pre-copy.
    #[serde(default)]
    pub no_precopy: bool,
    /// The most content bytes a delta may carry (default: half the
    /// pre-copy); more changed during the pre-copy: the whole backup is
    /// taken while stopped instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precopy_max_delta: Option<u64>,
    pub keep_old: bool,
    pub force: bool,
    pub stop_timeout: u32,
    /// A verified backup to copy instead of taking one (a rehearsal's,
    /// when nothing can have changed since: see rehearse/first.rs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reuse_backup: Option<PathBuf>,
    /// age X25519 recipients to encrypt the backup to (`--encrypt-to`).
    #[serde(default)]
    pub encrypt_to: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub container: String,
    pub container_id: String,
    pub was_running: bool,
    pub old_image_id: String,
    pub(crate) old_image_ref: String,
    /// The tag that keeps the old image when the new one takes its name.
    pub rollback_tag: String,
    pub new_image_ref: String,
    pub new_image_id: String,
    pub image_file: PathBuf,
    pub(crate) image_sha256: String,
    pub aside_name: String,
    pub settings: Settings,
    /// Commands run before the backup and after a rollback's restore.
    #[serde(default)]
    pub hooks: Hooks,
    pub config_file: Option<PathBuf>,
    /// Host path the config file is written to.
    pub config_dest: Option<PathBuf>,
    pub paths: Vec<String>,
    /// Nested mounts cut out of each path, relative to it.
    pub excluded: Vec<(String, Vec<String>)>,
    pub online_backup: bool,
    /// Back up while the old version serves, then only what changed once
    /// it is stopped (docs/precopy.md). False in plans of older berths.
    #[serde(default)]
    pub precopy: bool,
    /// See [`Request::precopy_max_delta`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precopy_max_delta: Option<u64>,
    pub keep_old: bool,
    pub stop_timeout: u32,
    /// The backup directory copied instead of backing up (Request::reuse_backup).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reuse_backup: Option<PathBuf>,
    /// age recipients the backup is encrypted to, besides the run's own
    /// key (see `runkey`); empty: a plain backup.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub encrypt_to: Vec<String>,
    /// The body of the new container's create, without `Env`: see `env_names`.
    pub create: Value,
    /// Networks connected after the create, before the start (API < 1.44).
    #[serde(default)]
    pub connect: Vec<Connect>,
    /// The environment variables the new container gets, by name: their
    /// values are read from the old container at create (upgrade/env.rs),
    /// never written here. None in plans of older berths (values inline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_names: Option<Vec<String>>,
    pub(crate) not_carried: Vec<String>,
    /// Other containers that use this one (its network stack, its volumes
    /// through --volumes-from, a link): the upgrade refuses while they do.
    #[serde(default)]
    pub(crate) dependents: Vec<String>,
    /// What the user should know and change (compose files).
    #[serde(default)]
    pub warnings: Vec<String>,
    pub(crate) backup_bytes_estimate: u64,
    pub(crate) free_bytes: u64,
    pub run_dir: PathBuf,
}

impl Plan {
    pub fn targets(&self, data: &DataMap) -> Vec<Target> {
        self.excluded
            .iter()
            .map(|(p, ex)| Target {
                path: p.clone(),
                mount: data.mounts.iter().find(|m| &m.destination == p).cloned(),
                excluded: ex.clone(),
            })
            .collect()
    }
}

pub async fn plan(d: &Docker, r: &Request) -> Result<Plan> {
    let img = read_image_file(&r.image_file).await?;
    plan_with(d, r, &img).await
}

/// Read and hash an image tarball off the async threads.
pub(crate) async fn read_image_file(path: &Path) -> Result<ImageFile> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || imagefile::read(&path))
        .await
        .map_err(|e| Error::failed(format!("reading the image file: {e}")))?
}

/// The plan for an image file already read (a rollout reads it once for
/// every node).
pub(crate) async fn plan_with(d: &Docker, r: &Request, img: &ImageFile) -> Result<Plan> {
    // The whole inspect is what the new container is created from.
    let raw = d.container_inspect_raw(&r.container).await?;
    let c = ContainerInspect::from_raw(&raw)
        .map_err(|e| e.context(format!("inspecting container {}", r.container)))?;
    let name = c.name().to_owned();
    let old_image_id = c.image.clone();
    let old_image = d.image_inspect(&old_image_id).await?;
    check_sha(r, img)?;
    let new_image_ref = new_ref(r, img)?;
    if img.config_digest == old_image_id {
        return Err(Error::failed(format!(
            "{name} already runs image {} ({}): nothing to upgrade",
            new_image_ref,
            short(&old_image_id)
        )));
    }
    let data = mounts::resolve(d, &c).await?;
    let (settings, hooks) = settings(r, &c)?;
    let targets = backup::targets(&name, &data, &settings.paths)?;
    let config_dest = config_dest(r, &settings, &data)?;
    let engine = Engine::of(d);
    let mut rc = recreate::request(&raw, &old_image, &new_image_ref, &data, engine);
    let users = dependents::of(d, &c).await?;
    if !users.is_empty() && !r.force {
        return Err(Error::failed(format!(
            "refusing to upgrade {name}: other containers use it ({}); they would keep using the old container: stop and remove them (or re-point them) first, --force to go on anyway",
            users.join("; ")
        )));
    }
    let env_names = crate::secrets::strip_request_env(&mut rc.request);
    if !rc.not_carried.is_empty() && !r.force {
        return Err(Error::failed(format!(
            "refusing to upgrade {name}: part of its configuration cannot be carried over ({}); --force to go on without it",
            rc.not_carried.join("; ")
        )));
    }
    let warnings = compose::warnings(&c.config.labels, &c.config.image, &new_image_ref);
    let stamp = clock::compact(clock::now_unix());
    let estimate = estimate_bytes(d, &data, &targets).await;
    let free = free_bytes(&r.backup_root)?;
    if estimate > free && !r.force {
        return Err(Error::failed(format!(
            "not enough space in {} for the backup: {} free, the volumes hold about {}; free some or choose --backup-root (--force to try anyway)",
            r.backup_root.display(),
            crate::progress::human(free as f64),
            crate::progress::human(estimate as f64)
        )));
    }
    Ok(Plan {
        container_id: c.id.clone(),
        was_running: c.state.running,
        old_image_ref: c.config.image.clone(),
        rollback_tag: rollback_tag(&c.config.image, &name, &stamp),
        new_image_ref,
        new_image_id: img.config_digest.clone(),
        image_file: std::path::absolute(&r.image_file).unwrap_or(r.image_file.clone()),
        image_sha256: img.sha256.clone(),
        aside_name: format!("{name}-berth-old-{stamp}"),
        settings,
        hooks,
        config_file: r
            .config_file
            .as_ref()
            .map(|p| std::path::absolute(p).unwrap_or(p.clone())),
        config_dest,
        paths: targets.iter().map(|t| t.path.clone()).collect(),
        excluded: targets
            .iter()
            .map(|t| (t.path.clone(), t.excluded.clone()))
            .collect(),
        online_backup: r.online_backup,
        precopy: !r.no_precopy && !r.online_backup && r.reuse_backup.is_none(),
        precopy_max_delta: r.precopy_max_delta,
        keep_old: r.keep_old,
        stop_timeout: r.stop_timeout,
        reuse_backup: r.reuse_backup.clone(),
        encrypt_to: r.encrypt_to.clone(),
        create: rc.request,
        connect: rc.connect,
        env_names,
        not_carried: rc.not_carried,
        dependents: users,
        warnings,
        backup_bytes_estimate: estimate,
        free_bytes: free,
        run_dir: free_run_dir(&r.backup_root, &name, &stamp, "upgrade"),
        container: name,
        old_image_id,
    })
}

/// `<root>/<name>-<stamp>-<kind>` (kind: upgrade, rehearsal), with a
/// counter if that exists (a backup or another run in the same second).
/// `save_plan` creates it exclusively, so two runs can never share one.
pub fn free_run_dir(root: &Path, name: &str, stamp: &str, kind: &str) -> PathBuf {
    let root = std::path::absolute(root).unwrap_or(root.to_owned());
    (0..)
        .map(|n| {
            root.join(if n == 0 {
                format!("{name}-{stamp}-{kind}")
            } else {
                format!("{name}-{stamp}-{kind}-{n}")
            })
        })
        .find(|p| !p.exists())
        .expect("an unused name")
}

fn short(id: &str) -> &str {
    crate::docker::short_id(id)
}

/// Refuse a tarball that is not the one `--sha256` names.
pub(crate) fn check_sha(r: &Request, img: &ImageFile) -> Result<()> {
    match &r.sha256 {
        Some(want) if !want.eq_ignore_ascii_case(&img.sha256) => Err(Error::usage(format!(
            "{}: sha256 is {}, not the {} given with --sha256: refusing a file that is not the one expected",
            r.image_file.display(),
            img.sha256,
            want
        ))),
        _ => Ok(()),
    }
}

fn new_ref(r: &Request, img: &ImageFile) -> Result<String> {
    if let Some(i) = &r.image {
        return Ok(i.clone());
    }
    match img.repo_tags.as_slice() {
        [one] => Ok(one.clone()),
        [] => Ok(img.config_digest.clone()),
        many => Err(Error::usage(format!(
            "the image file has several tags ({}): choose one with --image",
            many.join(", ")
        ))),
    }
}

/// The settings and the hooks, from the same layers.
fn settings(r: &Request, c: &ContainerInspect) -> Result<(Settings, Hooks)> {
    let (labels, label_profile) = profile::from_labels(&c.config.labels)?;
    let mut layers = vec![r.flags.clone(), labels];
    if let Some(p) = &r.profile {
        layers.push(profile::load(p)?);
    } else if let Some(p) = label_profile {
        layers.push(p);
    }
    Ok((profile::merge(&layers)?, profile::hooks(&layers)))
}

/// The host path of the config file: --config-dest, else the profile's
/// in-container path mapped through the bind mount that holds it.
fn config_dest(r: &Request, s: &Settings, data: &DataMap) -> Result<Option<PathBuf>> {
    let Some(src) = &r.config_file else {
        if r.config_dest.is_some() {
            return Err(Error::usage("--config-dest needs --config-file"));
        }
        return Ok(None);
    };
    if !src.is_file() {
        return Err(Error::usage(format!(
            "--config-file {}: not a readable file",
            src.display()
        )));
    }
    if let Some(d) = &r.config_dest {
        return Ok(Some(d.clone()));
    }
    let inner = s.config_path.as_deref().ok_or_else(|| {
        Error::usage("--config-file needs --config-dest (or a profile with config-path)")
    })?;
    let bind = data
        .mounts
        .iter()
        .filter(|m| m.kind == "bind")
        .find_map(|m| {
            mounts::nested_rel(&m.destination, inner).map(|rel| Path::new(&m.source).join(rel))
        });
    bind.map(Some).ok_or_else(|| {
        Error::usage(format!(
            "no bind mount of the container holds {inner}: give the host path with --config-dest"
        ))
    })
}

/// `repo:berth-rollback-<stamp>` for the old image's repository.
fn rollback_tag(old_ref: &str, name: &str, stamp: &str) -> String {
    let repo = if old_ref.starts_with("sha256:") || old_ref.is_empty() {
        format!("berth-rollback/{}", name.to_ascii_lowercase())
    } else {
        let no_digest = old_ref.split('@').next().unwrap_or(old_ref);
        match no_digest.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => repo.to_owned(),
            _ => no_digest.to_owned(),
        }
    };
    format!("{repo}:berth-rollback-{}", stamp.to_ascii_lowercase())
}

/// Sum of the volumes' sizes as the engine counts them (/system/df); 0
/// when the engine cannot say.
async fn estimate_bytes(d: &Docker, data: &DataMap, targets: &[Target]) -> u64 {
    let Ok(df) = d.system_df().await else {
        return 0;
    };
    targets
        .iter()
        .filter_map(|t| {
            data.mounts
                .iter()
                .find(|m| m.destination == t.path)?
                .name
                .as_deref()
        })
        .filter_map(|n| df.volume_size(n))
        .sum()
}

/// Free space where `dir` is or will be (its nearest existing ancestor:
/// planning creates nothing).
fn free_bytes(dir: &Path) -> Result<u64> {
    let abs = std::path::absolute(dir).unwrap_or(dir.to_owned());
    let dir = abs
        .ancestors()
        .find(|a| a.exists())
        .unwrap_or(Path::new("/"));
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::usage("path with NUL"))?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: statvfs(3) with a valid C string and a zeroed out-struct.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(Error::failed(format!(
            "statvfs {}: {}",
            dir.display(),
            std::io::Error::last_os_error()
        )));
    }
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollback_tags() {
        assert_eq!(
            rollback_tag("vmware/lightwave-sts", "lw", "20261123T1Z"),
            "vmware/lightwave-sts:berth-rollback-20261123t1z"
        );
        assert_eq!(
            rollback_tag("reg:5000/a/b:6.6.0", "lw", "X"),
            "reg:5000/a/b:berth-rollback-x"
        );
        assert_eq!(
            rollback_tag("sha256:abc", "LW", "X"),
            "berth-rollback/lw:berth-rollback-x"
        );
        assert_eq!(
            rollback_tag("reg:5000/a", "lw", "X"),
            "reg:5000/a:berth-rollback-x"
        );
    }
}
