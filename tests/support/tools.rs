//! The project's set-up scripts as the tests call them: each installs or
//! fetches a tool when it is missing and prints the tool's path last.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// `scripts/NAME ARGS...` and the path it printed last; Err says why
/// there is none (the script's own messages go to the test's stderr).
pub fn tool_path(name: &str, args: &[&str]) -> Result<PathBuf, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name);
    let out = Command::new(&script)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("exited with {}", out.status));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| "printed no path".to_owned())
}
