//! Parallel gzip, pigz style: the input is cut into chunks, each chunk is
//! deflated on a worker thread into a run of deflate blocks that ends with a
//! sync flush (byte-aligned, final-block bit clear), and a writer thread
//! writes them strictly in order between ONE gzip header and ONE trailer:
//! after the last chunk an empty final block ends the deflate stream, and the
//! trailer holds the CRC-32 of the whole input, combined from the chunks'
//! CRCs (`crc32_combine`) in order. The output is a single gzip member, so
//! single-member readers (Python's `tarfile` in stream mode `r|gz`, many
//! libraries) read it as well as `gzip -d` and `tar xzf` do.
//!
//! Chunk size: 1 MiB. Each chunk starts a fresh deflate stream (no
//! dictionary from the chunk before): deflate only looks 32 KiB back, so this
//! costs well under 1% of compression ratio plus the 5 bytes of the sync
//! flush's empty stored block; a MiB is also enough work per job (several
//! milliseconds) that handing it between threads costs nothing, and small
//! enough that the memory in flight stays a few MiB per thread.
//!
//! Incompressible data (already compressed or encrypted files) is not fed to
//! deflate: 64 KiB blocks whose bytes look random are written as stored
//! blocks (see [`ChunkCompressor`]).
//!
//! Memory is bounded: at most about `2 * threads + 2` chunks (input and
//! output) exist at any time; `write` blocks while that many are in flight.
//! Their buffers are reused. Output is deterministic: the gzip header has
//! mtime 0, no name, OS 255, and which blocks are stored depends only on
//! the bytes.
//!
//! Older berths wrote one gzip member per chunk; readers use
//! `MultiGzDecoder`, which reads both.

use std::io::{self, Write};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use flate2::Crc;

use super::deflate::{Deflater, Method};
use crate::error::{Error, Result};

/// Uncompressed bytes per chunk (one job of a worker).
pub(crate) const CHUNK_SIZE: usize = 1 << 20;

struct Job {
    data: Vec<u8>,
    done: mpsc::SyncSender<Done>,
}

/// A compressed chunk (deflate blocks, byte-aligned, none final), the CRC
/// of its input, and the chunk itself (for the input hash and reuse).
struct Done {
    member: Vec<u8>,
    crc: Crc,
    data: Vec<u8>,
}

/// Buffers given back for reuse: chunks (by the writer, once hashed) and
/// members (once written). Fresh 1 MiB buffers are fresh pages: the kernel
/// zeroes and maps each on first touch and takes it back on free, which
/// costs more than the copy into them (measured: 110k page faults per GiB).
struct Spare {
    chunks: Mutex<Vec<Vec<u8>>>,
    members: Mutex<Vec<Vec<u8>>>,
    /// Most buffers kept of each kind.
    keep: usize,
}

impl Spare {
    fn take(pool: &Mutex<Vec<Vec<u8>>>) -> Option<Vec<u8>> {
        pool.lock().ok()?.pop()
    }

    fn give(&self, pool: &Mutex<Vec<Vec<u8>>>, mut buf: Vec<u8>) {
        buf.clear();
        if let Ok(mut p) = pool.lock() {
            if p.len() < self.keep {
                p.push(buf);
            }
        }
    }
}

/// What the writer thread gives back: the inner writer and the size of the
/// uncompressed input.
type Written<W> = (W, u64);

/// A `Write` that gzips on `threads` worker threads into `inner`.
///
/// Call [`ParGzWriter::finish`] at the end: it compresses the last chunk,
/// waits for everything to be written and gives `inner` back (or the first
/// error), or with [`ParGzWriter::finish_sized`] also the size of the
/// input. `flush` does not cut a chunk (that would cost compression); it
/// only reports an error that already happened. Dropping the writer without `finish` abandons the last
/// partial chunk and leaves the output without its end.
pub(crate) struct ParGzWriter<W: Write + Send + 'static> {
    buf: Vec<u8>,
    jobs: Option<mpsc::Sender<Job>>,
    order: Option<mpsc::SyncSender<mpsc::Receiver<Done>>>,
    writer: Option<JoinHandle<Result<Written<W>>>>,
    workers: Vec<JoinHandle<()>>,
    spare: Arc<Spare>,
    error: Option<Error>,
}

impl<W: Write + Send + 'static> ParGzWriter<W> {
    /// `method`: the deflate back end and level. `threads`: worker
    /// threads compressing (0: `std::thread::available_parallelism`); one
    /// more thread writes to `inner`.
    pub fn new(inner: W, method: Method, threads: usize) -> Self {
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            threads
        };
        let (job_tx, job_rx) = mpsc::channel::<Job>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let spare = Arc::new(Spare {
            chunks: Mutex::new(Vec::new()),
            members: Mutex::new(Vec::new()),
            // As many as can be in flight (see `order` below).
            keep: 2 * threads + 2,
        });
        let workers = (0..threads)
            .map(|i| {
                let job_rx = Arc::clone(&job_rx);
                let spare = Arc::clone(&spare);
                std::thread::Builder::new()
                    .name(format!("berth-gzip-{i}"))
                    .spawn(move || worker(&job_rx, method, &spare))
                    .expect("spawning a gzip worker thread")
            })
            .collect();
        // The writer waits for members in submission order; the bound on this
        // queue is the bound on work in flight.
        let (order_tx, order_rx) = mpsc::sync_channel::<mpsc::Receiver<Done>>(2 * threads);
        let writer = std::thread::Builder::new()
            .name("berth-gzip-writer".into())
            .spawn({
                let spare = Arc::clone(&spare);
                move || write_member(inner, order_rx, method, &spare)
            })
            .expect("spawning the gzip writer thread");
        ParGzWriter {
            buf: Vec::with_capacity(CHUNK_SIZE),
            jobs: Some(job_tx),
            order: Some(order_tx),
            writer: Some(writer),
            workers,
            spare,
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
        let next =
            Spare::take(&self.spare.chunks).unwrap_or_else(|| Vec::with_capacity(CHUNK_SIZE));
        let data = std::mem::replace(&mut self.buf, next);
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
        Ok(())
    }

    /// Compresses what is left, waits until every member is written, flushes
    /// and returns the inner writer; or the first error of any thread.
    pub fn finish(self) -> Result<W> {
        self.finish_all().map(|(w, _)| w)
    }

    /// [`ParGzWriter::finish`], and the size of the uncompressed input.
    pub(crate) fn finish_sized(self) -> Result<(W, u64)> {
        self.finish_all()
    }

    fn finish_all(mut self) -> Result<Written<W>> {
        if self.error.is_none() && !self.buf.is_empty() {
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

fn worker(jobs: &Mutex<mpsc::Receiver<Job>>, method: Method, spare: &Spare) {
    let mut gz = ChunkCompressor::new(method);
    loop {
        let job = {
            let Ok(rx) = jobs.lock() else { return };
            rx.recv()
        };
        let Ok(job) = job else { return };
        let out = Spare::take(&spare.members).unwrap_or_default();
        let member = gz.compress(&job.data, out);
        let mut crc = Crc::new();
        crc.update(&job.data);
        // A closed receiver means the writer has stopped: nothing to do.
        let _ = job.done.send(Done {
            member,
            crc,
            data: job.data,
        });
    }
}

/// The gzip header: deflate, no flags, mtime 0, XFL (2: best, 4: fastest),
/// OS unknown.
fn gzip_header(method: Method) -> [u8; 10] {
    [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, method.xfl(), 255]
}

/// An empty final block with fixed Huffman codes (BFINAL 1, BTYPE 01, the
/// 7-bit end-of-block code): ends a deflate stream that stands on a byte
/// boundary, as pigz does.
const FINAL_BLOCK: [u8; 2] = [0x03, 0x00];

/// The writer thread: the header, every chunk's blocks in order, then the
/// final block and the trailer (CRC-32 and size mod 2^32 of the input).
fn write_member<W: Write>(
    mut inner: W,
    order: mpsc::Receiver<mpsc::Receiver<Done>>,
    method: Method,
    spare: &Spare,
) -> Result<Written<W>> {
    let writing = |e: io::Error| Error::from(e).context("writing the compressed archive");
    inner.write_all(&gzip_header(method)).map_err(writing)?;
    let mut crc = Crc::new();
    let mut size = 0u64;
    for done in order {
        let done = done
            .recv()
            .map_err(|_| Error::failed("a gzip worker thread died"))?;
        crc.combine(&done.crc);
        size += done.data.len() as u64;
        spare.give(&spare.chunks, done.data);
        inner.write_all(&done.member).map_err(writing)?;
        spare.give(&spare.members, done.member);
    }
    inner.write_all(&FINAL_BLOCK).map_err(writing)?;
    inner.write_all(&crc.sum().to_le_bytes()).map_err(writing)?;
    // ISIZE is the size modulo 2^32 (RFC 1952).
    inner
        .write_all(&(size as u32).to_le_bytes())
        .map_err(writing)?;
    inner.flush().map_err(writing)?;
    Ok((inner, size))
}

/// Bytes judged compressible or not as one unit (see [`incompressible`]).
const PROBE_BLOCK: usize = 64 * 1024;

/// Most bytes in one stored deflate block.
const STORED_MAX: usize = 65535;

/// Deflates one chunk into blocks that continue the member's deflate
/// stream: byte-aligned at both ends, none of them final. Reuses its
/// deflate state.
///
/// Deflate spends more time on random data (already compressed or encrypted
/// files) than on text, only to store it in the end: at every level from 2
/// up it finds nothing and emits stored blocks. So each 64 KiB of a chunk is
/// first tested ([`incompressible`], a tenth of the cost of deflating it or
/// less); runs of incompressible blocks are written as stored blocks
/// directly, the others deflated. A chunk without such blocks is one deflate
/// run ended by a sync flush.
struct ChunkCompressor {
    deflate: Deflater,
    /// Whether to test for incompressible blocks (not at level 0).
    detect: bool,
    /// Scratch for [`incompressible`].
    probe: Box<Probe>,
}

impl ChunkCompressor {
    fn new(method: Method) -> Self {
        ChunkCompressor {
            deflate: Deflater::new(method),
            detect: method.compresses(),
            probe: Box::new(Probe::new()),
        }
    }

    /// The chunk's blocks, in `out` (an empty buffer, reused).
    fn compress(&mut self, data: &[u8], mut out: Vec<u8>) -> Vec<u8> {
        // zlib's compressBound plus the flush's empty stored block.
        let bound = data.len() + (data.len() >> 12) + (data.len() >> 14) + 64;
        out.reserve(bound);
        if !self.detect {
            self.deflate.sync_run(data, &mut out);
            return out;
        }
        self.probe.clear();
        // Runs of blocks of one kind: (stored, start).
        let mut run: Option<(bool, usize)> = None;
        for (i, block) in data.chunks(PROBE_BLOCK).enumerate() {
            let stored = incompressible(block, &mut self.probe);
            let start = i * PROBE_BLOCK;
            match run {
                Some((kind, from)) if kind != stored => {
                    self.emit(kind, &data[from..start], &mut out);
                    run = Some((stored, start));
                }
                Some(_) => {}
                None => run = Some((stored, start)),
            }
        }
        if let Some((kind, from)) = run {
            self.emit(kind, &data[from..], &mut out);
        }
        out
    }

    fn emit(&mut self, stored: bool, data: &[u8], out: &mut Vec<u8>) {
        if stored {
            store_run(data, out);
        } else {
            self.deflate.sync_run(data, out);
        }
    }
}

/// `data` as stored deflate blocks, none final (the output is on a byte
/// boundary here, and stays on one).
fn store_run(data: &[u8], out: &mut Vec<u8>) {
    let blocks = data.len().div_ceil(STORED_MAX).max(1);
    out.reserve(data.len() + 5 * blocks);
    for b in data.chunks(STORED_MAX) {
        let len = b.len() as u16;
        // BFINAL 0, BTYPE 00 (stored), padding to the byte boundary.
        out.push(0);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(b);
    }
}

/// Order-0 entropy (bits per byte) of the `n` bytes counted in `counts`:
/// log2(n) - sum(k log2 k) / n over the counts k, with k log2 k looked up
/// for the small counts that random-looking blocks have (a 64 KiB block of
/// random bytes counts about 256 of each). A `log2` call per byte value
/// was most of this test's cost (profiled: ~8% of a backup's CPU).
fn entropy(counts: &[[u32; 256]; 4], n: usize, klogk: &KLogK) -> f64 {
    let mut sum = 0.0;
    for (((a, b), c), d) in counts[0]
        .iter()
        .zip(&counts[1])
        .zip(&counts[2])
        .zip(&counts[3])
    {
        let k = (a + b + c + d) as usize;
        sum += match klogk.get(k) {
            Some(v) => *v,
            None => k as f64 * (k as f64).log2(),
        };
    }
    (n as f64).log2() - sum / n as f64
}

/// Counts whose k log2 k is looked up rather than computed.
const KLOGK_LEN: usize = 1024;

/// k log2 k for k below [`KLOGK_LEN`] (0 for k = 0).
type KLogK = [f64; KLOGK_LEN];

fn klogk_table() -> Box<KLogK> {
    let mut t = Box::new([0.0; KLOGK_LEN]);
    for (k, v) in t.iter_mut().enumerate().skip(1) {
        *v = k as f64 * (k as f64).log2();
    }
    t
}

fn count_bytes(counts: &mut [[u32; 256]; 4], b: &[u8]) {
    // Four tables: consecutive equal bytes do not wait on each other.
    let mut q = b.chunks_exact(4);
    for w in &mut q {
        counts[0][w[0] as usize] += 1;
        counts[1][w[1] as usize] += 1;
        counts[2][w[2] as usize] += 1;
        counts[3][w[3] as usize] += 1;
    }
    for &x in q.remainder() {
        counts[0][x as usize] += 1;
    }
}

/// Above this order-0 entropy (bits per byte) Huffman coding could save at
/// most ~1%: only repeated strings could make deflate worthwhile.
const FLAT_BITS: f64 = 7.9;
/// Under this many sampled repeats (each stands for ~16 repeated bytes) in a
/// block, LZ77 has nothing worth finding.
const MAX_REPEATS: u32 = 16;

/// Scratch of [`incompressible`]: byte counts and a table of 4-byte strings
/// (kept across the blocks of a chunk, so repeats across blocks count too).
struct Probe {
    counts: [[u32; 256]; 4],
    seen: [u32; SEEN],
    klogk: Box<KLogK>,
}

/// Slots of the table of 4-byte strings (a power of two).
const SEEN: usize = 8192;

impl Probe {
    fn new() -> Self {
        Probe {
            counts: [[0; 256]; 4],
            seen: [0; SEEN],
            klogk: klogk_table(),
        }
    }

    fn clear(&mut self) {
        self.seen.fill(0);
    }
}

/// Whether deflating `b` would gain (next to) nothing: its byte distribution
/// is flat and it repeats no strings. Measured on 64 KiB blocks of random,
/// compressed (gz, xz, png, jpg, jar, woff2, crate) and ordinary files: the
/// blocks this picks deflate (level 3) to 99.15% at best, 99.98% on average,
/// so storing them costs nothing, while deflate spends 11-16 ns per byte on
/// them (level 1 even makes them 5% bigger) and this test ~1. On other
/// blocks it mostly stops after counting the first 16 KiB (~0.1 ns/byte).
fn incompressible(b: &[u8], p: &mut Probe) -> bool {
    if b.len() < 4096 {
        return false;
    }
    // Text and binaries show in their first 16 KiB: most blocks stop here.
    p.counts = [[0; 256]; 4];
    let head = b.len().min(16 * 1024);
    count_bytes(&mut p.counts, &b[..head]);
    if entropy(&p.counts, head, &p.klogk) < FLAT_BITS {
        return false;
    }
    count_bytes(&mut p.counts, &b[head..]);
    if entropy(&p.counts, b.len(), &p.klogk) < FLAT_BITS {
        return false;
    }
    repeats(b, &mut p.seen) < MAX_REPEATS
}

/// Counts strings of `b` seen before. The 4 bytes at every even position
/// are looked up in `seen` (by hash); those at positions 16k and 16k + 1 are
/// put in. Whatever the distance of a repeat, one position in 16 of the copy
/// finds its original: a repeated string of 20 or more bytes within the
/// table's reach gives about one hit per 16 bytes, random data none.
fn repeats(b: &[u8], seen: &mut [u32; SEEN]) -> u32 {
    let slot = |v: u32| (v.wrapping_mul(0x9E37_79B1) >> (32 - SEEN.trailing_zeros())) as usize;
    let word = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
    let mut hits = 0u32;
    let mut i = 0;
    while i + 20 <= b.len() {
        let (x, y) = (word(i), word(i + 8));
        let z = u64::from(u32::from_le_bytes(
            b[i + 16..i + 20].try_into().expect("4 bytes"),
        ));
        for (cur, next) in [(x, y), (y, z)] {
            hits += u32::from(seen[slot(cur as u32)] == cur as u32);
            for k in [2, 4, 6] {
                let v = ((cur >> (8 * k)) | (next << (64 - 8 * k))) as u32;
                hits += u32::from(seen[slot(v)] == v);
            }
        }
        for v in [x as u32, (x >> 8) as u32] {
            seen[slot(v)] = v;
        }
        i += 16;
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::hashio::to_hex;
    use flate2::read::MultiGzDecoder;
    use flate2::{Compress, Compression, FlushCompress};
    use sha2::{Digest, Sha256};
    use std::io::Read;
    use std::process::{Command, Stdio};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    /// Every back end and level berth uses, and some it does not.
    const EVERY_METHOD: [Method; 9] = [
        Method::Igzip(0),
        Method::Igzip(1),
        Method::Igzip(2),
        Method::Igzip(3),
        Method::Zlib(1),
        Method::Zlib(2),
        Method::Zlib(3),
        Method::Zlib(6),
        Method::Zlib(9),
    ];

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

    fn gz(data: &[u8], method: Method, threads: usize, piece: usize) -> Vec<u8> {
        let mut w = ParGzWriter::new(Vec::new(), method, threads);
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
                    let z = gz(data, Method::Zlib(6), threads, piece);
                    assert_eq!(
                        gunzip_one_member(&z),
                        data,
                        "len {len} threads {threads} piece {piece}"
                    );
                }
            }
            let z = gz(data, Method::Zlib(1), 2, 65536);
            assert_eq!(gzip_dc(&z), data, "gzip -dc, len {len}");
        }
    }

    /// Decodes with a single-member decoder and checks that nothing
    /// follows the member.
    fn gunzip_one_member(data: &[u8]) -> Vec<u8> {
        let mut d = flate2::bufread::GzDecoder::new(data);
        let mut out = Vec::new();
        d.read_to_end(&mut out).unwrap();
        assert!(d.into_inner().is_empty(), "bytes after the first member");
        out
    }

    #[test]
    fn output_is_deterministic_and_one_member() {
        let data = sample(2 * CHUNK_SIZE + 10, 3);
        let a = gz(&data, Method::Zlib(6), 1, 4096);
        let b = gz(&data, Method::Zlib(6), 4, 1 << 20);
        assert_eq!(a, b);
        // mtime 0, one header, one trailer.
        assert_eq!(&a[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
        assert_eq!(gunzip_one_member(&a), data);
        let mut crc = Crc::new();
        crc.update(&data);
        assert_eq!(a[a.len() - 8..a.len() - 4], crc.sum().to_le_bytes());
        assert_eq!(a[a.len() - 4..], (data.len() as u32).to_le_bytes());
        // Empty input is one empty member, still valid gzip.
        let empty = gz(&[], Method::Zlib(6), 2, 1);
        assert_eq!(empty.len(), 20);
        assert!(gzip_dc(&empty).is_empty());
        assert!(gunzip_one_member(&empty).is_empty());
    }

    /// A tar holding `content` as dir/file.bin.
    fn tar_of_one_file(content: &[u8]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "dir/file.bin", content).unwrap();
        b.into_inner().unwrap()
    }

    /// Python's tarfile in stream mode reads one gzip member only: the
    /// reason for writing one.
    #[test]
    fn python_tarfile_stream_mode_reads_it() {
        let content = sample(3 * CHUNK_SIZE + 99, 8);
        let tar = tar_of_one_file(&content);
        // Random stretches on and off chunk boundaries: stored runs too.
        let z = gz(&tar, Method::Zlib(2), 2, 100_000);
        let script = "import sys, tarfile, hashlib\n\
            t = tarfile.open(fileobj=sys.stdin.buffer, mode='r|gz')\n\
            for m in t:\n    \
                print(m.name, m.size, hashlib.sha256(t.extractfile(m).read()).hexdigest())\n";
        let mut child = Command::new("python3")
            .args(["-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut stdin = child.stdin.take().unwrap();
        let feeder = std::thread::spawn(move || stdin.write_all(&z));
        let out = child.wait_with_output().unwrap();
        feeder.join().unwrap().unwrap();
        assert!(out.status.success(), "python3 tarfile r|gz failed");
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            format!(
                "dir/file.bin {} {}\n",
                content.len(),
                to_hex(&Sha256::digest(&content))
            )
        );
    }

    #[test]
    fn tar_xzf_reads_it() {
        let content = sample(2 * CHUNK_SIZE + 99, 5);
        let tar = tar_of_one_file(&content);
        let z = gz(&tar, Method::Zlib(3), 2, 100_000);
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

    #[test]
    fn finish_sized_gives_the_size_of_the_input() {
        for len in [0, 1000, CHUNK_SIZE, 2 * CHUNK_SIZE + 5] {
            let data = sample(len, 4);
            let mut w = ParGzWriter::new(Vec::new(), Method::Zlib(1), 2);
            for p in data.chunks(100_000) {
                w.write_all(p).unwrap();
            }
            let (z, n) = w.finish_sized().unwrap();
            assert_eq!(n, len as u64);
            assert_eq!(gunzip(&z), data);
        }
    }

    fn random(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        let mut v = Vec::with_capacity(len + 8);
        while v.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.extend_from_slice(&x.to_le_bytes());
        }
        v.truncate(len);
        v
    }

    /// The looked-up entropy is the textbook one, -sum(p log2 p), on
    /// counts below and above the table: random, text, one byte value.
    #[test]
    fn entropy_is_the_textbook_one() {
        let textbook = |b: &[u8]| {
            let mut k = [0u64; 256];
            b.iter().for_each(|&x| k[x as usize] += 1);
            let n = b.len() as f64;
            k.iter()
                .filter(|&&c| c > 0)
                .map(|&c| -(c as f64 / n) * (c as f64 / n).log2())
                .sum::<f64>()
        };
        let mut p = Probe::new();
        let text = b"the quick brown fox jumps over the lazy dog\n".repeat(1500);
        for b in [
            &random(65536, 7)[..],
            &text[..65536],
            &[9u8; 65536],
            &random(5000, 3),
        ] {
            p.counts = [[0; 256]; 4];
            count_bytes(&mut p.counts, b);
            let (ours, theirs) = (entropy(&p.counts, b.len(), &p.klogk), textbook(b));
            assert!((ours - theirs).abs() < 1e-9, "{ours} {theirs}");
        }
    }

    #[test]
    fn incompressible_blocks_are_stored_and_the_rest_deflated() {
        // Runs of random bytes and text of many lengths: block boundaries
        // fall inside runs, on them, and runs span chunks.
        let text = sample(4 << 20, 9)
            .chunks(64 * 1024)
            .skip(1)
            .flat_map(|c| c[24 * 1024..].to_vec())
            .collect::<Vec<u8>>();
        let mut data = Vec::new();
        let mut t = 0;
        for (i, len) in [
            100_000,
            70_000,
            300_000,
            5_000,
            65_536,
            65_536,
            1 << 20,
            20_000,
            3,
        ]
        .into_iter()
        .enumerate()
        {
            if i % 2 == 0 {
                data.extend(random(len, i as u64 + 1));
            } else {
                data.extend_from_slice(&text[t..t + len]);
                t += len;
            }
        }
        data.extend(random(CHUNK_SIZE + 77, 99));
        for level in EVERY_METHOD {
            let z = gz(&data, level, 2, 100_000);
            assert_eq!(gunzip_one_member(&z), data, "{level:?}");
            assert_eq!(gzip_dc(&z), data, "gzip -dc, {level:?}");
        }
        // Random data is stored: no expansion beyond the block headers (level
        // 1 alone, with its fixed Huffman codes, would add 5%).
        let r = random(3 * CHUNK_SIZE, 5);
        for level in EVERY_METHOD {
            let z = gz(&r, level, 2, 1 << 20);
            assert!(z.len() < r.len() + r.len() / 1000, "{level:?}: {}", z.len());
            assert_eq!(gunzip(&z), r);
        }
        // But random bytes that repeat within deflate's window are deflated.
        let block = random(20_000, 3);
        let rep: Vec<u8> = block.iter().copied().cycle().take(2 * CHUNK_SIZE).collect();
        let z = gz(&rep, Method::Zlib(3), 2, 1 << 20);
        assert!(z.len() < rep.len() / 10, "{}", z.len());
        assert_eq!(gunzip(&z), rep);
        // Text is unaffected: one deflate run per chunk, ended by a sync
        // flush, between one header and one trailer.
        let plain = &text[..2 * CHUNK_SIZE];
        let z = gz(plain, Method::Zlib(3), 1, 1 << 20);
        let mut expect = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
        for c in plain.chunks(CHUNK_SIZE) {
            let mut d = Compress::new(Compression::new(3), false);
            let mut o = Vec::with_capacity(2 * c.len());
            d.compress_vec(c, &mut o, FlushCompress::Sync).unwrap();
            expect.extend_from_slice(&o);
        }
        expect.extend_from_slice(&FINAL_BLOCK);
        let mut crc = Crc::new();
        crc.update(plain);
        expect.extend_from_slice(&crc.sum().to_le_bytes());
        expect.extend_from_slice(&(plain.len() as u32).to_le_bytes());
        assert!(z == expect);
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
                let mut w = ParGzWriter::new(inner, Method::Zlib(1), threads);
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
            let mut w = ParGzWriter::new(inner, Method::Zlib(6), 2);
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
        for level in [
            Method::Igzip(1),
            Method::Igzip(3),
            Method::Zlib(1),
            Method::Zlib(3),
        ] {
            for threads in [1, 2] {
                let t = Instant::now();
                let mut w = ParGzWriter::new(Count(0), level, threads);
                for p in data.chunks(256 << 10) {
                    w.write_all(p).unwrap();
                }
                let out = w.finish().unwrap().0;
                let secs = t.elapsed().as_secs_f64();
                println!(
                    "pargz {level:?} threads {threads}: {:.0} MB/s, ratio {:.2} ({} -> {})",
                    data.len() as f64 / secs / 1e6,
                    data.len() as f64 / out as f64,
                    data.len(),
                    out
                );
            }
        }
    }
}
