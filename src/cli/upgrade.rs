//! `berth upgrade CONTAINER`: its flags (shared with `berth rollout`; all
//! but --keep-old and --rehearse-first with `berth rehearse`), their
//! conversion into `upgrade::plan::Request`, and how a run's summary is
//! shown (also for `rollback`, `resume` and after a rehearsal).

use std::path::PathBuf;

use berth::error::Result;
use berth::exit::ExitStatus;
use berth::profile;
use berth::rehearse::report::Report;
use berth::upgrade::{self, journal::Outcome, plan::Request, Summary};

use crate::cli::convert;
use crate::cli::global::Global;
use crate::cli::keys::EncryptArg;
use crate::cli::output::Output;

// No argument group of its own: `rollout::Args` (also `Args`) flattens it.
#[derive(clap::Args)]
#[group(skip)]
pub struct Args {
    #[command(flatten)]
    pub flags: Flags,
    /// Keep the old container (renamed aside) after a successful upgrade.
    #[arg(long)]
    keep_old: bool,
    /// Rehearse on a copy of the data first; upgrade only if that passes.
    #[arg(long)]
    pub rehearse_first: bool,
}

/// The flags of an upgrade that `berth rehearse` takes too: all but those
/// that change the old container, which a rehearsal never does.
#[derive(clap::Args)]
#[group(skip)]
pub struct Flags {
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
    /// Take the whole backup after the stop instead of a pre-copy while it runs and only what changed after the stop.
    #[arg(long)]
    no_precopy: bool,
    /// The most bytes of content that may change during the pre-copy (default: half of it); more, and the whole backup is taken after the stop.
    #[arg(long, value_name = "BYTES")]
    precopy_max_delta: Option<u64>,
    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Go on although part of the configuration cannot be carried over or space looks short.
    #[arg(long)]
    force: bool,
    /// Seconds to wait for a graceful stop before SIGKILL.
    #[arg(long, default_value_t = 30)]
    stop_timeout: u32,
    /// The network the rehearsal container joins (default: none at all).
    #[arg(long, value_name = "NAME")]
    pub rehearse_network: Option<String>,
    #[command(flatten)]
    encrypt: EncryptArg,
}

impl Args {
    pub fn container(&self) -> &str {
        &self.flags.container
    }

    pub fn request(self) -> Result<Request> {
        self.flags.request(self.keep_old)
    }

    pub async fn run(self, g: &Global) -> Result<ExitStatus> {
        berth::cancel::install();
        let dry_run = self.flags.dry_run;
        let r = self.request()?;
        let d = g.connect().await?;
        let s = upgrade::flow::upgrade(&d, &r, dry_run, g.output().say()).await?;
        Ok(show(&s, None, g.output()))
    }
}

impl Flags {
    /// The library's request: flags parsed, paths absolute (plan.json
    /// keeps them for a resume from anywhere).
    pub fn request(self, keep_old: bool) -> Result<Request> {
        let flags = profile::Layer {
            paths: self.paths,
            config_path: None,
            success: self.success,
            failure: self.failure,
            watch: self
                .watch
                .as_deref()
                .map(profile::parse_watch)
                .transpose()?,
            timeout: self
                .timeout
                .as_deref()
                .map(profile::parse_duration)
                .transpose()?,
            exec_before_backup: convert::hook(self.exec_before_backup.as_deref())?,
            exec_after_restore: convert::hook(self.exec_after_restore.as_deref())?,
        };
        Ok(Request {
            container: self.container,
            image_file: convert::absolute(self.image_file),
            image: self.image,
            sha256: self.sha256,
            profile: convert::profile(self.profile),
            config_file: convert::absolute_opt(self.config_file),
            config_dest: convert::absolute_opt(self.config_dest),
            flags,
            backup_root: convert::absolute(self.backup_root),
            online_backup: self.online_backup,
            no_precopy: self.no_precopy,
            precopy_max_delta: self.precopy_max_delta,
            keep_old,
            force: self.force,
            stop_timeout: self.stop_timeout,
            reuse_backup: None,
            encrypt_to: self.encrypt.recipients()?,
        })
    }
}

/// Show how a run ended (after the report of the rehearsal that let it
/// run, if any); its exit status (Success, Failed or RolledBack).
pub fn show(s: &Summary, rehearsal: Option<&Report>, out: Output) -> ExitStatus {
    let doc = serde_json::to_value(s).expect("serializable");
    out.show_after(rehearsal, doc, || render(s));
    if !out.json && s.outcome.is_some() {
        out.warnings(&s.warnings);
    }
    s.exit_status()
}

fn render(s: &Summary) -> String {
    let cause = s.cause.as_deref().unwrap_or_default();
    match (&s.outcome, &s.plan) {
        (None, Some(p)) => upgrade::render_plan(p),
        (Some(Outcome::Upgraded), _) => format!(
            "upgraded {}: {} -> {} in {:.1}s{}\nbackup: {}\n",
            s.container,
            s.old_image,
            s.new_image,
            s.seconds,
            down(s),
            s.backup_dir.display()
        ),
        (Some(Outcome::RolledBack), _) => {
            let state = if s.was_running {
                "runs"
            } else {
                "is back, stopped as it was, on"
            };
            format!(
                "upgrade of {} FAILED: {cause}\n\
                 rolled back: {} {state} {} with its data restored and verified equal to the backup{}\n\
                 backup and logs: {}\n",
                s.container,
                s.container,
                s.old_image,
                down(s),
                s.run_dir.display()
            )
        }
        (Some(Outcome::Aborted), _) => format!(
            "upgrade of {} did not happen: {cause}\nnothing changed: {} is as it was\n",
            s.container, s.container
        ),
        (None, None) => String::new(),
    }
}

/// " (down 2.0s)": from the old container's stop to the serving one's
/// start; with what the stop window copied after a pre-copy.
fn down(s: &Summary) -> String {
    let copied = s.delta.map(|c| {
        format!(
            "; {} changed since the pre-copy ({} {}) copied while down",
            berth::progress::human(c.tar_bytes as f64),
            c.entries,
            if c.entries == 1 { "entry" } else { "entries" },
        )
    });
    s.downtime_s
        .map(|d| format!(" (down {d:.1}s{})", copied.unwrap_or_default()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(outcome: Option<Outcome>, was_running: bool) -> Summary {
        Summary {
            container: "lw".into(),
            outcome,
            old_image: "sts:6.6.0".into(),
            new_image: "sts:6.8.0".into(),
            run_dir: "/r/lw-1-upgrade".into(),
            backup_dir: "/r/lw-1-upgrade/backup".into(),
            was_running,
            verdict: None,
            cause: Some("Upgrade failed.".into()),
            seconds: 12.34,
            downtime_s: Some(1.96),
            delta: None,
            warnings: vec![],
            plan: None,
        }
    }

    #[test]
    fn each_outcome_in_words_and_its_exit_status() {
        let up = summary(Some(Outcome::Upgraded), true);
        assert_eq!(
            render(&up),
            "upgraded lw: sts:6.6.0 -> sts:6.8.0 in 12.3s (down 2.0s)\nbackup: /r/lw-1-upgrade/backup\n"
        );
        assert_eq!(up.exit_status(), ExitStatus::Success);
        let mut quick = summary(Some(Outcome::Upgraded), true);
        quick.delta = Some(berth::archive::precopy::Carried {
            entries: 1,
            tar_bytes: 3 << 20,
            bytes: 1 << 20,
            removed: 0,
        });
        assert!(
            render(&quick).contains(
                "(down 2.0s; 3.0 MiB changed since the pre-copy (1 entry) copied while down)"
            ),
            "{}",
            render(&quick)
        );
        let mut back = summary(Some(Outcome::RolledBack), false);
        back.downtime_s = None;
        assert_eq!(
            render(&back),
            "upgrade of lw FAILED: Upgrade failed.\n\
             rolled back: lw is back, stopped as it was, on sts:6.6.0 with its data restored and verified equal to the backup\n\
             backup and logs: /r/lw-1-upgrade\n"
        );
        assert_eq!(back.exit_status().code(), 3);
        let mut running = summary(Some(Outcome::RolledBack), true);
        running.downtime_s = Some(31.04);
        assert!(render(&running).contains(
            "rolled back: lw runs sts:6.6.0 with its data restored and verified equal to the backup (down 31.0s)\n"
        ));
        let aborted = summary(Some(Outcome::Aborted), true);
        assert_eq!(
            render(&aborted),
            "upgrade of lw did not happen: Upgrade failed.\nnothing changed: lw is as it was\n"
        );
        assert_eq!(aborted.exit_status().code(), 1);
    }
}
