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
        if g.json {
            g.output().print_json(&r);
        } else {
            g.output().print_text(&r.render());
        }
        Ok(())
    }
}
