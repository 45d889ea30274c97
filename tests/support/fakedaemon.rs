//! A scripted fake Engine API daemon for faults the real engine cannot be
//! made to produce on demand.
//!
//! It listens on its own unix socket and proxies every request to a real
//! engine, serving the real engine's answers, except where a scripted rule
//! matches (method, a regex over the path and query without the `/vX.Y`
//! prefix, the n-th matching request): then it injects that rule's
//! [`Fault`] instead. Each rule fires once. berth is pointed at it with
//! `--host` ([`FakeDaemon::host`]); the engine's state stays the real one,
//! so a test can assert the end state on the real engine.
//!
//! It runs on its own thread with its own runtime, so it keeps serving while
//! a test blocks on a berth child process.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, LazyLock, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyperlocal::UnixConnector;
use regex::Regex;
use tokio::net::UnixListener;
use tokio::sync::watch;

/// What the fake does to a request a rule matches.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer this status with a Docker-style `{"message": ...}` body; the
    /// request never reaches the engine.
    Status(u16, String),
    /// The engine does the work, the answer never comes: no headers, the
    /// connection stays open and silent.
    StallHeaders,
    /// The engine answers; its headers and the first `after` body bytes
    /// pass, then silence on an open connection.
    StallBody { after: usize },
    /// The engine answers; its headers and the first `after` body bytes
    /// pass, then the connection breaks.
    DropBody { after: usize },
    /// The engine does the work; the connection breaks before the answer.
    LoseAnswer,
    /// Only the first `after` bytes of the request body reach the engine,
    /// then both connections break (an upload cut off).
    DropUpload { after: usize },
    /// A tar without its end-of-archive blocks: the engine's body except its
    /// last 1024 bytes, ending cleanly.
    CutTarEnd,
    /// The engine's 200 JSON stream, then a Docker error message in it.
    StreamError(String),
    /// The daemon goes away: this request is dropped unanswered (it never
    /// reaches the engine), open connections break, and every later
    /// connection is refused until [`FakeDaemon::come_back`].
    Vanish,
}

impl Fault {
    /// Whether the fault shows only as silence (berth's timeout ends it).
    pub fn stalls(&self) -> bool {
        matches!(self, Fault::StallHeaders | Fault::StallBody { .. })
    }
}

/// Which request a fault hits: the `nth` (from 1) request with this method
/// whose path and query (`/vX.Y` cut) match `path` and not `unless`.
#[derive(Debug, Clone)]
pub struct When {
    method: Method,
    path: Regex,
    unless: Option<Regex>,
    nth: usize,
}

/// The first `method` request matching the regex `path`.
pub fn on(method: Method, path: &str) -> When {
    When {
        method,
        path: Regex::new(path).unwrap_or_else(|e| panic!("rule regex {path:?}: {e}")),
        unless: None,
        nth: 1,
    }
}

impl When {
    /// The n-th match instead of the first.
    pub fn nth(mut self, n: usize) -> When {
        assert!(n >= 1, "occurrences count from 1");
        self.nth = n;
        self
    }

    /// Requests matching `re` do not count.
    pub fn unless(mut self, re: &str) -> When {
        self.unless = Some(Regex::new(re).unwrap_or_else(|e| panic!("rule regex {re:?}: {e}")));
        self
    }

    fn matches(&self, method: &Method, path: &str) -> bool {
        self.method == method
            && self.path.is_match(path)
            && !self.unless.as_ref().is_some_and(|u| u.is_match(path))
    }
}

impl std::fmt::Display for When {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} #{}", self.method, self.path, self.nth)?;
        if let Some(u) = &self.unless {
            write!(f, " unless {u}")?;
        }
        Ok(())
    }
}

struct Rule {
    when: When,
    fault: Fault,
    seen: usize,
    fired: bool,
}

/// What the fake saw: one line per request, `METHOD /path?query`, with
/// `  <- Fault` when a rule fired on it.
pub type Log = Vec<String>;

struct State {
    upstream: PathBuf,
    client: Client<UnixConnector, BoxBody<Bytes, BoxError>>,
    rules: Mutex<Vec<Rule>>,
    log: Mutex<Log>,
    /// true while the daemon is there; connections end when it turns false.
    up: watch::Sender<bool>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type RespBody = BoxBody<Bytes, BoxError>;

pub struct FakeDaemon {
    /// The fake's socket.
    pub socket: PathBuf,
    dir: PathBuf,
    state: Arc<State>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeDaemon {
    /// A fake in front of the engine at `upstream`, with no rules yet
    /// (a plain proxy). Its socket is in a fresh directory named `name`.
    pub fn start(upstream: &Path, name: &str) -> FakeDaemon {
        let dir = std::env::temp_dir().join(format!("berth-fake-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("docker.sock");
        let client = Client::builder(TokioExecutor::new()).build(UnixConnector);
        let state = Arc::new(State {
            upstream: upstream.to_owned(),
            client,
            rules: Mutex::default(),
            log: Mutex::default(),
            up: watch::channel(true).0,
        });
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (st, sock) = (Arc::clone(&state), socket.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                tokio::select! {
                    _ = serve(st, sock, ready_tx) => {}
                    _ = stopped => {}
                }
            });
            // Connections still open (a stalled answer) end with the runtime.
            rt.shutdown_timeout(Duration::from_millis(100));
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the fake daemon did not start");
        FakeDaemon {
            socket,
            dir,
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `unix://<socket>`, for berth's `--host`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Inject `fault` into the request `when` picks (once).
    pub fn inject(&self, when: When, fault: Fault) {
        self.state.rules.lock().unwrap().push(Rule {
            when,
            fault,
            seen: 0,
            fired: false,
        });
    }

    /// The fault clears: no more rules (the daemon stays down if it vanished).
    pub fn clear(&self) {
        self.state.rules.lock().unwrap().clear();
    }

    /// Rules that have not fired yet, as "METHOD regex #n Fault".
    pub fn unfired(&self) -> Vec<String> {
        self.state
            .rules
            .lock()
            .unwrap()
            .iter()
            .filter(|r| !r.fired)
            .map(|r| format!("{} {:?}", r.when, r.fault))
            .collect()
    }

    /// Every request seen so far.
    pub fn log(&self) -> Log {
        self.state.log.lock().unwrap().clone()
    }

    /// Whether the daemon is there (false after a [`Fault::Vanish`]).
    pub fn is_up(&self) -> bool {
        *self.state.up.borrow()
    }

    /// Listen again after a vanish.
    pub fn come_back(&self) {
        self.state.up.send_replace(true);
        // The accept loop binds again; wait until the socket answers.
        for _ in 0..100 {
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the fake daemon did not come back");
    }
}

impl Drop for FakeDaemon {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Accept connections while the daemon is up; while it is down the socket
/// file stays with nobody listening, so connecting is refused.
async fn serve(st: Arc<State>, socket: PathBuf, ready: std::sync::mpsc::Sender<()>) {
    let mut up = st.up.subscribe();
    loop {
        let _ = up.wait_for(|u| *u).await;
        let _ = std::fs::remove_file(&socket);
        let listener = UnixListener::bind(&socket)
            .unwrap_or_else(|e| panic!("binding {}: {e}", socket.display()));
        let _ = ready.send(());
        loop {
            tokio::select! {
                a = listener.accept() => {
                    let Ok((stream, _)) = a else { continue };
                    tokio::spawn(connection(Arc::clone(&st), stream));
                }
                _ = up.wait_for(|u| !*u) => break,
            }
        }
        // Dropping the listener closes it: connect() now gets ECONNREFUSED.
        drop(listener);
    }
}

/// Serve one client connection until it ends or the daemon vanishes.
async fn connection(st: Arc<State>, stream: tokio::net::UnixStream) {
    let mut up = st.up.subscribe();
    let svc = hyper::service::service_fn(move |req| handle(Arc::clone(&st), req));
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
    tokio::select! {
        _ = conn => {}
        _ = up.wait_for(|u| !*u) => {}
    }
}

/// The rule that fires on this request, if any (counting every match).
fn fault_for(st: &State, method: &Method, path: &str) -> Option<Fault> {
    let mut rules = st.rules.lock().unwrap();
    let mut fired = None;
    for r in rules.iter_mut() {
        if r.fired || !r.when.matches(method, path) {
            continue;
        }
        r.seen += 1;
        if r.seen == r.when.nth && fired.is_none() {
            r.fired = true;
            fired = Some(r.fault.clone());
        }
    }
    fired
}

/// The path and query without the API version prefix.
fn unversioned(uri: &hyper::Uri) -> String {
    let pq = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    static VERSION: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^/v[0-9]+\.[0-9]+/").unwrap());
    VERSION.replace(pq, "/").into_owned()
}

async fn handle(st: Arc<State>, req: Request<Incoming>) -> Result<Response<RespBody>, BoxError> {
    let path = unversioned(req.uri());
    let fault = fault_for(&st, req.method(), &path);
    let line = match &fault {
        Some(f) => format!("{} {path}  <- {f:?}", req.method()),
        None => format!("{} {path}", req.method()),
    };
    st.log.lock().unwrap().push(line);
    match fault {
        None => forward(&st, req, None).await.map(|r| pass(r, Shape::Same)),
        Some(Fault::Status(code, msg)) => Ok(status(code, &msg)),
        Some(Fault::Vanish) => {
            st.up.send_replace(false);
            Err("the daemon vanished".into())
        }
        Some(Fault::StallHeaders) => {
            let _answer = forward(&st, req, None).await;
            std::future::pending::<()>().await;
            unreachable!()
        }
        Some(Fault::LoseAnswer) => {
            let answer = forward(&st, req, None).await?;
            // Let the engine finish the answer it was giving.
            let _ = answer.into_body().collect().await;
            Err("the answer was lost".into())
        }
        Some(Fault::DropUpload { after }) => {
            let _ = forward(&st, req, Some(after)).await;
            Err("the upload was cut off".into())
        }
        Some(Fault::StallBody { after }) => forward(&st, req, None)
            .await
            .map(|r| pass(r, Shape::Stall(after))),
        Some(Fault::DropBody { after }) => forward(&st, req, None)
            .await
            .map(|r| pass(r, Shape::Drop(after))),
        Some(Fault::CutTarEnd) => forward(&st, req, None)
            .await
            .map(|r| pass(r, Shape::CutEnd(1024))),
        Some(Fault::StreamError(msg)) => forward(&st, req, None)
            .await
            .map(|r| pass(r, Shape::Append(stream_error(&msg)))),
    }
}

/// `{"errorDetail":{"message":M},"error":M}` as the engine writes it.
fn stream_error(msg: &str) -> Bytes {
    let v = serde_json::json!({"errorDetail": {"message": msg}, "error": msg});
    Bytes::from(format!("{v}\r\n"))
}

fn status(code: u16, msg: &str) -> Response<RespBody> {
    let body = serde_json::json!({ "message": msg }).to_string();
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap())
        .header("content-type", "application/json")
        .header("api-version", "1.41")
        .body(Full::new(Bytes::from(body)).map_err(|e| match e {}).boxed())
        .unwrap()
}

/// Send the request on to the real engine; `cut_upload`: pass only that
/// many request body bytes, then fail the upload.
async fn forward(
    st: &State,
    req: Request<Incoming>,
    cut_upload: Option<usize>,
) -> Result<Response<Incoming>, BoxError> {
    let (parts, body) = req.into_parts();
    let pq = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let uri: hyper::Uri = hyperlocal::Uri::new(&st.upstream, &pq).into();
    let body: BoxBody<Bytes, BoxError> = match cut_upload {
        None => body.map_err(BoxError::from).boxed(),
        Some(n) => Shaped::new(body, Shape::Drop(n)).boxed(),
    };
    let mut out = Request::builder().method(parts.method).uri(uri);
    for (k, v) in parts.headers.iter() {
        if k != CONNECTION {
            out = out.header(k, v);
        }
    }
    let resp = st.client.request(out.body(body)?).await?;
    Ok(resp)
}

/// What becomes of a response body on its way to berth.
#[derive(Debug, Clone)]
enum Shape {
    Same,
    /// The first n bytes, then an error (the connection breaks).
    Drop(usize),
    /// The first n bytes, then silence.
    Stall(usize),
    /// All but the last n bytes, then a clean end.
    CutEnd(usize),
    /// Everything, then these bytes.
    Append(Bytes),
}

/// The engine's answer, reshaped; a body whose length changes loses its
/// Content-Length (hyper then sends it chunked).
fn pass(resp: Response<Incoming>, shape: Shape) -> Response<RespBody> {
    let (mut parts, body) = resp.into_parts();
    strip_hop_headers(&mut parts.headers, !matches!(shape, Shape::Same));
    Response::from_parts(parts, Shaped::new(body, shape).boxed())
}

fn strip_hop_headers(h: &mut HeaderMap, length_changes: bool) {
    h.remove(CONNECTION);
    h.remove(TRANSFER_ENCODING);
    if length_changes {
        h.remove(CONTENT_LENGTH);
    }
}

/// How long a dropped body waits before it breaks: hyper writes what it
/// has when the body is pending, not when it fails.
const FLUSH_PAUSE: Duration = Duration::from_millis(200);

/// A body passed through a [`Shape`].
struct Shaped {
    inner: Incoming,
    shape: Shape,
    /// Bytes passed so far.
    sent: usize,
    /// For CutEnd: bytes held back, the last n seen.
    held: Vec<u8>,
    /// For Drop: a pause between the last bytes and the break, so that
    /// they (and the headers) reach berth first.
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
    done: bool,
}

impl Shaped {
    fn new(inner: Incoming, shape: Shape) -> Shaped {
        Shaped {
            inner,
            shape,
            sent: 0,
            held: Vec::new(),
            pause: None,
            done: false,
        }
    }

    /// What of a frame's data passes (maybe nothing, for now).
    fn reshape(&mut self, data: Bytes) -> Bytes {
        match &self.shape {
            Shape::Drop(n) | Shape::Stall(n) if self.sent + data.len() >= *n => {
                let keep = n - self.sent;
                self.sent = *n;
                data.slice(..keep)
            }
            Shape::CutEnd(n) => {
                self.held.extend_from_slice(&data);
                let out = self.held.len().saturating_sub(*n);
                self.held.drain(..out).collect::<Vec<u8>>().into()
            }
            _ => {
                self.sent += data.len();
                data
            }
        }
    }

    /// Whether the shape has passed all it may.
    fn cut_reached(&self) -> bool {
        matches!(self.shape, Shape::Drop(n) | Shape::Stall(n) if self.sent >= n)
    }

    /// After the cut: break the connection (after a pause), or stay silent.
    fn poll_cut(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if !matches!(self.shape, Shape::Drop(_)) {
            // Never ready again: the connection stays open and silent.
            return Poll::Pending;
        }
        let pause = self
            .pause
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(FLUSH_PAUSE)));
        ready!(pause.as_mut().poll(cx));
        self.done = true;
        Poll::Ready(Some(Err("connection dropped by the fake daemon".into())))
    }
}

impl Body for Shaped {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            if this.cut_reached() {
                return this.poll_cut(cx);
            }
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                None => {
                    this.done = true;
                    if let Shape::Append(extra) = &this.shape {
                        return Poll::Ready(Some(Ok(Frame::data(extra.clone()))));
                    }
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                Some(Ok(f)) => {
                    let Ok(data) = f.into_data() else { continue };
                    let data = this.reshape(data);
                    if !data.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
            }
        }
    }
}
