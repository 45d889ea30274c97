//! Volume archives: the bytes a backup is made of.
//!
//! Everything here is synchronous `std::io` and makes ONE pass over the data
//! in CONSTANT memory, whatever the size of the volume:
//!
//! - [`tarscan`] checks a tar stream block by block (header checksums, strict
//!   end-of-archive), passes it through byte for byte (optionally dropping
//!   excluded subtrees) and produces the content index on the way;
//! - [`index`] is that content index (one JSON object per entry) and the
//!   comparison of two indexes;
//! - [`pargz`] compresses on worker threads into one gzip member (pigz style);
//! - [`hashio`] counts and sha256-hashes whatever flows through a reader or
//!   writer;
//! - [`seal`] encrypts backup files with age (optional) and opens them.
//!
//! The caller bridges async HTTP bodies into `Read`.

pub mod backup;
pub mod deflate;
pub mod delta;
pub mod delta_helper;
pub mod deltafiles;
pub(crate) mod hashio;
pub(crate) mod helper;
mod igzip;
pub mod index;
pub mod merge;
pub(crate) mod pargz;
pub mod precopy;
pub mod restore;
pub mod seal;
pub(crate) mod tarscan;
pub(crate) mod untrusted;
pub mod verify;
pub mod wipe;

/// Exclusions relative to a container path, as the tar names them: GET
/// archive of `/var/lib/vmware` names its entries `vmware/...`, so the
/// nested mount `config` is `vmware/config`.
pub(crate) fn tar_roots(path: &str, excluded: &[String]) -> Vec<String> {
    let base = tar_base(path);
    excluded.iter().map(|r| format!("{base}/{r}")).collect()
}

/// The name of the top entry of GET archive of `path` (`vmware` for
/// `/var/lib/vmware`).
pub(crate) fn tar_base(path: &str) -> &str {
    path.rsplit('/').find(|b| !b.is_empty()).unwrap_or(".")
}
