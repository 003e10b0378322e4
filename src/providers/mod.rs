//! Each upstream's wire format, as one [`Provider`](crate::core::provider::Provider) type per
//! format: [`openai::OpenAi`] (OpenAI and every OpenAI-compatible API, passed through),
//! [`anthropic::Anthropic`], [`google::Google`] and [`workers_ai::WorkersAi`] (translated both
//! ways). routes.toml's provider names map to these types in the schema crate's registry
//! (`macros/config/src/providers.rs`); the generated routing table calls them, and nothing
//! else does, so a provider no route names is not compiled in.
//!
//! [`openai_input`] reads the OpenAI request fields the translating providers share;
//! [`tool_ids`] makes the tool-call ids one provider minted fit another.

pub mod anthropic;
pub mod google;
pub mod openai;
pub mod openai_input;
pub mod openai_token;
pub mod output_limit;
#[cfg(test)]
mod test_support;
pub mod tool_ids;
pub mod workers_ai;
