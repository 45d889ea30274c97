//! SHA-256 and byte counts of whatever flows through a reader or writer.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{Context, Result};

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
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
pub struct HashWriter<W> {
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
    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
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
pub struct HashReader<R> {
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

    /// Bytes read so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
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

/// The lowercase hex sha256 and the size of a file, read in 1 MiB pieces.
pub fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let doing = || format!("computing the sha256 of {}", path.display());
    let mut f = File::open(path).ctx(doing())?;
    let mut buf = vec![0u8; 1 << 20];
    let mut hasher = Sha256::new();
    let mut count = 0u64;
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).ctx(doing()),
        };
        hasher.update(&buf[..n]);
        count += n as u64;
    }
    Ok((to_hex(&hasher.finalize()), count))
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
