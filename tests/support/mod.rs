//! Shared test support: a real engine, a per-test cleanup scope, test images
//! imported through berth's own client, the lightwave-sim fixtures.
//! Included by tests (`mod support;`) and by examples (`#[path]`).
#![allow(dead_code)]

pub mod appliance;
pub mod cli;
pub mod dockerd;
pub mod engine;
pub mod fakedaemon;
pub mod fixtures;
pub mod images;
pub mod journal;
pub mod scene;
pub mod stage;
pub mod tmpfs;
pub mod tools;
pub mod tree;
