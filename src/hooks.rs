//! Hooks: a user's command run against a container's data at two moments,
//! `exec-before-backup` (flush a database before its volumes are copied)
//! and `exec-after-restore` (fix up restored data before the application
//! starts). See docs/upgrade.md, Hooks.
//!
//! A running container runs the command through exec. A stopped one
//! cannot exec: the command runs in a short-lived helper container of the
//! container's own image, with its volumes (`VolumesFrom`), user, working
//! directory and environment, and no network. Either way a non-zero exit,
//! or no exit within BERTH_HOOK_TIMEOUT seconds (default 300), is an error
//! that carries the last lines of the command's output.

use std::time::Duration;

use serde_json::json;

use crate::docker::model::ContainerInspect;
use crate::docker::Docker;
use crate::error::{Error, Result};
use crate::profile::{self, Hooks};

/// The two moments a hook runs at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    BeforeBackup,
    AfterRestore,
}

impl std::fmt::Display for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Hook::BeforeBackup => "exec-before-backup",
            Hook::AfterRestore => "exec-after-restore",
        })
    }
}
/// How much of a failed hook's output its error shows.
const TAIL_LINES: usize = 20;
const DEFAULT_TIMEOUT_S: u64 = 300;

/// The command of hook `which` for a container: the flag's, else its
/// `berth.*` label's (a profile is for upgrades: see `upgrade::plan`).
pub(crate) fn pick(
    inspect: &ContainerInspect,
    which: Hook,
    flag: Option<Vec<String>>,
) -> Result<Option<Vec<String>>> {
    let (labels, _) = profile::from_labels(&inspect.config.labels)?;
    let flags = profile::Layer {
        exec_before_backup: flag.clone().filter(|_| which == Hook::BeforeBackup),
        exec_after_restore: flag.filter(|_| which == Hook::AfterRestore),
        ..Default::default()
    };
    let Hooks {
        before_backup,
        after_restore,
    } = profile::hooks(&[flags, labels]);
    Ok(match which {
        Hook::BeforeBackup => before_backup,
        Hook::AfterRestore => after_restore,
    })
}

/// `berth backup` and `berth restore`: hook `which` of `container`, from
/// the flag or its label, if either names one.
pub async fn run_for(
    d: &Docker,
    container: &str,
    which: Hook,
    flag: Option<Vec<String>>,
) -> Result<()> {
    let c = d.container_inspect(container).await?;
    let cmd = pick(&c, which, flag)?;
    run(d, container, which, cmd.as_deref()).await
}

fn timeout() -> Duration {
    let s = std::env::var("BERTH_HOOK_TIMEOUT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_TIMEOUT_S);
    Duration::from_secs(s)
}

/// Run hook `which`, if `cmd` is given, against `container` as it is now
/// (running: exec; stopped: a helper).
pub(crate) async fn run(
    d: &Docker,
    container: &str,
    which: Hook,
    cmd: Option<&[String]>,
) -> Result<()> {
    let Some(cmd) = cmd else {
        return Ok(());
    };
    let c = d.container_inspect(container).await?;
    let doing = format!("the {which} hook `{}` in {}", cmd.join(" "), c.name());
    let running = c.state.running;
    let limit = timeout();
    let work = async {
        if running {
            let out = d.exec_run(&c.id, cmd).await?;
            let mut text = out.stdout;
            text.extend_from_slice(&out.stderr);
            Ok((out.exit_code, text))
        } else {
            in_helper(d, &c, cmd, limit).await
        }
    };
    let (code, output) = match tokio::time::timeout(limit, work).await {
        Ok(r) => r.map_err(|e| e.context(&doing))?,
        Err(_) => {
            return Err(Error::failed(format!(
                "{doing} did not finish within {}s (BERTH_HOOK_TIMEOUT){}",
                limit.as_secs(),
                if running {
                    "; it may still be running in the container"
                } else {
                    ""
                }
            )))
        }
    };
    if code != 0 {
        return Err(Error::failed(format!(
            "{doing} exited with {code}{}",
            tail(&output)
        )));
    }
    Ok(())
}

/// The command in a helper container on the stopped container's data:
/// exit code and output. The helper is removed whatever happens.
async fn in_helper(
    d: &Docker,
    c: &ContainerInspect,
    cmd: &[String],
    limit: Duration,
) -> Result<(i64, Vec<u8>)> {
    let req = json!({
        "Image": c.image,
        "Entrypoint": [cmd[0]],
        "Cmd": cmd[1..],
        "User": c.config.user,
        "WorkingDir": c.config.working_dir,
        "Env": c.config.env,
        "Labels": {"berth.helper": "hook"},
        "NetworkDisabled": true,
        "HostConfig": {"VolumesFrom": [c.id], "NetworkMode": "none"},
    });
    let name = format!("{}-berth-hook-{}", c.name(), crate::clock::now_unix());
    let id = d.container_create(&name, &req).await?;
    let run = async {
        d.container_start(&id).await?;
        let code = d.container_wait(&id).await?;
        Ok((code, d.container_logs_all(&id, false).await))
    };
    // The timeout is enforced here too, so that the helper is removed.
    let result = match tokio::time::timeout(limit, run).await {
        Ok(r) => r,
        Err(_) => Err(Error::failed(format!(
            "did not finish within {}s (BERTH_HOOK_TIMEOUT)",
            limit.as_secs()
        ))),
    };
    let removed = d.container_remove(&id, true, false).await;
    let out = result?;
    removed?;
    Ok(out)
}

/// ": its last lines:\n..." (or nothing without output).
fn tail(output: &[u8]) -> String {
    let text = String::from_utf8_lossy(output);
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return " and printed nothing".into();
    }
    let from = lines.len().saturating_sub(TAIL_LINES);
    format!("; its last output:\n{}", lines[from..].join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines() {
        let out: String = (1..=30).map(|i| format!("line {i}\n")).collect();
        let t = tail(out.as_bytes());
        assert!(t.ends_with("line 30"), "{t}");
        assert!(t.contains("line 11\n") && !t.contains("line 10\n"), "{t}");
        assert_eq!(tail(b""), " and printed nothing");
    }

    #[test]
    fn flags_win_over_labels() {
        let c = ContainerInspect::from_raw(&json!({"Config": {"Labels": {"berth.exec-before-backup": "sync", "berth.exec-after-restore": "fix 'a b'"}}})).unwrap();
        let flush = Some(vec!["flush".to_owned()]);
        assert_eq!(pick(&c, Hook::BeforeBackup, flush.clone()).unwrap(), flush);
        assert_eq!(
            pick(&c, Hook::BeforeBackup, None).unwrap(),
            Some(vec!["sync".to_owned()])
        );
        assert_eq!(
            pick(&c, Hook::AfterRestore, None).unwrap(),
            Some(vec!["fix".to_owned(), "a b".to_owned()])
        );
        let bare = ContainerInspect::default();
        assert_eq!(pick(&bare, Hook::AfterRestore, None).unwrap(), None);
    }
}
