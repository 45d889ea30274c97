//! The unix socket under the HTTP client, made to hear an engine that
//! answers before it has read the whole request.
//!
//! An engine may refuse an upload early (disk full, a read-only path, an
//! image it cannot load): it writes its answer and closes while berth is
//! still sending. The next write then fails with EPIPE, and hyper, which
//! polls reading and writing in turn, reports whichever it meets first: the
//! answer, or "error writing a body to connection: Broken pipe". Which one
//! wins is a race, and the operator would read "connection broke" where the
//! engine said exactly what was wrong.
//!
//! [`Patient`] takes the race away: once the peer has stopped reading, a
//! failed write is reported to hyper as written (the bytes could never be
//! read anyway) until the read side has reached its end. By then hyper holds
//! whatever answer the engine sent, and it has handed it to the caller; a
//! peer that closed without answering still ends as a broken connection,
//! because the read side ends with no answer. After the read side's end the
//! write error is reported as it is, so the rest of the body is not read.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use hyperlocal::UnixConnector;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tower_service::Service;

/// The connection type the client uses.
pub(crate) type Conn = TokioIo<Patient<hyperlocal::UnixStream>>;

/// Connects like hyperlocal's connector and wraps the stream in [`Patient`].
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Connector;

impl Service<Uri> for Connector {
    type Response = Conn;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Conn>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connect = UnixConnector.call(uri);
        Box::pin(async move { Ok(TokioIo::new(Patient::new(connect.await?))) })
    }
}

/// A stream whose writes fail only after its reads have ended (see the
/// module comment).
#[derive(Debug)]
pub(crate) struct Patient<S> {
    inner: S,
    /// The write error seen while the read side was still open.
    write_failed: Option<io::ErrorKind>,
    /// The read side reached its end (or failed).
    read_ended: bool,
}

impl<S> Patient<S> {
    pub fn new(inner: S) -> Patient<S> {
        Patient {
            inner,
            write_failed: None,
            read_ended: false,
        }
    }

    /// Whether a write error means only that the peer stopped reading.
    fn peer_stopped_reading(e: &io::Error) -> bool {
        matches!(
            e.kind(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
        )
    }

    /// The answer to a write once the peer has stopped reading.
    fn after_write_failed(&self, kind: io::ErrorKind, len: usize) -> io::Result<usize> {
        if self.read_ended {
            Err(io::Error::new(kind, "the engine closed the connection"))
        } else {
            Ok(len)
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Patient<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        match &res {
            Poll::Ready(Ok(())) if buf.filled().len() == before && buf.remaining() > 0 => {
                self.read_ended = true
            }
            Poll::Ready(Err(_)) => self.read_ended = true,
            _ => {}
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> Patient<S> {
    /// One write through `write`, its failure held back as the module
    /// comment says.
    fn write_with(
        &mut self,
        len: usize,
        write: impl FnOnce(Pin<&mut S>) -> Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        if let Some(kind) = self.write_failed {
            return Poll::Ready(self.after_write_failed(kind, len));
        }
        match write(Pin::new(&mut self.inner)) {
            Poll::Ready(Err(e)) if Self::peer_stopped_reading(&e) => {
                self.write_failed = Some(e.kind());
                Poll::Ready(self.after_write_failed(e.kind(), len))
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Patient<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.write_with(buf.len(), |s| s.poll_write(cx, buf))
    }

    /// Vectored like the socket, so hyper queues body chunks instead of
    /// copying them into one buffer.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let len = bufs.iter().map(|b| b.len()).sum();
        self.write_with(len, |s| s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(kind) = self.write_failed {
            return Poll::Ready(self.after_write_failed(kind, 0).map(drop));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.write_failed.is_some() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: Connection> Connection for Patient<S> {
    fn connected(&self) -> Connected {
        self.inner.connected()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::{body, Docker};
    use crate::error::Kind;
    use std::io::Read as _;
    use std::path::{Path, PathBuf};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{UnixListener, UnixStream};

    /// What the fake engine does with a request that is not a ping.
    #[derive(Clone, Copy)]
    enum Engine {
        /// Reads a little of the body, answers 500, closes.
        RefusesEarly { close_header: bool },
        /// Reads a little of the body, closes without a word.
        Hangs,
    }

    async fn read_head(s: &mut UnixStream) -> Vec<u8> {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if s.read(&mut byte).await.unwrap() == 0 {
                break;
            }
            head.push(byte[0]);
        }
        head
    }

    async fn serve(listener: UnixListener, engine: Engine) {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let head = read_head(&mut s).await;
                if head.starts_with(b"GET /_ping") {
                    let ok = "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nConnection: close\r\nContent-Length: 2\r\n\r\nOK";
                    let _ = s.write_all(ok.as_bytes()).await;
                    return;
                }
                // Some of the body, so that the client is mid-upload.
                let mut some = vec![0u8; 64 * 1024];
                let _ = s.read_exact(&mut some).await;
                if let Engine::RefusesEarly { close_header } = engine {
                    let msg = r#"{"message":"no space left on device"}"#;
                    let close = if close_header {
                        "Connection: close\r\n"
                    } else {
                        ""
                    };
                    let answer = format!(
                        "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n{close}Content-Length: {}\r\n\r\n{msg}",
                        msg.len()
                    );
                    let _ = s.write_all(answer.as_bytes()).await;
                }
                // Dropped: closed with the rest of the body unread.
            });
        }
    }

    async fn engine(dir: &Path, engine: Engine) -> Docker {
        let sock: PathBuf = dir.join("engine.sock");
        let listener = UnixListener::bind(&sock).unwrap();
        tokio::spawn(serve(listener, engine));
        Docker::connect(&sock).await.unwrap()
    }

    /// An upload source without end: a request that is not stopped when
    /// the engine refuses it never ends, and the test times out.
    fn endless() -> body::ReqBody {
        body::reader_body(std::io::repeat(7).take(u64::MAX))
    }

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("berth-early-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// The engine's own answer, every time, for uploads and image loads.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_early_answer_is_reported_not_the_broken_pipe() {
        let dir = scratch("500");
        for close_header in [false, true] {
            let d = engine(&dir, Engine::RefusesEarly { close_header }).await;
            for i in 0..100 {
                let call = async {
                    if i % 2 == 0 {
                        d.archive_put("c", "/data", endless()).await.map(drop)
                    } else {
                        d.image_load(endless()).await.map(drop)
                    }
                };
                let e = tokio::time::timeout(std::time::Duration::from_secs(20), call)
                    .await
                    .expect("the upload went on after the engine refused it")
                    .unwrap_err();
                assert_eq!(e.kind, Kind::Api(500), "round {i}: {e}");
                assert!(e.msg.contains("500 no space left on device"), "{e}");
            }
            std::fs::remove_file(dir.join("engine.sock")).unwrap();
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// No answer at all is a broken connection, never a made-up status.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_answer_is_a_broken_connection() {
        let dir = scratch("hang");
        let d = engine(&dir, Engine::Hangs).await;
        for _ in 0..50 {
            let call = d.archive_put("c", "/data", endless());
            let e = tokio::time::timeout(std::time::Duration::from_secs(20), call)
                .await
                .expect("an upload to a closed connection must end")
                .unwrap_err();
            assert_eq!(e.kind, Kind::Connection, "{e}");
            assert!(e.msg.contains("broke before it answered"), "{e}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The write error waits for the read side's end, then shows.
    #[tokio::test]
    async fn write_errors_wait_for_the_end_of_reading() {
        let (a, mut b) = tokio::net::UnixStream::pair().unwrap();
        let mut p = Patient::new(a);
        b.write_all(b"HTTP/1.1 500 x\r\n\r\n").await.unwrap();
        drop(b);
        // The peer is gone: writes are taken while the answer is unread.
        for _ in 0..4 {
            assert_eq!(p.write(&[0u8; 65536]).await.unwrap(), 65536);
        }
        let mut got = Vec::new();
        p.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"HTTP/1.1 500 x\r\n\r\n");
        let e = p.write(b"more").await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
    }
}
