//! The schema of routes.toml, defined once for both sides of the build.
//!
//! * [`schema`]: the types of a validated routes file — [`RoutesFile`], [`Route`], [`Target`],
//!   [`Via`]. The `routes!()` macro parses the file into these types and writes them back out as
//!   `static` data of the very same types, which the proxy's core reads at run time.
//! * [`prices`]: what common models cost, and [`price_of`], the price lookup the macro and the
//!   proxy share.
//! * [`providers`]: the registry of every provider routes.toml can name, with what each accepts
//!   and which type in the proxy's `providers` module speaks its wire format.
//! * [`parse`] (feature `parse`, on for the macro only): routes.toml text → [`RoutesFile`], or a
//!   [`Diagnostic`](diagnostic::Diagnostic) naming the file's line and column.
//!
//! This is a plain library, as askama splits its parser from its derive: the macro crate is a
//! thin shim over it, and everything here is unit-tested natively without a compiler.

#[cfg(feature = "parse")]
pub mod diagnostic;
#[cfg(feature = "parse")]
pub mod parse;
pub mod prices;
pub mod providers;
pub mod schema;

pub use prices::price_of;
pub use providers::ProviderSpec;
pub use schema::{
    Budget, BudgetPeriod, Client, CooldownPolicy, Deadlines, KeyStrategy, LimitsStore, LogConfig,
    LogFormat, LogLevel, Price, RequestLimits, RetryPolicy, Route, RoutesFile, ServerLimits,
    Target, TargetPolicy, Via,
};

#[cfg(test)]
mod tests;
