//! The two key flags shared by several commands: `--encrypt-to` (backup,
//! upgrade, rehearse, rollout) and `--identity` (verify, restore, rollback,
//! resume), and their conversion into what `archive::seal` takes.

use std::path::PathBuf;

use berth::archive::seal::{self, Keys};
use berth::error::Result;

/// `--encrypt-to`: age encryption of the archives and indexes.
#[derive(clap::Args, Clone, Default)]
pub struct EncryptArg {
    /// Encrypt archives and indexes to an age X25519 recipient (age1...) or
    /// to each one in a recipients file (repeatable).
    #[arg(long = "encrypt-to", value_name = "RECIPIENT|FILE")]
    encrypt_to: Vec<String>,
}

impl EncryptArg {
    /// The recipients, recipients files read and every key checked.
    pub fn recipients(&self) -> Result<Vec<String>> {
        seal::recipients(&self.encrypt_to)
    }
}

/// `--identity`: the key that opens an encrypted backup.
#[derive(clap::Args)]
pub struct IdentityArg {
    /// An age identity file that opens an encrypted backup (repeatable).
    #[arg(long = "identity", value_name = "FILE")]
    identity: Vec<PathBuf>,
}

impl IdentityArg {
    /// The identities, read (none given: no keys).
    pub fn keys(&self) -> Result<Keys> {
        Keys::load_all(&self.identity)
    }
}
