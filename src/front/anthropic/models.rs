//! `GET /v1/models` in Anthropic's list shape, for a client that sends `anthropic-version`.

use bytes::Bytes;
use serde::Serialize;

use crate::core::http::ProxyResponse;
use crate::core::limits::calendar;

#[derive(Serialize)]
struct List<'a> {
    data: Vec<Model<'a>>,
    has_more: bool,
    first_id: Option<&'a str>,
    last_id: Option<&'a str>,
}

#[derive(Serialize)]
struct Model<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    display_name: &'a str,
    created_at: &'a str,
}

/// The list of `names`, each stamped as created at `now` (Unix seconds).
pub fn list(names: impl Iterator<Item = &'static str>, now: u64) -> ProxyResponse {
    let created_at = rfc3339(now);
    let data: Vec<Model<'_>> = names
        .map(|id| Model {
            kind: "model",
            id,
            display_name: id,
            created_at: &created_at,
        })
        .collect();
    let list = List {
        first_id: data.first().map(|m| m.id),
        last_id: data.last().map(|m| m.id),
        has_more: false,
        data,
    };
    // Serialising plain structs cannot fail.
    let body = serde_json::to_vec(&list).unwrap_or_default();
    ProxyResponse::json(200, Bytes::from(body))
}

/// `secs` since the epoch as an RFC 3339 UTC timestamp (`2025-02-19T00:00:00Z`).
fn rfc3339(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = calendar::civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_739_923_200), "2025-02-19T00:00:00Z");
        assert_eq!(rfc3339(1_709_210_096), "2024-02-29T12:34:56Z");
    }

    #[test]
    fn the_list_has_anthropics_shape() {
        let r = list(["fast", "deep-think"].into_iter(), 0);
        let crate::core::http::ResponseBody::Full(body) = r.body else {
            panic!("not full")
        };
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            r#"{"data":[{"type":"model","id":"fast","display_name":"fast","created_at":"1970-01-01T00:00:00Z"},{"type":"model","id":"deep-think","display_name":"deep-think","created_at":"1970-01-01T00:00:00Z"}],"has_more":false,"first_id":"fast","last_id":"deep-think"}"#
        );
    }
}
