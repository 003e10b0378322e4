//! An OpenAI `chat.completion` → the Anthropic `Message` the client asked for, and the
//! non-streaming body translator that does it after the provider's own translator.
//!
//! Also what it shares with [`super::stream`]: [`Any`] reads the little of a completion or
//! chunk that the translation needs, and the `push_*` functions write Anthropic's JSON straight
//! into the output, so neither direction builds a `serde_json::Value` tree (the Worker pays per
//! CPU millisecond, and each tree-walking accessor costs it code).

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

use crate::core::error::ErrorObject;
use crate::core::stream::{collect_whole, Translate};
use crate::core::usage::Metered;
use crate::core::verdict::UpstreamError;

use super::signature;
use super::tool_id;

/// The Anthropic `Message` for a whole `chat.completion` body (its first choice).
pub fn from_openai(completion: &[u8]) -> Result<Bytes, UpstreamError> {
    let text = std::str::from_utf8(completion);
    let value = match text {
        Ok(text) => parse(text),
        // Never JSON; serde_json's own reading says where it breaks.
        Err(_) => serde_json::from_slice::<Value>(completion).map(|_| Any::Other),
    }
    .map_err(|e| malformed(&format!("it is not JSON: {e}")))?;
    let Some((completion, choice)) = value
        .object()
        .and_then(|c| Some((c, c.choices.array().first()?)))
    else {
        return Err(malformed("it has no choices"));
    };
    let choice = choice.object();
    let message = choice.and_then(|c| c.message.object());

    let mut out = Vec::with_capacity(256);
    let openai_id = completion.id.str().unwrap_or_default();
    push_message_head(
        &mut out,
        openai_id,
        completion.model.str().unwrap_or_default(),
    );
    if let Some(thinking) = message.and_then(reasoning) {
        begin_block(&mut out, "thinking");
        out.extend_from_slice(b",\"thinking\":");
        push_str(&mut out, thinking);
        out.extend_from_slice(b",\"signature\":");
        push_str(&mut out, &signature::mint(thinking));
        out.push(b'}');
    }
    for field in message
        .map(|m| [&m.content, &m.refusal])
        .into_iter()
        .flatten()
    {
        let text = text_of(field);
        if !text.is_empty() {
            begin_block(&mut out, "text");
            out.extend_from_slice(b",\"text\":");
            push_str(&mut out, &text);
            out.push(b'}');
        }
    }
    let calls = message.map_or(&[][..], |m| m.tool_calls.array());
    for (n, call) in calls.iter().enumerate() {
        let call = call.object();
        let function = call.and_then(|c| c.function.object());
        begin_block(&mut out, "tool_use");
        out.extend_from_slice(b",\"id\":");
        match call.and_then(|c| c.id.str()).filter(|id| !id.is_empty()) {
            Some(id) => push_str(&mut out, &tool_id::encode(id)),
            None => push_str(&mut out, &tool_id::made(openai_id, n + 1)),
        }
        out.extend_from_slice(b",\"name\":");
        push_str(
            &mut out,
            function.and_then(|f| f.name.str()).unwrap_or_default(),
        );
        out.extend_from_slice(b",\"input\":");
        let arguments = match function.map(|f| &f.arguments) {
            Some(Any::Str(arguments)) => serde_json::from_str::<Value>(arguments).ok(),
            Some(Any::Object(_)) => text.ok().and_then(|body| arguments_sent(body, n)),
            _ => None,
        };
        push_input(&mut out, arguments.as_ref());
        out.push(b'}');
    }

    let finish = choice.and_then(|c| c.finish_reason.str());
    let usage = completion.usage.object();
    let prompt = usage.and_then(|u| u.prompt_tokens.u64()).unwrap_or(0);
    let cached = usage
        .and_then(|u| u.prompt_tokens_details.object())
        .and_then(|d| d.cached_tokens.u64())
        .unwrap_or(0);
    let output = usage.and_then(|u| u.completion_tokens.u64()).unwrap_or(0);
    let stop = stop_reason(finish, !calls.is_empty());
    push_message_tail(
        &mut out,
        Some(stop),
        (prompt.saturating_sub(cached), cached, output),
    );
    Ok(Bytes::from(out))
}

/// The Anthropic message id for an OpenAI response id: `msg_` and the id's characters that
/// Anthropic ids may hold (clients match ids against `[A-Za-z0-9_-]`).
pub(crate) fn message_id(openai: &str) -> String {
    let mut id = String::with_capacity(4 + openai.len());
    id.push_str("msg_");
    id.extend(
        openai
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-'),
    );
    id
}

/// The `stop_reason` for an OpenAI `finish_reason`. A model that called tools but said
/// `stop` (some OpenAI-compatible servers do) still waits for their results: `tool_use`.
pub(crate) fn stop_reason(finish: Option<&str>, tool_calls: bool) -> &'static str {
    match finish {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ if tool_calls => "tool_use",
        _ => "end_turn",
    }
}

/// The thinking text: `reasoning_content`, or `reasoning` as some OpenAI-compatible servers
/// (vLLM, OpenRouter) name it.
pub(crate) fn reasoning<'b>(message: &'b Object<'_>) -> Option<&'b str> {
    [&message.reasoning_content, &message.reasoning]
        .into_iter()
        .find_map(|text| text.str().filter(|t| !t.is_empty()))
}

/// A message field's text: a string, or the text of its parts.
fn text_of<'b>(value: &'b Any<'_>) -> Cow<'b, str> {
    match value {
        Any::Str(text) => Cow::Borrowed(text),
        Any::Array(parts) => parts
            .iter()
            .filter_map(|p| p.object()?.text.str())
            .collect::<String>()
            .into(),
        _ => Cow::Borrowed(""),
    }
}

/// Tool call `n`'s `arguments` as the body has them. For arguments sent as an object (a few
/// servers do), which have to go out as sent and which [`Object`] does not keep: the body is
/// read again, these being rare.
fn arguments_sent(body: &str, n: usize) -> Option<Value> {
    let body = serde_json::from_str::<Value>(body).ok()?;
    body.get("choices")?
        .get(0)?
        .get("message")?
        .get("tool_calls")?
        .get(n)?
        .get("function")?
        .get("arguments")
        .cloned()
}

/// A tool call's `input`: its arguments as an object. Anthropic clients need an object, and
/// "the model does not always generate valid JSON": anything else is `{}`. The arguments go
/// through a `Value` so that they come out as compact JSON, whatever spacing the model used.
fn push_input(out: &mut Vec<u8>, arguments: Option<&Value>) {
    match arguments.filter(|v| v.is_object()) {
        // Writing into a Vec cannot fail.
        Some(object) => {
            let _ = serde_json::to_writer(&mut *out, object);
        }
        None => out.extend_from_slice(b"{}"),
    }
}

fn malformed(why: &str) -> UpstreamError {
    UpstreamError::in_band(
        502,
        ErrorObject::new(
            format!("the upstream's answer is not a chat completion: {why}"),
            "upstream_error",
            None,
            Some("invalid_upstream_response"),
        ),
    )
}

/// The `Translate` for a non-streamed answer: `inner` (the provider's OpenAI translator) then from_openai on the whole result.
pub fn json_translator(inner: Box<dyn Translate>) -> Box<dyn Translate> {
    Box::new(JsonTranslator {
        inner,
        body: Vec::new(),
    })
}

/// Collects what the inner translator writes; nothing reaches the client before the end, so
/// every failure fails the attempt over and can be returned as it comes.
struct JsonTranslator {
    inner: Box<dyn Translate>,
    body: Vec<u8>,
}

impl JsonTranslator {
    fn collect(&mut self, out: Result<Bytes, UpstreamError>) -> Result<(), UpstreamError> {
        let out = out?;
        if let Some(failure) = self.inner.failure() {
            return Err(failure);
        }
        collect_whole(&mut self.body, &out)
    }
}

impl Translate for JsonTranslator {
    fn chunk(&mut self, upstream: Bytes) -> Result<Bytes, UpstreamError> {
        let out = self.inner.chunk(upstream);
        self.collect(out)?;
        Ok(Bytes::new())
    }

    fn end(&mut self) -> Result<Bytes, UpstreamError> {
        let out = self.inner.end();
        self.collect(out)?;
        from_openai(&std::mem::take(&mut self.body))
    }

    /// The upstream's own counts, as the inner translator read them.
    fn usage(&self) -> Option<Metered> {
        self.inner.usage()
    }
}

// ----------------------------------------------------------------------------- OpenAI, read

/// A JSON value of an OpenAI completion or chunk, read as leniently as `serde_json::Value`'s
/// `as_str`, `as_u64`, `as_object` and `as_array` read one: a value of another type is
/// [`Any::Other`], never an error. Objects keep only the fields the translators read
/// ([`Object`]), and strings borrow from the input unless escaped.
#[derive(Debug, Default)]
pub(crate) enum Any<'a> {
    /// Absent, null, a boolean, or a number that is not an unsigned integer.
    #[default]
    Other,
    /// A string.
    Str(Cow<'a, str>),
    /// An unsigned integer.
    Num(u64),
    /// An object.
    Object(Box<Object<'a>>),
    /// An array.
    Array(Vec<Any<'a>>),
}

impl<'a> Any<'a> {
    /// The string, if it is one.
    pub(crate) fn str(&self) -> Option<&str> {
        match self {
            Any::Str(text) => Some(text),
            _ => None,
        }
    }

    /// The unsigned integer, if it is one.
    pub(crate) fn u64(&self) -> Option<u64> {
        match self {
            Any::Num(n) => Some(*n),
            _ => None,
        }
    }

    /// The object, if it is one.
    pub(crate) fn object(&self) -> Option<&Object<'a>> {
        match self {
            Any::Object(object) => Some(object),
            _ => None,
        }
    }

    /// The array's items; none if it is not an array.
    pub(crate) fn array(&self) -> &[Any<'a>] {
        match self {
            Any::Array(items) => items,
            _ => &[],
        }
    }
}

/// The fields the translators read, of an object at any level of a completion or chunk: the
/// completion or chunk (`id` … `error`), a choice (`index` … `finish_reason`), a message or
/// delta (`reasoning_content` … `tool_calls`), a tool call (`index`, `id`, `function`), its
/// function (`name`, `arguments`), `usage` (`prompt_tokens` … `cached_tokens`), a content part
/// (`text`). One type for every level, because each type costs the Worker its own copy of
/// serde_json's object-reading code, and no name means two different things across levels.
#[derive(Debug, Default)]
pub(crate) struct Object<'a> {
    pub(crate) id: Any<'a>,
    pub(crate) model: Any<'a>,
    pub(crate) choices: Any<'a>,
    pub(crate) usage: Any<'a>,
    pub(crate) error: Any<'a>,
    pub(crate) index: Any<'a>,
    pub(crate) message: Any<'a>,
    pub(crate) delta: Any<'a>,
    pub(crate) finish_reason: Any<'a>,
    pub(crate) reasoning_content: Any<'a>,
    pub(crate) reasoning: Any<'a>,
    pub(crate) content: Any<'a>,
    pub(crate) refusal: Any<'a>,
    pub(crate) tool_calls: Any<'a>,
    pub(crate) function: Any<'a>,
    pub(crate) name: Any<'a>,
    pub(crate) arguments: Any<'a>,
    pub(crate) prompt_tokens: Any<'a>,
    pub(crate) completion_tokens: Any<'a>,
    pub(crate) prompt_tokens_details: Any<'a>,
    pub(crate) cached_tokens: Any<'a>,
    pub(crate) text: Any<'a>,
}

/// The keys [`Object`] keeps.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum Key {
    Id,
    Model,
    Choices,
    Usage,
    Error,
    Index,
    Message,
    Delta,
    FinishReason,
    ReasoningContent,
    Reasoning,
    Content,
    Refusal,
    ToolCalls,
    Function,
    Name,
    Arguments,
    PromptTokens,
    CompletionTokens,
    PromptTokensDetails,
    CachedTokens,
    Text,
    #[serde(other)]
    Other,
}

/// Reads an [`Any`] from JSON text (which must be all one value).
pub(crate) fn parse(text: &str) -> serde_json::Result<Any<'_>> {
    let mut reader = serde_json::Deserializer::from_str(text);
    let value = Read.deserialize(&mut reader)?;
    reader.end()?;
    Ok(value)
}

/// The reader of an [`Any`].
///
/// A visitor rather than derived types: a field of an unexpected type must read as
/// [`Any::Other`] (as `Value::as_str` and the like ignore it), not fail the chunk, and an
/// object's repeated key must replace the earlier value, as `serde_json::Map` does, where a
/// derived struct refuses it.
struct Read;

impl<'de> DeserializeSeed<'de> for Read {
    type Value = Any<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Any<'de>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Read {
    type Value = Any<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Any<'de>, E> {
        Ok(Any::Other)
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Any<'de>, E> {
        Ok(u64::try_from(n).map_or(Any::Other, Any::Num))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Any<'de>, E> {
        Ok(Any::Num(n))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Any<'de>, E> {
        Ok(Any::Other)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Any<'de>, E> {
        Ok(Any::Str(Cow::Owned(text.to_owned())))
    }

    fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Any<'de>, E> {
        Ok(Any::Str(Cow::Borrowed(text)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Any<'de>, E> {
        Ok(Any::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Any<'de>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Read)? {
            items.push(item);
        }
        Ok(Any::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Any<'de>, A::Error> {
        let mut object = Box::<Object<'de>>::default();
        let mut unread = Any::Other;
        while let Some(key) = map.next_key::<Key>()? {
            let field = match key {
                Key::Id => &mut object.id,
                Key::Model => &mut object.model,
                Key::Choices => &mut object.choices,
                Key::Usage => &mut object.usage,
                Key::Error => &mut object.error,
                Key::Index => &mut object.index,
                Key::Message => &mut object.message,
                Key::Delta => &mut object.delta,
                Key::FinishReason => &mut object.finish_reason,
                Key::ReasoningContent => &mut object.reasoning_content,
                Key::Reasoning => &mut object.reasoning,
                Key::Content => &mut object.content,
                Key::Refusal => &mut object.refusal,
                Key::ToolCalls => &mut object.tool_calls,
                Key::Function => &mut object.function,
                Key::Name => &mut object.name,
                Key::Arguments => &mut object.arguments,
                Key::PromptTokens => &mut object.prompt_tokens,
                Key::CompletionTokens => &mut object.completion_tokens,
                Key::PromptTokensDetails => &mut object.prompt_tokens_details,
                Key::CachedTokens => &mut object.cached_tokens,
                Key::Text => &mut object.text,
                // Read, not skipped: serde_json skips a value without checking all that reading
                // it checks (a number beyond `f64`, a lone surrogate escape), and what a `Value`
                // refuses must still be refused.
                Key::Other => &mut unread,
            };
            *field = map.next_value_seed(Read)?;
        }
        Ok(Any::Object(object))
    }
}

// ------------------------------------------------------------------------ Anthropic, written
//
// Byte for byte what `serde_json::Value::to_string` wrote for the same objects, fields in the
// order Anthropic's own answers use: clients and fixtures compare bytes.

/// Appends `text` as a JSON string.
pub(crate) fn push_str(out: &mut Vec<u8>, text: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

/// Appends a JSON number.
pub(crate) fn push_u64(out: &mut Vec<u8>, n: u64) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &n);
}

/// Token counts of an answer: input (uncached), cache read, output.
pub(crate) type Counts = (u64, u64, u64);

/// Anthropic's `usage`, in the order its answers write it.
pub(crate) fn push_usage(out: &mut Vec<u8>, (input, cache_read, output): Counts) {
    out.extend_from_slice(b"{\"input_tokens\":");
    push_u64(out, input);
    out.extend_from_slice(b",\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":");
    push_u64(out, cache_read);
    out.extend_from_slice(b",\"output_tokens\":");
    push_u64(out, output);
    out.push(b'}');
}

/// A `Message` up to and including the `[` of its `content`.
pub(crate) fn push_message_head(out: &mut Vec<u8>, openai_id: &str, model: &str) {
    out.extend_from_slice(b"{\"id\":");
    push_str(out, &message_id(openai_id));
    out.extend_from_slice(b",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
    push_str(out, model);
    out.extend_from_slice(b",\"content\":[");
}

/// The rest of a `Message` after its content blocks (`stop_reason` is null while streaming).
pub(crate) fn push_message_tail(out: &mut Vec<u8>, stop_reason: Option<&str>, usage: Counts) {
    out.extend_from_slice(b"],\"stop_reason\":");
    match stop_reason {
        Some(reason) => push_str(out, reason),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"stop_sequence\":null,\"usage\":");
    push_usage(out, usage);
    out.push(b'}');
}

/// Begins a content block of a `Message`'s `content` (a comma first unless it is the first):
/// `{"type":"<kind>"`, the rest of the block for the caller to write.
fn begin_block(out: &mut Vec<u8>, kind: &str) {
    if out.last() != Some(&b'[') {
        out.push(b',');
    }
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn convert(completion: Value) -> String {
        let out = from_openai(completion.to_string().as_bytes()).unwrap();
        String::from_utf8(out.to_vec()).unwrap()
    }

    fn completion(message: Value, finish: &str, usage: Value) -> Value {
        json!({"id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT", "object": "chat.completion",
               "created": 1741569952, "model": "gpt-5.4",
               "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
               "usage": usage})
    }

    #[test]
    fn the_openai_text_example_exactly() {
        let out = convert(json!({
            "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
            "object": "chat.completion",
            "created": 1741569952,
            "model": "gpt-5.4",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": "Hello! How can I assist you today?", "refusal": null, "annotations": []},
                "logprobs": null,
                "finish_reason": "stop"
            }],
            "usage": {
                "prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                              "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
            },
            "service_tier": "default"
        }));
        assert_eq!(
            out,
            r#"{"id":"msg_chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","type":"message","role":"assistant","model":"gpt-5.4","content":[{"type":"text","text":"Hello! How can I assist you today?"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":19,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":10}}"#
        );
    }

    #[test]
    fn thinking_text_and_tool_calls_in_order_with_cached_usage() {
        let out = convert(completion(
            json!({"role": "assistant", "content": "Let me check.", "refusal": null,
            "reasoning_content": "I need the weather.",
            "tool_calls": [
                {"id": "call_abc123", "type": "function",
                 "function": {"name": "get_current_weather", "arguments": "{\n\"location\": \"Boston, MA\"\n}"}},
                {"id": "call_def456", "type": "function", "function": {"name": "now", "arguments": ""}},
                {"id": "call_ghi789", "type": "function", "function": {"name": "bad", "arguments": "{\"cut"}}
            ]}),
            "tool_calls",
            json!({"prompt_tokens": 82, "completion_tokens": 17, "total_tokens": 99,
                   "prompt_tokens_details": {"cached_tokens": 64}}),
        ));
        let signature = signature::mint("I need the weather.");
        assert_eq!(
            out,
            format!(
                r#"{{"id":"msg_chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","type":"message","role":"assistant","model":"gpt-5.4","content":[{{"type":"thinking","thinking":"I need the weather.","signature":"{signature}"}},{{"type":"text","text":"Let me check."}},{{"type":"tool_use","id":"call_abc123","name":"get_current_weather","input":{{"location":"Boston, MA"}}}},{{"type":"tool_use","id":"call_def456","name":"now","input":{{}}}},{{"type":"tool_use","id":"call_ghi789","name":"bad","input":{{}}}}],"stop_reason":"tool_use","stop_sequence":null,"usage":{{"input_tokens":18,"cache_creation_input_tokens":0,"cache_read_input_tokens":64,"output_tokens":17}}}}"#
            )
        );
    }

    #[test]
    fn stop_reasons_refusals_and_odd_ids() {
        for (finish, calls, reason) in [
            ("stop", false, "end_turn"),
            ("length", false, "max_tokens"),
            ("tool_calls", true, "tool_use"),
            ("content_filter", false, "refusal"),
            ("something_new", false, "end_turn"),
            ("stop", true, "tool_use"),
        ] {
            let tool_calls = if calls {
                json!([{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}])
            } else {
                json!([])
            };
            let out: Value = serde_json::from_str(&convert(completion(
                json!({"content": null, "tool_calls": tool_calls}),
                finish,
                json!(null),
            )))
            .unwrap();
            assert_eq!(out["stop_reason"], reason, "{finish}");
        }
        let mut body = completion(
            json!({"content": null, "refusal": "I can't help with that.", "reasoning": ""}),
            "content_filter",
            json!(null),
        );
        body["id"] = json!("chat cmpl/1.2:x");
        let out: Value = serde_json::from_str(&convert(body)).unwrap();
        assert_eq!(out["id"], "msg_chatcmpl12x");
        assert_eq!(
            out["content"],
            json!([{"type": "text", "text": "I can't help with that."}])
        );
        assert_eq!(
            out["usage"],
            json!({"input_tokens": 0, "cache_creation_input_tokens": 0,
                   "cache_read_input_tokens": 0, "output_tokens": 0})
        );
    }

    #[test]
    fn fields_of_other_types_read_as_absent_and_a_repeated_key_as_its_last() {
        let body = r#"{"id":7,"id":"chatcmpl-9","model":"gpt-\u00e9","choices":[{"index":"0","message":{"reasoning_content":"","reasoning":"Hm.","content":[{"type":"text","text":"A "},{"type":"image_url"},5,{"text":"b\n"}],"refusal":{"text":"no"},"tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":{"b": 1.50, "a": [1e2]}}},7,{"id":"call_2","function":"g"}]},"finish_reason":null,"finish_reason":"length"}],"usage":{"prompt_tokens":-3,"completion_tokens":2.0,"prompt_tokens_details":[]}}"#;
        let out = from_openai(body.as_bytes()).unwrap();
        let signature = signature::mint("Hm.");
        assert_eq!(
            String::from_utf8(out.to_vec()).unwrap(),
            format!(
                r#"{{"id":"msg_chatcmpl-9","type":"message","role":"assistant","model":"gpt-é","content":[{{"type":"thinking","thinking":"Hm.","signature":"{signature}"}},{{"type":"text","text":"A b\n"}},{{"type":"tool_use","id":"call_1","name":"f","input":{{"b":1.5,"a":[100.0]}}}},{{"type":"tool_use","id":"toolu_msg_chatcmpl-9_2","name":"","input":{{}}}},{{"type":"tool_use","id":"call_2","name":"","input":{{}}}}],"stop_reason":"max_tokens","stop_sequence":null,"usage":{{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}}}"#
            )
        );
        // A break is worded as serde_json's `Value` words it, wherever it is, and what a
        // `Value` refuses is refused in fields not read too.
        let e = from_openai(br#"{"choices":[],"unread":{"n":2."#).unwrap_err();
        assert_eq!(
            e.error.message,
            "the upstream's answer is not a chat completion: it is not JSON: EOF while parsing a value at line 1 column 30"
        );
        let e = from_openai(br#"{"choices":[{}],"unread":1e999}"#).unwrap_err();
        assert_eq!(
            e.error.message,
            "the upstream's answer is not a chat completion: it is not JSON: number out of range at line 1 column 30"
        );
    }

    #[test]
    fn garbage_or_no_choices_is_an_upstream_error() {
        for body in [&b"{\"id\":"[..], b"[]", b"{\"choices\":[]}", b"not json"] {
            let e = from_openai(body).unwrap_err();
            assert_eq!(e.status, 502);
            assert!(e.in_band);
        }
    }

    /// An inner translator that writes given pieces at given calls, or fails.
    struct Scripted {
        chunks: Vec<Result<&'static str, &'static str>>,
        end: Result<&'static str, &'static str>,
        failure: Option<&'static str>,
    }

    impl Translate for Scripted {
        fn chunk(&mut self, _: Bytes) -> Result<Bytes, UpstreamError> {
            match self.chunks.remove(0) {
                Ok(out) => Ok(Bytes::from_static(out.as_bytes())),
                Err(e) => Err(UpstreamError::truncated(e)),
            }
        }
        fn end(&mut self) -> Result<Bytes, UpstreamError> {
            match self.end {
                Ok(out) => Ok(Bytes::from_static(out.as_bytes())),
                Err(e) => Err(UpstreamError::truncated(e)),
            }
        }
        fn failure(&mut self) -> Option<UpstreamError> {
            self.failure.take().map(UpstreamError::truncated)
        }
    }

    #[test]
    fn the_translator_converts_what_the_inner_one_wrote_at_the_end() {
        let mut t = json_translator(Box::new(Scripted {
            chunks: vec![
                Ok(""),
                Ok(r#"{"id":"x","model":"m","choices":[{"message":"#),
            ],
            end: Ok(r#"{"content":"Hi"},"finish_reason":"length"}]}"#),
            failure: None,
        }));
        assert!(t.chunk(Bytes::new()).unwrap().is_empty());
        assert!(t.chunk(Bytes::new()).unwrap().is_empty());
        let out = t.end().unwrap();
        let out: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(out["content"], json!([{"type": "text", "text": "Hi"}]));
        assert_eq!(out["stop_reason"], "max_tokens");
        assert!(!t.relays());
    }

    #[test]
    fn the_translator_passes_inner_failures_on() {
        let mut t = json_translator(Box::new(Scripted {
            chunks: vec![Err("cut")],
            end: Ok(""),
            failure: None,
        }));
        assert_eq!(
            t.chunk(Bytes::new()).unwrap_err().error.message,
            "cut".to_owned()
        );
        let mut t = json_translator(Box::new(Scripted {
            chunks: vec![],
            end: Ok("{}"),
            failure: Some("late"),
        }));
        assert_eq!(t.end().unwrap_err().error.message, "late");
        let mut t = json_translator(Box::new(Scripted {
            chunks: vec![],
            end: Err("bad"),
            failure: None,
        }));
        assert_eq!(t.end().unwrap_err().error.message, "bad");
    }

    #[test]
    fn usage_is_the_inner_translators_the_upstreams_native_counts() {
        use crate::providers::openai::PassThrough;
        let answer = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":2006,"completion_tokens":300,"total_tokens":2306,"prompt_tokens_details":{"cached_tokens":1920},"completion_tokens_details":{"reasoning_tokens":192}}}"#;
        let mut t = json_translator(Box::new(PassThrough::new(false)));
        t.chunk(Bytes::from_static(answer.as_bytes())).unwrap();
        assert_eq!(t.usage(), None);
        let message: Value = serde_json::from_slice(&t.end().unwrap()).unwrap();
        // The client sees Anthropic's split; the meter gets OpenAI's own counts.
        assert_eq!(message["usage"]["cache_read_input_tokens"], 1920);
        assert_eq!(t.usage(), Some(Metered::from_openai(2006, 1920, 300, 192)));
    }
}
