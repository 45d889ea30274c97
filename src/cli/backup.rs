//! `berth backup CONTAINER`: its flags, their conversion into
//! `archive::backup::Options`, and the report.

use std::path::PathBuf;

use berth::archive::backup::{self, Level, Report};
use berth::error::Result;
use berth::hooks::{self, Hook};
use berth::progress::human;

use crate::cli::convert;
use crate::cli::global::Global;
use crate::cli::keys::EncryptArg;

#[derive(clap::Args)]
pub struct Args {
    container: String,
    /// A path to back up (repeatable); default: every volume mount.
    #[arg(long = "path", value_name = "P")]
    paths: Vec<String>,
    /// Directory for backups.
    #[arg(long, default_value = "./berth-backups")]
    out: PathBuf,
    #[arg(long, value_enum, default_value_t = Compression::Default)]
    compression: Compression,
    /// Stop the container for a consistent copy; started again afterwards.
    #[arg(long)]
    stop: bool,
    /// Seconds to wait for a graceful stop before SIGKILL.
    #[arg(long, default_value_t = 30)]
    stop_timeout: u32,
    /// Run CMD in the container first (before --stop); default: label berth.exec-before-backup.
    #[arg(long, value_name = "'CMD ARG...'")]
    exec_before_backup: Option<String>,
    #[command(flatten)]
    encrypt: EncryptArg,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Compression {
    Fast,
    Default,
    Best,
}

impl From<Compression> for Level {
    fn from(c: Compression) -> Self {
        match c {
            Compression::Fast => Level::Fast,
            Compression::Default => Level::Default,
            Compression::Best => Level::Best,
        }
    }
}

impl Args {
    pub async fn run(self, g: &Global) -> Result<()> {
        berth::cancel::install();
        let hook = convert::hook(self.exec_before_backup.as_deref())?;
        let encrypt_to = self.encrypt.recipients()?;
        let d = g.connect().await?;
        hooks::run_for(&d, &self.container, Hook::BeforeBackup, hook).await?;
        let o = backup::Options {
            paths: self.paths,
            out: convert::absolute(self.out),
            level: self.compression.into(),
            stop: self.stop,
            stop_timeout: self.stop_timeout,
            report: g.output().reporter(),
            encrypt_to,
        };
        let r = backup::backup(&d, &self.container, &o).await?;
        g.output().warnings(&r.warnings);
        g.output().show(&r, || render(&r));
        Ok(())
    }
}

/// One line per path, what was left out, and the backup directory last
/// (scripts take the last line).
fn render(r: &Report) -> String {
    let mut s = String::new();
    for p in &r.manifest.paths {
        s += &format!(
            "{:<28} {:>8} entries  {:>10} -> {:>10}  index {:>10}  {:.1}s\n",
            p.path,
            p.entries,
            human(p.tar_bytes as f64),
            human(p.bytes as f64),
            human(p.index_bytes as f64),
            p.seconds
        );
    }
    for e in &r.manifest.excluded {
        s += &format!("left out: {} ({})\n", e.path, e.reason);
    }
    s + &format!("{}\n", r.dir.display())
}
