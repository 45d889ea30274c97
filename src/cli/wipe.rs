//! `berth wipe PATH` (internal, hidden): empty a directory. berth runs its
//! own static binary with it inside a helper container (see archive::wipe).

use std::path::PathBuf;

use berth::error::Result;

#[derive(clap::Args)]
pub struct Args {
    path: PathBuf,
    /// A mountpoint (relative to PATH) to leave in place (repeatable).
    #[arg(long)]
    keep: Vec<String>,
}

impl Args {
    pub fn run(self) -> Result<()> {
        let n = berth::archive::wipe::wipe_local(&self.path, &self.keep)?;
        println!("removed {n} entries from {}", self.path.display());
        Ok(())
    }
}
