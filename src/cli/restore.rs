//! `berth restore DIR`: its flags, their conversion into
//! `archive::restore::Options`, the after-restore hook, and the report.

use std::path::PathBuf;

use berth::archive::restore::{self, Report};
use berth::error::Result;
use berth::hooks::{self, Hook};
use berth::progress::human;

use crate::cli::convert;
use crate::cli::global::Global;
use crate::cli::keys::IdentityArg;

#[derive(clap::Args)]
pub struct Args {
    dir: PathBuf,
    /// Target container (default: the one in the backup's manifest).
    #[arg(long)]
    container: Option<String>,
    /// A path to restore (repeatable); default: every path in the backup.
    #[arg(long = "path", value_name = "P")]
    paths: Vec<String>,
    /// Extract over what is there instead of emptying the volume first.
    #[arg(long)]
    merge: bool,
    /// Run CMD on the restored data afterwards; default: label berth.exec-after-restore.
    #[arg(long, value_name = "'CMD ARG...'")]
    exec_after_restore: Option<String>,
    #[command(flatten)]
    identity: IdentityArg,
}

impl Args {
    pub async fn run(self, g: &Global) -> Result<()> {
        berth::cancel::install();
        let hook = convert::hook(self.exec_after_restore.as_deref())?;
        let keys = self.identity.keys()?;
        let d = g.connect().await?;
        let dir = convert::absolute(self.dir);
        let o = restore::Options {
            container: self.container,
            paths: self.paths,
            merge: self.merge,
            report: g.output().reporter(),
            keys,
        };
        let r = restore::restore(&d, &dir, &o).await?;
        hooks::run_for(&d, &r.container, Hook::AfterRestore, hook)
            .await
            .map_err(|e| e.context(format!("{} was restored and verified, but", dir.display())))?;
        g.output().warnings(&r.warnings);
        g.output().show(&r, || render(&r));
        Ok(())
    }
}

fn render(r: &Report) -> String {
    let mut s = String::new();
    for p in &r.paths {
        s += &format!(
            "{:<28} {:>8} entries  {:>10}  {}  verified  {:.1}s\n",
            p.path,
            p.entries,
            human(p.bytes as f64),
            if p.emptied { "exact" } else { "merged" },
            p.seconds
        );
    }
    s + &format!(
        "restored {} into {}: every path reads back equal to the backup\n",
        r.dir.display(),
        r.container
    )
}
