//! `berth prune ROOT`: its flags, their conversion into `prune::Options`,
//! and the report.

use std::path::PathBuf;

use berth::error::Result;
use berth::exit::ExitStatus;
use berth::prune;

use crate::cli::convert;
use crate::cli::global::Global;

#[derive(clap::Args)]
pub struct Args {
    /// The backup root (`berth backup --out`, `berth upgrade --backup-root`).
    root: PathBuf,
    /// Per container, keep the newest N backup and run directories.
    #[arg(long, value_name = "N")]
    keep_last: usize,
    /// Also keep what is younger than this (90m, 12h, 30d, 2w).
    #[arg(long, value_name = "AGE")]
    keep_within: Option<String>,
    /// Show what would be removed; remove nothing.
    #[arg(long)]
    dry_run: bool,
}

impl Args {
    fn options(self) -> Result<prune::Options> {
        Ok(prune::Options {
            root: convert::absolute(self.root),
            keep_last: self.keep_last,
            keep_within: self
                .keep_within
                .as_deref()
                .map(prune::parse_age)
                .transpose()?,
            dry_run: self.dry_run,
        })
    }

    /// Failed (1) when a removal failed (the report says which).
    pub async fn run(self, g: &Global) -> Result<ExitStatus> {
        let o = self.options()?;
        let d = g.connect().await?;
        let r = prune::prune(&d, &o).await?;
        g.output().show(&r, || prune::render(&r));
        if !r.failed.is_empty() {
            eprintln!("berth: {} removals failed (listed above)", r.failed.len());
            return Ok(ExitStatus::Failed);
        }
        Ok(ExitStatus::Success)
    }
}
