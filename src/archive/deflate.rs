//! Which deflate back end compresses a chunk, and how one run of blocks is
//! made with each: the seam between `pargz` (chunks, threads, one gzip
//! member) and the compressors.
//!
//! Measured on this project's realistic mix (967 MiB: the machine's
//! executables and libraries plus 20,000 C headers; one thread, 1 MiB
//! chunks, each its own stream ended by a sync flush; CPU seconds; `just
//! bench-deflate` repeats it):
//!
//! | back end, level | CPU s | size |
//! |---|---|---|
//! | zlib-rs 1 | 6.35 | 448.2 MiB |
//! | zlib-rs 2 | 12.23 | 371.1 MiB |
//! | zlib-rs 3 | 15.39 | 357.1 MiB |
//! | zlib-rs 6 | 21.29 | 345.5 MiB |
//! | ISA-L 1 | 3.04 | 384.5 MiB |
//! | ISA-L 2 | 3.47 | 379.2 MiB |
//! | ISA-L 3 | 4.38 | 374.1 MiB |
//!
//! So the default is ISA-L 3 (zlib-rs 2's size, 2.8x less CPU), fast is
//! ISA-L 1 (smaller AND faster than zlib-rs 1), and best stays zlib-rs 9,
//! which ISA-L has no level for. libdeflate was also tried (previous
//! session): its whole-buffer API cannot end a run with a sync flush.

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
    pub fn xfl(self) -> u8 {
        match self {
            Method::Zlib(9) => 2,
            Method::Zlib(1) | Method::Igzip(0 | 1) => 4,
            _ => 0,
        }
    }

    /// The back end's own level.
    pub fn level(self) -> u32 {
        match self {
            Method::Igzip(l) | Method::Zlib(l) => l,
        }
    }

    /// Whether the chunk is worth testing for incompressible blocks (which
    /// are then stored without deflating them): not when storing anyway.
    pub fn compresses(self) -> bool {
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
pub enum Deflater {
    Igzip(Igzip),
    Zlib(Compress),
}

impl Deflater {
    pub fn new(method: Method) -> Self {
        match method {
            Method::Igzip(level) => Deflater::Igzip(Igzip::new(level)),
            Method::Zlib(level) => Deflater::Zlib(Compress::new(Compression::new(level.min(9)), false)),
        }
    }

    /// Deflates `data` as a fresh raw deflate stream (it may follow stored
    /// blocks or another chunk, which its back-references must not reach
    /// into: they are not in this worker's window), appended to `out`. It
    /// ends with a sync flush: an empty stored block, on a byte boundary,
    /// final-block bit clear, so that more blocks can follow.
    pub fn sync_run(&mut self, data: &[u8], out: &mut Vec<u8>) {
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
