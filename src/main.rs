//! The berth command line: parse, call the library, print, exit.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use berth::docker::{transport, Docker};
use berth::error::Result;

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "Upgrade stateful containers safely: verified backup, image load, recreate, watch, verified rollback."
)]
struct Cli {
    /// Engine socket as unix:///path (default: $DOCKER_HOST, else /var/run/docker.sock).
    #[arg(long, global = true, value_name = "unix:///PATH")]
    host: Option<String>,
    /// One JSON document on stdout instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// berth's version, the engine's version and the negotiated API version.
    Version,
    /// A container's image, state and the data a backup would take.
    Inspect { container: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let json = cli.json;
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "error": e.msg, "exit_code": e.kind.exit_code() })
                );
            }
            eprintln!("berth: {e}");
            ExitCode::from(e.kind.exit_code() as u8)
        }
    }
}

async fn connect(host: Option<&str>) -> Result<Docker> {
    Docker::connect(&transport::socket_from(host)?).await
}

fn print_json(v: &impl serde::Serialize) {
    println!("{}", serde_json::to_string_pretty(v).expect("serializable"));
}

async fn run(cli: Cli) -> Result<()> {
    let host = cli.host.as_deref();
    match cli.cmd {
        Cmd::Version => {
            let d = connect(host).await?;
            let v = d
                .get_json("/version", "asking the engine for its version")
                .await?;
            let engine = v
                .get("Version")
                .and_then(|x| x.as_str())
                .unwrap_or("?")
                .to_owned();
            let out = serde_json::json!({
                "berth": env!("CARGO_PKG_VERSION"),
                "engine": engine,
                "engine_api": v.get("ApiVersion"),
                "api": d.api().to_string(),
                "socket": d.socket(),
            });
            if cli.json {
                print_json(&out);
            } else {
                println!("berth   {}", env!("CARGO_PKG_VERSION"));
                println!("engine  {engine} at {}", d.socket().display());
                println!(
                    "api     {} (engine {}, berth {}..{})",
                    d.api(),
                    out["engine_api"].as_str().unwrap_or("?"),
                    transport::MIN_API,
                    transport::MAX_API
                );
            }
        }
        Cmd::Inspect { container } => {
            let d = connect(host).await?;
            let r = berth::inspect::inspect(&d, &container).await?;
            if cli.json {
                print_json(&r);
            } else {
                print!("{}", r.render());
            }
        }
    }
    Ok(())
}
