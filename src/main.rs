//! The berth command line: parse, call the library, print, exit.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use std::path::PathBuf;

use berth::archive::{backup, restore, verify};
use berth::docker::{transport, Docker};
use berth::error::Result;
use berth::hooks::{self, Hook};
use berth::profile;
use berth::progress::human;
use berth::upgrade;

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
        /// Run CMD in the container first (before --stop); default: label berth.exec-before-backup.
        #[arg(long, value_name = "'CMD ARG...'")]
        exec_before_backup: Option<String>,
        #[command(flatten)]
        encrypt: EncryptArg,
    },
    /// Check a backup directory: SHA256SUMS and manifest; --deep also re-reads every archive.
    Verify {
        dir: PathBuf,
        #[arg(long)]
        deep: bool,
        #[command(flatten)]
        identity: IdentityArg,
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
        /// Run CMD on the restored data afterwards; default: label berth.exec-after-restore.
        #[arg(long, value_name = "'CMD ARG...'")]
        exec_after_restore: Option<String>,
        #[command(flatten)]
        identity: IdentityArg,
    },
    /// Upgrade a container to the image in a tarball; roll back automatically on failure.
    Upgrade(Box<UpgradeArgs>),
    /// Upgrade the container on several engines, one node after another.
    Rollout(Box<RolloutArgs>),
    /// Put the host back to before an upgrade (from its run directory).
    Rollback {
        dir: PathBuf,
        #[command(flatten)]
        identity: IdentityArg,
    },
    /// Finish an interrupted upgrade (or roll it back, whichever is safe),
    /// or go on with an interrupted rollout (DIR = its rollout directory).
    Resume {
        dir: PathBuf,
        #[command(flatten)]
        identity: IdentityArg,
    },
    /// Where an upgrade stands (DIR), or without DIR everything berth left
    /// under the backup roots and on the engine.
    Status {
        dir: Option<PathBuf>,
        #[arg(long, default_value = "./berth-backups", value_name = "DIR")]
        backup_root: PathBuf,
        /// A backup root to look in (repeatable; default: --backup-root).
        #[arg(long = "root", value_name = "DIR")]
        roots: Vec<PathBuf>,
    },
    /// Remove old backups and finished runs under ROOT, with their rollback
    /// tags and kept-aside containers, and stale helpers.
    Prune(PruneArgs),
    /// (internal) Empty a directory: run by berth inside a helper container.
    #[command(hide = true)]
    Wipe {
        path: PathBuf,
        /// A mountpoint (relative to PATH) to leave in place (repeatable).
        #[arg(long)]
        keep: Vec<String>,
    },
}

/// `--encrypt-to`: age encryption of the archives and indexes.
#[derive(clap::Args)]
struct EncryptArg {
    /// Encrypt archives and indexes to an age X25519 recipient (age1...) or
    /// to each one in a recipients file (repeatable).
    #[arg(long = "encrypt-to", value_name = "RECIPIENT|FILE")]
    encrypt_to: Vec<String>,
}

/// `--identity`: the key that opens an encrypted backup.
#[derive(clap::Args)]
struct IdentityArg {
    /// An age identity file that opens an encrypted backup (repeatable).
    #[arg(long = "identity", value_name = "FILE")]
    identity: Vec<PathBuf>,
}

impl IdentityArg {
    fn keys(&self) -> Result<berth::archive::seal::Keys> {
        berth::archive::seal::Keys::load_all(&self.identity)
    }
}

#[derive(clap::Args)]
struct PruneArgs {
    /// The backup root (`berth backup --out`, `berth upgrade --backup-root`).
    root: PathBuf,
    /// Per container, keep the newest N backup and run directories.
    #[arg(long, value_name = "N")]
    keep_last: usize,
    /// Also keep what is younger than this (90m, 12h, 30d, 2w).
    #[arg(long, value_name = "AGE")]
    keep_within: Option<String>,
    /// Show what would be removed; remove nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(clap::Args)]
struct UpgradeArgs {
    /// The container (rollout: on every node whose --node names none).
    container: String,
    /// The new image as a `docker save` tarball (plain or gzip).
    #[arg(long, value_name = "FILE")]
    image_file: PathBuf,
    /// The reference to run (default: the tarball's one tag).
    #[arg(long, value_name = "REF")]
    image: Option<String>,
    /// Refuse the tarball unless its sha256 is this.
    #[arg(long, value_name = "HEX")]
    sha256: Option<String>,
    /// Settings preset: a built-in name (lightwave) or a profile file.
    #[arg(long, value_name = "NAME|FILE")]
    profile: Option<String>,
    /// Config file to put in place (mode 0600) while the new version starts; removed after.
    #[arg(long, value_name = "SRC")]
    config_file: Option<PathBuf>,
    /// Where on the host to put it (default: the profile's config-path through its bind mount).
    #[arg(long, value_name = "HOST_PATH")]
    config_dest: Option<PathBuf>,
    /// A path to back up and restore (repeatable; default: the profile's, else every volume).
    #[arg(long = "path", value_name = "P")]
    paths: Vec<String>,
    /// Regex that means the upgrade succeeded (repeatable).
    #[arg(long, value_name = "REGEX")]
    success: Vec<String>,
    /// Regex that means it failed (repeatable).
    #[arg(long, value_name = "REGEX")]
    failure: Vec<String>,
    /// What to watch: logs, or exec:CMD [ARG...] run in the new container.
    #[arg(long, value_name = "logs|exec:CMD")]
    watch: Option<String>,
    /// How long the application has to say it succeeded (e.g. 90s, 5m).
    #[arg(long, value_name = "DURATION")]
    timeout: Option<String>,
    /// Run CMD in the old container before it stops and its volumes are copied
    /// (split on whitespace, '...' and "..." quote; no shell).
    #[arg(long, value_name = "'CMD ARG...'")]
    exec_before_backup: Option<String>,
    /// Run CMD on the restored volumes after a rollback's restore, before the old container starts.
    #[arg(long, value_name = "'CMD ARG...'")]
    exec_after_restore: Option<String>,
    /// Where run directories (journal, backup, logs) go.
    #[arg(long, default_value = "./berth-backups", value_name = "DIR")]
    backup_root: PathBuf,
    /// Back up while the old container still runs (as the reference procedure does).
    #[arg(long)]
    online_backup: bool,
    /// Keep the old container (renamed aside) after a successful upgrade.
    #[arg(long)]
    keep_old: bool,
    /// Print the plan and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Go on although part of the configuration cannot be carried over or space looks short.
    #[arg(long)]
    force: bool,
    /// Seconds to wait for a graceful stop before SIGKILL.
    #[arg(long, default_value_t = 30)]
    stop_timeout: u32,
    #[command(flatten)]
    encrypt: EncryptArg,
}

/// `berth rollout`: the upgrade flags, and the nodes (CONTAINER is the one
/// on every node that does not name its own).
#[derive(clap::Args)]
struct RolloutArgs {
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
    upgrade: UpgradeArgs,
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

fn say(json: bool) -> upgrade::Say {
    upgrade::Say { progress: !json }
}

fn upgrade_request(a: UpgradeArgs) -> Result<upgrade::plan::Request> {
    let flags = profile::Layer {
        paths: a.paths,
        config_path: None,
        success: a.success,
        failure: a.failure,
        watch: a.watch.as_deref().map(profile::parse_watch).transpose()?,
        timeout: a
            .timeout
            .as_deref()
            .map(profile::parse_duration)
            .transpose()?,
        exec_before_backup: hook_flag(a.exec_before_backup.as_deref())?,
        exec_after_restore: hook_flag(a.exec_after_restore.as_deref())?,
    };
    Ok(upgrade::plan::Request {
        container: a.container,
        image_file: a.image_file,
        image: a.image,
        sha256: a.sha256,
        profile: a.profile,
        config_file: a.config_file,
        config_dest: a.config_dest,
        flags,
        backup_root: a.backup_root,
        online_backup: a.online_backup,
        keep_old: a.keep_old,
        force: a.force,
        stop_timeout: a.stop_timeout,
        encrypt_to: berth::archive::seal::recipients(&a.encrypt.encrypt_to)?,
    })
}

fn hook_flag(cmd: Option<&str>) -> Result<Option<Vec<String>>> {
    cmd.map(berth::profile::parse_command).transpose()
}

/// Print how an upgrade run ended and exit with its code (0, 1 or 3).
fn report(s: &upgrade::Summary, json: bool) -> Result<()> {
    print_summary(s, json);
    let code = s.exit_code();
    if code != 0 {
        std::process::exit(code);
    }
    Ok(())
}

fn print_summary(s: &upgrade::Summary, json: bool) {
    use upgrade::journal::Outcome;
    if json {
        print_json(s);
    } else {
        match (&s.outcome, &s.plan) {
            (None, Some(p)) => print!("{}", upgrade::render_plan(p)),
            (Some(Outcome::Upgraded), _) => {
                println!(
                    "upgraded {}: {} -> {} in {:.1}s",
                    s.container, s.old_image, s.new_image, s.seconds
                );
                println!("backup: {}", s.backup_dir.display());
            }
            (Some(Outcome::RolledBack), _) => {
                println!(
                    "upgrade of {} FAILED: {}",
                    s.container,
                    s.cause.clone().unwrap_or_default()
                );
                let state = if s.was_running {
                    "runs"
                } else {
                    "is back, stopped as it was, on"
                };
                println!("rolled back: {} {state} {} with its data restored and verified equal to the backup", s.container, s.old_image);
                println!("backup and logs: {}", s.run_dir.display());
            }
            (Some(Outcome::Aborted), _) => {
                println!(
                    "upgrade of {} did not happen: {}",
                    s.container,
                    s.cause.clone().unwrap_or_default()
                );
                println!("nothing changed: {} is as it was", s.container);
            }
            (None, None) => {}
        }
        if s.outcome.is_some() {
            for w in &s.warnings {
                eprintln!("berth: warning: {w}");
            }
        }
    }
}

async fn rollout(a: RolloutArgs, host: Option<&str>, json: bool) -> Result<()> {
    use berth::rollout;
    if host.is_some() {
        return Err(berth::error::Error::usage(
            "berth rollout takes its engines from --node, not --host",
        ));
    }
    let o = rollout::Options {
        nodes: rollout::node::parse_all(&a.nodes, &a.upgrade.container)?,
        continue_on_failure: a.continue_on_failure,
        dry_run: a.upgrade.dry_run,
        request: upgrade_request(a.upgrade)?,
    };
    rollout_report(&rollout::rollout(o, say(json)).await?, json)
}

/// Print the per-node table (or JSON) and exit with the rollout's code.
fn rollout_report(r: &berth::rollout::state::Rollout, json: bool) -> Result<()> {
    let code = r.exit_code();
    if json {
        let mut v = serde_json::to_value(r).expect("serializable");
        v["exit_code"] = code.into();
        print_json(&v);
    } else {
        print!("{}", berth::rollout::render::render(r));
    }
    if code != 0 {
        std::process::exit(code);
    }
    Ok(())
}

/// `berth status` without DIR: what berth left, per container.
async fn leftovers(
    host: Option<&str>,
    backup_root: PathBuf,
    mut roots: Vec<PathBuf>,
    json: bool,
) -> Result<()> {
    if roots.is_empty() {
        roots.push(backup_root);
    }
    let d = connect(host).await?;
    let inv = berth::leftovers::inventory(&d, &roots).await?;
    if json {
        print_json(&inv);
    } else {
        print!("{}", berth::leftovers::render(&inv));
    }
    Ok(())
}

/// `berth prune`: exit 1 when a removal failed (the report says which).
async fn prune(host: Option<&str>, a: PruneArgs, json: bool) -> Result<()> {
    use berth::prune;
    let o = prune::Options {
        root: a.root,
        keep_last: a.keep_last,
        keep_within: a.keep_within.as_deref().map(prune::parse_age).transpose()?,
        dry_run: a.dry_run,
    };
    let d = connect(host).await?;
    let r = prune::prune(&d, &o).await?;
    if json {
        print_json(&r);
    } else {
        print!("{}", prune::render(&r));
    }
    if !r.failed.is_empty() {
        eprintln!("berth: {} removals failed (listed above)", r.failed.len());
        std::process::exit(1);
    }
    Ok(())
}

/// `berth status RUN_DIR`: the journal, the step in flight and what
/// `resume` would do given what the engine shows now. An engine that does
/// not answer leaves the journal's part, and says so.
async fn status_of_run(dir: &std::path::Path, host: Option<&str>, json: bool) -> Result<()> {
    let now = match connect(host).await {
        Ok(d) => upgrade::status_now(&d, dir).await,
        Err(e) => Err(e),
    };
    let s = match now {
        Ok(s) => s,
        Err(e)
            if e.kind == berth::error::Kind::Usage || e.kind == berth::error::Kind::Integrity =>
        {
            return Err(e)
        }
        Err(e) => {
            let s = upgrade::status(dir)?;
            if s.outcome.is_none() {
                eprintln!("berth: what resume would do is unknown: {}", e.msg);
            }
            s
        }
    };
    if json {
        print_json(&[s]);
    } else {
        print!("{}", s.render());
    }
    Ok(())
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
            // Podman's version says nothing of Podman: name it.
            let product = if d.podman().is_some() {
                "Podman"
            } else {
                "Docker"
            };
            let out = serde_json::json!({
                "berth": env!("CARGO_PKG_VERSION"),
                "engine": engine,
                "product": product,
                "engine_api": v.get("ApiVersion"),
                "api": d.api().to_string(),
                "socket": d.socket(),
            });
            if cli.json {
                print_json(&out);
            } else {
                println!("berth   {}", env!("CARGO_PKG_VERSION"));
                println!("engine  {product} {engine} at {}", d.socket().display());
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
            exec_before_backup,
            encrypt,
        } => {
            berth::cancel::install();
            let encrypt_to = berth::archive::seal::recipients(&encrypt.encrypt_to)?;
            let d = connect(host).await?;
            let hook = hook_flag(exec_before_backup.as_deref())?;
            hooks::run_for(&d, &container, Hook::BeforeBackup, hook).await?;
            let o = backup::Options {
                paths,
                out,
                level: compression.into(),
                stop,
                stop_timeout,
                progress: !cli.json,
                encrypt_to,
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
                        "{:<28} {:>8} entries  {:>10} -> {:>10}  index {:>10}  {:.1}s",
                        p.path,
                        p.entries,
                        human(p.tar_bytes as f64),
                        human(p.bytes as f64),
                        human(p.index_bytes as f64),
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
            exec_after_restore,
            identity,
        } => {
            berth::cancel::install();
            let keys = identity.keys()?;
            let d = connect(host).await?;
            let hook = hook_flag(exec_after_restore.as_deref())?;
            let o = restore::Options {
                container,
                paths,
                merge,
                progress: !cli.json,
                keys,
            };
            let r = restore::restore(&d, &dir, &o).await?;
            hooks::run_for(&d, &r.container, Hook::AfterRestore, hook)
                .await
                .map_err(|e| {
                    e.context(format!("{} was restored and verified, but", dir.display()))
                })?;
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
        Cmd::Upgrade(a) => {
            berth::cancel::install();
            let d = connect(host).await?;
            let dry_run = a.dry_run;
            let r = upgrade_request(*a)?;
            let s = upgrade::flow::upgrade(&d, &r, dry_run, say(cli.json)).await?;
            return report(&s, cli.json);
        }
        Cmd::Rollback { dir, identity } => {
            berth::cancel::install();
            let keys = identity.keys()?;
            let d = connect(host).await?;
            let s = upgrade::flow::rollback_dir(&d, &dir, say(cli.json), &keys).await?;
            // Asked for and done: success, whatever the upgrade had been.
            print_summary(&s, cli.json);
            return Ok(());
        }
        Cmd::Rollout(a) => {
            berth::cancel::install();
            return rollout(*a, host, cli.json).await;
        }
        Cmd::Resume { dir, .. } if berth::rollout::is_rollout_dir(&dir) => {
            berth::cancel::install();
            let r = berth::rollout::resume(&dir, say(cli.json)).await?;
            return rollout_report(&r, cli.json);
        }
        Cmd::Resume { dir, identity } => {
            berth::cancel::install();
            let keys = identity.keys()?;
            let d = connect(host).await?;
            let s = upgrade::flow::resume(&d, &dir, say(cli.json), &keys).await?;
            return report(&s, cli.json);
        }
        Cmd::Status { dir: Some(dir), .. } if berth::rollout::is_rollout_dir(&dir) => {
            let r = berth::rollout::state::Rollout::load(&dir)?;
            if cli.json {
                print_json(&r);
            } else {
                print!("{}", berth::rollout::render::render(&r));
            }
        }
        Cmd::Status {
            dir: None,
            backup_root,
            roots,
        } => leftovers(host, backup_root, roots, cli.json).await?,
        Cmd::Status { dir: Some(dir), .. } => status_of_run(&dir, host, cli.json).await?,
        Cmd::Prune(a) => return prune(host, a, cli.json).await,
        Cmd::Wipe { path, keep } => {
            let n = berth::archive::wipe::wipe_local(&path, &keep)?;
            println!("removed {n} entries from {}", path.display());
        }
        Cmd::Verify {
            dir,
            deep,
            identity,
        } => {
            let shown = !cli.json;
            let keys = identity.keys()?;
            let (m, r) =
                tokio::task::spawn_blocking(move || verify::verify_shown(&dir, deep, shown, &keys))
                    .await
                    .map_err(|e| {
                        berth::error::Error::failed(format!("verify thread failed: {e}"))
                    })??;
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
