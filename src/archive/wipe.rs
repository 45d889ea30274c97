//! Empty a volume without a shell on the host or in the image.
//!
//! The engine has no delete call. berth creates a short-lived helper
//! container from the target's own image (so nothing is pulled), with only
//! the one volume mounted at its usual path, copies its own static binary
//! in through the archive API, and runs `berth wipe PATH` there as root.
//! This works for named, anonymous and --volumes-from volumes alike, and
//! for images without a shell (FROM scratch); recreating a named volume
//! would not cover anonymous volumes that are in use.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::helper::{config, helper_tar, own_binary, remove_helpers};
use crate::docker::{body, Docker};
use crate::error::{Context, Error, Result};

/// Empty `path` of volume `volume` using image `image`. `keep`: paths
/// relative to `path` where other mounts sit (see `wipe_local`).
pub(crate) async fn wipe_volume(
    d: &Docker,
    image: &str,
    volume: &str,
    path: &str,
    keep: &[String],
) -> Result<()> {
    let doing = format!("emptying volume {volume} ({path}) before the restore");
    let name = format!(
        "berth-wipe-{}-{}",
        std::process::id(),
        crate::clock::now_unix()
    );
    let mut cmd = vec!["wipe".to_owned(), path.to_owned()];
    for k in keep {
        cmd.extend(["--keep".to_owned(), k.clone()]);
    }
    let mounts = json!([{"Type": "volume", "Source": volume, "Target": path}]);
    let labels = json!({"berth.helper": "wipe", "berth.volume": volume});
    let cfg = config(image, mounts, &cmd, labels);
    // A helper whose berth died, or lost its engine, in the middle of a
    // wipe is left behind holding the volume. Two berths never empty one
    // volume at once (that would be a broken restore anyway), so a helper
    // found on it now is stale.
    remove_helpers(d, "wipe", ("berth.volume", volume))
        .await
        .map_err(|e| e.context(&doing))?;
    let id = d
        .container_create(&name, &cfg)
        .await
        .map_err(|e| e.context(&doing))?;
    let run = async {
        d.archive_put(&id, "/", body::full(helper_tar(&own_binary()?, &[])?))
            .await?;
        d.container_start(&id).await?;
        let code = d.container_wait(&id).await?;
        if code != 0 {
            let logs =
                String::from_utf8_lossy(&d.container_logs_all(&id, false).await).into_owned();
            return Err(Error::failed(format!(
                "the helper exited with {code}: {}",
                logs.trim()
            )));
        }
        Ok(())
    };
    let result = run.await.map_err(|e| e.context(&doing));
    let removed = d.container_remove(&id, true, false).await;
    result?;
    removed.map_err(|e| e.context(&doing))
}

/// Inside the helper: remove everything in `path`, keep `path` itself.
/// Symlinks are removed, never followed.
///
/// `keep` (relative paths) are mountpoints of other mounts nested in this
/// volume: they and what lies under them stay, and their ancestors are
/// descended into rather than removed. Removing a mountpoint directory
/// would detach that mount (a config bind, say) from a running container.
pub fn wipe_local(path: &Path, keep: &[String]) -> Result<u64> {
    let keep: Vec<PathBuf> = keep
        .iter()
        .map(|k| PathBuf::from(k.trim_matches('/')))
        .collect();
    wipe_under(path, Path::new(""), &keep)
}

fn wipe_under(root: &Path, rel: &Path, keep: &[PathBuf]) -> Result<u64> {
    let mut n = 0;
    let dir = root.join(rel);
    let doing = |p: &Path| format!("removing {}", p.display());
    for entry in std::fs::read_dir(&dir).ctx(doing(&dir))? {
        let entry = entry.ctx(doing(&dir))?;
        let r = rel.join(entry.file_name());
        let p = root.join(&r);
        let md = std::fs::symlink_metadata(&p).ctx(doing(&p))?;
        if keep.contains(&r) {
            continue;
        }
        if md.is_dir() && keep.iter().any(|k| k.starts_with(&r)) {
            n += wipe_under(root, &r, keep)?;
        } else if md.is_dir() {
            std::fs::remove_dir_all(&p).ctx(doing(&p))?;
            n += 1;
        } else {
            std::fs::remove_file(&p).ctx(doing(&p))?;
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_mountpoints_and_their_ancestors() {
        let root = std::env::temp_dir().join(format!("berth-wipe-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for d in ["a/b/mnt/inside", "a/other", "c"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("a/b/file"), b"x").unwrap();
        std::fs::write(root.join("top"), b"x").unwrap();
        std::os::unix::fs::symlink("/etc", root.join("a/link")).unwrap();
        let n = wipe_local(&root, &["a/b/mnt".into()]).unwrap();
        assert_eq!(n, 5);
        let mut left: Vec<String> = walk(&root);
        left.sort();
        assert_eq!(left, ["a", "a/b", "a/b/mnt", "a/b/mnt/inside"]);
        assert!(
            Path::new("/etc/passwd").exists(),
            "a symlink is removed, not followed"
        );
        wipe_local(&root, &[]).unwrap();
        assert!(walk(&root).is_empty());
        std::fs::remove_dir_all(&root).unwrap();
    }

    fn walk(root: &Path) -> Vec<String> {
        let mut out = vec![];
        let mut stack = vec![root.to_owned()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                out.push(p.strip_prefix(root).unwrap().display().to_string());
                if p.is_dir() && !p.is_symlink() {
                    stack.push(p);
                }
            }
        }
        out
    }
}
