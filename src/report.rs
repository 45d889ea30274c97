//! How the library tells whoever runs it what it is doing, without
//! writing to the terminal itself: the caller passes a [`Reporter`] in
//! (the CLI's prints `berth: ...` lines and draws meters on a terminal;
//! [`SILENT`] says nothing). Results, warnings and errors are returned,
//! never printed.

use std::fmt;

/// Where step lines and progress meters go.
pub trait Reporter: Sync {
    /// A step of a long operation ("stopping lw"), as it begins.
    fn step(&self, msg: &str);
    /// Whether byte meters are shown at all. When not, no meter thread
    /// runs and work that only feeds a meter (volume sizes) is skipped.
    fn meters(&self) -> bool;
    /// Show a meter's line (`label`: what is being done, `line`: how far),
    /// replacing the previous one; called a few times a second.
    fn meter(&self, label: &str, line: &str);
    /// The meter is gone: take its line away.
    fn meter_done(&self);
}

/// A reporter that says nothing (library callers that only want results).
pub struct Silent;

pub static SILENT: Silent = Silent;

impl Reporter for Silent {
    fn step(&self, _: &str) {}
    fn meters(&self) -> bool {
        false
    }
    fn meter(&self, _: &str, _: &str) {}
    fn meter_done(&self) {}
}

// Options structs that carry a reporter keep their derived Debug.
impl fmt::Debug for dyn Reporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Reporter")
    }
}
