//! A helper container that berth runs its own code in: a short-lived
//! container of the target's own image (so nothing is pulled), with the
//! volumes it needs, as root and without a network, berth's static binary
//! copied in through the archive API as `/.berth-helper`. Images without a
//! shell (FROM scratch) work as well as any.
//!
//! `wipe` runs one command as the helper's main process. The pre-copy's
//! delta (`delta_helper`) runs `berth idle` as the main process and execs
//! `berth delta` once per path: exec output streams, multiplexed, without
//! the lossy log driver in between.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::docker::Docker;
use crate::error::{Context, Result};

pub(crate) const HELPER_BIN: &str = "/.berth-helper";

/// The binary running now: what a helper runs.
pub(crate) fn own_binary() -> Result<PathBuf> {
    std::env::current_exe().ctx("finding berth's own binary")
}

/// Berth's static binary `berth` as `/.berth-helper` and `files` (absolute
/// names, mode 0600), as one tar for the archive PUT into the helper's `/`.
pub(crate) fn helper_tar(berth: &Path, files: &[(&str, &[u8])]) -> Result<Vec<u8>> {
    let bin = std::fs::read(berth).ctx(format!("reading {}", berth.display()))?;
    let size = bin.len() + files.iter().map(|f| f.1.len()).sum::<usize>();
    let mut b = tar::Builder::new(Vec::with_capacity(size + 4096));
    let all = std::iter::once((HELPER_BIN, &bin[..], 0o755))
        .chain(files.iter().map(|(n, data)| (*n, *data, 0o600)));
    for (name, data, mode) in all {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_mtime(0);
        b.append_data(&mut h, &name[1..], data)
            .ctx("packing the helper")?;
    }
    b.into_inner().ctx("packing the helper")
}

/// The create request of a helper of `image` with `mounts` (the engine's
/// `HostConfig.Mounts` form) running `cmd`.
pub(crate) fn config(image: &str, mounts: Value, cmd: &[String], labels: Value) -> Value {
    json!({
        "Image": image,
        "Entrypoint": [HELPER_BIN],
        "Cmd": cmd,
        "User": "0:0",
        "WorkingDir": "/",
        "Labels": labels,
        "NetworkDisabled": true,
        "HostConfig": { "NetworkMode": "none", "Mounts": mounts },
    })
}

/// Remove the helpers of kind `kind` (`wipe`, `delta`) whose label `key`
/// is `value`: those a berth that was killed, or lost its engine, left
/// behind.
pub(crate) async fn remove_helpers(
    d: &Docker,
    kind: &str,
    (key, value): (&str, &str),
) -> Result<()> {
    let filters = json!({"label": [format!("berth.helper={kind}"), format!("{key}={value}")]});
    for c in d.container_list(&filters).await? {
        match d.container_remove(&c.id, true, false).await {
            Err(e) if !e.is_not_found() => return Err(e),
            _ => {}
        }
    }
    Ok(())
}
