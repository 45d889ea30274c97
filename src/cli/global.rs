//! The flags every command takes, and the engine connection they name.

use berth::docker::{transport, Docker};
use berth::error::Result;

use crate::cli::output::Output;

#[derive(clap::Args)]
pub struct Global {
    /// Engine socket as unix:///path (default: $DOCKER_HOST, else /var/run/docker.sock).
    #[arg(long, global = true, value_name = "unix:///PATH")]
    pub host: Option<String>,
    /// One JSON document on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

impl Global {
    pub fn output(&self) -> Output {
        Output { json: self.json }
    }

    /// Connect to the engine --host (or $DOCKER_HOST) names.
    pub async fn connect(&self) -> Result<Docker> {
        Docker::connect(&transport::socket_from(self.host.as_deref())?).await
    }
}
