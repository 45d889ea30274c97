//! Which deflate back end compresses a chunk, and how one run of blocks is
//! made with each: the seam between `pargz` (chunks, threads, one gzip
//! member) and the compressors.
//!
//! Measured on this project's realistic mix (this machine's executables and
//! libraries plus C headers; one thread, 1 MiB chunks, each its own stream
//! ended by a sync flush; CPU seconds; `just bench-deflate` repeats it):
//! 967 MiB on 2026-12-03, then 365 MiB with ISA-L 0 added on 2026-12-06.
//!
//! | back end, level | CPU s (967 MiB) | size | CPU s (365 MiB) | size |
//! |---|---|---|---|---|
//! | zlib-rs 1 | 6.35 | 448.2 MiB | 1.26 | 41.7% |
//! | zlib-rs 2 | 12.23 | 371.1 MiB | 2.35 | 34.3% |
//! | zlib-rs 3 | 15.39 | 357.1 MiB | 2.90 | 32.7% |
//! | zlib-rs 6 | 21.29 | 345.5 MiB | 5.00 | 31.4% |
//! | ISA-L 0 | | | 0.66 | 39.7% |
//! | ISA-L 1 | 3.04 | 384.5 MiB | 0.70 | 35.5% |
//! | ISA-L 2 | 3.47 | 379.2 MiB | 0.76 | 35.0% |
//! | ISA-L 3 | 4.38 | 374.1 MiB | 1.35 | 34.3% |
//!
//! So the default is ISA-L 2: within 2% of ISA-L 3's size for 44% less
//! CPU in the second run (ISA-L 3 is a slower matcher; 1 and 2 differ
//! only in their hash table). A whole backup of a 967 MiB volume takes
//! 5.2-5.6 CPU-s at ISA-L 2 against 7.1-8.0 at ISA-L 3, for a 1.4% larger
//! archive (docs/benchmark.md). Fast is ISA-L 1 (ISA-L 0 is 12% larger for
//! 6% less CPU), and best stays zlib-rs 9, which ISA-L has no level for.
//! libdeflate was also tried: its whole-buffer API cannot end a run with a
//! sync flush.

use flate2::{Compress, Compression, FlushCompress, Status};

use super::igzip::Igzip;

/// A deflate back end and its level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Intel ISA-L, levels 0 to 3.
    Igzip(u32),
    /// zlib-rs through flate2, levels 0 (store) to 9.
    Zlib(u32),
}

impl Method {
    /// The gzip header's XFL byte: 2 for the slowest level, 4 for the
    /// fastest (RFC 1952), 0 otherwise.
    pub(crate) fn xfl(self) -> u8 {
        match self {
            Method::Zlib(9) => 2,
            Method::Zlib(1) | Method::Igzip(0 | 1) => 4,
            _ => 0,
        }
    }

    /// The back end's own level.
    pub(crate) fn level(self) -> u32 {
        match self {
            Method::Igzip(l) | Method::Zlib(l) => l,
        }
    }

    /// Whether the chunk is worth testing for incompressible blocks (which
    /// are then stored without deflating them): not when storing anyway.
    pub(crate) fn compresses(self) -> bool {
        self != Method::Zlib(0)
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Method::Igzip(l) => write!(f, "isa-l {l}"),
            Method::Zlib(l) => write!(f, "zlib {l}"),
        }
    }
}

/// A reusable compressor of the chosen back end.
pub(crate) enum Deflater {
    Igzip(Igzip),
    Zlib(Compress),
}

impl Deflater {
    pub(crate) fn new(method: Method) -> Self {
        match method {
            Method::Igzip(level) => Deflater::Igzip(Igzip::new(level)),
            Method::Zlib(level) => {
                Deflater::Zlib(Compress::new(Compression::new(level.min(9)), false))
            }
        }
    }

    /// Deflates `data` as a fresh raw deflate stream (it may follow stored
    /// blocks or another chunk, which its back-references must not reach
    /// into: they are not in this worker's window), appended to `out`. It
    /// ends with a sync flush: an empty stored block, on a byte boundary,
    /// final-block bit clear, so that more blocks can follow.
    pub(crate) fn sync_run(&mut self, data: &[u8], out: &mut Vec<u8>) {
        match self {
            Deflater::Igzip(z) => z.sync_run(data, out),
            Deflater::Zlib(z) => zlib_sync_run(z, data, out),
        }
    }
}

fn zlib_sync_run(deflate: &mut Compress, data: &[u8], out: &mut Vec<u8>) {
    deflate.reset();
    let mut consumed = 0usize;
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(64 * 1024);
        }
        let before = deflate.total_in();
        let status = deflate
            .compress_vec(&data[consumed..], out, FlushCompress::Sync)
            .expect("deflate of an in-memory buffer cannot fail");
        consumed += (deflate.total_in() - before) as usize;
        // The flush is complete once all input is in and output space
        // is left over; BufError: nothing more to flush.
        let done = match status {
            Status::Ok => consumed == data.len() && out.capacity() > out.len(),
            Status::BufError => consumed == data.len(),
            Status::StreamEnd => true,
        };
        if done {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// CPU nanoseconds this thread has run (the first field of schedstat):
    /// unlike wall time, it barely moves when other work shares the cores.
    fn thread_cpu_ns() -> u64 {
        let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
        s.split_whitespace().next().unwrap().parse().unwrap()
    }

    /// Up to `limit` bytes of the regular files under `dirs`, in name order.
    fn machine_bytes(dirs: &[&str], limit: usize) -> Vec<u8> {
        let mut files = vec![];
        for d in dirs {
            let mut stack = vec![std::path::PathBuf::from(d)];
            while let Some(p) = stack.pop() {
                let Ok(rd) = std::fs::read_dir(&p) else {
                    continue;
                };
                for e in rd.flatten() {
                    let t = e.file_type().unwrap();
                    if t.is_dir() {
                        stack.push(e.path());
                    } else if t.is_file() {
                        files.push(e.path());
                    }
                }
            }
        }
        files.sort();
        let mut v = Vec::with_capacity(limit);
        for f in files {
            if v.len() >= limit {
                break;
            }
            if let Ok(mut h) = std::fs::File::open(&f) {
                let _ = h
                    .by_ref()
                    .take((limit - v.len()) as u64)
                    .read_to_end(&mut v);
            }
        }
        v
    }

    #[test]
    fn every_method_round_trips_through_one_stream() {
        let data = machine_bytes(&["/usr/include"], 3 << 20);
        for m in [
            Method::Igzip(1),
            Method::Igzip(2),
            Method::Igzip(3),
            Method::Zlib(2),
            Method::Zlib(9),
        ] {
            let mut d = Deflater::new(m);
            let mut out = vec![];
            for c in data.chunks(1 << 20) {
                d.sync_run(c, &mut out);
            }
            out.extend_from_slice(&[0x03, 0x00]);
            let mut back = vec![];
            flate2::read::DeflateDecoder::new(&out[..])
                .read_to_end(&mut back)
                .unwrap();
            assert!(back == data, "{m}");
            assert!(out.len() < data.len() / 2, "{m}: {} bytes", out.len());
        }
    }

    /// The table at the top of this file: `just bench-deflate`
    /// (`BENCH_DEFLATE_MB`, default 256, of this machine's executables,
    /// libraries and C headers).
    #[test]
    #[ignore]
    fn bench_deflate_methods() {
        let mb: usize = std::env::var("BENCH_DEFLATE_MB")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256);
        let mut data = machine_bytes(&["/usr/bin", "/usr/lib/x86_64-linux-gnu"], mb << 19);
        data.extend(machine_bytes(&["/usr/include"], mb << 19));
        let mib = data.len() as f64 / 1048576.0;
        println!("{mib:.0} MiB (executables, libraries, headers), 1 MiB chunks, one thread");
        for m in [
            Method::Zlib(1),
            Method::Zlib(2),
            Method::Zlib(3),
            Method::Zlib(6),
            Method::Igzip(0),
            Method::Igzip(1),
            Method::Igzip(2),
            Method::Igzip(3),
        ] {
            let mut d = Deflater::new(m);
            let mut out = Vec::with_capacity(2 << 20);
            let mut total = 0usize;
            let t = thread_cpu_ns();
            for c in data.chunks(1 << 20) {
                out.clear();
                d.sync_run(c, &mut out);
                total += out.len();
            }
            let s = (thread_cpu_ns() - t) as f64 / 1e9;
            println!(
                "{:<10} {s:6.2} CPU-s {:7.1} MiB/s {:7.1} MiB ({:.1}%)",
                m.to_string(),
                mib / s,
                total as f64 / 1048576.0,
                100.0 * total as f64 / data.len() as f64
            );
        }
    }
}
