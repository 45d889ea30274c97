//! The berth binary as a test runs it: its exit, output and time.

use std::os::unix::process::ExitStatusExt;
use std::process::Output;
use std::time::Duration;

use serde_json::Value;

/// One finished run of berth.
pub struct Run {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?} signal {:?} after {:.1}s\n--- stdout\n{}--- stderr\n{}",
            self.code,
            self.signal,
            self.took.as_secs_f64(),
            self.stdout,
            self.stderr
        )
    }
}

impl Run {
    pub fn from(out: Output, took: Duration) -> Run {
        Run {
            code: out.status.code(),
            signal: out.status.signal(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            took,
        }
    }

    /// The one JSON document of `--json`.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{self}"))
    }

    /// The error of `--json`, which must also be the one line on stderr.
    pub fn error(&self) -> String {
        let e = self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error reported: {self}"))
            .to_owned();
        assert_eq!(
            self.stderr.trim(),
            format!("berth: {e}"),
            "more than the one message on stderr: {self}"
        );
        e
    }

    /// What berth said: the error or the cause of `--json`, and stderr.
    pub fn said(&self) -> String {
        let j: Value = serde_json::from_str(&self.stdout).unwrap_or(Value::Null);
        let text = |k: &str| j[k].as_str().unwrap_or("").to_owned();
        format!("{} {} {}", text("error"), text("cause"), self.stderr)
    }
}
