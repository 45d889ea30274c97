//! `berth rehearse`: the upgrade run on a copy of the data while the old
//! version keeps serving, to learn beforehand whether the new image takes
//! this host's data (docs/rehearse.md).
//!
//! A run directory `<backup-root>/<container>-<stamp>-rehearsal/` holds
//! rehearsal.json (what was set up), journal.jsonl, backup/ (the online
//! copy), new-container.log and verdict.json.
//!
//! - `record`: rehearsal.json, names and labels of everything made;
//! - `request`: the rehearsal container's create request (pure);
//! - `scratch`: the scratch volumes, filled by an exact restore, and the
//!   removal of everything by its labels;
//! - `run`: the flow, and `resume` after a kill;
//! - `report`, `status`: what is said at the end and by `berth status`;
//! - `first`: `--rehearse-first` on upgrade and rollout.

pub mod first;
pub mod record;
pub mod report;
pub(crate) mod request;
pub mod run;
pub(crate) mod scratch;
pub mod status;
