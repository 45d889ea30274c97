//! `berth resume DIR`: finish an interrupted upgrade (or roll it back), or
//! go on with an interrupted rollout.

use std::path::PathBuf;

use berth::error::Result;
use berth::exit::ExitStatus;

use crate::cli::global::Global;
use crate::cli::{convert, rollout, upgrade};

#[derive(clap::Args)]
pub struct Args {
    dir: PathBuf,
}

impl Args {
    pub async fn run(self, g: &Global) -> Result<ExitStatus> {
        berth::cancel::install();
        let dir = convert::absolute(self.dir);
        if berth::rollout::is_rollout_dir(&dir) {
            let r = berth::rollout::resume(&dir, g.output().say()).await?;
            return Ok(rollout::show(&r, g.output()));
        }
        let d = g.connect().await?;
        let s = berth::upgrade::flow::resume(&d, &dir, g.output().say()).await?;
        Ok(upgrade::show(&s, g.output()))
    }
}
