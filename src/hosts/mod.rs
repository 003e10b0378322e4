//! The runtimes the core runs in. Each implements [`crate::core::host::Host`] and converts
//! its platform's request/response types at the boundary; no routing or translation here.

#[cfg(not(target_arch = "wasm32"))]
pub mod native;
#[cfg(target_arch = "wasm32")]
pub mod worker;
