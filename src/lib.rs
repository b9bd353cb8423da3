//! tagbinder: a Kubernetes operator that manages cloud resource tags declaratively.
//!
//! Layers (DESIGN.md section 2): [`api`] (CRD types) -> [`plan`] (pure diff) -> [`cloud`]
//! (tag APIs) -> [`reconcile`] (one pass) -> hosts: [`cli`] and the controller. The
//! [`emulator`] serves both clouds' tag APIs for tests, benchmarks and the embedded cloud.

pub mod allocator;
pub mod api;
pub mod calls;
pub mod cli;
pub mod cloud;
pub mod controller;
pub mod emulator;
pub mod http_server;
pub mod input;
pub mod plan;
pub mod policy;
pub mod reconcile;
pub mod render;
pub mod tags;
pub mod yaml11;
