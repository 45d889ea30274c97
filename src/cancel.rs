//! Cooperative cancellation: SIGINT/SIGTERM set a flag that the data path
//! and the upgrade steps check, so berth stops at a point where it can
//! clean up (remove a partial backup, restart what it stopped).

use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Kind, Result};

static CANCELLED: AtomicBool = AtomicBool::new(false);

pub fn cancel() {
    CANCELLED.store(true, Ordering::SeqCst);
}

/// Forget a signal that has been acted on (a rollback must run to its end).
pub(crate) fn reset() {
    CANCELLED.store(false, Ordering::SeqCst);
}

pub(crate) fn is_cancelled() -> bool {
    CANCELLED.load(Ordering::SeqCst)
}

/// Err(Interrupted) once a signal arrived.
pub(crate) fn check() -> Result<()> {
    if is_cancelled() {
        Err(Error::new(Kind::Interrupted, "interrupted by a signal"))
    } else {
        Ok(())
    }
}

/// Install the handlers (inside a tokio runtime).
pub fn install() {
    use tokio::signal::unix::{signal, SignalKind};
    for kind in [SignalKind::interrupt(), SignalKind::terminate()] {
        if let Ok(mut s) = signal(kind) {
            tokio::spawn(async move {
                while s.recv().await.is_some() {
                    cancel();
                }
            });
        }
    }
}
