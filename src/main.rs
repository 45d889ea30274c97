//! The berth binary: parse the command line, run it, exit with its status.
//! Everything the command line does is in `cli/`.

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let status = cli::run(cli::Cli::parse());
    std::process::ExitCode::from(status.code())
}
