//! Gemini streams translated: upstream SSE bytes cut into arbitrary chunks (after a flag byte and a chunking byte, see `pipeline`) into the client's SSE.
#![no_main]

use ai_worker_proxy::providers::google::Google;
use ai_worker_proxy_fuzz::{check, pipeline, targets};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check::translated_stream(&pipeline::run::<Google>(&targets::GOOGLE, data, true));
});
