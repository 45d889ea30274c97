//! `berth verify DIR`: check a backup directory, and the report.

use std::path::PathBuf;

use berth::archive::verify::{self, Report};
use berth::error::{Error, Result};
use berth::progress::human;

use crate::cli::convert;
use crate::cli::global::Global;
use crate::cli::keys::IdentityArg;

#[derive(clap::Args)]
pub struct Args {
    dir: PathBuf,
    #[arg(long)]
    deep: bool,
    #[command(flatten)]
    identity: IdentityArg,
}

impl Args {
    pub async fn run(self, g: &Global) -> Result<()> {
        let (dir, deep) = (convert::absolute(self.dir), self.deep);
        let report = g.output().reporter();
        let keys = self.identity.keys()?;
        let (m, r) =
            tokio::task::spawn_blocking(move || verify::verify_shown(&dir, deep, report, &keys))
                .await
                .map_err(|e| Error::failed(format!("verify thread failed: {e}")))??;
        let doc = serde_json::json!({ "ok": true, "container": m.container.name, "created": m.created, "report": r });
        g.output().show(&doc, || render(&r));
        Ok(())
    }
}

fn render(r: &Report) -> String {
    format!(
        "ok: {} files, {} verified in {:.2}s ({}/s){}\n",
        r.files,
        human(r.bytes as f64),
        r.seconds,
        human(r.bytes as f64 / r.seconds.max(1e-6)),
        if r.deep {
            ", every archive re-indexed"
        } else {
            ""
        }
    )
}
