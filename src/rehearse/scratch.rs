//! The copy of the data: scratch volumes labelled with the run, filled by
//! berth's ordinary exact restore (wipe, upload, read-back comparison)
//! through a holder container that is created and never started. The
//! holder mounts only the scratch volumes, so nothing of the host (its
//! bind mounts) is in reach while the copy is written.
//!
//! And the removal of everything a rehearsal made, found by its labels, so
//! that it works the same after a kill (`berth resume`).

use serde_json::{json, Value};

use super::record::Record;
use crate::archive::restore;
use crate::archive::seal::Keys;
use crate::docker::model::ContainerSummary;
use crate::docker::Docker;
use crate::error::Result;
use crate::upgrade::{runkey, waits::remove_and_wait, Say};

/// Create the scratch volumes and restore the backup into them; returns
/// what was restored (the journal keeps it).
pub(crate) async fn fill(d: &Docker, r: &Record, say: Say) -> Result<Value> {
    for s in &r.scratch {
        let mut labels = r.labels();
        labels["berth.path"] = json!(s.path);
        d.volume_create(&json!({"Name": s.volume, "Labels": labels}))
            .await?;
    }
    remove_containers(d, r, |c| c.name() == r.holder).await?;
    let id = d.container_create(&r.holder, &holder_request(r)).await?;
    let paths: Vec<String> = r
        .scratch
        .iter()
        .filter(|s| s.restored)
        .map(|s| s.path.clone())
        .collect();
    let o = restore::Options {
        container: Some(id.clone()),
        paths: paths.clone(),
        merge: false,
        report: say.report,
        // The rehearsal's own backup, encrypted (--encrypt-to), is opened
        // with the run's own key, as an upgrade's rollback does.
        keys: runkey::keys(&r.plan.run_dir, &Keys::none())?,
    };
    let restored = restore::restore(d, &r.backup_dir(), &o).await;
    let removed = d.container_remove(&id, true, true).await;
    restored?;
    removed?;
    Ok(json!({ "restored": paths }))
}

/// A container of the old image (it is on the engine) with the scratch
/// volumes at the container's paths; never started.
fn holder_request(r: &Record) -> Value {
    let mounts: Vec<Value> = r
        .scratch
        .iter()
        .map(|s| json!({"Type": "volume", "Source": s.volume, "Target": s.path}))
        .collect();
    json!({
        "Image": r.plan.old_image_id,
        "Entrypoint": ["/.berth-never-started"],
        "Cmd": [],
        "Labels": r.labels(),
        "NetworkDisabled": true,
        "HostConfig": {"NetworkMode": "none", "Mounts": mounts},
    })
}

/// What was removed (or kept), for the journal.
#[derive(Debug, Default, serde::Serialize)]
pub(crate) struct Removed {
    pub containers: Vec<String>,
    pub volumes: Vec<String>,
    pub kept: Vec<String>,
}

/// Remove the run's containers (and wipe helpers on its volumes) and its
/// scratch volumes. With `keep` the rehearsal container is stopped and
/// kept, and so are the volumes.
pub(crate) async fn remove_all(d: &Docker, r: &Record, keep: bool) -> Result<Removed> {
    let mut out = Removed::default();
    if keep {
        match d.container_stop(&r.name, r.plan.stop_timeout).await {
            Err(e) if !e.is_not_found() => return Err(e),
            Ok(()) => out.kept.push(r.name.clone()),
            Err(_) => {}
        }
    }
    let volumes: Vec<String> = r.scratch.iter().map(|s| s.volume.clone()).collect();
    let helper_on_ours = |c: &ContainerSummary| {
        let v = c.labels.get("berth.volume");
        v.is_some_and(|v| volumes.contains(v))
    };
    out.containers = remove_containers(d, r, |c| {
        let ours = c.labels.get("berth.run") == Some(&r.run_id);
        (ours && !(keep && c.name() == r.name)) || helper_on_ours(c)
    })
    .await?;
    if keep {
        out.kept.extend(volumes);
        return Ok(out);
    }
    for v in &volumes {
        match d.volume_remove(v, false).await {
            Ok(()) => out.volumes.push(v.clone()),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Remove (and wait for) the run's containers and the wipe helpers that
/// `pick` chooses; returns their names.
async fn remove_containers(
    d: &Docker,
    r: &Record,
    pick: impl Fn(&ContainerSummary) -> bool,
) -> Result<Vec<String>> {
    let mut list = d.container_list(&r.filter()).await?;
    list.extend(
        d.container_list(&json!({"label": ["berth.helper=wipe"]}))
            .await?,
    );
    let mut names = vec![];
    for c in list.iter().filter(|c| pick(c)) {
        // First with its anonymous volumes (a VOLUME the new image
        // declares), then until it is gone.
        let _ = d.container_remove(&c.id, true, true).await;
        remove_and_wait(d, &c.id, 0).await?;
        names.push(c.name().to_owned());
    }
    Ok(names)
}
