//! A one-line progress meter, drawn by the caller's reporter (the CLI's
//! draws it on stderr when that is a terminal).
//!
//! With a total (the archive sizes from a manifest, the engine's volume
//! sizes on a backup) the line shows the percentage and an ETA too. A total
//! from the engine is an estimate (the tar stream is a little larger than
//! the files): the percentage stops at 99 until the work is done, and the
//! ETA is left out once the count passes the total.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::report::Reporter;

/// Counts bytes; a background thread redraws the line while it lives.
pub(crate) struct Meter {
    pub bytes: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Meter {
    /// A meter that expects `total` bytes (0: unknown), shown when `report`
    /// shows meters.
    pub(crate) fn with_total(label: String, report: &'static dyn Reporter, total: u64) -> Meter {
        let bytes = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let thread = report.meters().then(|| {
            let (b, d) = (bytes.clone(), done.clone());
            std::thread::spawn(move || {
                let t0 = Instant::now();
                while !d.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(200));
                    let n = b.load(Ordering::Relaxed);
                    report.meter(&label, &status(n, total, t0.elapsed()));
                }
                report.meter_done();
            })
        });
        Meter {
            bytes,
            done,
            thread,
        }
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

pub(crate) struct Metered<R> {
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

/// `12.0 MiB / 1.0 GiB  1%  3.0 MiB/s  ETA 5:38`, or without a total
/// `12.0 MiB  3.0 MiB/s`.
fn status(n: u64, total: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-3);
    let rate = n as f64 / secs;
    let speed = format!("{}/s", human(rate));
    if total == 0 {
        return format!("{}  {speed}", human(n as f64));
    }
    // An estimated total can be passed: never claim 100% before the end.
    let pct = (n as f64 * 100.0 / total as f64).min(99.0);
    let eta = if n < total && rate > 0.0 {
        format!("  ETA {}", clock((total - n) as f64 / rate))
    } else {
        String::new()
    };
    format!(
        "{} / {}  {pct:.0}%  {speed}{eta}",
        human(n as f64),
        human(total as f64)
    )
}

/// `m:ss`, or `h:mm:ss` from an hour up.
fn clock(secs: f64) -> String {
    let s = secs.round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_shows_total_percent_and_eta() {
        let mib = 1 << 20;
        let s = status(256 * mib, 1024 * mib, Duration::from_secs(2));
        assert_eq!(s, "256.0 MiB / 1.0 GiB  25%  128.0 MiB/s  ETA 0:06");
        // No total: count and rate only.
        assert_eq!(
            status(3 * mib, 0, Duration::from_secs(1)),
            "3.0 MiB  3.0 MiB/s"
        );
        // Past an estimated total: 99%, no ETA.
        assert_eq!(
            status(11 * mib, 10 * mib, Duration::from_secs(1)),
            "11.0 MiB / 10.0 MiB  99%  11.0 MiB/s"
        );
        assert_eq!(clock(3725.0), "1:02:05");
        assert_eq!(clock(59.6), "1:00");
    }

    #[test]
    fn nothing_is_drawn_when_disabled() {
        // A reporter that shows no meters (as with --json): no thread.
        let m = Meter::with_total("x".into(), &crate::report::SILENT, 100);
        assert!(m.thread.is_none());
    }
}
