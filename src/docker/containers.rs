//! Container calls: inspect (typed, or whole for a re-create), list,
//! lifecycle, logs and the archive endpoints.

use std::io::Read;

use bytes::Bytes;
use hyper::Method;
use serde::Deserialize;
use serde_json::Value;

use super::body::{self, BodyReader, ReqBody};
use super::direct;
use super::model::{ContainerInspect, ContainerSummary};
use super::podman::{self, Rename};
use super::stream::{Channel, FrameDecoder};
use super::transport::{enc, Docker};
use crate::error::{Error, Kind, Result};

/// POST /containers/{id}/wait's answer.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WaitResponse {
    status_code: Option<i64>,
    error: Option<WaitError>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WaitError {
    #[serde(default)]
    message: String,
}

/// A GET archive stream: the engine's body, renamed on Podman.
pub(crate) type ArchiveReader = Box<dyn Read + Send>;

/// What HEAD/GET archive say about a path (X-Docker-Container-Path-Stat).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    /// Go's os.FileMode bits: the directory bit is 1 << 31.
    pub mode: u32,
    pub mtime: String,
    #[serde(rename = "linkTarget", default)]
    pub(crate) link_target: String,
}

impl PathStat {
    pub fn is_dir(&self) -> bool {
        self.mode & (1 << 31) != 0
    }
}

#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub follow: bool,
    /// Unix seconds; 0 means from the start.
    pub since: i64,
    pub stdout: bool,
    pub stderr: bool,
    /// The container runs with a TTY: the stream is raw, not multiplexed.
    pub tty: bool,
}

/// A container's log stream, decoded into (channel, bytes) pieces.
pub struct LogStream {
    reader: BodyReader,
    frames: FrameDecoder,
}

impl LogStream {
    pub async fn next(&mut self) -> Result<Option<(Channel, Bytes)>> {
        loop {
            if let Some(f) = self.frames.next_frame()? {
                return Ok(Some(f));
            }
            match self.reader.chunk().await? {
                Some(b) => self.frames.push(&b),
                None => {
                    self.frames.finish()?;
                    return Ok(None);
                }
            }
        }
    }
}

impl Docker {
    /// What berth reads of a container.
    pub async fn container_inspect(&self, id: &str) -> Result<ContainerInspect> {
        let raw = self.container_inspect_raw(id).await?;
        ContainerInspect::from_raw(&raw)
            .map_err(|e| e.context(format!("inspecting container {id}")))
    }

    /// The whole inspect JSON, kept as a Value so that nothing is dropped
    /// when a container is re-created from it (or its backup keeps it).
    pub async fn container_inspect_raw(&self, id: &str) -> Result<Value> {
        self.get_json(
            &format!("/containers/{}/json", enc(id)),
            &format!("inspecting container {id}"),
        )
        .await
    }

    /// Whether container `id` is still there. One the engine does not know,
    /// is removing, or failed to remove (dead) is gone.
    pub async fn container_exists(&self, id: &str) -> Result<bool> {
        match self.container_inspect(id).await {
            Ok(c) => Ok(!c.state.is_going()),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Containers (all states) matching an engine filter, e.g. {"name": ["x"]}.
    pub async fn container_list(&self, filters: &Value) -> Result<Vec<ContainerSummary>> {
        let doing = "listing containers";
        let v = self
            .get_json(
                &format!(
                    "/containers/json?all=1&filters={}",
                    enc(&filters.to_string())
                ),
                doing,
            )
            .await?;
        let v = if v.is_null() { Value::Array(vec![]) } else { v };
        Vec::deserialize(v).map_err(|e| {
            Error::failed(format!(
                "{doing}: the engine's list has an unexpected shape: {}",
                crate::secrets::json_problem(&e)
            ))
        })
    }

    /// Create a container; returns its id.
    pub async fn container_create(&self, name: &str, config: &Value) -> Result<String> {
        let podman_config;
        let config = if self.podman().is_some() {
            podman_config = podman::create_config(config);
            &podman_config
        } else {
            config
        };
        let v = self
            .post_json(
                &format!("/containers/create?name={}", enc(name)),
                Some(config),
                &format!("creating container {name}"),
            )
            .await?;
        id_of(&v, &format!("creating container {name}"))
    }

    pub async fn container_start(&self, id: &str) -> Result<()> {
        let doing = format!("starting container {id}");
        self.post_json(&format!("/containers/{}/start", enc(id)), None, &doing)
            .await
            .map(drop)
    }

    /// Stop gracefully: SIGTERM (or the image's stop signal), SIGKILL after
    /// `timeout_s`. Stopping a stopped container is not an error.
    pub async fn container_stop(&self, id: &str, timeout_s: u32) -> Result<()> {
        let doing = format!("stopping container {id}");
        let mut d = self.clone();
        d.call_timeout += std::time::Duration::from_secs(timeout_s.into());
        d.post_json(
            &format!("/containers/{}/stop?t={timeout_s}", enc(id)),
            None,
            &doing,
        )
        .await
        .map(drop)
    }

    pub async fn container_restart(&self, id: &str, timeout_s: u32) -> Result<()> {
        let doing = format!("restarting container {id}");
        let mut d = self.clone();
        d.call_timeout += std::time::Duration::from_secs(timeout_s.into());
        d.post_json(
            &format!("/containers/{}/restart?t={timeout_s}", enc(id)),
            None,
            &doing,
        )
        .await
        .map(drop)
    }

    pub async fn container_rename(&self, id: &str, new_name: &str) -> Result<()> {
        let doing = format!("renaming container {id} to {new_name}");
        self.post_json(
            &format!("/containers/{}/rename?name={}", enc(id), enc(new_name)),
            None,
            &doing,
        )
        .await
        .map(drop)
    }

    /// Remove a container; `volumes` also removes its anonymous volumes.
    pub async fn container_remove(&self, id: &str, force: bool, volumes: bool) -> Result<()> {
        self.delete(
            &format!("/containers/{}?force={force}&v={volumes}", enc(id)),
            &format!("removing container {id}"),
        )
        .await
    }

    /// Wait until the container is not running; returns its exit code.
    pub async fn container_wait(&self, id: &str) -> Result<i64> {
        let doing = format!("waiting for container {id}");
        let mut d = self.clone();
        d.call_timeout = std::time::Duration::from_secs(365 * 86400);
        let v = d
            .post_json(
                &format!("/containers/{}/wait?condition=not-running", enc(id)),
                None,
                &doing,
            )
            .await?;
        let w = WaitResponse::deserialize(&v).map_err(|e| {
            Error::failed(format!(
                "{doing}: the engine's answer has an unexpected shape: {}",
                crate::secrets::json_problem(&e)
            ))
        })?;
        if let Some(msg) = w.error.map(|e| e.message).filter(|m| !m.is_empty()) {
            return Err(Error::failed(format!("{doing}: {msg}")));
        }
        w.status_code
            .ok_or_else(|| Error::failed(format!("{doing}: no StatusCode in {v}")))
    }

    pub async fn container_logs(&self, id: &str, o: &LogOptions) -> Result<LogStream> {
        let doing = format!("reading the logs of container {id}");
        let path = format!(
            "/containers/{}/logs?follow={}&since={}&stdout={}&stderr={}",
            enc(id),
            o.follow,
            o.since,
            o.stdout,
            o.stderr
        );
        let resp = self
            .send(Method::GET, &path, body::empty(), None, &doing)
            .await?;
        // A followed log may stay silent for as long as the app likes.
        let idle = (!o.follow).then_some(self.idle_timeout);
        let reader = BodyReader::new(resp.into_body(), idle, doing);
        Ok(LogStream {
            reader,
            frames: FrameDecoder::new(o.tty),
        })
    }

    /// Everything the container has logged so far, stdout and stderr
    /// together (best effort: what could be read before an error).
    pub(crate) async fn container_logs_all(&self, id: &str, tty: bool) -> Vec<u8> {
        let o = LogOptions {
            stdout: true,
            stderr: true,
            tty,
            ..Default::default()
        };
        let mut out = Vec::new();
        if let Ok(mut s) = self.container_logs(id, &o).await {
            while let Ok(Some((_, b))) = s.next().await {
                out.extend_from_slice(&b);
            }
        }
        out
    }

    /// HEAD archive: what is at `path` in the container.
    pub async fn archive_stat(&self, id: &str, path: &str) -> Result<PathStat> {
        let doing = format!("looking at {id}:{path}");
        let resp = self
            .send(
                Method::HEAD,
                &archive_path(id, path),
                body::empty(),
                None,
                &doing,
            )
            .await?;
        let stat = path_stat(resp.headers(), &doing);
        self.collect(resp.into_body(), &doing).await?;
        stat
    }

    /// GET archive: a tar stream of `path` (its top entry named by the
    /// path's last component) as a blocking reader.
    pub async fn archive_get(&self, id: &str, path: &str) -> Result<(PathStat, ArchiveReader)> {
        let doing = format!("reading the archive of {id}:{path}");
        // Read on the consuming thread, off the runtime (see direct.rs).
        let (socket, full) = (
            self.socket().to_owned(),
            format!("/v{}{}", self.api(), archive_path(id, path)),
        );
        let (answer, idle) = (self.call_timeout, self.idle_timeout);
        let call = {
            let doing = doing.clone();
            move || {
                direct::get(&direct::Call {
                    socket: &socket,
                    path: &full,
                    answer,
                    idle,
                    doing: &doing,
                })
            }
        };
        let (head, reader) = tokio::task::spawn_blocking(call)
            .await
            .map_err(|e| Error::failed(format!("{doing}: the request thread failed: {e}")))??;
        let stat = path_stat(&head.headers, &doing)?;
        if self.podman().is_some() {
            // Podman names a stopped container's volume root `/`: renamed
            // as Docker names it.
            return Ok((stat, Box::new(Rename::from_volume_root(path, reader))));
        }
        Ok((stat, Box::new(reader)))
    }

    /// PUT a tar whose entries are named `<last component of path>/...`
    /// (as GET archive names them) so that they land at `path`: Docker
    /// extracts it into the parent directory; Podman would put a volume's
    /// entries under its mount point in the container's own filesystem
    /// when the container is stopped, so there it goes into `path` itself
    /// with the names made relative to it.
    pub(crate) async fn archive_put_at<R: Read + Send + 'static>(
        &self,
        id: &str,
        path: &str,
        tar: R,
    ) -> Result<()> {
        if self.podman().is_some() {
            let renamed = Rename::into_path(path, tar);
            return self.archive_put(id, path, body::reader_body(renamed)).await;
        }
        let parent = match path.trim_end_matches('/').rsplit_once('/') {
            Some(("", _)) | None => "/",
            Some((p, _)) => p,
        };
        self.archive_put(id, parent, body::reader_body(tar)).await
    }

    /// PUT archive: extract a tar (plain or gzip, streamed) into directory
    /// `dir` of the container. Existing directories are merged into.
    pub async fn archive_put(&self, id: &str, dir: &str, tar: ReqBody) -> Result<()> {
        let doing = format!("writing an archive into {id}:{dir}");
        let path = format!("{}&noOverwriteDirNonDir=false", archive_path(id, dir));
        let mut d = self.clone();
        // The answer comes only after the whole upload was extracted: no
        // limit while it is sent, the usual one once it has all gone (an
        // engine that takes it all and never answers must not hang berth).
        d.call_timeout = std::time::Duration::from_secs(24 * 3600);
        let (tar, sent) = body::watch_end(tar);
        let limit = self.call_timeout;
        let silent = async move {
            match sent.await {
                Ok(()) => tokio::time::sleep(limit).await,
                // The upload failed: the call reports that itself.
                Err(_) => std::future::pending().await,
            }
        };
        let resp = tokio::select! {
            r = d.send(Method::PUT, &path, tar, Some("application/x-tar"), &doing) => r?,
            _ = silent => {
                return Err(Error::new(
                    Kind::Connection,
                    format!(
                        "{doing}: the engine took the whole archive, then did not answer within {}s",
                        limit.as_secs()
                    ),
                ))
            }
        };
        self.collect(resp.into_body(), &doing).await.map(drop)
    }
}

fn archive_path(id: &str, path: &str) -> String {
    format!("/containers/{}/archive?path={}", enc(id), enc(path))
}

fn path_stat(h: &hyper::HeaderMap, doing: &str) -> Result<PathStat> {
    let raw = h
        .get("x-docker-container-path-stat")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Error::failed(format!("{doing}: the engine sent no path stat")))?;
    let json = base64_decode(raw)
        .ok_or_else(|| Error::failed(format!("{doing}: unreadable path stat {raw:?}")))?;
    serde_json::from_slice(&json)
        .map_err(|e| Error::failed(format!("{doing}: unreadable path stat: {e}")))
}

pub(crate) fn id_of(v: &Value, doing: &str) -> Result<String> {
    v.get("Id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| Error::failed(format!("{doing}: the engine answered without an Id: {v}")))
}

/// Standard base64 (with or without padding), as the engine encodes the
/// path stat header.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32)
    };
    let s = s.trim().trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= val(c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        match chunk.len() {
            4 => out.extend_from_slice(&bytes[1..4]),
            3 => out.extend_from_slice(&bytes[1..3]),
            2 => out.push(bytes[1]),
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVsbG8").unwrap(), b"hello");
        assert_eq!(base64_decode("aGk=").unwrap(), b"hi");
        assert_eq!(base64_decode("YWJj").unwrap(), b"abc");
        assert!(base64_decode("a").is_none());
        assert!(base64_decode("a$==").is_none());
    }

    #[test]
    fn dir_bit() {
        let s: PathStat = serde_json::from_str(
            r#"{"name":"d","size":4096,"mode":2147484141,"mtime":"x","linkTarget":""}"#,
        )
        .unwrap();
        assert!(s.is_dir());
    }
}
