//! Exec: run a command inside a running container and collect its output
//! and exit code (used to watch an application through e.g. `journalctl`).

use bytes::Bytes;
use hyper::Method;
use serde_json::{json, Value};

use super::body;
use super::stream::{Channel, FrameDecoder};
use super::transport::{enc, Docker};
use crate::error::{Error, Result};

/// Output beyond this is dropped (a watch command's output is small).
const MAX_OUTPUT: usize = 64 * 1024 * 1024;

#[derive(Debug, Default, Clone)]
pub struct ExecOutput {
    pub exit_code: i64,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Where an exec's stdout goes, piece by piece as it comes.
pub(crate) trait Stdout {
    async fn put(&mut self, b: Bytes) -> Result<()>;
}

/// Kept in memory, up to 64 MiB.
impl Stdout for Vec<u8> {
    async fn put(&mut self, b: Bytes) -> Result<()> {
        if self.len() < MAX_OUTPUT {
            self.extend_from_slice(&b);
        }
        Ok(())
    }
}

/// Handed to a reader on another thread (bounded: the exec waits for it).
impl Stdout for tokio::sync::mpsc::Sender<Bytes> {
    async fn put(&mut self, b: Bytes) -> Result<()> {
        self.send(b)
            .await
            .map_err(|_| Error::failed("the reader of the exec's output stopped"))
    }
}

impl Docker {
    pub(crate) async fn exec_create(
        &self,
        id: &str,
        cmd: &[String],
        user: Option<&str>,
    ) -> Result<String> {
        let doing = format!("creating an exec of `{}` in container {id}", cmd.join(" "));
        let mut cfg =
            json!({ "AttachStdout": true, "AttachStderr": true, "Tty": false, "Cmd": cmd });
        if let Some(u) = user {
            cfg["User"] = json!(u);
        }
        let v = self
            .post_json(&format!("/containers/{}/exec", enc(id)), Some(&cfg), &doing)
            .await?;
        super::containers::id_of(&v, &doing)
    }

    /// Start an exec and read its multiplexed output to the end.
    pub(crate) async fn exec_start(&self, exec_id: &str) -> Result<ExecOutput> {
        let mut out = ExecOutput::default();
        self.exec_stream(exec_id, &mut out.stderr, &mut out.stdout)
            .await?;
        Ok(out)
    }

    /// Start an exec: its stdout to `stdout` as it comes, its stderr into
    /// `stderr` (up to 64 MiB).
    pub(crate) async fn exec_stream(
        &self,
        exec_id: &str,
        stderr: &mut Vec<u8>,
        stdout: &mut impl Stdout,
    ) -> Result<()> {
        let doing = format!("running exec {exec_id}");
        let cfg = json!({ "Detach": false, "Tty": false });
        let resp = self
            .send(
                Method::POST,
                &format!("/exec/{}/start", enc(exec_id)),
                body::full(cfg.to_string()),
                Some("application/json"),
                &doing,
            )
            .await?;
        let mut reader = self.reader(resp, &doing);
        let mut frames = FrameDecoder::new(false);
        loop {
            while let Some((ch, b)) = frames.next_frame()? {
                match ch {
                    Channel::Stdout => stdout.put(b).await?,
                    Channel::Stderr => stderr.put(b).await?,
                    Channel::Stdin => {}
                    Channel::System => {
                        return Err(Error::failed(format!(
                            "{doing}: {}",
                            String::from_utf8_lossy(&b).trim()
                        )))
                    }
                }
            }
            match reader.chunk().await? {
                Some(b) => frames.push(&b),
                None => break,
            }
        }
        frames.finish()
    }

    pub(crate) async fn exec_inspect(&self, exec_id: &str) -> Result<Value> {
        self.get_json(
            &format!("/exec/{}/json", enc(exec_id)),
            &format!("inspecting exec {exec_id}"),
        )
        .await
    }

    /// Run `cmd` in the container to completion: output and exit code.
    pub async fn exec_run(&self, id: &str, cmd: &[String]) -> Result<ExecOutput> {
        let exec_id = self.exec_create(id, cmd, None).await?;
        let mut out = self.exec_start(&exec_id).await?;
        let v = self.exec_inspect(&exec_id).await?;
        out.exit_code = v.get("ExitCode").and_then(Value::as_i64).unwrap_or(-1);
        Ok(out)
    }
}
