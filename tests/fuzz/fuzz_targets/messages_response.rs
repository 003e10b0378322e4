//! The Messages front door's whole answers: an OpenAI 200 body (after a flag byte and a chunking byte, see `pipeline`) through the OpenAI pass-through and `front::anthropic::response`, into the client's Anthropic `Message`.
#![no_main]

use ai_worker_proxy::providers::openai::OpenAi;
use ai_worker_proxy_fuzz::{check, pipeline, targets};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check::anthropic_message(&pipeline::run_messages::<OpenAi>(
        &targets::OPENAI,
        data,
        false,
    ));
});
