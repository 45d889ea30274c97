//! `berth rollback DIR`: put the host back to before an upgrade.

use std::path::PathBuf;

use berth::error::Result;

use crate::cli::convert;
use crate::cli::global::Global;
use crate::cli::keys::IdentityArg;
use crate::cli::upgrade;

#[derive(clap::Args)]
pub struct Args {
    dir: PathBuf,
    #[command(flatten)]
    identity: IdentityArg,
}

impl Args {
    pub async fn run(self, g: &Global) -> Result<()> {
        berth::cancel::install();
        let keys = self.identity.keys()?;
        let d = g.connect().await?;
        let dir = convert::absolute(self.dir);
        let s = berth::upgrade::flow::rollback_dir(&d, &dir, g.output().say(), &keys).await?;
        // Asked for and done: success, whatever the upgrade had been.
        upgrade::show(&s, None, g.output());
        Ok(())
    }
}
