//! The rehearsal's flow: plan as the upgrade plans, copy the data into
//! scratch volumes, run the new version on the copy, judge it with the
//! upgrade's watch, remove everything. Every step is journaled in the run
//! directory with the upgrade's journal (its step names), so a killed
//! rehearsal is found and cleaned up by `berth resume RUN_DIR`.
//!
//! The old container is never stopped, renamed or written: the copy is an
//! online backup (or `--from-backup`), read through the engine.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{json, Value};

use super::record::{Clock, Record, CONFIG_DIR};
use super::report::{Durations, Report};
use super::{request, scratch};
use crate::archive::verify;
use crate::docker::model::ContainerInspect;
use crate::docker::Docker;
use crate::error::{Error, Kind, Result};
use crate::hooks::Hook;
use crate::upgrade::journal::{self, step, Journal, Phase, Step};
use crate::upgrade::plan::{self, Request};
use crate::upgrade::watch::Verdict;
use crate::upgrade::{env, runkey, steps, Say};
use crate::{clock, manifest, mounts};

/// What `berth rehearse` was asked.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The upgrade's request (its settings, image file, backup root).
    pub request: Request,
    /// Restore this backup instead of taking one.
    pub from_backup: Option<PathBuf>,
    /// Keep the rehearsal container (stopped) and its scratch volumes.
    pub keep: bool,
    /// Attach the rehearsal container to this network (default: none).
    pub network: Option<String>,
}

/// Rehearse the upgrade: the report says how it went (exit 0 or 3); an
/// error means the rehearsal itself could not be done (exit 1).
pub async fn rehearse(d: &Docker, o: &Options, dry_run: bool, say: Say) -> Result<Report> {
    let t0 = Instant::now();
    let c = d.container_inspect(&o.request.container).await?;
    let _locks = journal::lock_container(d.socket(), &c.id, c.name())?;
    let r = prepare(d, o, &c).await?;
    if dry_run {
        return Ok(Report::planned(r));
    }
    if o.from_backup.is_none() {
        let before = r.plan.hooks.before_backup.as_deref();
        crate::hooks::run(d, &r.plan.container_id, Hook::BeforeBackup, before).await?;
    }
    r.save()?;
    let mut j = Journal::open(r.run_dir())?;
    say.step(format!(
        "rehearsing the upgrade of {} from {} to {} on a copy of its data (run directory {})",
        r.plan.container,
        r.plan.old_image_ref,
        r.plan.new_image_ref,
        r.run_dir().display()
    ));
    let mut times = Durations::default();
    let verdict = forward(d, &r, &mut j, say, &mut times).await;
    // A signal may have ended the forward steps: the cleanup must run.
    crate::cancel::reset();
    let cleaned = clean_up(d, &r, &mut j, say).await;
    times.total_s = t0.elapsed().as_secs_f64();
    match (verdict, cleaned) {
        (Ok(v), Ok(kept)) => {
            let mut rep = Report::new(&r, Some(v), times);
            rep.kept = kept;
            rep.save_verdict()?;
            Ok(rep)
        }
        (Err(e), Ok(_)) => {
            let kind = match e.kind {
                Kind::Interrupted => Kind::Interrupted,
                _ => Kind::Failed,
            };
            Err(Error::new(
                kind,
                format!(
                    "the rehearsal could not be done: {}; {} ran throughout, and everything the rehearsal made was removed",
                    e.msg, r.plan.container
                ),
            ))
        }
        (_, Err(e)) => Err(e.context(format!(
            "removing what the rehearsal made failed; {} ran throughout; run `berth resume {}` to remove the rest",
            r.plan.container,
            r.run_dir().display()
        ))),
    }
}

/// The upgrade's plan with the rehearsal's run directory, the scratch
/// volumes, the config's place and what differs from the real upgrade.
async fn prepare(d: &Docker, o: &Options, c: &ContainerInspect) -> Result<Record> {
    let req = Request {
        online_backup: true,
        keep_old: false,
        reuse_backup: None,
        ..o.request.clone()
    };
    let mut plan = plan::plan(d, &req).await?;
    let stamp = clock::compact(clock::now_unix());
    plan.run_dir = plan::free_run_dir(&req.backup_root, &plan.container, &stamp, "rehearsal");
    let run_id = plan
        .run_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let data = mounts::resolve(d, c).await?;
    let from_backup = o.from_backup.as_deref().map(absolute);
    let backed_up = match &from_backup {
        Some(dir) => backup_paths(dir, &data)?,
        None => plan.paths.clone(),
    };
    let mut r = Record {
        name: run_id.clone(),
        holder: format!("{run_id}-copy"),
        scratch: request::scratch_volumes(&run_id, &data, &backed_up),
        config: request::config_place(&plan, &data, &plan.run_dir),
        network: o.network.clone(),
        from_backup,
        keep: o.keep,
        at_copy: Clock::of(c),
        differences: vec![],
        run_id,
        plan,
    };
    r.differences = request::differences(&r, &r.plan.create);
    Ok(r)
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or(p.to_owned())
}

/// The paths of a `--from-backup` directory; each must be one of the
/// container's volumes (that is what a scratch volume stands in for).
fn backup_paths(dir: &Path, data: &mounts::DataMap) -> Result<Vec<String>> {
    let m = manifest::Manifest::load(dir)?;
    let paths: Vec<String> = m.paths.iter().map(|p| p.path.clone()).collect();
    for p in &paths {
        if !data
            .mounts
            .iter()
            .any(|m| m.kind == "volume" && &m.destination == p)
        {
            return Err(Error::usage(format!(
                "--from-backup {}: it holds {p}, which is not a volume of the container",
                dir.display()
            )));
        }
    }
    Ok(paths)
}

/// Copy, load, create, start, watch. Returns the watch's verdict.
async fn forward(
    d: &Docker,
    r: &Record,
    j: &mut Journal,
    say: Say,
    t: &mut Durations,
) -> Result<Verdict> {
    let p = &r.plan;
    let copy = Instant::now();
    match &r.from_backup {
        None => steps::backup_and_verify(d, p, j, say, false).await?,
        Some(dir) => {
            say.step(format!(
                "verifying {} (every archive re-read)",
                dir.display()
            ));
            step(j, Step::Verify, deep_verify(dir.clone())).await?;
        }
    }
    say.step(format!(
        "restoring the copy into {} scratch volume(s) and comparing it with the backup",
        r.scratch.len()
    ));
    step(j, Step::Restore, scratch::fill(d, r, say)).await?;
    t.copy_s = copy.elapsed().as_secs_f64();
    say.step(format!("loading {}", p.image_file.display()));
    step(j, Step::Load, steps::load(d, p)).await?;
    if let (Some(src), Some(place)) = (&p.config_file, &r.config) {
        step(j, Step::WriteConfig, async {
            write_config(src, &place.host_dir.join(&place.file_name))
        })
        .await?;
    }
    say.step(format!(
        "creating the rehearsal container {} on {}",
        r.name, p.new_image_ref
    ));
    let created = step(j, Step::CreateNew, async {
        let req = request::rehearsal_request(&env::create_request(d, p).await?, r);
        Ok(json!({ "id": d.container_create(&r.name, &req).await? }))
    })
    .await?;
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    let start = Instant::now();
    say.step(format!("starting the rehearsal container {}", r.name));
    let v = steps::start_and_watch(d, p, j, say, &id).await;
    t.start_to_verdict_s = start.elapsed().as_secs_f64();
    v
}

async fn deep_verify(dir: PathBuf) -> Result<Value> {
    tokio::task::spawn_blocking(move || verify::verify(&dir, true))
        .await
        .map_err(|e| Error::failed(format!("verify thread: {e}")))??;
    Ok(Value::Null)
}

/// The config file into the run's private directory (0700), mode 0600.
fn write_config(src: &Path, dest: &Path) -> Result<Value> {
    if let Some(dir) = dest.parent() {
        crate::files::create_private_dir(dir)?;
    }
    steps::write_config(src, dest)
}

/// Remove the run's containers, scratch volumes (unless --keep), the
/// config directory and the run's own key of an encrypted backup (always:
/// they are secrets). Returns what was kept.
async fn clean_up(d: &Docker, r: &Record, j: &mut Journal, say: Say) -> Result<Vec<String>> {
    say.step(if r.keep {
        "stopping the rehearsal container; keeping it and its scratch volumes (--keep)"
    } else {
        "removing the rehearsal container, its scratch volumes and its config directory"
    });
    let removed = step(j, Step::Finish, async {
        remove_config_dir(r)?;
        if let Some(e) = runkey::forget(r.run_dir()) {
            return Err(Error::failed(e));
        }
        let _ = std::fs::remove_dir_all(
            r.run_dir()
                .join(format!("{}.partial", crate::upgrade::BACKUP)),
        );
        let removed = scratch::remove_all(d, r, r.keep).await?;
        Ok(serde_json::to_value(&removed).expect("serializable"))
    })
    .await?;
    Ok(removed["kept"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(String::from))
        .collect())
}

fn remove_config_dir(r: &Record) -> Result<()> {
    let dir = r.run_dir().join(CONFIG_DIR);
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::failed(format!(
            "removing the config directory {}: {e}",
            dir.display()
        ))),
        _ => Ok(()),
    }
}

/// `berth resume RUN_DIR` of a rehearsal: remove whatever it left (a kill
/// leaves the container, the scratch volumes, the config directory) and
/// report the verdict if it had one.
pub async fn resume(d: &Docker, run: &Path, say: Say) -> Result<Report> {
    let t0 = Instant::now();
    let r = Record::load(run)?;
    let _locks = journal::lock_container(d.socket(), &r.plan.container_id, &r.plan.container)?;
    let mut j = Journal::open(run)?;
    let ended = j.has(Step::Finish, Phase::Done);
    let kept = if ended {
        vec![]
    } else {
        say.step(format!(
            "cleaning up the interrupted rehearsal {}",
            run.display()
        ));
        clean_up(d, &r, &mut j, say).await?
    };
    let verdict = j
        .data(Step::Watch)
        .and_then(|v| serde_json::from_value::<Verdict>(v.clone()).ok());
    let times = Durations {
        total_s: t0.elapsed().as_secs_f64(),
        ..Durations::default()
    };
    let mut rep = Report::new(&r, verdict, times);
    rep.kept = kept;
    if rep.verdict.is_none() {
        rep.cause = Some(if ended {
            "the rehearsal had already ended without a verdict".into()
        } else {
            "it was interrupted before a verdict; everything it made is removed".into()
        });
    }
    Ok(rep)
}
