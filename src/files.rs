//! Durable files: what berth writes must be whole or absent after a crash.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use crate::error::{Context, Result};

/// fsync a directory so that renames and creations in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .ctx(format!("syncing directory {}", dir.display()))
}

/// Write `bytes` to `path` atomically: temp file, fsync, rename, fsync dir.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let tmp = tmp_path(path);
    let doing = || format!("writing {}", path.display());
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .ctx(doing())?;
    f.write_all(bytes).and_then(|_| f.sync_all()).ctx(doing())?;
    fs::rename(&tmp, path).ctx(doing())?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// The temporary name `write_atomic` writes before its rename (a crash
/// between the two leaves it: whoever cleans up removes it too).
pub fn tmp_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".berth-tmp");
    path.with_file_name(name)
}

/// Create a new file (never overwrite) with `mode`.
pub fn create_new(path: &Path, mode: u32) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .ctx(format!("creating {}", path.display()))
}

/// Create a private directory (0700) and its parents.
pub fn create_private_dir(path: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .ctx(format!("creating directory {}", path.display()))
}
