//! The routing table, generated at compile time from routes.toml (or `$ROUTES_TOML`): what ties
//! the core to the providers.
//!
//! Run `cargo expand routes` to read what was generated: `AUTH_TOKEN_SECRET`, a `static` slice
//! `ROUTES` of the schema's own types, and `Table`, whose `complete` is a `match` with one arm
//! per route giving a `static` slice of `prepare_with::<P>`, one per target in order, `P` being
//! the target's provider type, which `Failover::target` then tries in turn. Only the
//! providers routes.toml names are instantiated.

ai_worker_proxy_macros::routes!();
