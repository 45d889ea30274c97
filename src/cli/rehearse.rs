//! `berth rehearse CONTAINER`: the upgrade's flags but --keep-old and
//! --rehearse-first (a rehearsal never changes the container), and its own;
//! their conversion into `rehearse::run::Options`; the rehearsal's report
//! (also for `resume` of a rehearsal directory, and a failed
//! `--rehearse-first`); and `upgrade --rehearse-first`.

use std::path::PathBuf;

use berth::error::Result;
use berth::exit::ExitStatus;
use berth::rehearse::{self, report::Report};

use crate::cli::convert;
use crate::cli::global::Global;
use crate::cli::output::Output;
use crate::cli::upgrade;

#[derive(clap::Args)]
pub struct Args {
    /// Restore this backup into the scratch volumes instead of taking one.
    #[arg(long, value_name = "DIR")]
    from_backup: Option<PathBuf>,
    /// Keep the rehearsal container (stopped) and its scratch volumes.
    #[arg(long)]
    keep: bool,
    #[command(flatten)]
    upgrade: upgrade::Flags,
}

impl Args {
    fn options(self) -> Result<rehearse::run::Options> {
        Ok(rehearse::run::Options {
            network: self.upgrade.rehearse_network.clone(),
            from_backup: convert::absolute_opt(self.from_backup),
            keep: self.keep,
            request: self.upgrade.request(false)?,
        })
    }

    pub async fn run(self, g: &Global) -> Result<ExitStatus> {
        berth::cancel::install();
        let dry_run = self.upgrade.dry_run;
        let o = self.options()?;
        let d = g.connect().await?;
        let rep = rehearse::run::rehearse(&d, &o, dry_run, g.output().say()).await?;
        Ok(show(&rep, g.output()))
    }
}

/// `berth upgrade --rehearse-first`: the rehearsal, and the upgrade only
/// if it passed (here, not in `upgrade`, which this file builds on).
pub async fn then_upgrade(a: upgrade::Args, g: &Global) -> Result<ExitStatus> {
    berth::cancel::install();
    let (dry_run, network) = (a.flags.dry_run, a.flags.rehearse_network.clone());
    let r = a.request()?;
    let d = g.connect().await?;
    let out = g.output();
    match rehearse::first::upgrade(&d, &r, network, dry_run, out.say()).await? {
        (rep, None) => Ok(show(&rep, out)),
        (rep, Some(s)) => Ok(upgrade::show(&s, Some(&rep), out)),
    }
}

/// The rehearsal's report (text, or JSON with its exit code); its exit
/// status: Success (passed), RolledBack (3, failed: the container is as it
/// was) or Failed (no verdict).
pub fn show(rep: &Report, out: Output) -> ExitStatus {
    out.show(rep, || rep.render());
    rep.exit_code
}
