//! `berth completions SHELL` and `berth man`: shell completions and manual
//! pages generated from the clap definitions, so they never drift from the
//! flags. Generated at run time by the binary itself rather than by a
//! build script: the definitions live in the binary's own modules (a build
//! script would need them in a file of their own), and `just install` runs
//! the freshly built binary to write them.

use std::io::Write;
use std::path::PathBuf;

use clap::Command;
use clap_complete::Shell;

use berth::error::{Context, Result};

#[derive(clap::Args)]
pub struct CompletionsArgs {
    #[arg(value_enum)]
    shell: Shell,
}

impl CompletionsArgs {
    /// The completion script on stdout.
    pub fn run(self, mut cmd: Command) -> Result<()> {
        let mut script = vec![];
        clap_complete::generate(self.shell, &mut cmd, "berth", &mut script);
        std::io::stdout()
            .write_all(&script)
            .ctx("writing the completion script")
    }
}

#[derive(clap::Args)]
pub struct ManArgs {
    /// Write berth.1 and a page per command (berth-backup.1, ...) into DIR
    /// instead of berth.1 on stdout.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

impl ManArgs {
    pub fn run(self, cmd: Command) -> Result<()> {
        let cmd = cmd.disable_help_subcommand(true);
        match self.dir {
            Some(dir) => clap_mangen::generate_to(cmd, &dir)
                .ctx(format!("writing manual pages into {}", dir.display())),
            None => {
                let mut page = vec![];
                clap_mangen::Man::new(cmd).render(&mut page)?;
                std::io::stdout()
                    .write_all(&page)
                    .ctx("writing the manual page")
            }
        }
    }
}
