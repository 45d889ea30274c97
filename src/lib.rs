//! berth: upgrade stateful containers safely.
//!
//! Dependencies point one way: `rehearse` -> `rollout` -> `upgrade` -> `archive`/`manifest` -> `docker`
//! -> `error`. The docker client knows nothing about backups, and the
//! archive code knows nothing about upgrades.

pub mod archive;
pub mod cancel;
pub mod clock;
pub mod docker;
pub mod error;
pub mod exit;
pub mod files;
pub mod hooks;
pub mod inspect;
pub mod leftovers;
pub mod manifest;
pub mod mounts;
pub mod profile;
pub mod progress;
pub mod prune;
pub mod rehearse;
pub mod report;
pub mod rollout;
pub mod secrets;
pub(crate) mod tarheader;
pub mod upgrade;
