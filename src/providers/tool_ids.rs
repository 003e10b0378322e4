//! Tool-call ids that survive a conversation moving between providers.
//!
//! An OpenAI client sends back the ids it was given, in every later turn: on the assistant
//! message's `tool_calls[].id` and on each `tool` message's `tool_call_id`. A later turn may
//! fail over to another provider, which then sees ids minted for the first. Ids minted here
//! carry provider-specific parts: Gemini's end with the call's thought signature
//! (`<id>__thought__<signature>`, hundreds of characters, [`super::google::ids`]), Workers AI's
//! with a suffix that keeps a model's repeated ids unique (`<id>::cf-wai-tool-call::<16 hex>`,
//! [`super::workers_ai::output::ID_MARKER`]). The provider that minted an id reads its parts
//! back; every other one gets [`portable`]'s rewrite, which is a pure function of the id (a call
//! and its result map alike, on every turn and every retry) that keeps distinct ids distinct,
//! and fits the target's rules: at most 40 characters on OpenAI's wire (OpenAI answers 400
//! `string too long` beyond), `^[a-zA-Z0-9_-]+$` on Anthropic's.

use std::borrow::Cow;

use serde_json::Value;

use super::google::ids as gemini;
use super::workers_ai::output::{fnv, ID_MARKER};
use crate::core::fields::Field;
use crate::core::search;

/// The wire a conversation's tool-call ids are going to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// OpenAI Chat Completions (`openai`, `openai-compatible`): at most [`OPENAI_MAX`] characters.
    OpenAi,
    /// Anthropic Messages: `^[a-zA-Z0-9_-]+$`.
    Anthropic,
    /// Workers AI: its own ids without their suffix (the model's own id, as it wrote it).
    WorkersAi,
}

/// The longest tool-call id OpenAI accepts.
pub const OPENAI_MAX: usize = 40;

/// `id` as `wire` takes it (unchanged when it already fits and carries nothing foreign).
pub fn portable(id: &str, wire: Wire) -> Cow<'_, str> {
    // Gemini's signature means nothing elsewhere; the id before it is unique on its own.
    let (base, signature) = gemini::split(id);
    let base = if base.is_empty() && signature.is_some() {
        // A bare signature: the only unique part is the whole.
        Cow::Owned(format!("call_{:016x}", fnv(0, id.as_bytes())))
    } else {
        Cow::Borrowed(base)
    };
    let base = match (search::split_once(&base, ID_MARKER), wire) {
        // Workers AI's own: the model wrote the part before the marker.
        (Some((model_id, _)), Wire::WorkersAi) => Cow::Owned(model_id.to_owned()),
        // Elsewhere the suffix stays (model ids repeat across turns), without the marker.
        (Some((model_id, suffix)), _) => Cow::Owned(format!("{model_id}_{suffix}")),
        (None, _) => base,
    };
    match wire {
        Wire::OpenAi if base.chars().count() > OPENAI_MAX => {
            Cow::Owned(format!("call_{:016x}", fnv(0, base.as_bytes())))
        }
        Wire::Anthropic => anthropic(base),
        _ => base,
    }
}

/// An id matching `^[a-zA-Z0-9_-]+$`: other characters become `_`, and the id then ends with a
/// hash of the original, so that ids differing only there stay different.
fn anthropic(id: Cow<'_, str>) -> Cow<'_, str> {
    let fits = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if id.is_empty() {
        // A call and its result both without an id still match each other.
        return Cow::Borrowed("toolu_missing");
    }
    if id.chars().all(fits) {
        return id;
    }
    let mut fixed: String = id.chars().map(|c| if fits(c) { c } else { '_' }).collect();
    fixed.push_str(&format!("_{:08x}", fnv(0, id.as_bytes()) as u32));
    Cow::Owned(fixed)
}

/// The request's `messages` with every tool-call id made [`portable`] for `wire`, or `None`
/// when none changes (the request then goes as the client sent it).
pub fn portable_messages(messages: Option<&Value>, wire: Wire) -> Option<Value> {
    let list = messages?.as_array()?;
    let changes = |id: Option<&Value>| {
        id.and_then(Value::as_str)
            .is_some_and(|id| portable(id, wire) != id)
    };
    let any = list.iter().any(|m| {
        changes(m.field("tool_call_id"))
            || m.field("tool_calls")
                .and_then(Value::as_array)
                .is_some_and(|calls| calls.iter().any(|c| changes(c.field("id"))))
    });
    if !any {
        return None;
    }
    let mut rewritten = list.clone();
    let rewrite = |slot: Option<&mut Value>| {
        if let Some(Value::String(id)) = slot {
            *id = portable(id, wire).into_owned();
        }
    };
    for message in &mut rewritten {
        rewrite(message.get_mut("tool_call_id"));
        if let Some(Value::Array(calls)) = message.get_mut("tool_calls") {
            for call in calls {
                rewrite(call.get_mut("id"));
            }
        }
    }
    Some(Value::Array(rewritten))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A real-sized Gemini 3 thought signature (base64, with `+`, `/` and `=`).
    fn signature() -> String {
        "CiQB0e2Kb+/x=".repeat(40)
    }

    #[test]
    fn gemini_ids_reach_openai_short_and_matching_and_anthropic_valid() {
        let long_base = format!("call_{}_0", "JPozaonvK7yzvdIPrJ7FyAkXXXXXXXXXXXXXXXX");
        for id in [
            format!("call_JPozaonvK7yzvdIPrJ7FyAk_0__thought__{}", signature()),
            format!("{long_base}__thought__{}", signature()),
            format!("__thought__{}", signature()),
            "call_r1_1".to_owned(),
        ] {
            let openai = portable(&id, Wire::OpenAi);
            assert!(openai.len() <= OPENAI_MAX, "{openai}");
            assert!(!openai.contains("__thought__"));
            // Deterministic: the tool message's `tool_call_id` maps the same way.
            assert_eq!(openai, portable(&id, Wire::OpenAi));
            let anthropic = portable(&id, Wire::Anthropic);
            assert!(
                anthropic
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
                "{anthropic}"
            );
            assert!(!anthropic.is_empty() && anthropic.len() < 80, "{anthropic}");
        }
        let signed = format!("call_JPozaonvK7yzvdIPrJ7FyAk_0__thought__{}", signature());
        assert_eq!(
            portable(&signed, Wire::OpenAi),
            "call_JPozaonvK7yzvdIPrJ7FyAk_0"
        );
        assert_eq!(
            portable(&signed, Wire::Anthropic),
            "call_JPozaonvK7yzvdIPrJ7FyAk_0"
        );
        // Too long even without its signature: a hash, distinct per call.
        let a = portable(&format!("{long_base}__thought__x"), Wire::OpenAi).into_owned();
        let b = portable(&long_base.replace("_0", "_1"), Wire::OpenAi).into_owned();
        assert!(a.starts_with("call_") && a.len() == 21 && a != b, "{a} {b}");
    }

    #[test]
    fn workers_ai_ids_keep_their_uniqueness_elsewhere_and_lose_the_suffix_at_home() {
        let id =
            "chatcmpl-tool-0123456789abcdef0123456789abcdef::cf-wai-tool-call::00ff00ff00ff00ff";
        assert_eq!(
            portable(id, Wire::WorkersAi),
            "chatcmpl-tool-0123456789abcdef0123456789abcdef"
        );
        let short = "call123::cf-wai-tool-call::00ff00ff00ff00ff";
        assert_eq!(portable(short, Wire::Anthropic), "call123_00ff00ff00ff00ff");
        assert_eq!(portable(short, Wire::OpenAi), "call123_00ff00ff00ff00ff");
        let other_turn = "call123::cf-wai-tool-call::11ff00ff00ff00ff";
        assert_ne!(
            portable(short, Wire::OpenAi),
            portable(other_turn, Wire::OpenAi)
        );
        assert!(portable(id, Wire::OpenAi).len() <= OPENAI_MAX);
        // Gemini's signature is dropped for Workers AI too.
        assert_eq!(
            portable("call_r1_0__thought__sig", Wire::WorkersAi),
            "call_r1_0"
        );
    }

    #[test]
    fn foreign_ids_that_fit_are_kept_and_others_are_mapped_apart() {
        for id in [
            "call_abc123",
            "toolu_01A09q90qw90lq917835lq9",
            "chatcmpl-tool-1",
        ] {
            for wire in [Wire::OpenAi, Wire::Anthropic, Wire::WorkersAi] {
                assert!(
                    matches!(portable(id, wire), Cow::Borrowed(_)),
                    "{id} {wire:?}"
                );
            }
        }
        let dot = portable("functions.get_weather:0", Wire::Anthropic);
        assert!(dot.starts_with("functions_get_weather_0_"), "{dot}");
        assert_ne!(dot, portable("functions:get_weather.0", Wire::Anthropic));
        assert_eq!(portable("", Wire::Anthropic), "toolu_missing");
        // OpenAI takes any character; only the length is capped.
        assert_eq!(
            portable("functions.get_weather:0", Wire::OpenAi),
            "functions.get_weather:0"
        );
    }

    /// Turn one on Gemini 3 streams a signed call; the client sends its id back in turn two,
    /// which fails over to OpenAI, or to Anthropic; turn three is back on Gemini.
    #[test]
    fn a_gemini_call_id_round_trips_through_openai_and_anthropic_and_back() {
        use crate::core::provider::Provider;
        use crate::core::request::ChatRequest;
        use crate::core::route::{Target, TargetPolicy, Via};
        use crate::providers::{anthropic::Anthropic, google::Google, openai::OpenAi};
        use bytes::Bytes;

        fn target(
            provider: &'static str,
            model: &'static str,
            base_url: &'static str,
        ) -> &'static Target {
            Box::leak(Box::new(Target {
                provider,
                model,
                base_url,
                vias: &[Via::Key("KEY_1")],
                max_tokens: Some(1024),
                max_output_tokens: None,
                account_id: None,
                anthropic_betas: None,
                policy: TargetPolicy::DEFAULT,
            }))
        }
        let gemini = target(
            "google",
            "gemini-3-pro-preview",
            "https://generativelanguage.googleapis.com",
        );
        let openai = target("openai", "gpt-4o-mini", "https://api.openai.com/v1");
        let claude = target(
            "anthropic",
            "claude-sonnet-4-20250514",
            "https://api.anthropic.com",
        );

        let sig = signature();
        let turn_one = ChatRequest::parse(
            br#"{"model":"m","stream":true,"messages":[{"role":"user","content":"Weather in Paris?"}]}"#,
        )
        .unwrap();
        let stream = format!(
            "data: {{\"candidates\":[{{\"content\":{{\"role\":\"model\",\"parts\":[{{\"functionCall\":{{\"name\":\"get_weather\",\"args\":{{\"city\":\"Paris\"}}}},\"thoughtSignature\":\"{sig}\"}}]}},\"finishReason\":\"STOP\",\"index\":0}}],\"responseId\":\"JPozaonvK7yzvdIPrJ7FyAk\"}}\r\n\r\n"
        );
        let prepared = Google::prepare(gemini, &turn_one, &|_| None).unwrap();
        let mut translator = Google::translator(gemini, &prepared, 1_700_000_000);
        let mut out = translator.chunk(Bytes::from(stream)).unwrap().to_vec();
        out.extend_from_slice(&translator.end().unwrap());
        let id = crate::providers::test_support::sse_payloads(std::str::from_utf8(&out).unwrap())
            .iter()
            .find_map(|e| {
                e["choices"][0]["delta"]["tool_calls"][0]["id"]
                    .as_str()
                    .map(str::to_owned)
            })
            .unwrap();
        assert!(id.len() > 40 && id.ends_with(&sig), "{id}");

        let next_turn = ChatRequest::parse(
            json!({"model": "m", "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": id, "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": id, "content": "{\"temp_c\": 12}"}
            ]})
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        let sent = |body: Bytes| serde_json::from_slice::<Value>(&body).unwrap();

        let to_openai = OpenAi::prepare(openai, &next_turn, &|_| None).unwrap();
        let body = sent(OpenAi::request(openai, &to_openai, "k").body);
        let call_id = body["messages"][1]["tool_calls"][0]["id"].as_str().unwrap();
        assert!(call_id.len() <= OPENAI_MAX, "{call_id}");
        assert_eq!(body["messages"][2]["tool_call_id"], call_id);

        let to_claude = Anthropic::prepare(claude, &next_turn, &|_| None).unwrap();
        let body = sent(Anthropic::request(claude, &to_claude, "k").body);
        let use_id = body["messages"][1]["content"][0]["id"].as_str().unwrap();
        assert!(
            use_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
            "{use_id}"
        );
        assert_eq!(body["messages"][2]["content"][0]["tool_use_id"], use_id);

        let back = Google::prepare(gemini, &next_turn, &|_| None).unwrap();
        let body = sent(Google::request(gemini, &back, "k").body);
        assert_eq!(
            body["contents"][1]["parts"][0]["thoughtSignature"],
            sig.as_str()
        );
        assert_eq!(
            body["contents"][2]["parts"][0]["functionResponse"]["name"],
            "get_weather"
        );
    }

    #[test]
    fn messages_are_rewritten_only_when_an_id_changes() {
        let signed = format!("call_r1_0__thought__{}", signature());
        let messages = json!([
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": signed, "type": "function", "function": {"name": "w", "arguments": "{}"}},
                {"id": "call_2", "type": "function", "function": {"name": "t", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": signed, "content": "12"},
            {"role": "tool", "tool_call_id": "call_2", "content": "noon"}
        ]);
        let out = portable_messages(Some(&messages), Wire::OpenAi).unwrap();
        assert_eq!(out[1]["tool_calls"][0]["id"], "call_r1_0");
        assert_eq!(out[2]["tool_call_id"], "call_r1_0");
        assert_eq!(out[1]["tool_calls"][1]["id"], "call_2");
        assert_eq!(out[3], messages[3]);
        let plain = json!([{"role": "tool", "tool_call_id": "call_2", "content": "x"}]);
        assert_eq!(portable_messages(Some(&plain), Wire::OpenAi), None);
        assert_eq!(portable_messages(None, Wire::OpenAi), None);
    }
}
