//! A one-line progress meter on a terminal (stderr), silent otherwise.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Counts bytes; a background thread redraws the line while it lives.
pub struct Meter {
    pub bytes: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Meter {
    /// `enabled`: draw at all (callers pass !json); drawing also needs a TTY.
    pub fn start(label: String, enabled: bool) -> Meter {
        let bytes = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let thread = (enabled && std::io::stderr().is_terminal()).then(|| {
            let (b, d) = (bytes.clone(), done.clone());
            std::thread::spawn(move || {
                let t0 = Instant::now();
                while !d.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(200));
                    let n = b.load(Ordering::Relaxed);
                    let rate = n as f64 / t0.elapsed().as_secs_f64().max(1e-3);
                    eprint!("\r\x1b[K{label}  {}  {}/s", human(n as f64), human(rate));
                    let _ = std::io::stderr().flush();
                }
                eprint!("\r\x1b[K");
            })
        });
        Meter {
            bytes,
            done,
            thread,
        }
    }

    pub fn add(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }

    /// A reader that counts what passes into this meter and stops at a
    /// signal (the data paths' one place to notice Ctrl-C).
    pub fn reader<R>(&self, inner: R) -> Metered<R> {
        Metered {
            inner,
            bytes: self.bytes.clone(),
        }
    }
}

pub struct Metered<R> {
    inner: R,
    bytes: Arc<AtomicU64>,
}

impl<R: std::io::Read> std::io::Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        crate::cancel::check().map_err(crate::error::Error::into_io)?;
        let n = self.inner.read(buf)?;
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn human(n: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}
