//! The shared harness of the fuzz targets in `fuzz_targets/`: each target is a few lines that
//! pick what to fuzz, and everything they share lives here.
//!
//! * [`input`]: how a target reads its flag bytes and cuts a body into network chunks.
//! * [`targets`]: the routes.toml targets the translators run against.
//! * [`pipeline`]: a provider's translator driven exactly as the core drives it (commit point,
//!   then the client body), synchronously.
//! * [`check`]: the invariants on what the client receives (valid SSE with JSON data, a JSON
//!   body), read the way the OpenAI SDKs read them.
//!
//! Panics here are the point: libFuzzer reports any panic, failed assertion or overflow as a
//! crash with its input.

pub mod check;
pub mod input;
pub mod pipeline;
pub mod targets;
