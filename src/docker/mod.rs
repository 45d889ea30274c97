//! A small typed client for the Docker Engine API over its unix socket.
//!
//! It negotiates the API version once, prefixes every request with it,
//! streams request and response bodies (archives and images never sit in
//! memory whole) and turns every non-2xx answer into an [`Error`] that names
//! what berth was doing, the status and the daemon's own message.
//!
//! [`Error`]: crate::error::Error

pub mod body;
pub mod containers;
pub mod direct;
pub mod exec;
pub mod images;
pub mod model;
pub mod networks;
pub mod podman;
pub mod socket;
pub mod stream;
pub mod system;
pub mod transport;
pub mod volumes;

pub(crate) use model::short_id;
pub use transport::{ApiVersion, Docker, MAX_API, MIN_API};
