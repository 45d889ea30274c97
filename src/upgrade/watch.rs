//! Watch a started container until the application itself says whether
//! it came up: success/failure patterns over its logs or over the output
//! of a command run in it, its exit, a crash loop, an unhealthy health
//! status, or no word before the timeout.

use std::path::Path;
use std::time::{Duration, Instant};

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::docker::model::ContainerInspect;
use crate::docker::{containers::LogOptions, Docker};
use crate::error::{Error, Result};
use crate::profile::{Settings, Watch};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", content = "why", rename_all = "lowercase")]
pub enum Verdict {
    Success(String),
    Failure(String),
}

/// Without a success pattern, a container counts as up once it has been
/// running (and healthy, if it has a health check) this long.
pub(crate) const SETTLE: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_secs(1);
const EXEC_EVERY: Duration = Duration::from_secs(2);

struct Patterns {
    success: Vec<Regex>,
    failure: Vec<Regex>,
}

impl Patterns {
    fn new(s: &Settings) -> Result<Patterns> {
        let c = |v: &[String]| -> Result<Vec<Regex>> {
            v.iter()
                .map(|r| Regex::new(r).map_err(|e| Error::usage(format!("bad regex {r:?}: {e}"))))
                .collect()
        };
        Ok(Patterns {
            success: c(&s.success)?,
            failure: c(&s.failure)?,
        })
    }

    /// Failure wins over success when one text has both.
    fn judge(&self, text: &str) -> Option<Verdict> {
        for line in text.lines() {
            if self.failure.iter().any(|r| r.is_match(line)) {
                return Some(Verdict::Failure(format!(
                    "the application said: {}",
                    line.trim()
                )));
            }
        }
        for line in text.lines() {
            if self.success.iter().any(|r| r.is_match(line)) {
                return Some(Verdict::Success(format!(
                    "the application said: {}",
                    line.trim()
                )));
            }
        }
        None
    }
}

/// Watch container `id` for at most `timeout`; its logs are saved to
/// `log_file` at the end whatever the verdict.
pub async fn watch(
    d: &Docker,
    id: &str,
    s: &Settings,
    timeout: Duration,
    log_file: &Path,
) -> Result<Verdict> {
    let p = Patterns::new(s)?;
    let verdict = judge_loop(d, id, s, &p, timeout).await;
    save_logs(d, id, log_file).await;
    verdict
}

async fn judge_loop(
    d: &Docker,
    id: &str,
    s: &Settings,
    p: &Patterns,
    timeout: Duration,
) -> Result<Verdict> {
    let t0 = Instant::now();
    let first = d.container_inspect(id).await?;
    let restarts0 = first.restart_count;
    let tty = first.config.tty;
    let mut seen = String::new();
    let mut logs = match s.watch {
        Watch::Logs => Some(
            d.container_logs(
                id,
                &LogOptions {
                    follow: true,
                    stdout: true,
                    stderr: true,
                    tty,
                    since: 0,
                },
            )
            .await?,
        ),
        Watch::Exec(_) => None,
    };
    let mut last_exec = None::<Instant>;
    let mut up_since = None::<Instant>;
    let mut next_poll = Instant::now();
    loop {
        crate::cancel::check()?;
        if let Some(stream) = logs.as_mut() {
            // Read what the logs have until the next state poll is due.
            let wait = next_poll.saturating_duration_since(Instant::now());
            match tokio::time::timeout(wait, stream.next()).await {
                Ok(Ok(Some((_, b)))) => {
                    seen.push_str(&String::from_utf8_lossy(&b));
                    if let Some(v) = judge_complete_lines(p, &mut seen) {
                        return Ok(v);
                    }
                    continue;
                }
                Ok(Ok(None)) => logs = None, // the container stopped: the poll says how
                Ok(Err(_)) => logs = None,
                Err(_) => {}
            }
        } else {
            tokio::time::sleep(next_poll.saturating_duration_since(Instant::now())).await;
        }
        next_poll = Instant::now() + POLL;
        if let Watch::Exec(cmd) = &s.watch {
            if last_exec.is_none_or(|t| t.elapsed() >= EXEC_EVERY) {
                last_exec = Some(Instant::now());
                if let Ok(out) = d.exec_run(id, cmd).await {
                    let text = String::from_utf8_lossy(&out.stdout).into_owned()
                        + &String::from_utf8_lossy(&out.stderr);
                    if let Some(v) = p.judge(&text) {
                        return Ok(v);
                    }
                }
            }
        }
        let st = d.container_inspect(id).await?;
        if let Some(v) = state_verdict(&st, restarts0) {
            // Lines written just before an exit still count.
            if let Some(v) = p.judge(&seen) {
                return Ok(v);
            }
            return Ok(v);
        }
        let health = st.state.health.as_ref();
        let healthy = health.is_none_or(|h| h.status == "healthy");
        if p.success.is_empty() && healthy {
            let since = *up_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= SETTLE {
                let health = if health.is_some() { " and healthy" } else { "" };
                return Ok(Verdict::Success(format!(
                    "running{health} for {}s",
                    SETTLE.as_secs()
                )));
            }
        } else {
            up_since = None;
        }
        if t0.elapsed() >= timeout {
            let what = if p.success.is_empty() {
                "did not become healthy".to_owned()
            } else {
                format!("did not say {:?}", s.success.join(" or "))
            };
            return Ok(Verdict::Failure(format!(
                "the application {what} within {}s",
                timeout.as_secs()
            )));
        }
    }
}

/// Judge the complete lines of `buf`, keeping a trailing partial line.
fn judge_complete_lines(p: &Patterns, buf: &mut String) -> Option<Verdict> {
    let cut = buf.rfind('\n')? + 1;
    let done: String = buf.drain(..cut).collect();
    p.judge(&done)
}

/// A failure that the engine's state shows: exited, restarting, unhealthy.
fn state_verdict(st: &ContainerInspect, restarts0: i64) -> Option<Verdict> {
    let code = st.state.exit_code;
    // Under a restart policy an exited container is "restarting", not
    // running: that is a crash loop, and saying so tells the operator more.
    if st.restart_count > restarts0 || st.state.restarting {
        return Some(Verdict::Failure(format!(
            "the container is crash-looping (exit code {code}, {} restarts)",
            st.restart_count - restarts0
        )));
    }
    if !st.state.running {
        return Some(Verdict::Failure(format!(
            "the container exited with code {code}"
        )));
    }
    if st
        .state
        .health
        .as_ref()
        .is_some_and(|h| h.status == "unhealthy")
    {
        return Some(Verdict::Failure(
            "the container's health check says unhealthy".into(),
        ));
    }
    None
}

/// Keep the container's logs beside the backup (best effort).
async fn save_logs(d: &Docker, id: &str, path: &Path) {
    let tty = d.container_inspect(id).await.is_ok_and(|c| c.config.tty);
    let out = d.container_logs_all(id, tty).await;
    let _ = crate::files::write_atomic(path, &out, 0o600);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(success: &[&str], failure: &[&str]) -> Settings {
        Settings {
            paths: vec![],
            config_path: None,
            success: success.iter().map(|s| s.to_string()).collect(),
            failure: failure.iter().map(|s| s.to_string()).collect(),
            watch: Watch::Logs,
            timeout_s: 1,
        }
    }

    #[test]
    fn failure_wins_and_lines_are_whole() {
        let p = Patterns::new(&settings(&[r"Upgrade complete\."], &[r"Upgrade failed\."])).unwrap();
        assert_eq!(
            p.judge("x\nUpgrade complete.\n"),
            Some(Verdict::Success(
                "the application said: Upgrade complete.".into()
            ))
        );
        assert!(matches!(
            p.judge("Upgrade complete.\nUpgrade failed.\n"),
            Some(Verdict::Failure(_))
        ));
        let mut buf = "Upgrade comp".to_owned();
        assert_eq!(judge_complete_lines(&p, &mut buf), None);
        buf.push_str("lete.\n");
        assert!(matches!(
            judge_complete_lines(&p, &mut buf),
            Some(Verdict::Success(_))
        ));
    }

    fn state(v: serde_json::Value) -> ContainerInspect {
        ContainerInspect::from_raw(&v).unwrap()
    }

    #[test]
    fn state_failures() {
        let exited = state(serde_json::json!({"State": {"Running": false, "ExitCode": 1}}));
        assert_eq!(
            state_verdict(&exited, 0),
            Some(Verdict::Failure("the container exited with code 1".into()))
        );
        let looping = state(serde_json::json!({"State": {"Running": true}, "RestartCount": 3}));
        assert!(matches!(
            state_verdict(&looping, 1),
            Some(Verdict::Failure(_))
        ));
        let backing_off = state(
            serde_json::json!({"State": {"Running": false, "Restarting": true, "ExitCode": 1}}),
        );
        assert_eq!(
            state_verdict(&backing_off, 0),
            Some(Verdict::Failure(
                "the container is crash-looping (exit code 1, 0 restarts)".into()
            ))
        );
        let sick = state(
            serde_json::json!({"State": {"Running": true, "Health": {"Status": "unhealthy"}}}),
        );
        assert!(matches!(state_verdict(&sick, 0), Some(Verdict::Failure(_))));
        assert_eq!(
            state_verdict(&state(serde_json::json!({"State": {"Running": true}})), 0),
            None
        );
    }
}
