//! Front doors: the client-facing APIs besides OpenAI Chat Completions, each translated to and
//! from the OpenAI shape the core and the providers speak.

pub mod anthropic;
