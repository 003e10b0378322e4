//! Anthropic streams translated: upstream SSE bytes cut into arbitrary chunks (after a flag byte and a chunking byte, see `pipeline`) into the client's SSE.
#![no_main]

use ai_worker_proxy::providers::anthropic::Anthropic;
use ai_worker_proxy_fuzz::{check, pipeline, targets};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check::translated_stream(&pipeline::run::<Anthropic>(&targets::ANTHROPIC, data, true));
});
