//! The client request parser: any bytes into `ChatRequest::parse`; what parses must write back
//! out as JSON with the route's model in place of the client's; where the client's own bytes
//! go, they must parse to exactly what the proxy parsed.
#![no_main]

use ai_worker_proxy::core::request::ChatRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = ChatRequest::parse(data) {
        let out = request.to_json_with_model("fuzz-model");
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["model"], "fuzz-model");
        assert_eq!(value.as_object().unwrap().len(), request.body().len());
        // The client's bytes say exactly what was parsed. (Re-serialised floats may come back
        // an ulp off: serde_json parses without `float_roundtrip`.)
        if request.sent().is_some() {
            let mut expected = request.body().clone();
            expected.insert("model".into(), "fuzz-model".into());
            assert_eq!(value, serde_json::Value::Object(expected));
        }
    }
});
