//! The socket, API version negotiation and error mapping.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use super::body::{self, BodyReader, ReqBody};
use super::socket::Connector;
use crate::error::{Error, Kind, Result};

/// Oldest API berth speaks: Docker 20.10.
pub const MIN_API: ApiVersion = ApiVersion(1, 41);
/// Newest API berth knows: Docker 29.
pub const MAX_API: ApiVersion = ApiVersion(1, 52);

pub(crate) const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// How long an ordinary call may wait for its answer, and a stream stay
/// silent, unless BERTH_ENGINE_TIMEOUT (seconds) says otherwise.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// BERTH_ENGINE_TIMEOUT, else [`DEFAULT_TIMEOUT`]: a slow engine may need
/// more, and the fault tests make a stalled engine show in seconds.
fn engine_timeout() -> Result<Duration> {
    let Ok(v) = std::env::var("BERTH_ENGINE_TIMEOUT") else {
        return Ok(DEFAULT_TIMEOUT);
    };
    match v.trim().parse::<u64>() {
        Ok(s) if s > 0 => Ok(Duration::from_secs(s)),
        _ => Err(Error::usage(format!(
            "BERTH_ENGINE_TIMEOUT={v:?}: expected a number of seconds"
        ))),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion(pub u32, pub u32);

impl ApiVersion {
    pub fn parse(s: &str) -> Option<Self> {
        let (a, b) = s.trim().split_once('.')?;
        Some(ApiVersion(a.parse().ok()?, b.parse().ok()?))
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

/// A connected, version-negotiated Engine API client. Cheap to clone.
#[derive(Clone)]
pub struct Docker {
    client: Client<Connector, ReqBody>,
    socket: PathBuf,
    api: ApiVersion,
    /// Podman's version when the engine is Podman's Docker-compatible
    /// service (it answers the ping with a Libpod-Api-Version header); some
    /// calls differ there (see podman.rs).
    podman: Option<String>,
    /// How long to wait for response headers of an ordinary call.
    pub(crate) call_timeout: Duration,
    /// How long a streamed body may stay silent before it counts as stalled.
    pub(crate) idle_timeout: Duration,
}

/// Pick the socket: `--host`, else `DOCKER_HOST`, else the default path.
/// Only `unix://` is supported; anything else is a usage error.
pub fn socket_from(host: Option<&str>) -> Result<PathBuf> {
    let env = std::env::var("DOCKER_HOST").ok().filter(|s| !s.is_empty());
    let Some(h) = host.map(str::to_owned).or(env) else {
        return Ok(PathBuf::from(DEFAULT_SOCKET));
    };
    match h.strip_prefix("unix://") {
        Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
        _ => Err(Error::usage(format!(
            "unsupported Docker host {h:?}: berth talks to the engine only over a unix socket (unix:///path/docker.sock); for a remote node forward its socket, e.g. ssh -L /tmp/node.sock:/var/run/docker.sock host"
        ))),
    }
}

impl Docker {
    /// Connect and negotiate: ping, then use min(MAX_API, daemon's version).
    pub async fn connect(socket: &Path) -> Result<Docker> {
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(Connector);
        let timeout = engine_timeout()?;
        let mut d = Docker {
            client,
            socket: socket.to_owned(),
            api: MIN_API,
            podman: None,
            call_timeout: timeout,
            idle_timeout: timeout,
        };
        let not_docker = |why: &str| {
            Error::new(
                Kind::Connection,
                format!(
                    "{} does not answer like a Docker engine ({why})",
                    socket.display()
                ),
            )
        };
        let resp = d
            .raw(Method::GET, "/_ping".into(), body::empty(), None)
            .await?;
        if !resp.status().is_success() {
            return Err(not_docker(&format!("ping answered {}", resp.status())));
        }
        let header = resp
            .headers()
            .get("api-version")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| not_docker("no Api-Version header"))?;
        let daemon = ApiVersion::parse(header)
            .ok_or_else(|| not_docker(&format!("unreadable Api-Version {header:?}")))?;
        // Podman's service answers like Docker and adds its own version:
        // 4.x says Api-Version 1.41 (Docker 20.10's), 3.x said 1.40.
        d.podman = resp
            .headers()
            .get("libpod-api-version")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if daemon < MIN_API {
            let (engine, needed) = match &d.podman {
                Some(v) => (format!("Podman {v}"), "Podman 4.0"),
                None => ("the engine".to_owned(), "Docker 20.10"),
            };
            return Err(Error::failed(format!(
                "{engine} at {} speaks API {daemon}, older than the oldest berth supports ({MIN_API}, {needed}): upgrade the engine",
                socket.display()
            )));
        }
        d.api = daemon.min(MAX_API);
        Ok(d)
    }

    pub fn api(&self) -> ApiVersion {
        self.api
    }
    /// Podman's version when the engine is Podman, else None (Docker).
    pub fn podman(&self) -> Option<&str> {
        self.podman.as_deref()
    }
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Send one request without version prefix or status check.
    async fn raw(
        &self,
        method: Method,
        path: String,
        body: ReqBody,
        content_type: Option<&str>,
    ) -> Result<Response<Incoming>> {
        let uri: hyper::Uri = hyperlocal::Uri::new(&self.socket, &path).into();
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let req = req
            .body(body)
            .map_err(|e| Error::failed(format!("building request {path}: {e}")))?;
        match tokio::time::timeout(self.call_timeout, self.client.request(req)).await {
            Ok(Ok(r)) => Ok(r),
            // Not reaching the engine and losing it mid-call call for
            // different actions: only the first is a wrong socket.
            Ok(Err(e)) if e.is_connect() => Err(Error::new(
                Kind::Connection,
                format!(
                    "cannot reach the Docker engine at {}: {} (is dockerd running? choose another socket with --host or DOCKER_HOST)",
                    self.socket.display(),
                    error_chain(&e)
                ),
            )),
            Ok(Err(e)) => Err(Error::new(
                Kind::Connection,
                format!(
                    "the connection to the Docker engine at {} broke before it answered: {}",
                    self.socket.display(),
                    error_chain(&e)
                ),
            )),
            Err(_) => Err(Error::new(
                Kind::Connection,
                format!(
                    "the Docker engine at {} did not answer within {}s",
                    self.socket.display(),
                    self.call_timeout.as_secs()
                ),
            )),
        }
    }

    /// Send a versioned request; any non-2xx status becomes an error that
    /// reads "<doing>: <status> <daemon message>". 304 counts as success
    /// (start of a running container, stop of a stopped one).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: ReqBody,
        content_type: Option<&str>,
        doing: &str,
    ) -> Result<Response<Incoming>> {
        let full = format!("/v{}{}", self.api, path);
        let resp = self
            .raw(method, full, body, content_type)
            .await
            .map_err(|e| e.context(doing))?;
        let status = resp.status();
        if status.is_success() || status == StatusCode::NOT_MODIFIED {
            return Ok(resp);
        }
        let text = self
            .collect(resp.into_body(), doing)
            .await
            .unwrap_or_default();
        Err(api_error(status.as_u16(), &text, doing))
    }

    pub async fn get_json(&self, path: &str, doing: &str) -> Result<Value> {
        let resp = self
            .send(Method::GET, path, body::empty(), None, doing)
            .await?;
        self.json_body(resp, doing).await
    }

    /// POST with an optional JSON body; returns the JSON answer (Null if none).
    pub async fn post_json(&self, path: &str, json: Option<&Value>, doing: &str) -> Result<Value> {
        let (b, ct) = match json {
            Some(v) => (
                body::full(serde_json::to_vec(v).unwrap()),
                Some("application/json"),
            ),
            None => (body::empty(), None),
        };
        let resp = self.send(Method::POST, path, b, ct, doing).await?;
        self.json_body(resp, doing).await
    }

    pub async fn delete(&self, path: &str, doing: &str) -> Result<()> {
        let resp = self
            .send(Method::DELETE, path, body::empty(), None, doing)
            .await?;
        self.collect(resp.into_body(), doing).await.map(drop)
    }

    /// A streamed response body as a blocking reader.
    pub fn reader(&self, resp: Response<Incoming>, doing: &str) -> BodyReader {
        BodyReader::new(resp.into_body(), Some(self.idle_timeout), doing.to_owned())
    }

    /// Read a whole (small) body. An engine that sends the headers and then
    /// nothing must not hang berth: the body has as long as the call had
    /// for its answer (a container wait's body comes when the container
    /// exits) and never less than a stream may stay silent.
    pub async fn collect(&self, body: Incoming, doing: &str) -> Result<Bytes> {
        let limit = self.call_timeout.max(self.idle_timeout);
        match tokio::time::timeout(limit, body.collect()).await {
            Ok(Ok(c)) => Ok(c.to_bytes()),
            Ok(Err(e)) => Err(Error::new(
                Kind::Connection,
                format!("{doing}: the connection to the engine broke: {e}"),
            )),
            Err(_) => Err(Error::new(
                Kind::Connection,
                format!(
                    "{doing}: the engine sent the start of its answer, then nothing for {}s",
                    limit.as_secs()
                ),
            )),
        }
    }

    async fn json_body(&self, resp: Response<Incoming>, doing: &str) -> Result<Value> {
        let bytes = self.collect(resp.into_body(), doing).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::failed(format!("{doing}: the engine sent unreadable JSON: {e}")))
    }
}

/// "<doing>: <status> <message>", message from the daemon's {"message": ...}.
pub(crate) fn api_error(status: u16, body: &[u8], doing: &str) -> Error {
    let msg = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned());
    let reason = StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let msg = if msg.is_empty() {
        reason.to_owned()
    } else {
        msg
    };
    Error::new(Kind::Api(status), format!("{doing}: {status} {msg}"))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// Percent-encode a query value (RFC 3986 unreserved characters stay).
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions_order_and_parse() {
        assert_eq!(ApiVersion::parse("1.41"), Some(ApiVersion(1, 41)));
        assert!(ApiVersion(1, 9) < ApiVersion(1, 41));
        assert!(ApiVersion::parse("garbage").is_none());
        assert_eq!(MAX_API.min(ApiVersion(1, 60)), MAX_API);
    }

    #[test]
    fn hosts() {
        assert_eq!(
            socket_from(Some("unix:///x/d.sock")).unwrap(),
            PathBuf::from("/x/d.sock")
        );
        let e = socket_from(Some("tcp://1.2.3.4:2375")).unwrap_err();
        assert_eq!(e.kind, Kind::Usage);
        assert!(e.msg.contains("unix socket"), "{e}");
    }

    #[test]
    fn error_sentences() {
        let e = api_error(
            404,
            br#"{"message":"No such container: lw"}"#,
            "stopping container lw",
        );
        assert_eq!(e.msg, "stopping container lw: 404 No such container: lw");
        assert!(e.is_not_found());
        let e = api_error(500, b"", "x");
        assert_eq!(e.msg, "x: 500 Internal Server Error");
    }

    #[test]
    fn percent_encoding() {
        assert_eq!(enc("/var/lib/a b"), "%2Fvar%2Flib%2Fa%20b");
        assert_eq!(enc("ENV A=1"), "ENV%20A%3D1");
    }
}
