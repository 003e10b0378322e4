//! The Messages front door's streams: OpenAI SSE bytes cut into arbitrary chunks (after a flag byte and a chunking byte, see `pipeline`) through the OpenAI pass-through and `front::anthropic::stream`, into the client's Anthropic events.
#![no_main]

use ai_worker_proxy::providers::openai::OpenAi;
use ai_worker_proxy_fuzz::{check, pipeline, targets};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check::anthropic_stream(&pipeline::run_messages::<OpenAi>(
        &targets::OPENAI,
        data,
        true,
    ));
});
