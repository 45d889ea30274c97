//! `berth delta PATH` and `berth idle` (internal, hidden): run by berth
//! inside a helper container (see archive::delta and archive::helper).
//! `delta` writes the entries changed since a moment as a tar to stdout
//! and each removed path as a JSON line to stderr; `idle` keeps the helper
//! running so that berth can exec `delta` in it, once per path.

use std::io::{BufReader, Write};
use std::path::PathBuf;

use berth::archive::delta::{self, Engine, Since};
use berth::archive::index::read_index;
use berth::error::{Context, Result};

#[derive(clap::Args)]
pub struct Args {
    /// Where the volume is mounted.
    path: PathBuf,
    /// The root entry's name in the engine's archive ("vmware").
    #[arg(long, allow_hyphen_values = true)]
    name: String,
    /// Nanoseconds since the epoch: entries whose ctime is at or after it.
    #[arg(long)]
    since: i128,
    /// The pre-copy's content index (gzip or plain JSON lines).
    #[arg(long)]
    index: PathBuf,
    /// A mountpoint (relative to PATH) the engine's archive left out (repeatable).
    #[arg(long)]
    exclude: Vec<PathBuf>,
    /// Write the entries as Podman's archive names them (every extended
    /// attribute, mtimes rounded) rather than as Docker's.
    #[arg(long)]
    podman: bool,
    /// Name every entry as owned by UID:GID, as Podman's archive does.
    #[arg(long, value_parser = parse_owner)]
    owner: Option<(u32, u32)>,
    /// Write no tar: only the removed paths and the counts (how much a
    /// delta would carry).
    #[arg(long)]
    count: bool,
}

fn parse_owner(s: &str) -> std::result::Result<(u32, u32), String> {
    let bad = || format!("{s:?} is not UID:GID");
    let (u, g) = s.split_once(':').ok_or_else(bad)?;
    Ok((u.parse().map_err(|_| bad())?, g.parse().map_err(|_| bad())?))
}

impl Args {
    pub fn run(self) -> Result<()> {
        let f =
            std::fs::File::open(&self.index).ctx(format!("opening {}", self.index.display()))?;
        let before = read_index(BufReader::new(f))?;
        let o = Since {
            root: self.path,
            name: self.name,
            since_ns: self.since,
            exclude: self.exclude,
            engine: if self.podman {
                Engine::Podman
            } else {
                Engine::Docker
            },
            owner: self.owner,
        };
        let mut err = std::io::stderr().lock();
        let out: Box<dyn Write> = if self.count {
            Box::new(std::io::sink())
        } else {
            Box::new(std::io::stdout().lock())
        };
        let c = delta::changes(&o, &before, out, |p| {
            let line = serde_json::json!({ "removed": p });
            writeln!(err, "{line}").ctx("writing to stderr")
        })?;
        let line =
            serde_json::json!({ "walked": c.walked, "changed": c.changed, "bytes": c.bytes });
        writeln!(err, "{line}").ctx("writing to stderr")
    }
}

/// `berth idle`: wait to be stopped. As a container's first process it
/// gets no default action for SIGTERM, so it exits on it (and SIGINT) by
/// itself: an engine that stops a helper before removing it (Podman 5
/// does, even when forced) would otherwise wait its whole stop timeout,
/// ten seconds of downtime.
pub fn idle() -> ! {
    extern "C" fn leave(_: libc::c_int) {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(0) }
    }
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: installs a handler that only calls _exit.
        unsafe { libc::signal(sig, leave as *const () as libc::sighandler_t) };
    }
    loop {
        std::thread::park();
    }
}
