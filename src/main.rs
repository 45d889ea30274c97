//! The berth command line: parse, call the library, print, exit.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use std::path::PathBuf;

use berth::archive::{backup, restore, verify};
use berth::docker::{transport, Docker};
use berth::error::Result;
use berth::progress::human;

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
    /// Back up a container's data volumes into checksummed .tar.gz files.
    Backup {
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
    },
    /// Check a backup directory: SHA256SUMS and manifest; --deep also re-reads every archive.
    Verify {
        dir: PathBuf,
        #[arg(long)]
        deep: bool,
    },
    /// Put a backup back exactly (verified first, compared after).
    Restore {
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
    },
    /// (internal) Empty a directory: run by berth inside a helper container.
    #[command(hide = true)]
    Wipe {
        path: PathBuf,
        /// A mountpoint (relative to PATH) to leave in place (repeatable).
        #[arg(long)]
        keep: Vec<String>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Compression {
    Fast,
    Default,
    Best,
}

impl From<Compression> for backup::Level {
    fn from(c: Compression) -> Self {
        match c {
            Compression::Fast => backup::Level::Fast,
            Compression::Default => backup::Level::Default,
            Compression::Best => backup::Level::Best,
        }
    }
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
    berth::cancel::install();
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
        Cmd::Backup {
            container,
            paths,
            out,
            compression,
            stop,
            stop_timeout,
        } => {
            let d = connect(host).await?;
            let o = backup::Options {
                paths,
                out,
                level: compression.into(),
                stop,
                stop_timeout,
                progress: !cli.json,
            };
            let r = backup::backup(&d, &container, &o).await?;
            for w in &r.warnings {
                eprintln!("berth: warning: {w}");
            }
            if cli.json {
                print_json(&r);
            } else {
                for p in &r.manifest.paths {
                    println!(
                        "{:<28} {:>8} entries  {:>10} -> {:>10}  {:.1}s",
                        p.path,
                        p.entries,
                        human(p.tar_bytes as f64),
                        human(p.bytes as f64),
                        p.seconds
                    );
                }
                for e in &r.manifest.excluded {
                    println!("left out: {} ({})", e.path, e.reason);
                }
                println!("{}", r.dir.display());
            }
        }
        Cmd::Restore {
            dir,
            container,
            paths,
            merge,
        } => {
            let d = connect(host).await?;
            let o = restore::Options {
                container,
                paths,
                merge,
                progress: !cli.json,
            };
            let r = restore::restore(&d, &dir, &o).await?;
            for w in &r.warnings {
                eprintln!("berth: warning: {w}");
            }
            if cli.json {
                print_json(&r);
            } else {
                for p in &r.paths {
                    println!(
                        "{:<28} {:>8} entries  {:>10}  {}  verified  {:.1}s",
                        p.path,
                        p.entries,
                        human(p.bytes as f64),
                        if p.emptied { "exact" } else { "merged" },
                        p.seconds
                    );
                }
                println!(
                    "restored {} into {}: every path reads back equal to the backup",
                    r.dir.display(),
                    r.container
                );
            }
        }
        Cmd::Wipe { path, keep } => {
            let n = berth::archive::wipe::wipe_local(&path, &keep)?;
            println!("removed {n} entries from {}", path.display());
        }
        Cmd::Verify { dir, deep } => {
            let (m, r) = tokio::task::spawn_blocking(move || verify::verify(&dir, deep))
                .await
                .map_err(|e| berth::error::Error::failed(format!("verify thread failed: {e}")))??;
            if cli.json {
                print_json(
                    &serde_json::json!({ "ok": true, "container": m.container.name, "created": m.created, "report": r }),
                );
            } else {
                println!(
                    "ok: {} files, {} verified in {:.2}s ({}/s){}",
                    r.files,
                    human(r.bytes as f64),
                    r.seconds,
                    human(r.bytes as f64 / r.seconds.max(1e-6)),
                    if r.deep {
                        ", every archive re-indexed"
                    } else {
                        ""
                    }
                );
            }
        }
    }
    Ok(())
}
