//! The routing table, generated at compile time from routes.toml (or `$ROUTES_TOML`).
//!
//! Run `cargo expand routes` to read what was generated: `AUTH_TOKEN_SECRET`, a `static`
//! slice `ROUTES`, and `find`, a `match` from model name to route.

ai_worker_proxy_macros::routes!();
