//! A GET whose answer is read with blocking calls on the thread that
//! consumes it: the archive of a path, gigabytes long.
//!
//! Through hyper, every 32 KiB chunk the engine writes crosses three
//! threads: the connection task reads it, a pump task batches it, the scan
//! thread takes it. Measured on a 2-core machine that was 80,000 context
//! switches and about a CPU-second of scheduling per GiB, a quarter of a
//! backup's CPU. Here the scan thread reads the socket itself: one recv
//! into a 512 KiB buffer, the chunk framing decoded in place, one copy out.
//!
//! The answer is HTTP/1.1 on a connection of its own (`Connection: close`):
//! chunked, sized by Content-Length, or ended by the close. A silence
//! longer than the idle limit (the socket's receive timeout), a connection
//! that breaks, or framing that does not parse is a read error that names
//! the transfer, never a silent end of the body.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use hyper::header::{HeaderMap, HeaderName, HeaderValue};

use crate::error::{Error, Kind, Result};

/// Room for the socket's reads (the engine writes 32 KiB chunks; a recv
/// takes whatever has queued up, often a few of them).
const BUF: usize = 512 * 1024;
/// The most a response head may take.
const MAX_HEAD: usize = 64 * 1024;
/// The most of an error answer's body that is read for its message.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// A response's status and headers.
pub struct Head {
    pub status: u16,
    pub headers: HeaderMap,
}

/// How the body's end is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// Chunked: `left` bytes of the current chunk's data remain (0: a size
    /// line comes next, after the CRLF that ends the previous chunk's data
    /// when `crlf` is set).
    Chunked { left: u64, crlf: bool },
    /// Content-Length: this many bytes remain.
    Length(u64),
    /// Until the engine closes.
    Close,
    /// The whole body has been read.
    Done,
}

/// The body of an answer, read straight off the socket.
pub struct DirectReader {
    sock: UnixStream,
    buf: Box<[u8]>,
    /// Unread bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    framing: Framing,
    /// An error met behind bytes already handed out: the next read's.
    err: Option<Error>,
    /// Names the transfer in errors ("reading the archive of lw:/data").
    doing: String,
    idle: Duration,
}

/// Where a request goes and how long it may take.
pub struct Call<'a> {
    pub socket: &'a Path,
    /// The path with its version prefix and query.
    pub path: &'a str,
    /// How long the answer's head may take.
    pub answer: Duration,
    /// How long the body may stay silent.
    pub idle: Duration,
    pub doing: &'a str,
}

/// Send GET `call.path` and read the answer's head. A non-2xx answer is
/// an error made of its status and the engine's message.
pub fn get(call: &Call) -> Result<(Head, DirectReader)> {
    let doing = call.doing;
    let mut sock = UnixStream::connect(call.socket)
        .map_err(|e| unreachable(call.socket, &e).context(doing))?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: docker\r\nUser-Agent: berth/{}\r\nConnection: close\r\n\r\n",
        call.path,
        env!("CARGO_PKG_VERSION")
    );
    sock.set_read_timeout(Some(call.answer))
        .and_then(|()| sock.write_all(request.as_bytes()))
        .map_err(|e| broke_before_answer(call.socket, &e).context(doing))?;
    let mut r = DirectReader {
        sock,
        buf: vec![0u8; BUF].into_boxed_slice(),
        start: 0,
        end: 0,
        framing: Framing::Close,
        err: None,
        doing: doing.to_owned(),
        idle: call.idle,
    };
    let head = r.read_head(call)?;
    r.sock
        .set_read_timeout(Some(call.idle))
        .map_err(|e| r.broke(&e))?;
    if (200..300).contains(&head.status) {
        return Ok((head, r));
    }
    let mut body = Vec::new();
    let _ = (&mut r).take(MAX_ERROR_BODY as u64).read_to_end(&mut body);
    Err(super::transport::api_error(head.status, &body, doing))
}

/// Not reaching the engine at all (a wrong socket, a stopped daemon).
fn unreachable(socket: &Path, e: &io::Error) -> Error {
    Error::new(
        Kind::Connection,
        format!(
            "cannot reach the Docker engine at {}: {e} (is dockerd running? choose another socket with --host or DOCKER_HOST)",
            socket.display()
        ),
    )
}

fn broke_before_answer(socket: &Path, e: &dyn std::fmt::Display) -> Error {
    Error::new(
        Kind::Connection,
        format!(
            "the connection to the Docker engine at {} broke before it answered: {e}",
            socket.display()
        ),
    )
}

fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

impl DirectReader {
    /// Reads up to the blank line that ends the head and sets the framing.
    fn read_head(&mut self, call: &Call) -> Result<Head> {
        loop {
            let mut fields = [httparse::EMPTY_HEADER; 64];
            let mut resp = httparse::Response::new(&mut fields);
            let parsed = resp.parse(&self.buf[..self.end]);
            match parsed {
                Ok(httparse::Status::Complete(len)) => {
                    let head = head_of(&resp).ok_or_else(|| self.garbled("an unreadable head"))?;
                    self.start = len;
                    self.framing = framing_of(&head.headers)
                        .ok_or_else(|| self.garbled("an unreadable body length"))?;
                    return Ok(head);
                }
                Ok(httparse::Status::Partial) if self.end < MAX_HEAD => {}
                Ok(httparse::Status::Partial) => return Err(self.garbled("a head over 64 KiB")),
                Err(e) => return Err(self.garbled(&format!("an unreadable head ({e})"))),
            }
            let end = self.end;
            match self.sock.read(&mut self.buf[end..MAX_HEAD]) {
                Ok(0) => {
                    return Err(
                        broke_before_answer(call.socket, &"it closed the connection")
                            .context(call.doing),
                    )
                }
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if timed_out(&e) => {
                    return Err(Error::new(
                        Kind::Connection,
                        format!(
                            "{}: the Docker engine at {} did not answer within {}s",
                            call.doing,
                            call.socket.display(),
                            call.answer.as_secs()
                        ),
                    ))
                }
                Err(e) => return Err(broke_before_answer(call.socket, &e).context(call.doing)),
            }
        }
    }

    fn garbled(&self, what: &str) -> Error {
        Error::new(
            Kind::Connection,
            format!("{}: the engine answered with {what}", self.doing),
        )
    }

    fn broke(&self, e: &dyn std::fmt::Display) -> Error {
        Error::new(
            Kind::Connection,
            format!("{}: the connection to the engine broke: {e}", self.doing),
        )
    }

    /// Refills the buffer (keeping what is unread); the number of new
    /// bytes, 0 at the engine's close.
    fn fill(&mut self) -> Result<usize> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
        }
        loop {
            match self.sock.read(&mut self.buf[self.end..]) {
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if timed_out(&e) => {
                    return Err(Error::new(
                        Kind::Connection,
                        format!(
                            "{}: the engine sent nothing for {}s",
                            self.doing,
                            self.idle.as_secs()
                        ),
                    ))
                }
                Err(e) => return Err(self.broke(&e)),
            }
        }
    }

    /// More bytes where the body says more must come.
    fn fill_more(&mut self) -> Result<()> {
        match self.fill()? {
            0 => Err(self.broke(&"it closed before the end of the body")),
            _ => Ok(()),
        }
    }

    /// One CRLF-ended line (a chunk size or a trailer), without the CRLF.
    fn line(&mut self) -> Result<Vec<u8>> {
        loop {
            let unread = &self.buf[self.start..self.end];
            if let Some(i) = unread.windows(2).position(|w| w == b"\r\n") {
                let line = unread[..i].to_vec();
                self.start += i + 2;
                return Ok(line);
            }
            if self.end - self.start > 4096 {
                return Err(self.garbled("a chunk line over 4 KiB"));
            }
            self.fill_more()?;
        }
    }

    /// Moves the chunked framing to the next chunk's data (or the end).
    fn next_chunk(&mut self, crlf: bool) -> Result<()> {
        if crlf {
            if !self.line()?.is_empty() {
                return Err(self.garbled("chunk data longer than its size"));
            }
            self.framing = Framing::Chunked {
                left: 0,
                crlf: false,
            };
        }
        let line = self.line()?;
        let size = chunk_size(&line).ok_or_else(|| self.garbled("an unreadable chunk size"))?;
        if size > 0 {
            self.framing = Framing::Chunked {
                left: size,
                crlf: true,
            };
            return Ok(());
        }
        // The last chunk: trailers (none from the engine) up to a blank line.
        while !self.line()?.is_empty() {}
        self.framing = Framing::Done;
        Ok(())
    }

    /// Body bytes copied into `out` (0 only at the body's end).
    fn read_body(&mut self, out: &mut [u8]) -> Result<usize> {
        loop {
            let left = match self.framing {
                Framing::Done => return Ok(0),
                Framing::Chunked { left: 0, crlf } => {
                    self.next_chunk(crlf)?;
                    continue;
                }
                Framing::Chunked { left, .. } | Framing::Length(left) => left,
                Framing::Close => u64::MAX,
            };
            if self.start == self.end && self.fill()? == 0 {
                if self.framing == Framing::Close {
                    self.framing = Framing::Done;
                    return Ok(0);
                }
                return Err(self.broke(&"it closed before the end of the body"));
            }
            let avail = self.end - self.start;
            let n = out
                .len()
                .min(avail)
                .min(usize::try_from(left).unwrap_or(usize::MAX));
            out[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
            self.start += n;
            let left = left - n as u64;
            self.framing = match self.framing {
                Framing::Chunked { crlf, .. } => Framing::Chunked { left, crlf },
                Framing::Length(_) if left == 0 => Framing::Done,
                Framing::Length(_) => Framing::Length(left),
                other => other,
            };
            return Ok(n);
        }
    }
}

impl Read for DirectReader {
    /// Copies what the buffer holds (filling it once when it is empty),
    /// across chunk boundaries, into `out`.
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if let Some(e) = self.err.take() {
            return Err(e.into_io());
        }
        let mut n = self.read_body(out).map_err(Error::into_io)?;
        // More of what is already buffered, without another recv.
        while n > 0 && n < out.len() && self.start < self.end {
            match self.read_body(&mut out[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) => {
                    self.err = Some(e);
                    break;
                }
            }
        }
        Ok(n)
    }
}

/// Status and headers; None when a header value is not a valid one.
fn head_of(resp: &httparse::Response) -> Option<Head> {
    let mut headers = HeaderMap::new();
    for h in resp.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        headers.append(name, HeaderValue::from_bytes(h.value).ok()?);
    }
    Some(Head {
        status: resp.code?,
        headers,
    })
}

/// The body's framing (RFC 9112 section 6.3): chunked wins over a length.
fn framing_of(h: &HeaderMap) -> Option<Framing> {
    let chunked = h.get_all("transfer-encoding").iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.to_ascii_lowercase().contains("chunked"))
    });
    if chunked {
        return Some(Framing::Chunked {
            left: 0,
            crlf: false,
        });
    }
    match h.get("content-length") {
        Some(v) => v.to_str().ok()?.trim().parse().ok().map(Framing::Length),
        None => Some(Framing::Close),
    }
}

/// A chunk-size line: hex digits, maybe `;extensions` after them.
fn chunk_size(line: &[u8]) -> Option<u64> {
    let hex = line.split(|&b| b == b';').next()?;
    let hex = std::str::from_utf8(hex).ok()?.trim();
    if hex.is_empty() || hex.len() > 15 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;
    use std::path::PathBuf;
    use std::thread;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("berth-direct-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A one-shot engine: reads the request head, writes `answer` in
    /// pieces of `piece` bytes, then closes (or stays silent when `hang`).
    fn engine(
        tag: &str,
        answer: Vec<u8>,
        piece: usize,
        hang: bool,
    ) -> (PathBuf, thread::JoinHandle<Vec<u8>>) {
        let dir = scratch(tag);
        let sock = dir.join("e.sock");
        let listener = UnixListener::bind(&sock).unwrap();
        let t = thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut req = Vec::new();
            let mut b = [0u8; 1];
            while !req.ends_with(b"\r\n\r\n") && s.read(&mut b).unwrap() == 1 {
                req.push(b[0]);
            }
            for p in answer.chunks(piece.max(1)) {
                if s.write_all(p).is_err() {
                    break;
                }
                s.flush().unwrap();
            }
            if hang {
                thread::sleep(Duration::from_millis(1500));
            }
            req
        });
        (sock, t)
    }

    fn call(sock: &Path) -> Result<(Head, DirectReader)> {
        get(&Call {
            socket: sock,
            path: "/v1.41/containers/c/archive?path=%2Fdata",
            answer: Duration::from_secs(5),
            idle: Duration::from_secs(1),
            doing: "reading the archive of c:/data",
        })
    }

    fn chunked(body: &[u8], size: usize) -> Vec<u8> {
        chunked_with(body, size, "")
    }

    /// Chunked in chunks of `size`, with `ext` after every size line's
    /// digits (";name=value" for an extension).
    fn chunked_with(body: &[u8], size: usize, ext: &str) -> Vec<u8> {
        let mut out = b"HTTP/1.1 200 OK\r\nX-Docker-Container-Path-Stat: e30=\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for c in body.chunks(size) {
            out.extend(format!("{:x}{ext}\r\n", c.len()).as_bytes());
            out.extend(c);
            out.extend(b"\r\n");
        }
        out.extend(format!("0{ext}\r\n\r\n").as_bytes());
        out
    }

    fn body() -> Vec<u8> {
        (0..300_000u32).map(|i| (i % 251) as u8).collect()
    }

    /// Chunked, sized and close-ended bodies come out whole, whatever the
    /// pieces the engine writes them in and the reader's read sizes.
    #[test]
    fn every_framing_reads_whole() {
        let want = body();
        let sized = [
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", want.len()).into_bytes(),
            want.clone(),
        ]
        .concat();
        let closed = [b"HTTP/1.1 200 OK\r\n\r\n".to_vec(), want.clone()].concat();
        let cases = [
            ("chunk32k", chunked(&want, 32 * 1024), 7919),
            ("chunk1", chunked(&want[..3000], 1), 13),
            ("chunkext", chunked_with(&want, 1000, ";name=value"), 1),
            ("sized", sized, 65536),
            ("closed", closed, 4096),
        ];
        for (i, (tag, answer, piece)) in cases.into_iter().enumerate() {
            let expect = if tag == "chunk1" {
                &want[..3000]
            } else {
                &want[..]
            };
            let (sock, t) = engine(tag, answer, piece, false);
            let (head, mut r) = call(&sock).unwrap();
            assert_eq!(head.status, 200);
            let mut got = Vec::new();
            let mut buf = vec![0u8; [1, 511, 65536, 1 << 20][i % 4]];
            loop {
                let n = r.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            assert!(
                got == expect,
                "{tag}: {} bytes, {} expected",
                got.len(),
                expect.len()
            );
            let req = String::from_utf8(t.join().unwrap()).unwrap();
            assert!(
                req.starts_with("GET /v1.41/containers/c/archive?path=%2Fdata HTTP/1.1\r\n"),
                "{req}"
            );
            assert!(req.contains("\r\nHost: docker\r\n"), "{req}");
        }
    }

    #[test]
    fn chunk_extensions_and_sizes() {
        assert_eq!(chunk_size(b"8000"), Some(0x8000));
        assert_eq!(chunk_size(b"1a;name=value"), Some(26));
        assert_eq!(chunk_size(b""), None);
        assert_eq!(chunk_size(b"zz"), None);
        assert_eq!(chunk_size(b"ffffffffffffffffff"), None);
    }

    /// A body cut short, a silence and bad framing are errors, never an
    /// early end; the data before them is read first.
    #[test]
    fn cut_silent_and_garbled_bodies_fail() {
        let want = body();
        let full = chunked(&want, 32 * 1024);
        let cut = full[..full.len() / 2].to_vec();
        let mut garbled = chunked(&want[..100], 100);
        garbled.truncate(garbled.len() - 5);
        garbled.extend(b"zz\r\n\r\n");
        let sized_short = [
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                want.len() + 10
            )
            .into_bytes(),
            want.clone(),
        ]
        .concat();
        let cases = [
            ("cut", cut.clone(), false, "broke: it closed before the end"),
            ("silent", cut, true, "sent nothing for 1s"),
            (
                "garbled",
                garbled,
                false,
                "answered with an unreadable chunk size",
            ),
            (
                "short",
                sized_short,
                false,
                "broke: it closed before the end",
            ),
        ];
        for (tag, answer, hang, said) in cases {
            let (sock, t) = engine(tag, answer, 65536, hang);
            let (_, mut r) = call(&sock).unwrap();
            let mut got = Vec::new();
            let e = Error::from(r.read_to_end(&mut got).unwrap_err());
            assert_eq!(e.kind, Kind::Connection, "{tag}: {e}");
            assert!(
                e.msg.starts_with("reading the archive of c:/data: "),
                "{tag}: {e}"
            );
            assert!(e.msg.contains(said), "{tag}: {e}");
            assert!(
                want.starts_with(&got),
                "{tag}: wrong bytes before the error"
            );
            t.join().unwrap();
        }
    }

    /// An error status is the engine's message; no answer is a broken
    /// connection; a socket nobody listens on is unreachable.
    #[test]
    fn error_answers() {
        let msg = br#"{"message":"Could not find the file /data in container c"}"#;
        let answer = [
            format!("HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", msg.len()).into_bytes(),
            msg.to_vec(),
        ]
        .concat();
        let (sock, t) = engine("404", answer, 7, false);
        let e = call(&sock).err().unwrap();
        assert!(e.is_not_found(), "{e}");
        assert_eq!(
            e.msg,
            "reading the archive of c:/data: 404 Could not find the file /data in container c"
        );
        t.join().unwrap();

        let (sock, t) = engine("none", vec![], 1, false);
        let e = call(&sock).err().unwrap();
        assert_eq!(e.kind, Kind::Connection);
        assert!(e.msg.contains("broke before it answered"), "{e}");
        t.join().unwrap();

        let e = call(&scratch("absent").join("e.sock")).err().unwrap();
        assert_eq!(e.kind, Kind::Connection);
        assert!(e.msg.contains(": cannot reach the Docker engine"), "{e}");
    }
}
