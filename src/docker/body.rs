//! Streaming bodies in both directions.
//!
//! Requests: [`ReqBody`] is a boxed body; [`reader_body`] streams any
//! blocking `Read` (a backup file, an image tarball) in 256 KiB chunks from a
//! blocking thread, so memory stays flat whatever the size.
//!
//! Responses: [`BodyReader`] turns a hyper response body into a blocking
//! `std::io::Read` (image saves, exec output, logs; the archive of a path,
//! the longest stream, is read off the socket by direct.rs instead). A pump task copies
//! frames into batches of up to 512 KiB and passes them through a small
//! bounded channel (a few MiB at most); a stall longer than the idle
//! timeout or a broken connection surfaces as a read error, never as a
//! silent end of stream.

use std::io::{self, Read};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskCx, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};
use hyper::body::Incoming;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Kind};

/// The request body type every call takes.
pub(crate) type ReqBody = BoxBody<Bytes, io::Error>;

pub fn empty() -> ReqBody {
    Empty::new().map_err(|never| match never {}).boxed()
}

pub fn full(bytes: impl Into<Bytes>) -> ReqBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A request body that says when it has been sent to its end (when the
/// connection has taken its last frame).
pub(crate) fn watch_end(body: ReqBody) -> (ReqBody, oneshot::Receiver<()>) {
    let (tx, rx) = oneshot::channel();
    (
        EndSignal {
            inner: body,
            tx: Some(tx),
        }
        .boxed(),
        rx,
    )
}

struct EndSignal {
    inner: ReqBody,
    tx: Option<oneshot::Sender<()>>,
}

/// No `is_end_stream`/`size_hint`: hyper then polls to the end, where the
/// signal is given.
impl Body for EndSignal {
    type Data = Bytes;
    type Error = io::Error;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskCx<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let frame = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = frame {
            if let Some(tx) = self.tx.take() {
                let _ = tx.send(());
            }
        }
        frame
    }
}

/// A body fed by a channel of chunks (or one error that fails the request).
struct ChannelBody(mpsc::Receiver<io::Result<Bytes>>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskCx<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.0.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data)))
    }
}

const CHUNK: usize = 256 * 1024;

/// Stream a blocking reader as a request body. Must be called inside a
/// tokio runtime; the reading happens on a blocking thread.
pub fn reader_body<R: Read + Send + 'static>(mut reader: R) -> ReqBody {
    let (tx, rx) = mpsc::channel(4);
    tokio::task::spawn_blocking(move || loop {
        let mut buf = vec![0u8; CHUNK];
        let item = match read_full(&mut reader, &mut buf) {
            Ok(0) => return,
            Ok(n) => {
                buf.truncate(n);
                Ok(Bytes::from(buf))
            }
            Err(e) => Err(e),
        };
        let stop = item.is_err();
        if tx.blocking_send(item).is_err() || stop {
            return;
        }
    });
    ChannelBody(rx).boxed()
}

/// Fill `buf` as far as the reader allows (fewer bytes only at EOF).
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Bytes the pump gathers into one batch (a little more when a frame
/// crosses the mark).
const BATCH: usize = 512 * 1024;
/// How long the pump waits for more frames to fill a batch.
const LINGER: Duration = Duration::from_millis(1);
/// Batches that may wait for the reader: a few MiB whatever its pace.
const QUEUE: usize = 4;

/// A batch of body bytes, or the error that ends the body.
type Batch = Result<Vec<u8>, Error>;

/// Batch buffers the reader is done with, for the pump to fill again.
type Spare = Arc<Mutex<Vec<Vec<u8>>>>;

/// A response body as a blocking reader. Create it inside the runtime, read
/// it from a blocking thread (`spawn_blocking` or a std thread).
///
/// The engine sends archives as HTTP chunks of 32 KiB. Handing each to the
/// reading thread on its own costs a thread wake-up per 32 KiB, and holding
/// on to hyper's buffers makes it allocate new ones (fresh pages, faulted in
/// one by one): both cost more than a copy. So the pump copies frames into
/// batches of [`BATCH`] bytes (whatever arrives within [`LINGER`] of the
/// first frame) in buffers that the reader gives back.
pub struct BodyReader {
    rx: mpsc::Receiver<Batch>,
    cur: Vec<u8>,
    pos: usize,
    spare: Spare,
    /// An error received behind data not yet read.
    err: Option<Error>,
    done: bool,
}

impl BodyReader {
    /// `doing` names the transfer in errors ("reading the archive of lw:/data").
    /// `idle`: how long the body may stay silent (None: forever, for logs
    /// that are followed).
    pub fn new(body: Incoming, idle: Option<Duration>, doing: String) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let spare = Spare::default();
        tokio::spawn(pump(body, tx, Arc::clone(&spare), idle, doing));
        BodyReader {
            rx,
            cur: Vec::new(),
            pos: 0,
            spare,
            err: None,
            done: false,
        }
    }

    /// Takes a received batch (the current one is used up); false at the
    /// end of the body or an error (kept in `err`).
    fn accept(&mut self, msg: Option<Batch>) -> bool {
        match msg {
            None => {
                self.done = true;
                false
            }
            Some(Ok(batch)) => {
                let used = std::mem::replace(&mut self.cur, batch);
                self.pos = 0;
                if used.capacity() > 0 {
                    if let Ok(mut spare) = self.spare.lock() {
                        if spare.len() < QUEUE + 2 {
                            spare.push(used);
                        }
                    }
                }
                true
            }
            Some(Err(e)) => {
                self.done = true;
                self.err = Some(e);
                false
            }
        }
    }
}

async fn pump(
    mut body: Incoming,
    tx: mpsc::Sender<Batch>,
    spare: Spare,
    idle: Option<Duration>,
    doing: String,
) {
    // No idle limit is a limit far beyond any upgrade.
    let idle = idle.unwrap_or(Duration::from_secs(10 * 365 * 86400));
    let broke = |e: hyper::Error| {
        Error::new(
            Kind::Connection,
            format!("{doing}: the connection to the engine broke: {e}"),
        )
    };
    loop {
        // The first frame of a batch: wait for it, up to the idle limit.
        let first = match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => Err(Error::new(
                Kind::Connection,
                format!("{doing}: the engine sent nothing for {}s", idle.as_secs()),
            )),
            Ok(None) => return,
            Ok(Some(Err(e))) => Err(broke(e)),
            Ok(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) if !data.is_empty() => Ok(data),
                // Empty data and trailers carry nothing.
                _ => continue,
            },
        };
        let first = match first {
            Ok(data) => data,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        let mut batch = spare
            .lock()
            .ok()
            .and_then(|mut s| s.pop())
            .unwrap_or_default();
        batch.clear();
        batch.reserve(BATCH.max(first.len()));
        batch.extend_from_slice(&first);
        drop(first);
        // Then what follows within LINGER, up to BATCH bytes.
        let mut tail: Option<Option<Error>> = None;
        let linger = tokio::time::sleep(LINGER);
        tokio::pin!(linger);
        while batch.len() < BATCH {
            let next = tokio::select! {
                biased;
                f = body.frame() => f,
                _ = &mut linger => break,
            };
            match next {
                // The end; or an error, sent after the data before it.
                None => {
                    tail = Some(None);
                    break;
                }
                Some(Err(e)) => {
                    tail = Some(Some(broke(e)));
                    break;
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        batch.extend_from_slice(&data);
                    }
                }
            }
        }
        if tx.send(Ok(batch)).await.is_err() {
            return;
        }
        match tail {
            None => {}
            Some(None) => return,
            Some(Some(e)) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        }
    }
}

impl Read for BodyReader {
    /// Copies as much as is buffered (across batches) into `buf`; waits only
    /// when nothing is.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            if self.pos == self.cur.len() {
                if self.done {
                    break;
                }
                let more = if n > 0 {
                    match self.rx.try_recv() {
                        Ok(batch) => Some(batch),
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => None,
                    }
                } else {
                    self.rx.blocking_recv()
                };
                self.accept(more);
                continue;
            }
            let k = (buf.len() - n).min(self.cur.len() - self.pos);
            buf[n..n + k].copy_from_slice(&self.cur[self.pos..self.pos + k]);
            self.pos += k;
            n += k;
        }
        if n == 0 {
            if let Some(e) = self.err.take() {
                return Err(e.into_io());
            }
        }
        Ok(n)
    }
}

/// Async access for callers that stay in the runtime (logs, JSON streams).
impl BodyReader {
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        loop {
            if self.pos < self.cur.len() {
                let b = if self.pos == 0 {
                    Bytes::from(std::mem::take(&mut self.cur))
                } else {
                    Bytes::copy_from_slice(&self.cur[self.pos..])
                };
                self.cur.clear();
                self.pos = 0;
                return Ok(Some(b));
            }
            if self.done {
                return match self.err.take() {
                    Some(e) => Err(e),
                    None => Ok(None),
                };
            }
            let msg = self.rx.recv().await;
            self.accept(msg);
        }
    }
}
