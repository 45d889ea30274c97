//! berth's one table of exit statuses. Errors ([`crate::error::Kind`]),
//! upgrade runs ([`crate::upgrade::Summary`]), rollouts
//! ([`crate::rollout::state::Rollout`]) and rehearsals
//! ([`crate::rehearse::report::Report`]) each map onto it; the numbers are
//! part of the interface (scripts, Ansible, docs/) and never change.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Done (0).
    Success,
    /// Failed before the host was changed, or a removal failed (1).
    Failed,
    /// The command line or a file it names is unusable (2).
    Usage,
    /// The upgrade failed and the rollback restored everything, or the new
    /// version failed its rehearsal on a copy (3): the host is as it was.
    RolledBack,
    /// The rollback did not complete: manual action needed (4).
    RollbackIncomplete,
    /// A backup failed verification, or a restore read back different (5).
    Integrity,
    /// SIGINT/SIGTERM stopped berth at a safe point (130).
    Interrupted,
}

impl ExitStatus {
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Failed => 1,
            ExitStatus::Usage => 2,
            ExitStatus::RolledBack => 3,
            ExitStatus::RollbackIncomplete => 4,
            ExitStatus::Integrity => 5,
            ExitStatus::Interrupted => 130,
        }
    }

    pub fn is_success(self) -> bool {
        self == ExitStatus::Success
    }
}

/// As a number in JSON documents (`"exit_code": 3`).
impl Serialize for ExitStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::ExitStatus::*;

    #[test]
    fn the_numbers_stay() {
        let codes: Vec<u8> = [
            Success,
            Failed,
            Usage,
            RolledBack,
            RollbackIncomplete,
            Integrity,
            Interrupted,
        ]
        .iter()
        .map(|s| s.code())
        .collect();
        assert_eq!(codes, [0, 1, 2, 3, 4, 5, 130]);
    }
}
