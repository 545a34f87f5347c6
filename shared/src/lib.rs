//! Core of the two-factor authentication service: domain rules, ports and their adapters.
//!
//! The Lambda binaries in `functions/` and the tools in `tools/` are thin shells over this crate.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod api;
pub mod aws;
pub mod code;
pub mod config;
pub mod crypto;
pub mod error;
pub mod http;
pub mod lambda;
pub mod model;
pub mod phone;
pub mod ports;
pub mod qr;
pub mod routes;
pub mod secret;
pub mod service;
pub mod store;
pub mod templates;
pub mod testing;
pub mod totp;
