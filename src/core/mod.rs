//! Everything both hosts share: the HTTP surface, auth, request parsing, the provider shape,
//! failover and its verdicts, streaming. It names no provider and no routes file: the generated
//! `crate::routes` ties those to it.

pub mod auth;
pub mod budget;
pub mod completion;
pub mod error;
pub mod failover;
pub mod handler;
pub mod health;
pub mod host;
pub mod http;
pub mod log;
pub mod pages;
pub mod provider;
pub mod redact;
pub mod request;
pub mod route;
pub mod stream;
pub mod verdict;

pub use handler::handle;
