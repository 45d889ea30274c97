//! Parallel gzip: the input is cut into chunks, each chunk becomes an
//! independent gzip member compressed on a worker thread, and the members are
//! written to the inner writer strictly in order by a writer thread.
//!
//! Concatenated gzip members are one valid gzip file (RFC 1952, section
//! 2.2): GNU `gzip -d`/`tar xzf`, flate2's `MultiGzDecoder` and Go's
//! `compress/gzip` reader all read them as one stream.
//!
//! Chunk size: 1 MiB. Deflate only looks 32 KiB back, so starting a fresh
//! member every MiB costs well under 1% of compression ratio plus 18 bytes of
//! header and trailer per member; a MiB is also enough work per job (several
//! milliseconds) that handing it between threads costs nothing, and small
//! enough that the memory in flight stays a few MiB per thread.
//!
//! Memory is bounded: at most about `2 * threads + 2` chunks (input and
//! output) exist at any time; `write` blocks while that many are in flight.
//! Output is deterministic: the gzip header has mtime 0, no name, OS 255.

use std::io::{self, Write};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

use crate::error::{Error, Result};

/// Uncompressed bytes per gzip member.
pub const CHUNK_SIZE: usize = 1 << 20;

struct Job {
    data: Vec<u8>,
    done: mpsc::SyncSender<Vec<u8>>,
}

/// A `Write` that gzips on `threads` worker threads into `inner`.
///
/// Call [`ParGzWriter::finish`] at the end: it compresses the last chunk,
/// waits for everything to be written and gives `inner` back (or the first
/// error). `flush` does not cut a member (that would cost compression); it
/// only reports an error that already happened. Dropping the writer without
/// `finish` abandons the last partial chunk.
pub struct ParGzWriter<W: Write + Send + 'static> {
    buf: Vec<u8>,
    /// Members sent so far (so that an empty input still gets one member).
    members: u64,
    jobs: Option<mpsc::Sender<Job>>,
    order: Option<mpsc::SyncSender<mpsc::Receiver<Vec<u8>>>>,
    writer: Option<JoinHandle<Result<W>>>,
    workers: Vec<JoinHandle<()>>,
    error: Option<Error>,
}

impl<W: Write + Send + 'static> ParGzWriter<W> {
    /// `level`: 0 (store) to 9 (best); above 9 means 9. `threads`: worker
    /// threads compressing (0: `std::thread::available_parallelism`); one
    /// more thread writes to `inner`.
    pub fn new(inner: W, level: u32, threads: usize) -> Self {
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            threads
        };
        let level = level.min(9);
        let (job_tx, job_rx) = mpsc::channel::<Job>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let workers = (0..threads)
            .map(|i| {
                let job_rx = Arc::clone(&job_rx);
                std::thread::Builder::new()
                    .name(format!("berth-gzip-{i}"))
                    .spawn(move || worker(&job_rx, level))
                    .expect("spawning a gzip worker thread")
            })
            .collect();
        // The writer waits for members in submission order; the bound on this
        // queue is the bound on work in flight.
        let (order_tx, order_rx) = mpsc::sync_channel::<mpsc::Receiver<Vec<u8>>>(2 * threads);
        let writer = std::thread::Builder::new()
            .name("berth-gzip-writer".into())
            .spawn(move || write_members(inner, order_rx))
            .expect("spawning the gzip writer thread");
        ParGzWriter {
            buf: Vec::with_capacity(CHUNK_SIZE),
            members: 0,
            jobs: Some(job_tx),
            order: Some(order_tx),
            writer: Some(writer),
            workers,
            error: None,
        }
    }

    /// The error of the writer thread, once it has stopped early.
    fn writer_error(&mut self) -> Error {
        let e = match self.writer.take().map(|h| h.join()) {
            Some(Ok(Err(e))) => e,
            Some(Ok(Ok(_))) | None => Error::failed("the gzip writer stopped unexpectedly"),
            Some(Err(_)) => Error::failed("the gzip writer thread panicked"),
        };
        self.error = Some(e.clone());
        e
    }

    fn check(&self) -> io::Result<()> {
        match &self.error {
            Some(e) => Err(e.clone().into_io()),
            None => Ok(()),
        }
    }

    /// Hands the buffered chunk to the workers.
    fn dispatch(&mut self) -> Result<()> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if self.writer.as_ref().is_some_and(|h| h.is_finished()) {
            return Err(self.writer_error());
        }
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_SIZE));
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        let order = self.order.as_ref().expect("not finished");
        // Blocks while 2 * threads chunks are in flight.
        if order.send(done_rx).is_err() {
            return Err(self.writer_error());
        }
        let jobs = self.jobs.as_ref().expect("not finished");
        if jobs
            .send(Job {
                data,
                done: done_tx,
            })
            .is_err()
        {
            // The writer sees the dropped `done_tx` and stops with an error.
            let e = Error::failed("the gzip worker threads died");
            self.error = Some(e.clone());
            return Err(e);
        }
        self.members += 1;
        Ok(())
    }

    /// Compresses what is left, waits until every member is written, flushes
    /// and returns the inner writer; or the first error of any thread.
    pub fn finish(mut self) -> Result<W> {
        if self.error.is_none() && (!self.buf.is_empty() || self.members == 0) {
            // An error here is also reported by the writer thread below.
            let _ = self.dispatch();
        }
        drop(self.order.take());
        drop(self.jobs.take());
        let result = match self.error.take() {
            Some(e) => Err(e),
            None => match self.writer.take().map(|h| h.join()) {
                Some(Ok(r)) => r,
                Some(Err(_)) => Err(Error::failed("the gzip writer thread panicked")),
                None => Err(Error::failed("the gzip writer stopped unexpectedly")),
            },
        };
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        result
    }
}

impl<W: Write + Send + 'static> Write for ParGzWriter<W> {
    fn write(&mut self, mut data: &[u8]) -> io::Result<usize> {
        self.check()?;
        let total = data.len();
        while !data.is_empty() {
            let n = (CHUNK_SIZE - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.buf.len() == CHUNK_SIZE {
                self.dispatch().map_err(Error::into_io)?;
            }
        }
        Ok(total)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.check()
    }
}

fn worker(jobs: &Mutex<mpsc::Receiver<Job>>, level: u32) {
    let mut gz = MemberCompressor::new(level);
    loop {
        let job = {
            let Ok(rx) = jobs.lock() else { return };
            rx.recv()
        };
        let Ok(job) = job else { return };
        let member = gz.compress(&job.data);
        // A closed receiver means the writer has stopped: nothing to do.
        let _ = job.done.send(member);
    }
}

fn write_members<W: Write>(
    mut inner: W,
    order: mpsc::Receiver<mpsc::Receiver<Vec<u8>>>,
) -> Result<W> {
    for done in order {
        let member = done
            .recv()
            .map_err(|_| Error::failed("a gzip worker thread died"))?;
        inner
            .write_all(&member)
            .map_err(|e| Error::from(e).context("writing the compressed archive"))?;
    }
    inner
        .flush()
        .map_err(|e| Error::from(e).context("writing the compressed archive"))?;
    Ok(inner)
}

/// Makes one complete gzip member from a chunk, reusing its deflate state.
struct MemberCompressor {
    deflate: Compress,
    header: [u8; 10],
}

impl MemberCompressor {
    fn new(level: u32) -> Self {
        let xfl = match level {
            9 => 2,
            1 => 4,
            _ => 0,
        };
        MemberCompressor {
            deflate: Compress::new(Compression::new(level), false),
            // Magic, deflate, no flags, mtime 0, XFL, OS unknown.
            header: [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255],
        }
    }

    fn compress(&mut self, data: &[u8]) -> Vec<u8> {
        // zlib's compressBound plus header and trailer.
        let bound = data.len() + (data.len() >> 12) + (data.len() >> 14) + 64;
        let mut out = Vec::with_capacity(bound);
        out.extend_from_slice(&self.header);
        self.deflate.reset();
        let mut consumed = 0usize;
        loop {
            if out.capacity() - out.len() < 1024 {
                out.reserve(64 * 1024);
            }
            let before = self.deflate.total_in();
            let status = self
                .deflate
                .compress_vec(&data[consumed..], &mut out, FlushCompress::Finish)
                .expect("deflate of an in-memory buffer cannot fail");
            consumed += (self.deflate.total_in() - before) as usize;
            if status == Status::StreamEnd {
                break;
            }
        }
        let mut crc = Crc::new();
        crc.update(data);
        out.extend_from_slice(&crc.sum().to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::MultiGzDecoder;
    use std::io::Read;
    use std::process::{Command, Stdio};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    /// Semi-compressible test data: random stretches and repeated text.
    fn sample(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        let mut v = Vec::with_capacity(len);
        let text = b"2024-05-01T12:00:00Z INFO vmdird: replication cycle finished, 0 changes, usn=";
        let mut line = 0u64;
        while v.len() < len {
            // 24 KiB random, then ~40 KiB of log-like lines.
            for _ in 0..24 * 1024 / 8 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                v.extend_from_slice(&x.to_le_bytes());
            }
            let end = v.len() + 40 * 1024;
            while v.len() < end {
                v.extend_from_slice(text);
                v.extend_from_slice(format!("{line}\n").as_bytes());
                line += 1;
            }
        }
        v.truncate(len);
        v
    }

    fn gz(data: &[u8], level: u32, threads: usize, piece: usize) -> Vec<u8> {
        let mut w = ParGzWriter::new(Vec::new(), level, threads);
        for p in data.chunks(piece.max(1)) {
            w.write_all(p).unwrap();
        }
        w.finish().unwrap()
    }

    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        MultiGzDecoder::new(data).read_to_end(&mut out).unwrap();
        out
    }

    fn gzip_dc(data: &[u8]) -> Vec<u8> {
        let mut child = Command::new("gzip")
            .arg("-dc")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("gzip");
        let mut stdin = child.stdin.take().unwrap();
        let input = data.to_vec();
        let feeder = std::thread::spawn(move || stdin.write_all(&input));
        let out = child.wait_with_output().unwrap();
        feeder.join().unwrap().unwrap();
        assert!(out.status.success(), "gzip -dc failed");
        out.stdout
    }

    #[test]
    fn round_trips_at_edge_sizes() {
        let big = sample(3 * CHUNK_SIZE + 12345, 7);
        for len in [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, big.len()] {
            let data = &big[..len];
            for threads in [1, 3] {
                for piece in [1000, 1 << 20, 3 << 20] {
                    let z = gz(data, 6, threads, piece);
                    assert_eq!(
                        gunzip(&z),
                        data,
                        "len {len} threads {threads} piece {piece}"
                    );
                }
            }
            let z = gz(data, 1, 2, 65536);
            assert_eq!(gzip_dc(&z), data, "gzip -dc, len {len}");
        }
    }

    #[test]
    fn output_is_deterministic_and_has_one_member_per_chunk() {
        let data = sample(2 * CHUNK_SIZE + 10, 3);
        let a = gz(&data, 6, 1, 4096);
        let b = gz(&data, 6, 4, 1 << 20);
        assert_eq!(a, b);
        // mtime 0 in the first header.
        assert_eq!(&a[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
        // Three members: count them with a single-member decoder.
        let mut rest = &a[..];
        let mut members = 0;
        while !rest.is_empty() {
            let mut d = flate2::bufread::GzDecoder::new(rest);
            std::io::copy(&mut d, &mut std::io::sink()).unwrap();
            rest = d.into_inner();
            members += 1;
        }
        assert_eq!(members, 3);
        // Empty input is one empty member, still valid gzip.
        let empty = gz(&[], 6, 2, 1);
        assert_eq!(empty.len(), 20);
        assert!(gzip_dc(&empty).is_empty());
    }

    #[test]
    fn tar_xzf_reads_it() {
        let mut b = tar::Builder::new(Vec::new());
        let content = sample(2 * CHUNK_SIZE + 99, 5);
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "dir/file.bin", &content[..]).unwrap();
        let tar = b.into_inner().unwrap();
        let z = gz(&tar, 3, 2, 100_000);
        let mut child = Command::new("tar")
            .args(["xzf", "-", "-O"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let feeder = std::thread::spawn(move || stdin.write_all(&z));
        let out = child.wait_with_output().unwrap();
        feeder.join().unwrap().unwrap();
        assert!(out.status.success());
        assert!(out.stdout == content);
    }

    /// Accepts `limit` bytes, then fails like a full disk.
    struct FailAfter {
        limit: u64,
        written: Arc<AtomicU64>,
    }

    impl Write for FailAfter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let w = self.written.load(Ordering::SeqCst);
            if w >= self.limit {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            let n = buf.len().min((self.limit - w) as usize);
            self.written.fetch_add(n as u64, Ordering::SeqCst);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Runs `f` on a thread and fails the test if it takes over 60 s.
    fn within_a_minute<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(Duration::from_secs(60))
            .expect("hung after a write error")
    }

    #[test]
    fn write_error_surfaces_without_hanging() {
        for (limit, threads) in [(0, 1), (10, 2), (CHUNK_SIZE as u64 * 3 / 2, 3)] {
            let (write_err, written) = within_a_minute(move || {
                let written = Arc::new(AtomicU64::new(0));
                let inner = FailAfter {
                    limit,
                    written: written.clone(),
                };
                let data = sample(CHUNK_SIZE, 1);
                let mut w = ParGzWriter::new(inner, 1, threads);
                // Far more than the in-flight bound: write() must fail.
                let mut fed = 0u64;
                let err = loop {
                    match w.write_all(&data) {
                        Ok(()) => fed += data.len() as u64,
                        Err(e) => break e,
                    }
                    assert!(fed < 1 << 30, "write kept succeeding");
                };
                let err = Error::from(err);
                let fin = w.finish().map(|_| ()).unwrap_err();
                assert_eq!(fin.msg, err.msg);
                (err, written.load(Ordering::SeqCst))
            });
            assert!(
                write_err.msg.contains("writing the compressed archive")
                    && write_err.msg.contains("No space left"),
                "{write_err}"
            );
            assert_eq!(written, limit);
        }
        // An error while finishing only shows in finish().
        let r = within_a_minute(|| {
            let inner = FailAfter {
                limit: 5,
                written: Arc::new(AtomicU64::new(0)),
            };
            let mut w = ParGzWriter::new(inner, 6, 2);
            w.write_all(b"small").unwrap();
            w.finish().map(|_| ())
        });
        assert!(r.unwrap_err().msg.contains("No space left"));
    }

    /// `cargo test --release --lib archive::pargz -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn bench_pargz() {
        let data = sample(500 << 20, 42);
        struct Count(u64);
        impl Write for Count {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0 += b.len() as u64;
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        for level in [1, 3, 6] {
            for threads in [1, 2] {
                let t = Instant::now();
                let mut w = ParGzWriter::new(Count(0), level, threads);
                for p in data.chunks(256 << 10) {
                    w.write_all(p).unwrap();
                }
                let out = w.finish().unwrap().0;
                let secs = t.elapsed().as_secs_f64();
                println!(
                    "pargz level {level} threads {threads}: {:.0} MB/s, ratio {:.2} ({} -> {})",
                    data.len() as f64 / secs / 1e6,
                    data.len() as f64 / out as f64,
                    data.len(),
                    out
                );
            }
        }
    }
}
