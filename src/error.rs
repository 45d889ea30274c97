//! One error type for the whole crate: a sentence that says what berth was
//! doing and why it failed, plus a kind that decides the exit status.

use std::fmt;

use crate::exit::ExitStatus;

/// What went wrong, as far as the exit code is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Anything that failed before the host was changed (exit 1).
    Failed,
    /// The command line or a file it names is unusable (exit 2).
    Usage,
    /// The rollback did not complete: manual action needed (exit 4).
    RollbackIncomplete,
    /// A backup failed verification, or a restore read back different (exit 5).
    Integrity,
    /// The Engine API answered with a non-2xx status.
    Api(u16),
    /// The engine could not be reached or the connection broke.
    Connection,
    /// SIGINT/SIGTERM stopped berth at a safe point (exit 130).
    Interrupted,
}

impl Kind {
    pub fn exit_status(self) -> ExitStatus {
        match self {
            Kind::Usage => ExitStatus::Usage,
            Kind::RollbackIncomplete => ExitStatus::RollbackIncomplete,
            Kind::Integrity => ExitStatus::Integrity,
            Kind::Interrupted => ExitStatus::Interrupted,
            Kind::Failed | Kind::Api(_) | Kind::Connection => ExitStatus::Failed,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Error {
    pub kind: Kind,
    pub msg: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: Kind, msg: impl Into<String>) -> Self {
        Error {
            kind,
            msg: msg.into(),
        }
    }
    pub fn failed(msg: impl Into<String>) -> Self {
        Self::new(Kind::Failed, msg)
    }
    pub fn usage(msg: impl Into<String>) -> Self {
        Self::new(Kind::Usage, msg)
    }
    pub fn integrity(msg: impl Into<String>) -> Self {
        Self::new(Kind::Integrity, msg)
    }
    /// The HTTP status, when the engine answered with an error status.
    pub fn status(&self) -> Option<u16> {
        match self.kind {
            Kind::Api(s) => Some(s),
            _ => None,
        }
    }
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
    /// Prefix the message with what the caller was doing; the kind stays.
    pub fn context(mut self, doing: impl fmt::Display) -> Self {
        self.msg = format!("{doing}: {}", self.msg);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        // An I/O error that carries a berth error inside (see `into_io`)
        // gives it back unchanged, so kinds survive a trip through Read.
        if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            let inner = e.into_inner().expect("checked above");
            return *inner.downcast::<Error>().expect("checked above");
        }
        Error::failed(e.to_string())
    }
}

impl Error {
    /// Wrap into an io::Error (for Read/Write impls) without losing the kind.
    pub(crate) fn into_io(self) -> std::io::Error {
        std::io::Error::other(self)
    }
}

/// `.ctx("reading X")?` on any result whose error converts into ours.
pub trait Context<T> {
    fn ctx(self, doing: impl fmt::Display) -> Result<T>;
}

impl<T, E: Into<Error>> Context<T> for std::result::Result<T, E> {
    fn ctx(self, doing: impl fmt::Display) -> Result<T> {
        self.map_err(|e| e.into().context(doing))
    }
}
