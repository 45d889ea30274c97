//! Durable files: what berth writes must be whole or absent after a crash.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Context, Error, Result};

/// fsync a directory so that renames and creations in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .ctx(format!("syncing directory {}", dir.display()))
}

/// Write `bytes` to `path` atomically: temp file, fsync, rename, fsync dir.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
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
pub(crate) fn tmp_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".berth-tmp");
    path.with_file_name(name)
}

/// Create a new file (never overwrite) with `mode`.
pub(crate) fn create_new(path: &Path, mode: u32) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .ctx(format!("creating {}", path.display()))
}

/// Create a private directory (0700) and its parents.
pub(crate) fn create_private_dir(path: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .ctx(format!("creating directory {}", path.display()))
}

/// A new file whose write errors name it: a full disk deep inside a
/// compressing pipeline must still say which file could not be written.
pub(crate) struct NamedFile {
    file: File,
    path: PathBuf,
}

impl NamedFile {
    /// Create a new file (never overwrite) with `mode`.
    pub(crate) fn create_new(path: &Path, mode: u32) -> Result<NamedFile> {
        Ok(NamedFile {
            file: create_new(path, mode)?,
            path: path.to_owned(),
        })
    }

    pub(crate) fn into_file(self) -> File {
        self.file
    }

    fn named(&self, e: io::Error) -> io::Error {
        // `write_all` retries on Interrupted: that kind must stay as it is.
        if e.kind() == io::ErrorKind::Interrupted {
            return e;
        }
        Error::failed(format!("{}: {e}", self.path.display())).into_io()
    }
}

impl Write for NamedFile {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.file.write(b).map_err(|e| self.named(e))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush().map_err(|e| self.named(e))
    }
}

/// An exclusive lock on `path` (created if missing), held until the file
/// returned is dropped; the kernel drops it with a killed process too.
/// `busy` is the error message when another process holds it.
pub(crate) fn try_lock(path: &Path, busy: impl FnOnce() -> String) -> Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .ctx(format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(Error::failed(busy())),
        Err(fs::TryLockError::Error(e)) => Err(e).ctx(format!("locking {}", path.display())),
    }
}

/// Lock a directory itself (see [`try_lock_dir`]), waiting for a holder
/// to let go (a `berth status` looking, a `berth prune` that found it
/// free only removes other, stale directories).
pub(crate) fn lock_dir(dir: &Path) -> Result<File> {
    let file = File::open(dir).ctx(format!("opening {}", dir.display()))?;
    file.lock().ctx(format!("locking {}", dir.display()))?;
    Ok(file)
}

/// An exclusive lock on a directory itself (flock on its descriptor, so
/// nothing is written into it and the lock follows it through a rename).
/// `Ok(None)` when another process holds it. The writer of a `.partial`
/// directory holds this while it fills it: whoever cleans up asks first.
pub fn try_lock_dir(dir: &Path) -> Result<Option<File>> {
    let file = File::open(dir).ctx(format!("opening {}", dir.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(fs::TryLockError::WouldBlock) => Ok(None),
        Err(fs::TryLockError::Error(e)) => Err(e).ctx(format!("locking {}", dir.display())),
    }
}

/// Copy the files of a flat directory (a backup) into a new private
/// directory `dest`: hard links where the file system allows, else copies.
/// A `dest` left by a killed berth is replaced. The caller verifies the
/// copy (its checksums), so a file changed in between is caught there.
pub fn copy_dir_files(src: &Path, dest: &Path) -> Result<()> {
    let _ = fs::remove_dir_all(dest);
    create_private_dir(dest)?;
    let doing = |p: &Path| format!("copying {}", p.display());
    for entry in fs::read_dir(src).ctx(doing(src))? {
        let from = entry.ctx(doing(src))?.path();
        if !from.is_file() || from.is_symlink() {
            continue;
        }
        let to = dest.join(from.file_name().unwrap_or_default());
        if fs::hard_link(&from, &to).is_err() {
            fs::copy(&from, &to).ctx(doing(&from))?;
        }
    }
    sync_dir(dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flat_copy_takes_the_files_and_replaces_a_stale_one() {
        let root = std::env::temp_dir().join(format!("berth-copydir-{}", std::process::id()));
        let (src, dest) = (root.join("src"), root.join("dest"));
        fs::create_dir_all(src.join("sub")).unwrap();
        fs::write(src.join("a.tar.gz"), b"archive").unwrap();
        fs::write(src.join("SHA256SUMS"), b"sums").unwrap();
        fs::create_dir_all(&dest).unwrap();
        fs::write(dest.join("stale"), b"x").unwrap();
        copy_dir_files(&src, &dest).unwrap();
        let mut names: Vec<String> = fs::read_dir(&dest)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["SHA256SUMS", "a.tar.gz"]);
        assert_eq!(fs::read(dest.join("a.tar.gz")).unwrap(), b"archive");
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_locked_dir_is_not_free_until_released() {
        let dir = std::env::temp_dir().join(format!("berth-lockdir-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let held = lock_dir(&dir).unwrap();
        assert!(try_lock_dir(&dir).unwrap().is_none(), "taken twice");
        drop(held);
        assert!(try_lock_dir(&dir).unwrap().is_some(), "not released");
        fs::remove_dir(&dir).unwrap();
    }
}
