//! `berth rollout`: the upgrade flags and the nodes, their conversion into
//! `rollout::Options`, and the per-node table (also for `resume` and
//! `status` of a rollout directory).

use berth::error::{Error, Result};
use berth::exit::ExitStatus;
use berth::rehearse::{self, report::Report};
use berth::rollout::{self, state::Rollout};

use crate::cli::global::Global;
use crate::cli::output::Output;
use crate::cli::{rehearse as rehearsal, upgrade};

// The upgrade flags, and the nodes (CONTAINER is the one on every node
// that does not name its own).
#[derive(clap::Args)]
pub struct Args {
    /// A node, in rollout order: NAME=unix:///PATH/docker.sock[:CONTAINER] (repeatable).
    #[arg(
        long = "node",
        value_name = "NAME=unix:///PATH[:CONTAINER]",
        required = true
    )]
    nodes: Vec<String>,
    /// Go on with the next node after one failed (it is rolled back either way).
    #[arg(long)]
    continue_on_failure: bool,
    #[command(flatten)]
    upgrade: upgrade::Args,
}

impl Args {
    fn options(self) -> Result<rollout::Options> {
        Ok(rollout::Options {
            nodes: rollout::node::parse_all(&self.nodes, self.upgrade.container())?,
            continue_on_failure: self.continue_on_failure,
            dry_run: self.upgrade.flags.dry_run,
            request: self.upgrade.request()?,
        })
    }

    pub async fn run(self, g: &Global) -> Result<ExitStatus> {
        berth::cancel::install();
        if g.host.is_some() {
            return Err(Error::usage(
                "berth rollout takes its engines from --node, not --host",
            ));
        }
        let first = self.upgrade.rehearse_first;
        let network = self.upgrade.flags.rehearse_network.clone();
        let o = self.options()?;
        let out = g.output();
        let mut passed = None;
        if first {
            let rep = rehearse::first::rollout(&o, network, out.say()).await?;
            if !rep.exit_code.is_success() {
                return Ok(rehearsal::show(&rep, out));
            }
            passed = Some(rep);
        }
        let r = rollout::rollout(o, out.say()).await?;
        Ok(show(&r, passed.as_ref(), out))
    }
}

/// The per-node table (or JSON with the exit code in it), after the report
/// of the rehearsal that let it run (--rehearse-first); the rollout's exit
/// status.
pub fn show(r: &Rollout, rehearsal: Option<&Report>, out: Output) -> ExitStatus {
    let status = r.exit_status();
    let mut doc = serde_json::to_value(r).expect("serializable");
    doc["exit_code"] = status.code().into();
    out.show_after(rehearsal, doc, || rollout::render::render(r));
    status
}
