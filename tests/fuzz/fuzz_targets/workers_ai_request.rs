//! Workers-AI request translation: a client request (after a byte that picks the target) into the upstream body, which must be a JSON object.
#![no_main]

use ai_worker_proxy::providers::workers_ai::WorkersAi;
use ai_worker_proxy_fuzz::{pipeline, targets};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pipeline::translate_request::<WorkersAi>(&targets::WORKERS_AI, data);
});
