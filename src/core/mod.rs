//! Everything both hosts share: the HTTP surface, auth, request parsing, routing, failover.

pub mod auth;
pub mod completion;
pub mod error;
pub mod failover;
pub mod handler;
pub mod host;
pub mod http;
pub mod pages;
pub mod request;
pub mod route;
pub mod stream;

pub use handler::handle;
