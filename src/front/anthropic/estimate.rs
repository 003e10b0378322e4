//! The proxy's own count of an Anthropic request's input tokens, for the answers that need
//! one before (or without) the upstream's: `message_start` of a translated stream, and a
//! translated answer that reports no usage. No tokenizer is shipped (each model family has its
//! own, and the Worker's size budget has no room for them), so this is an estimate.

use serde_json::{Map, Value};

use crate::core::fields::Field;

/// Tokens an image or a document is counted as, whatever its size.
const PER_MEDIA: u64 = 1_600;
/// Tokens each message adds for its role and framing.
const PER_MESSAGE: u64 = 3;
/// Tokens each tool definition adds for its framing.
const PER_TOOL: u64 = 8;

/// The proxy's documented estimate of an Anthropic request's input tokens.
///
/// `ceil(C / 4) + 3 × messages + 8 × tools + 1,600 × (images + documents)`, where `C` counts
/// the characters (Unicode scalar values) of: the system text; every `text` and `thinking`
/// block and the text of every `tool_result`; every `tool_use` input, serialised as JSON; and
/// each tool's name, description and serialised `input_schema`. Images and documents count
/// wherever they are, inside a `tool_result` too; a malformed request counts what can be read.
pub fn input_tokens(body: &Map<String, Value>) -> u64 {
    let mut count = Count::default();
    match body.field("system") {
        Some(Value::String(text)) => count.text(text),
        Some(Value::Array(blocks)) => blocks.iter().for_each(|b| count.block(b)),
        _ => {}
    }
    for message in body
        .field("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        count.fixed += PER_MESSAGE;
        count.content(message.field("content"));
    }
    for tool in body
        .field("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        count.fixed += PER_TOOL;
        for field in ["name", "description"] {
            if let Some(text) = tool.get(field).and_then(Value::as_str) {
                count.text(text);
            }
        }
        if let Some(schema) = tool.field("input_schema") {
            count.json(schema);
        }
    }
    count.chars.div_ceil(4) + count.fixed
}

/// Characters and fixed token counts met so far.
#[derive(Default)]
struct Count {
    chars: u64,
    fixed: u64,
}

impl Count {
    fn text(&mut self, text: &str) {
        self.chars += text.chars().count() as u64;
    }

    fn json(&mut self, value: &Value) {
        self.text(&value.to_string());
    }

    /// A message's or a tool result's `content`: a string or blocks.
    fn content(&mut self, content: Option<&Value>) {
        match content {
            Some(Value::String(text)) => self.text(text),
            Some(Value::Array(blocks)) => blocks.iter().for_each(|b| self.block(b)),
            _ => {}
        }
    }

    fn block(&mut self, block: &Value) {
        match block.field("type").and_then(Value::as_str) {
            Some("text") => self.field(block, "text"),
            Some("thinking") => self.field(block, "thinking"),
            Some("tool_use") => {
                if let Some(input) = block.field("input") {
                    self.json(input);
                }
            }
            Some("tool_result") => self.content(block.field("content")),
            Some("image" | "document") => self.fixed += PER_MEDIA,
            _ => {}
        }
    }

    fn field(&mut self, block: &Value, name: &str) {
        if let Some(text) = block.get(name).and_then(Value::as_str) {
            self.text(text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn estimate(body: Value) -> u64 {
        match body {
            Value::Object(map) => input_tokens(&map),
            _ => unreachable!("tests pass objects"),
        }
    }

    #[test]
    fn text_is_a_quarter_of_its_characters_rounded_up_plus_three_per_message() {
        assert_eq!(estimate(json!({"messages": []})), 0);
        // "Hello" = 5 characters → 2 tokens, + 3 for the message.
        let hello = json!({"messages": [{"role": "user", "content": "Hello"}]});
        assert_eq!(estimate(hello), 5);
        // Characters, not bytes: "héllo wörld" is 11 characters (13 bytes) → 3.
        let accents = json!({"messages": [{"role": "user", "content": "héllo wörld"}]});
        assert_eq!(estimate(accents), 6);
    }

    #[test]
    fn every_counted_part_of_a_realistic_request() {
        let body = json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "system": [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": [
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                    {"type": "text", "text": "Weather?"}
                ]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "Use the tool.", "signature": "x"},
                    {"type": "redacted_thinking", "data": "EmwKAhgB"},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [
                        {"type": "text", "text": "15 degrees"},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo"}}
                    ]},
                    {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0"}}
                ]}
            ],
            "tools": [{"name": "get_weather", "description": "Get the weather",
                       "input_schema": {"type": "object"}}]
        });
        let chars = "You are terse.".len()
            + "Weather?".len()
            + "Use the tool.".len()
            + r#"{"city":"Paris"}"#.len()
            + "15 degrees".len()
            + "get_weather".len()
            + "Get the weather".len()
            + r#"{"type":"object"}"#.len();
        assert_eq!(chars, 104);
        assert_eq!(estimate(body), 26 + 3 * 3 + 8 + 3 * 1_600);
    }

    #[test]
    fn a_malformed_request_counts_what_it_can() {
        assert_eq!(estimate(json!({})), 0);
        let odd = json!({"system": 5, "messages": [{"content": [{"text": "no type"}, 7]}, "x"],
                         "tools": [{"name": 1}]});
        assert_eq!(estimate(odd), 3 + 3 + 8);
    }
}
