//! An OpenAI-compatible gateway for many LLM providers, deployable as a Cloudflare Worker.
//!
//! The layers, each using only the ones after it: `hosts` adapts the proxy to the Workers
//! runtime and to a native tokio server; [`routes`], generated from routes.toml, binds each
//! route's targets to their provider types; `providers` holds one [`core::provider::Provider`]
//! per wire format; `core` holds the HTTP surface, failover, verdicts and streaming, and names
//! no provider.

pub mod core;
pub mod front;
pub mod hosts;
pub mod providers;
pub mod routes;
pub mod sse;
