//! Everything both hosts share: the HTTP surface, auth, request parsing, the provider shape,
//! failover and its verdicts, streaming. It names no provider and no routes file: the generated
//! `crate::routes` ties those to it.

pub mod accounting;
pub mod auth;
pub mod budget;
pub mod clients;
pub mod completion;
pub mod cost;
pub mod entropy;
pub mod error;
pub mod failover;
pub mod fields;
pub mod handler;
pub mod health;
pub mod host;
pub mod http;
pub mod limits;
pub mod log;
pub mod meter;
pub mod metrics;
pub mod pages;
pub mod provider;
pub mod recent;
pub mod record;
pub mod redact;
pub mod request;
pub mod route;
pub mod search;
pub mod secrets;
pub mod status;
pub mod stream;
pub mod usage;
pub mod verdict;

pub use handler::handle;
