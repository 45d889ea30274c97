//! `berth resume DIR`: finish an interrupted upgrade (or roll it back), go
//! on with an interrupted rollout, or clean up an interrupted rehearsal.

use std::path::PathBuf;

use berth::error::Result;
use berth::exit::ExitStatus;

use crate::cli::global::Global;
use crate::cli::keys::IdentityArg;
use crate::cli::{convert, rehearse, rollout, upgrade};

#[derive(clap::Args)]
pub struct Args {
    dir: PathBuf,
    /// Opens an encrypted backup of an upgrade (not needed while the run's own key is there).
    #[command(flatten)]
    identity: IdentityArg,
}

impl Args {
    pub async fn run(self, g: &Global) -> Result<ExitStatus> {
        berth::cancel::install();
        let dir = convert::absolute(self.dir);
        if berth::rollout::is_rollout_dir(&dir) {
            let r = berth::rollout::resume(&dir, g.output().say()).await?;
            return Ok(rollout::show(&r, None, g.output()));
        }
        let d = g.connect().await?;
        if berth::rehearse::record::is_rehearsal_dir(&dir) {
            let r = berth::rehearse::run::resume(&d, &dir, g.output().say()).await?;
            return Ok(rehearse::show(&r, g.output()));
        }
        let keys = self.identity.keys()?;
        let s = berth::upgrade::flow::resume(&d, &dir, g.output().say(), &keys).await?;
        Ok(upgrade::show(&s, None, g.output()))
    }
}
