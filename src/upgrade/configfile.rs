//! The config file an upgrade puts in place (it holds the admin password):
//! written by `write-config`, removed by `finish` or `remove-config`.

use super::journal::{Journal, Phase, Step};
use super::plan::Plan;
use crate::error::{Error, Result};

/// Remove the config file berth wrote, and its temporary twin. A file
/// berth never wrote (the run stopped before write-config) is not berth's
/// to remove.
pub(crate) fn remove_config(p: &Plan, j: &Journal) -> Result<()> {
    remove_config_if(p, wrote_config(j))
}

pub(crate) fn wrote_config(j: &Journal) -> bool {
    j.has(Step::WriteConfig, Phase::Begin)
}

pub(crate) fn remove_config_if(p: &Plan, wrote: bool) -> Result<()> {
    let Some(dest) = p.config_dest.as_ref().filter(|_| wrote) else {
        return Ok(());
    };
    for f in [crate::files::tmp_path(dest), dest.clone()] {
        match std::fs::remove_file(&f) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::failed(format!(
                    "removing the config file {}: {e}",
                    f.display()
                )))
            }
            _ => {}
        }
    }
    Ok(())
}
