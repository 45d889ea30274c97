//! berth's command line. One file per command holds its flags (clap), their
//! conversion into the library's options (paths made absolute, defaults
//! applied, once) and the rendering of its result (text or --json);
//! `output` is where all output goes and holds the reporter the library
//! talks through; `global` the flags every command takes. Commands return
//! an `ExitStatus` (or an error, which maps to one); nothing else exits.

mod backup;
mod convert;
mod delta;
mod generate;
mod global;
mod inspect;
mod keys;
mod output;
mod prune;
mod rehearse;
mod restore;
mod resume;
mod rollback;
mod rollout;
mod status;
mod upgrade;
mod verify;
mod version;
mod wipe;

use clap::{CommandFactory, Parser, Subcommand};

use berth::error::Result;
use berth::exit::ExitStatus;

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "Upgrade stateful containers safely: verified backup, image load, recreate, watch, verified rollback."
)]
pub struct Cli {
    #[command(flatten)]
    global: global::Global,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// berth's version, the engine's version and the negotiated API version.
    Version,
    /// A container's image, state and the data a backup would take.
    Inspect(inspect::Args),
    /// Back up a container's data volumes into checksummed .tar.gz files.
    Backup(backup::Args),
    /// Check a backup directory: SHA256SUMS and manifest; --deep also re-reads every archive.
    Verify(verify::Args),
    /// Put a backup back exactly (verified first, compared after).
    Restore(restore::Args),
    /// Upgrade a container to the image in a tarball; roll back automatically on failure.
    Upgrade(Box<upgrade::Args>),
    /// Run the upgrade on a copy of the data while the old version keeps
    /// serving: exit 0 if the new version took the data, 3 if not.
    Rehearse(Box<rehearse::Args>),
    /// Upgrade the container on several engines, one node after another.
    Rollout(Box<rollout::Args>),
    /// Put the host back to before an upgrade (from its run directory).
    Rollback(rollback::Args),
    /// Finish an interrupted upgrade (or roll it back, whichever is safe),
    /// or go on with an interrupted rollout (DIR = its rollout directory).
    Resume(resume::Args),
    /// Where an upgrade stands (DIR), or without DIR everything berth left
    /// under the backup roots and on the engine.
    Status(status::Args),
    /// Remove old backups and finished runs under ROOT, with their rollback
    /// tags and kept-aside containers, and stale helpers.
    Prune(prune::Args),
    /// A completion script for SHELL, generated from berth's flags.
    Completions(generate::CompletionsArgs),
    /// The manual page (roff), generated from berth's flags.
    Man(generate::ManArgs),
    /// (internal) Empty a directory: run by berth inside a helper container.
    #[command(hide = true)]
    Wipe(wipe::Args),
    /// (internal) The entries of a volume changed since a moment: run by
    /// berth inside a helper container.
    #[command(hide = true)]
    Delta(delta::Args),
    /// (internal) Wait to be killed: a helper container's main process.
    #[command(hide = true)]
    Idle,
}

/// Run the parsed command line; its exit status (an error is shown here).
pub fn run(cli: Cli) -> ExitStatus {
    let out = cli.global.output();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(dispatch(cli)) {
        Ok(status) => status,
        Err(e) => out.error(&e),
    }
}

async fn dispatch(cli: Cli) -> Result<ExitStatus> {
    let g = &cli.global;
    let done = |r: Result<()>| r.map(|()| ExitStatus::Success);
    match cli.cmd {
        Cmd::Version => done(version::run(g).await),
        Cmd::Inspect(a) => done(a.run(g).await),
        Cmd::Backup(a) => done(a.run(g).await),
        Cmd::Verify(a) => done(a.run(g).await),
        Cmd::Restore(a) => done(a.run(g).await),
        Cmd::Upgrade(a) if a.rehearse_first => rehearse::then_upgrade(*a, g).await,
        Cmd::Upgrade(a) => a.run(g).await,
        Cmd::Rehearse(a) => a.run(g).await,
        Cmd::Rollout(a) => a.run(g).await,
        Cmd::Rollback(a) => done(a.run(g).await),
        Cmd::Resume(a) => a.run(g).await,
        Cmd::Status(a) => done(a.run(g).await),
        Cmd::Prune(a) => a.run(g).await,
        Cmd::Completions(a) => done(a.run(Cli::command())),
        Cmd::Man(a) => done(a.run(Cli::command())),
        Cmd::Wipe(a) => done(a.run()),
        Cmd::Delta(a) => done(a.run()),
        Cmd::Idle => delta::idle(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_definitions_are_consistent() {
        Cli::command().debug_assert();
    }
}
