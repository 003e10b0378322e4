//! The stream translators compiled to wasm, for `benches/wasm/run.sh`, which times them in
//! Node's V8 (the engine workerd runs the Worker in). Two figures per translator:
//! [`Bench::inside`] loops over one event inside the module (the translator's own cost in wasm,
//! to compare with `cargo bench --bench core` natively); [`Bench::chunk`] is called from
//! JavaScript once per event with the event's bytes, copied in and the client's bytes copied out,
//! as the Worker's `Translation.chunk` is for every upstream chunk of a translated stream.
//! Natively this example is empty.

#[cfg(target_arch = "wasm32")]
#[path = "../fixtures/mod.rs"]
mod fixtures;

#[cfg(target_arch = "wasm32")]
mod wasm {
    use ai_worker_proxy::core::stream::Translate;
    use ai_worker_proxy::front::anthropic::stream as front_stream;
    use ai_worker_proxy::providers::anthropic::stream::StreamTranslator;
    use ai_worker_proxy::providers::google;
    use ai_worker_proxy::providers::openai::PassThrough;
    use bytes::Bytes;
    use wasm_bindgen::prelude::*;

    use super::fixtures::{Identity, CHUNK, CLAUDE_DELTA, CLAUDE_START, GEMINI_EVENT};

    /// One translator, fed one kind of event again and again.
    #[wasm_bindgen]
    pub struct Bench {
        translator: Box<dyn Translate>,
        event: Bytes,
    }

    #[wasm_bindgen]
    impl Bench {
        /// `which`: `pass-through` (an OpenAI chunk, relayed), `anthropic` (a `text_delta`
        /// event to an OpenAI chunk), `gemini` (a text event to an OpenAI chunk), or
        /// `front-anthropic` (an OpenAI chunk to an Anthropic `content_block_delta`, the
        /// Messages front door).
        #[wasm_bindgen(constructor)]
        pub fn new(which: &str) -> Result<Bench, JsError> {
            let (mut translator, start, event): (Box<dyn Translate>, &str, &str) = match which {
                "pass-through" => (Box::new(PassThrough::new(true)), "", CHUNK),
                "anthropic" => (
                    Box::new(StreamTranslator::new(1_700_000_000, true, false)),
                    CLAUDE_START,
                    CLAUDE_DELTA,
                ),
                "gemini" => (
                    Box::new(google::stream::StreamTranslator::new(
                        1_700_000_000,
                        "gemini-2.5-flash",
                        true,
                    )),
                    "",
                    GEMINI_EVENT,
                ),
                "front-anthropic" => (
                    front_stream::stream_translator(
                        Box::new(Identity),
                        front_stream::StreamContext { input_tokens: 9 },
                    ),
                    // The first chunk writes message_start and content_block_start.
                    CHUNK,
                    CHUNK,
                ),
                _ => return Err(JsError::new(&format!("no translator `{which}`"))),
            };
            if !start.is_empty() {
                translator
                    .chunk(Bytes::from_static(start.as_bytes()))
                    .map_err(|e| JsError::new(&e.error.message))?;
            }
            Ok(Bench {
                translator,
                event: Bytes::from_static(event.as_bytes()),
            })
        }

        /// The upstream event, for [`Bench::chunk`].
        pub fn event(&self) -> Vec<u8> {
            self.event.to_vec()
        }

        /// Translates the event `n` times inside the module; the bytes written, so that the
        /// work cannot be optimised away.
        pub fn inside(&mut self, n: u32) -> Result<f64, JsError> {
            let mut written = 0;
            for _ in 0..n {
                let out = self
                    .translator
                    .chunk(self.event.clone())
                    .map_err(|e| JsError::new(&e.error.message))?;
                written += out.len();
            }
            Ok(written as f64)
        }

        /// The client's bytes for one upstream chunk, as the Worker's `Translation.chunk`.
        pub fn chunk(&mut self, upstream: &[u8]) -> Result<Vec<u8>, JsError> {
            self.translator
                .chunk(Bytes::copy_from_slice(upstream))
                .map(Vec::from)
                .map_err(|e| JsError::new(&e.error.message))
        }
    }
}
