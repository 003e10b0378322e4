//! Whether an OpenAI stream event carries a token, read into small typed probes of the fields
//! the check looks at rather than a `serde_json::Value` (whose maps allocate and hash every
//! key): the check runs on every event before a stream's first token. Anything the probes do
//! not read as an ordinary chunk (an error, a field of an unexpected type, a repeated key) is
//! left to the `Value` reading in `openai::is_token`, which gives the same answer for
//! everything the probes do read.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// Whether `data` (one event's JSON) carries a token, `None` where only the full reading can
/// tell (the event may be an in-band error, or is not the chunk shape).
pub fn token(data: &str, usage_is_token: bool) -> Option<bool> {
    let chunk: Chunk = serde_json::from_str(data).ok()?;
    if chunk.error == Some(Shape::Object) {
        return None;
    }
    if usage_is_token && chunk.usage.is_some_and(Shape::filled) {
        return Some(true);
    }
    Some(chunk.choices.unwrap_or_default().iter().any(|choice| {
        choice.finish_reason.is_some_and(Shape::filled)
            || choice.delta.as_ref().is_some_and(|delta| {
                [
                    delta.content,
                    delta.reasoning_content,
                    delta.reasoning,
                    delta.refusal,
                    delta.tool_calls,
                    delta.function_call,
                    delta.audio,
                ]
                .into_iter()
                .flatten()
                .any(Shape::filled)
            })
    }))
}

#[derive(Deserialize)]
struct Chunk {
    error: Option<Shape>,
    usage: Option<Shape>,
    choices: Option<Vec<Choice>>,
}

#[derive(Deserialize)]
struct Choice {
    finish_reason: Option<Shape>,
    delta: Option<Delta>,
}

#[derive(Deserialize)]
struct Delta {
    content: Option<Shape>,
    reasoning_content: Option<Shape>,
    reasoning: Option<Shape>,
    refusal: Option<Shape>,
    tool_calls: Option<Shape>,
    function_call: Option<Shape>,
    audio: Option<Shape>,
}

/// What kind of JSON value a field holds, as far as "filled" goes (`null` is a missing field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Empty,
    Filled,
    Object,
}

impl Shape {
    /// Text or a list with something in it, an object, a number or a boolean.
    fn filled(self) -> bool {
        self != Shape::Empty
    }
}

impl<'de> Deserialize<'de> for Shape {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ShapeVisitor)
    }
}

struct ShapeVisitor;

impl<'de> Visitor<'de> for ShapeVisitor {
    type Value = Shape;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Shape, E> {
        Ok(Shape::Filled)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Shape, E> {
        Ok(Shape::Filled)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Shape, E> {
        Ok(Shape::Filled)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Shape, E> {
        Ok(Shape::Filled)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Shape, E> {
        Ok(if text.is_empty() {
            Shape::Empty
        } else {
            Shape::Filled
        })
    }

    fn visit_unit<E: de::Error>(self) -> Result<Shape, E> {
        Ok(Shape::Empty)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
        let mut shape = Shape::Empty;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            shape = Shape::Filled;
        }
        Ok(shape)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Shape::Object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_with_and_without_a_token() {
        let role = r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}"#;
        assert_eq!(token(role, true), Some(false));
        let hello = r#"{"choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null}]}"#;
        assert_eq!(token(hello, true), Some(true));
        let finish = r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#;
        assert_eq!(token(finish, true), Some(true));
        let tools = r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"call_1"}]}}]}"#;
        assert_eq!(token(tools, true), Some(true));
        let no_tools = r#"{"choices":[{"delta":{"tool_calls":[]}}]}"#;
        assert_eq!(token(no_tools, true), Some(false));
        let filter = r#"{"choices":[],"prompt_filter_results":[{"prompt_index":0}]}"#;
        assert_eq!(token(filter, true), Some(false));
        let usage = r#"{"choices":[],"usage":{"prompt_tokens":1}}"#;
        assert_eq!(token(usage, true), Some(true));
        assert_eq!(token(usage, false), Some(false));
        assert_eq!(
            token(r#"{"choices":[{"delta":{"audio":{"id":"a"}}}]}"#, true),
            Some(true)
        );
    }

    #[test]
    fn errors_and_odd_shapes_are_left_to_the_full_reading() {
        assert_eq!(token(r#"{"error":{"message":"slow down"}}"#, true), None);
        assert_eq!(token(r#"{"choices":{"0":{}}}"#, true), None);
        assert_eq!(token(r#"{"choices":[{"delta":"text"}]}"#, true), None);
        assert_eq!(token(r#"{"choices":[],"choices":[]}"#, true), None);
        assert_eq!(token("not json", true), None);
        // An `error` that is not an object is not an error event.
        assert_eq!(token(r#"{"error":null,"choices":[]}"#, true), Some(false));
    }
}
