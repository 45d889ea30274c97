//! The key an encrypting upgrade keeps for its own rollback.
//!
//! `berth upgrade --encrypt-to R` encrypts its backup to R and to a
//! throwaway X25519 key of its own, written (0600) into the run directory
//! before the backup and deleted when the run ends (upgraded, or rolled
//! back). While the run is unfinished, its verify, its automatic rollback,
//! `berth resume` and `berth rollback` open the backup with that key and
//! ask for none. The trade-off: during the run, whoever can read the run
//! directory (root, the owner) can read the backup, as they could read the
//! volumes themselves; once the run has ended only R's identity opens it.

use std::path::{Path, PathBuf};

use crate::archive::seal::{self, Keys};
use crate::error::Result;

/// The key's file in the run directory.
pub const RUN_KEY: &str = "rollback-identity";

fn path(run_dir: &Path) -> PathBuf {
    run_dir.join(RUN_KEY)
}

/// The public key of the run's key, created (0600) when there is none
/// yet: the backup is encrypted to it.
pub fn ensure(run_dir: &Path) -> Result<String> {
    let p = path(run_dir);
    if p.exists() {
        return Ok(seal::public_keys(&Keys::load(&p)?).remove(0));
    }
    seal::new_identity_file(&p).map_err(|e| e.context("creating the run's own key"))
}

/// The keys given by the user and the run's own key, while it exists.
pub fn keys(run_dir: &Path, given: &Keys) -> Result<Keys> {
    let mut keys = given.clone();
    let p = path(run_dir);
    if p.exists() {
        keys.add(Keys::load(&p)?);
    }
    Ok(keys)
}

/// Delete the run's key: the run has ended. A failure is returned as a
/// warning for the summary (the run's outcome stands).
pub fn forget(run_dir: &Path) -> Option<String> {
    match std::fs::remove_file(path(run_dir)) {
        Ok(()) => crate::files::sync_dir(run_dir)
            .err()
            .map(|e| format!("the run's own key was removed, but: {e}")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => Some(format!(
            "removing the run's own key {} failed ({e}): remove it by hand",
            path(run_dir).display()
        )),
    }
}
