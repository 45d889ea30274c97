//! `berth inspect CONTAINER`: its image, state and the data a backup would take.

use berth::error::Result;

use crate::cli::global::Global;

#[derive(clap::Args)]
pub struct Args {
    container: String,
}

impl Args {
    pub async fn run(self, g: &Global) -> Result<()> {
        let d = g.connect().await?;
        let r = berth::inspect::inspect(&d, &self.container).await?;
        g.output().show(&r, || r.render());
        Ok(())
    }
}
