//! An OpenAI-compatible gateway for many LLM providers, deployable as a Cloudflare Worker.
//!
//! `core` holds routing, failover and the HTTP surface; `providers` holds each upstream's
//! wire format; `hosts` adapts the core to the Workers runtime and to a native tokio server.
//! The routing table is compiled from routes.toml into [`routes`].

pub mod core;
pub mod hosts;
pub mod providers;
pub mod routes;
pub mod sse;
