//! SHA-256 and byte counts of whatever flows through a reader or writer.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{Context, Result};

/// Lowercase hex of `bytes`.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

/// A writer that hashes (sha256) and counts every byte the inner writer
/// accepted.
pub(crate) struct HashWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashWriter<W> {
    pub fn new(inner: W) -> Self {
        HashWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Bytes written so far.
    #[cfg(test)]
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The inner writer, the lowercase hex sha256 and the byte count.
    /// Does not flush: flush first if the inner writer buffers.
    pub fn finish(self) -> (W, String, u64) {
        (self.inner, to_hex(&self.hasher.finalize()), self.count)
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes (sha256) and counts every byte read through it.
pub(crate) struct HashReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashReader<R> {
    pub fn new(inner: R) -> Self {
        HashReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// The inner reader, the lowercase hex sha256 and the byte count of what
    /// was read so far.
    pub fn finish(self) -> (R, String, u64) {
        (self.inner, to_hex(&self.hasher.finalize()), self.count)
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

const READ_SIZE: usize = 1 << 20;

/// The lowercase hex sha256 and the size of a file, read in 1 MiB pieces.
///
/// Files over a few MiB are read on a second thread while this one hashes,
/// so the hash runs at the speed of the CPU's SHA extensions instead of
/// waiting for every read.
pub(crate) fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let doing = || format!("computing the sha256 of {}", path.display());
    let f = File::open(path).ctx(doing())?;
    let len = f.metadata().ctx(doing())?.len();
    let r = if len < 4 * READ_SIZE as u64 {
        hash_inline(f)
    } else {
        advise_sequential(&f);
        hash_overlapped(f)
    };
    r.ctx(doing())
}

#[cfg(target_os = "linux")]
fn advise_sequential(f: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid open descriptor; the call only sets a read-ahead hint.
    unsafe {
        libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_SEQUENTIAL);
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_sequential(_: &File) {}

/// Reads until `buf` is full or EOF.
fn read_full(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match f.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn hash_inline(mut f: File) -> io::Result<(String, u64)> {
    let mut buf = vec![0u8; READ_SIZE];
    let mut hasher = Sha256::new();
    let mut count = 0u64;
    loop {
        let n = read_full(&mut f, &mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        count += n as u64;
    }
    Ok((to_hex(&hasher.finalize()), count))
}

/// A reader thread fills three 1 MiB buffers in turn while this thread
/// hashes the previous ones.
fn hash_overlapped(mut f: File) -> io::Result<(String, u64)> {
    use std::sync::mpsc::sync_channel;
    const BUFFERS: usize = 3;
    let (full_tx, full_rx) = sync_channel::<(Vec<u8>, usize)>(BUFFERS);
    let (empty_tx, empty_rx) = sync_channel::<Vec<u8>>(BUFFERS);
    for _ in 0..BUFFERS {
        empty_tx
            .send(vec![0u8; READ_SIZE])
            .expect("the channel has room");
    }
    std::thread::scope(|s| {
        let reader = s.spawn(move || -> io::Result<()> {
            // Ends when the hashing side is gone or at EOF (dropping
            // `full_tx` ends the hashing loop).
            for mut buf in empty_rx {
                let n = read_full(&mut f, &mut buf)?;
                if n == 0 || full_tx.send((buf, n)).is_err() {
                    break;
                }
            }
            Ok(())
        });
        let mut hasher = Sha256::new();
        let mut count = 0u64;
        for (buf, n) in full_rx {
            hasher.update(&buf[..n]);
            count += n as u64;
            let _ = empty_tx.send(buf);
        }
        drop(empty_tx);
        match reader.join() {
            Ok(Ok(())) => Ok((to_hex(&hasher.finalize()), count)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::other("the file reader thread panicked")),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    fn temp_path(name: &str) -> std::path::PathBuf {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        std::env::temp_dir().join(format!("berth-hashio-{name}-{}-{t}", std::process::id()))
    }

    #[test]
    fn writer_and_reader_hash_and_count() {
        let mut w = HashWriter::new(Vec::new());
        w.write_all(b"a").unwrap();
        w.write_all(b"bc").unwrap();
        assert_eq!(w.count(), 3);
        let (v, hex, n) = w.finish();
        assert_eq!((v.as_slice(), hex.as_str(), n), (&b"abc"[..], ABC, 3));

        let (_, hex, n) = HashWriter::new(io::sink()).finish();
        assert_eq!((hex.as_str(), n), (EMPTY, 0));

        let mut r = HashReader::new(&b"abc"[..]);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        let (_, hex, n) = r.finish();
        assert_eq!((hex.as_str(), n), (ABC, 3));
    }

    #[test]
    fn file_hash() {
        let p = temp_path("small");
        std::fs::write(&p, b"abc").unwrap();
        let got = sha256_file(&p).unwrap();
        std::fs::remove_file(&p).unwrap();
        assert_eq!(got, (ABC.to_string(), 3));
        // Large enough for the overlapped reader, not a multiple of 1 MiB.
        let big: Vec<u8> = (0..9 * READ_SIZE + 7).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &big).unwrap();
        let got = sha256_file(&p).unwrap();
        assert_eq!(got, (to_hex(&Sha256::digest(&big)), big.len() as u64));
        std::fs::remove_file(&p).unwrap();
        let err = sha256_file(&p).unwrap_err();
        assert!(err.msg.contains("computing the sha256 of"), "{err}");
    }

    /// `cargo test --release --lib archive::hashio -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn bench_sha256_file_1gib() {
        let p = temp_path("bench");
        {
            let mut f = std::io::BufWriter::new(File::create(&p).unwrap());
            let mut block = vec![0u8; 1 << 20];
            let mut x = 0x9e3779b97f4a7c15u64;
            for _ in 0..1024 {
                for b in block.iter_mut() {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    *b = x as u8;
                }
                f.write_all(&block).unwrap();
            }
        }
        // Once to warm the page cache, then measure.
        sha256_file(&p).unwrap();
        let t = Instant::now();
        let (_, n) = sha256_file(&p).unwrap();
        let secs = t.elapsed().as_secs_f64();
        std::fs::remove_file(&p).unwrap();
        println!(
            "sha256_file: {n} bytes in {secs:.3} s = {:.2} GB/s",
            n as f64 / secs / 1e9
        );
    }
}
