//! The forward steps of an upgrade, one journaled step at a time. The
//! flow (`flow.rs`) drives them; they know nothing of the undo steps.

use std::fs::File;
use std::time::Duration;

use serde_json::{json, Value};

use super::journal::{step, Journal, Step};
use super::plan::Plan;
use super::runkey;
use super::watch::{self, Verdict};
use super::{Say, BACKUP, NEW_LOG, PRECOPY};
use crate::archive::delta_helper::DeltaHelper;
use crate::archive::precopy::{self, PreCopy};
use crate::archive::seal::Keys;
use crate::archive::{backup, delta, verify};
use crate::docker::model::ContainerInspect;
use crate::docker::{body, Docker};
use crate::error::{Error, Result};
use crate::mounts;
use crate::report::SILENT;

/// Steps 2 to 7. Returns the watch's verdict; an error is a failed step.
pub(crate) async fn forward(d: &Docker, p: &Plan, j: &mut Journal, say: Say) -> Result<Verdict> {
    say.step(format!(
        "tagging the old image {} as {}",
        crate::docker::short_id(&p.old_image_id),
        p.rollback_tag
    ));
    step(j, Step::TagOld, async {
        let (repo, tag) = p.rollback_tag.rsplit_once(':').expect("repo:tag");
        d.image_tag(&p.old_image_id, repo, tag).await?;
        Ok(json!({ "old_image_id": p.old_image_id }))
    })
    .await?;
    // The load needs nothing stopped: done while the old version serves, it
    // is no part of the downtime, and a file the engine refuses changes
    // nothing.
    say.step(format!("loading {}", p.image_file.display()));
    step(j, Step::Load, load(d, p)).await?;
    if p.precopy && p.was_running {
        precopy_stop_delta(d, p, j, say).await?;
    } else if p.online_backup {
        backup_and_verify(d, p, j, say, false).await?;
        stop_old(d, p, j, say).await?;
    } else {
        stop_old(d, p, j, say).await?;
        backup_and_verify(d, p, j, say, p.was_running).await?;
    }
    say.step(format!(
        "renaming the old container aside as {}",
        p.aside_name
    ));
    step(j, Step::RenameOld, async {
        d.container_rename(&p.container_id, &p.aside_name).await?;
        Ok(Value::Null)
    })
    .await?;
    say.step(format!(
        "creating the new {} on {}",
        p.container, p.new_image_ref
    ));
    let created = step(j, Step::CreateNew, async {
        let req = super::env::create_request(d, p).await?;
        let id = super::recreate::create(d, &p.container, &req, &p.connect).await?;
        Ok(json!({ "id": id }))
    })
    .await?;
    let new_id = created["id"].as_str().unwrap_or_default().to_owned();
    if let (Some(src), Some(dest)) = (&p.config_file, &p.config_dest) {
        say.step(format!(
            "writing the config file {} (mode 0600)",
            dest.display()
        ));
        step(j, Step::WriteConfig, async { write_config(src, dest) }).await?;
    }
    say.step(format!("starting the new {}", p.container));
    start_and_watch(d, p, j, say, &new_id).await
}

/// Step write-config: the config file's bytes to `dest`, mode 0600.
pub fn write_config(src: &std::path::Path, dest: &std::path::Path) -> Result<Value> {
    let bytes = std::fs::read(src)
        .map_err(|e| Error::failed(format!("reading --config-file {}: {e}", src.display())))?;
    crate::files::write_atomic(dest, &bytes, 0o600)?;
    Ok(Value::Null)
}

/// Steps start-new and watch: start the created container and watch it
/// for the plan's timeout.
pub async fn start_and_watch(
    d: &Docker,
    p: &Plan,
    j: &mut Journal,
    say: Say,
    id: &str,
) -> Result<Verdict> {
    step(j, Step::StartNew, async {
        d.container_start(id).await?;
        Ok(Value::Null)
    })
    .await?;
    say.step(format!(
        "watching it ({}, up to {}s)",
        p.settings.watch, p.settings.timeout_s
    ));
    watch_new(d, p, j, id, Duration::from_secs(p.settings.timeout_s)).await
}

pub(crate) async fn watch_new(
    d: &Docker,
    p: &Plan,
    j: &mut Journal,
    new_id: &str,
    timeout: Duration,
) -> Result<Verdict> {
    let v = step(j, Step::Watch, async {
        let v = watch::watch(d, new_id, &p.settings, timeout, &p.run_dir.join(NEW_LOG)).await?;
        Ok(serde_json::to_value(&v).expect("serializable"))
    })
    .await?;
    Ok(serde_json::from_value(v).expect("written above"))
}

async fn stop_old(d: &Docker, p: &Plan, j: &mut Journal, say: Say) -> Result<()> {
    if !p.was_running {
        return Ok(());
    }
    say.step(format!(
        "stopping {} (up to {}s)",
        p.container, p.stop_timeout
    ));
    step(j, Step::Stop, async {
        d.container_stop(&p.container_id, p.stop_timeout).await?;
        Ok(Value::Null)
    })
    .await
    .map(drop)
}

/// Steps pre-copy, stop, backup and verify with a pre-copy: a full backup
/// and its deep check while the old version serves, the delta helper
/// started, then the stop, and in the stop window only what changed since
/// the pre-copy began, and the check of that. Where the pre-copy cannot
/// serve (a path that is not a volume, no helper can run, Podman with a
/// user given by name, more changed during it than a delta may carry),
/// one line says why and the backup is taken whole after the stop, as
/// without it.
async fn precopy_stop_delta(d: &Docker, p: &Plan, j: &mut Journal, say: Say) -> Result<()> {
    let raw = d.container_inspect_raw(&p.container_id).await?;
    let inspect = ContainerInspect::from_raw(&raw)?;
    let data = mounts::resolve(d, &inspect).await?;
    let user = raw["Config"]["User"].as_str().unwrap_or_default();
    let owner = d.podman().map(|_| precopy::podman_owner(user));
    let unfit = precopy::unfit(&data, &p.paths).or_else(|| match owner {
        Some(None) => Some(format!(
            "Podman names every file as owned by the container's user {user:?}, whose ids berth cannot know"
        )),
        _ => None,
    });
    if let Some(why) = unfit {
        return without_precopy(d, p, j, say, &why).await;
    }
    say.step(format!(
        "pre-copying {} into {} while {} serves",
        p.paths.join(", "),
        p.run_dir.join(PRECOPY).display(),
        p.container
    ));
    let since = step(j, Step::PreCopy, async {
        let since = delta::since_of(engine_now(d).await);
        let o = backup_options(p, say)?;
        backup::write_backup(d, &raw, &data, &p.targets(&data), false, &o, Some(PRECOPY)).await?;
        let dir = p.run_dir.join(PRECOPY);
        // An encrypted pre-copy is opened with the run's own key.
        let keys = runkey::keys(&p.run_dir, &Keys::none())?;
        tokio::task::spawn_blocking(move || verify::verify_shown(&dir, true, &SILENT, &keys))
            .await
            .map_err(|e| Error::failed(format!("verify thread: {e}")))??;
        Ok(json!({ "dir": p.run_dir.join(PRECOPY), "since_ns": since.to_string() }))
    })
    .await?;
    let since: i128 = since["since_ns"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let keys = runkey::keys(&p.run_dir, &Keys::none())?;
    let pre = PreCopy::load(&p.run_dir.join(PRECOPY), since, owner.flatten(), &keys)?;
    let helper = match pre
        .start_helper(d, &inspect.image, &data, &p.container)
        .await
    {
        Ok(h) => h,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&pre.dir);
            return without_precopy(d, p, j, say, &e.to_string()).await;
        }
    };
    if let Some(why) = too_much_changed(p, &pre, &helper).await {
        let _ = helper.remove().await;
        let _ = std::fs::remove_dir_all(&pre.dir);
        return without_precopy(d, p, j, say, &why).await;
    }
    let stopped = stop_old(d, p, j, say).await;
    let delta = match stopped {
        Ok(()) => delta_backup(p, j, say, &pre, &helper, &keys).await,
        Err(e) => Err(e),
    };
    if let Err(e) = helper.remove().await {
        say.step(format!("{e} (`berth prune` removes it)"));
    }
    delta?;
    let _ = std::fs::remove_dir_all(&pre.dir);
    Ok(())
}

/// Why the delta would carry too much to be worth it, if it would: more
/// content changed while the pre-copy was taken than `--precopy-max-delta`
/// (default: half the pre-copy), counted by the helper before the stop. A
/// helper that cannot count cannot take the delta either.
async fn too_much_changed(p: &Plan, pre: &PreCopy, helper: &DeltaHelper<'_>) -> Option<String> {
    let changed = match pre.changed_now(helper).await {
        Ok(n) => n,
        Err(e) => return Some(e.to_string()),
    };
    let limit = p.precopy_max_delta.unwrap_or(pre.tar_bytes() / 2);
    let human = |n: u64| crate::progress::human(n as f64);
    (changed > limit).then(|| {
        format!(
            "{} changed while the pre-copy of {} was taken, more than the {} a delta may carry",
            human(changed),
            human(pre.tar_bytes()),
            human(limit)
        )
    })
}

/// Now, by the earlier of berth's clock and the engine host's: the delta
/// compares ctimes stamped by the engine host's clock, which may be behind
/// berth's (an engine reached over ssh); an earlier `since` only takes a
/// few more entries again, a later one would miss changes.
async fn engine_now(d: &Docker) -> i128 {
    let local = crate::clock::now_ns();
    let engine = d.info().await.ok();
    let engine = engine.and_then(|i| crate::clock::parse_rfc3339(&i.system_time));
    engine.map_or(local, |e| e.min(local))
}

/// The stop-window half of [`precopy_stop_delta`]: steps backup and verify.
async fn delta_backup(
    p: &Plan,
    j: &mut Journal,
    say: Say,
    pre: &PreCopy,
    helper: &DeltaHelper<'_>,
    keys: &Keys,
) -> Result<()> {
    say.step(format!(
        "backing up what changed since the pre-copy into {}",
        p.run_dir.join(BACKUP).display()
    ));
    step(j, Step::Backup, async {
        let to = encrypt_to(p)?;
        let (dir, m, carried) = pre.finish(helper, &p.run_dir, BACKUP, &to, keys).await?;
        Ok(json!({ "dir": dir, "paths": m.paths.len(), "delta": carried }))
    })
    .await?;
    say.step("verifying the backup (what changed re-read, the pre-copy's files the ones checked)");
    let dir = p.run_dir.join(BACKUP);
    let (keys, pre) = (keys.clone(), pre.dir.clone());
    step(j, Step::Verify, async move {
        tokio::task::spawn_blocking(move || verify::verify_deltas(&dir, &pre, &keys))
            .await
            .map_err(|e| Error::failed(format!("verify thread: {e}")))??;
        Ok(Value::Null)
    })
    .await
    .map(drop)
}

/// Today's order, after one line saying why the pre-copy cannot serve.
async fn without_precopy(d: &Docker, p: &Plan, j: &mut Journal, say: Say, why: &str) -> Result<()> {
    say.step(format!(
        "the pre-copy is not used ({why}): the whole backup is taken once stopped"
    ));
    stop_old(d, p, j, say).await?;
    backup_and_verify(d, p, j, say, true).await
}

/// The backup's recipients: the user's and the run's own key, or none.
fn encrypt_to(p: &Plan) -> Result<Vec<String>> {
    let mut to = p.encrypt_to.clone();
    if !to.is_empty() {
        to.push(runkey::ensure(&p.run_dir)?);
    }
    Ok(to)
}

fn backup_options(p: &Plan, say: Say) -> Result<backup::Options> {
    Ok(backup::Options {
        paths: p.paths.clone(),
        out: p.run_dir.clone(),
        level: backup::Level::Default,
        stop: false,
        stop_timeout: p.stop_timeout,
        report: say.report,
        encrypt_to: encrypt_to(p)?,
    })
}

/// Steps backup and verify: a backup of the plan's paths into the run
/// directory (or a copy of `reuse_backup`), then every archive re-read.
pub async fn backup_and_verify(
    d: &Docker,
    p: &Plan,
    j: &mut Journal,
    say: Say,
    stopped: bool,
) -> Result<()> {
    if let Some(src) = &p.reuse_backup {
        say.step(format!(
            "reusing the backup {} (nothing changed since it was taken)",
            src.display()
        ));
        let dest = p.run_dir.join(BACKUP);
        step(j, Step::Backup, async {
            crate::files::copy_dir_files(src, &dest)?;
            Ok(json!({ "dir": dest, "reused": src }))
        })
        .await?;
        return verify_step(j, say, p).await;
    }
    say.step(format!(
        "backing up {} into {}",
        p.paths.join(", "),
        p.run_dir.join(BACKUP).display()
    ));
    step(j, Step::Backup, async {
        let raw = d.container_inspect_raw(&p.container_id).await?;
        let data = mounts::resolve(d, &ContainerInspect::from_raw(&raw)?).await?;
        let o = backup_options(p, say)?;
        let (dir, m) =
            backup::write_backup(d, &raw, &data, &p.targets(&data), stopped, &o, Some(BACKUP))
                .await?;
        Ok(json!({ "dir": dir, "paths": m.paths.len() }))
    })
    .await?;
    verify_step(j, say, p).await
}

async fn verify_step(j: &mut Journal, say: Say, p: &Plan) -> Result<()> {
    say.step("verifying the backup (every archive re-read)");
    let dir = p.run_dir.join(BACKUP);
    step(j, Step::Verify, async move {
        // An encrypted backup is opened with the run's own key.
        let keys = runkey::keys(&p.run_dir, &Keys::none())?;
        tokio::task::spawn_blocking(move || {
            verify::verify_shown(&dir, true, &crate::report::SILENT, &keys)
        })
        .await
        .map_err(|e| Error::failed(format!("verify thread: {e}")))??;
        Ok(Value::Null)
    })
    .await
    .map(drop)
}

/// Load the tarball, streamed; the loaded image must be the one the
/// tarball's manifest named, and end up under the new reference.
pub async fn load(d: &Docker, p: &Plan) -> Result<Value> {
    let f = File::open(&p.image_file)
        .map_err(|e| Error::failed(format!("opening {}: {e}", p.image_file.display())))?;
    let loaded = d.image_load(body::reader_body(f)).await?;
    let got = d.image_inspect(&p.new_image_id).await.map_err(|e| {
        Error::failed(format!(
            "the engine loaded {} but not the image the file's manifest names ({}): {e}",
            loaded.join(", "),
            p.new_image_id
        ))
    })?;
    if p.new_image_ref != p.new_image_id {
        let at_ref = d
            .image_inspect(&p.new_image_ref)
            .await
            .ok()
            .and_then(|v| v["Id"].as_str().map(String::from));
        if at_ref.as_deref() != Some(&p.new_image_id) {
            let (repo, tag) = split_ref(&p.new_image_ref);
            d.image_tag(&p.new_image_id, &repo, &tag).await?;
        }
    }
    Ok(json!({ "loaded": loaded, "id": got["Id"] }))
}

fn split_ref(r: &str) -> (String, String) {
    match r.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo.to_owned(), tag.to_owned()),
        _ => (r.to_owned(), "latest".to_owned()),
    }
}
