//! The client request parser: any bytes into `ChatRequest::parse`; what parses must write back
//! out as JSON with the route's model in place of the client's.
#![no_main]

use ai_worker_proxy::core::request::ChatRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = ChatRequest::parse(data) {
        let out = request.to_json_with_model("fuzz-model");
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["model"], "fuzz-model");
        assert_eq!(value.as_object().unwrap().len(), request.body().len());
    }
});
