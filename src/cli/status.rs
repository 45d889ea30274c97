//! `berth status [DIR]`: where an upgrade, a rollout or a rehearsal stands, or without
//! DIR everything berth left under the backup roots and on the engine.

use std::path::{Path, PathBuf};

use berth::error::{Kind, Result};
use berth::rollout::state::Rollout;
use berth::upgrade;

use crate::cli::convert;
use crate::cli::global::Global;

#[derive(clap::Args)]
pub struct Args {
    dir: Option<PathBuf>,
    #[arg(long, default_value = "./berth-backups", value_name = "DIR")]
    backup_root: PathBuf,
    /// A backup root to look in (repeatable; default: --backup-root).
    #[arg(long = "root", value_name = "DIR")]
    roots: Vec<PathBuf>,
}

impl Args {
    /// The roots to look in: --root, else --backup-root.
    fn roots(self) -> Vec<PathBuf> {
        let roots = if self.roots.is_empty() {
            vec![self.backup_root]
        } else {
            self.roots
        };
        roots.into_iter().map(convert::absolute).collect()
    }

    pub async fn run(self, g: &Global) -> Result<()> {
        match self.dir.clone().map(convert::absolute) {
            Some(dir) if berth::rollout::is_rollout_dir(&dir) => rollout_dir(&dir, g),
            Some(dir) if berth::rehearse::record::is_rehearsal_dir(&dir) => {
                rehearsal_dir(&dir, g).await
            }
            Some(dir) => run_dir(&dir, g).await,
            None => leftovers(&self.roots(), g).await,
        }
    }
}

fn rollout_dir(dir: &Path, g: &Global) -> Result<()> {
    let r = Rollout::load(dir)?;
    g.output().show(&r, || berth::rollout::render::render(&r));
    Ok(())
}

/// How far a rehearsal got, its verdict, and what of it the engine still
/// holds (unknown when the engine does not answer).
async fn rehearsal_dir(dir: &Path, g: &Global) -> Result<()> {
    let d = g.connect().await.ok();
    let s = berth::rehearse::status::status(d.as_ref(), dir).await?;
    g.output().show(&[&s], || s.render());
    Ok(())
}

/// What berth left, per container.
async fn leftovers(roots: &[PathBuf], g: &Global) -> Result<()> {
    let d = g.connect().await?;
    let inv = berth::leftovers::inventory(&d, roots).await?;
    g.output().show(&inv, || berth::leftovers::render(&inv));
    Ok(())
}

/// The journal, the step in flight and what `resume` would do given what
/// the engine shows now. An engine that does not answer leaves the
/// journal's part, and says so.
async fn run_dir(dir: &Path, g: &Global) -> Result<()> {
    let now = match g.connect().await {
        Ok(d) => upgrade::status_now(&d, dir).await,
        Err(e) => Err(e),
    };
    let s = match now {
        Ok(s) => s,
        Err(e) if e.kind == Kind::Usage || e.kind == Kind::Integrity => return Err(e),
        Err(e) => {
            let s = upgrade::status(dir)?;
            if s.outcome.is_none() {
                eprintln!("berth: what resume would do is unknown: {}", e.msg);
            }
            s
        }
    };
    g.output().show(&[&s], || s.render());
    Ok(())
}
