//! What the controller's end-to-end suite runs on: an emulated API server, the built binary
//! in the background, fixtures, and a small concurrent harness.

pub mod apiserver;
pub mod fixtures;
pub mod processes;
pub mod runner;
