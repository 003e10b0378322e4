//! The Messages front door's requests: a client's Messages body (after a byte that picks the target, see `pipeline::translate_messages_request`) through `front::anthropic::chat_request`, then into any provider's upstream body, which must be a JSON object; to an `anthropic` target, the client's own body with only `model` and what Anthropic must not see changed.
#![no_main]

use ai_worker_proxy_fuzz::pipeline;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pipeline::translate_messages_request(data);
});
