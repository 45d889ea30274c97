//! Streaming bodies in both directions.
//!
//! Requests: [`ReqBody`] is a boxed body; [`reader_body`] streams any
//! blocking `Read` (a backup file, an image tarball) in 256 KiB chunks from a
//! blocking thread, so memory stays flat whatever the size.
//!
//! Responses: [`BodyReader`] turns a hyper response body into a blocking
//! `std::io::Read` for the synchronous archive code. A pump task moves
//! frames through a small bounded channel; a stall longer than the idle
//! timeout or a broken connection surfaces as a read error, never as a
//! silent end of stream.

use std::io::{self, Read};
use std::pin::Pin;
use std::task::{Context as TaskCx, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http_body::{Body, Frame};
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};
use hyper::body::Incoming;
use tokio::sync::mpsc;

use crate::error::{Error, Kind};

/// The request body type every call takes.
pub type ReqBody = BoxBody<Bytes, io::Error>;

pub fn empty() -> ReqBody {
    Empty::new().map_err(|never| match never {}).boxed()
}

pub fn full(bytes: impl Into<Bytes>) -> ReqBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
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

/// A response body as a blocking reader. Create it inside the runtime, read
/// it from a blocking thread (`spawn_blocking` or a std thread).
pub struct BodyReader {
    rx: mpsc::Receiver<Result<Bytes, Error>>,
    cur: Bytes,
    done: bool,
}

impl BodyReader {
    /// `doing` names the transfer in errors ("reading the archive of lw:/data").
    /// `idle`: how long the body may stay silent (None: forever, for logs
    /// that are followed).
    pub fn new(body: Incoming, idle: Option<Duration>, doing: String) -> Self {
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(pump(body, tx, idle, doing));
        BodyReader {
            rx,
            cur: Bytes::new(),
            done: false,
        }
    }
}

async fn pump(
    mut body: Incoming,
    tx: mpsc::Sender<Result<Bytes, Error>>,
    idle: Option<Duration>,
    doing: String,
) {
    // No idle limit is a limit far beyond any upgrade.
    let idle = idle.unwrap_or(Duration::from_secs(10 * 365 * 86400));
    loop {
        let next = match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => Err(Error::new(
                Kind::Connection,
                format!("{doing}: the engine sent nothing for {}s", idle.as_secs()),
            )),
            Ok(None) => return,
            Ok(Some(Err(e))) => Err(Error::new(
                Kind::Connection,
                format!("{doing}: the connection to the engine broke: {e}"),
            )),
            Ok(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) if data.is_empty() => continue,
                Ok(data) => Ok(data),
                Err(_trailers) => continue,
            },
        };
        let failed = next.is_err();
        if tx.send(next).await.is_err() || failed {
            return;
        }
    }
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            if self.done {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                None => {
                    self.done = true;
                    return Ok(0);
                }
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => {
                    self.done = true;
                    return Err(e.into_io());
                }
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        self.cur.advance(n);
        Ok(n)
    }
}

/// Async access for callers that stay in the runtime (logs, JSON streams).
impl BodyReader {
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        if !self.cur.is_empty() {
            return Ok(Some(std::mem::take(&mut self.cur)));
        }
        if self.done {
            return Ok(None);
        }
        match self.rx.recv().await {
            None => {
                self.done = true;
                Ok(None)
            }
            Some(Ok(b)) => Ok(Some(b)),
            Some(Err(e)) => {
                self.done = true;
                Err(e)
            }
        }
    }
}
