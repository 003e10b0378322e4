//! The HTTP surface: paths, CORS, auth, and the hand-off to failover.

use bytes::Bytes;
use serde::Serialize;

use crate::core::accounting;
use crate::core::clients::{self, Caller};
use crate::core::error::ProxyError;
use crate::core::host::Host;
use crate::core::http::{IncomingRequest, Method, ProxyResponse, RequestBody, ResponseBody};
use crate::core::limits;
use crate::core::meter::Reading;
use crate::core::pages;
use crate::core::request::{ChatRequest, Operation};
use crate::core::route::Routes;
use crate::core::status;
use crate::front::anthropic;

const ALLOWED_METHODS: &str = "GET, POST, OPTIONS";
/// Sent when a preflight names no headers: what the OpenAI SDKs need at minimum.
const DEFAULT_ALLOWED_HEADERS: &str = "authorization, content-type";

/// Answers one request from the routing table `R`. Never fails: every error becomes an
/// OpenAI-shaped response (Anthropic-shaped on the Messages front door), and every response
/// carries `Access-Control-Allow-Origin: *`.
pub async fn handle<R: Routes, H: Host>(host: &H, request: IncomingRequest) -> ProxyResponse {
    // The Messages front door answers its errors in Anthropic's shape, and so does a model list
    // asked for by an Anthropic client.
    let anthropic = match endpoint(&request.path) {
        Some(Endpoint::Messages | Endpoint::CountTokens) => true,
        Some(Endpoint::Models) => request.header("anthropic-version").is_some(),
        _ => false,
    };
    let mut response = match serve::<R, H>(host, request).await {
        Ok(response) => response,
        Err(error) if anthropic => anthropic::error::response(error),
        Err(error) => error.into_response(),
    };
    response
        .headers
        .push(("access-control-allow-origin", "*".to_owned()));
    response
}

/// The endpoints, by normalised path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Index,
    Health,
    Models,
    ChatCompletions,
    /// Anthropic Messages.
    Messages,
    /// Anthropic token counting.
    CountTokens,
    /// The status page.
    Status,
    /// Its data.
    StatusJson,
    /// Prometheus metrics.
    Metrics,
}

fn endpoint(path: &str) -> Option<Endpoint> {
    let path = path.trim_end_matches('/');
    match path {
        "" => Some(Endpoint::Index),
        "/health" => Some(Endpoint::Health),
        "/v1/models" | "/models" => Some(Endpoint::Models),
        // The last form is what an OpenAI SDK posts to when its base URL already ends in
        // /v1/chat/completions, as the original project's Python example sets it.
        "/v1/chat/completions" | "/chat/completions" | "/v1/chat/completions/chat/completions" => {
            Some(Endpoint::ChatCompletions)
        }
        // The last two are the original project's Anthropic endpoints.
        "/v1/messages" | "/anthropic/v1/messages" | "/anthropic/messages" => {
            Some(Endpoint::Messages)
        }
        "/v1/messages/count_tokens"
        | "/anthropic/v1/messages/count_tokens"
        | "/anthropic/messages/count_tokens" => Some(Endpoint::CountTokens),
        "/status" => Some(Endpoint::Status),
        "/status.json" => Some(Endpoint::StatusJson),
        "/metrics" => Some(Endpoint::Metrics),
        _ => None,
    }
}

async fn serve<R: Routes, H: Host>(
    host: &H,
    request: IncomingRequest,
) -> Result<ProxyResponse, ProxyError> {
    if request.method == Method::Options {
        return Ok(preflight(&request));
    }
    let endpoint = endpoint(&request.path).ok_or(ProxyError::NotFound)?;
    let read_only = matches!(request.method, Method::Get | Method::Head);
    match endpoint {
        Endpoint::Index if read_only => Ok(pages::index(R::routes().len())),
        Endpoint::Health if read_only => Ok(ProxyResponse::json(
            200,
            Bytes::from_static(br#"{"status":"ok"}"#),
        )),
        Endpoint::Models if read_only => {
            let caller = clients::identify::<R, H>(host, &request)?;
            let now = host.now_ms() / 1000;
            let names = concrete::<R>().filter(|name| caller.allows(name));
            if request.header("anthropic-version").is_some() {
                Ok(anthropic::models::list(names, now))
            } else {
                Ok(models(names, now))
            }
        }
        Endpoint::ChatCompletions | Endpoint::Messages | Endpoint::CountTokens
            if request.method == Method::Post =>
        {
            let started = host.now_ms();
            let caller = clients::identify::<R, H>(host, &request)?;
            let IncomingRequest { headers, body, .. } = request;
            let body = match body.await {
                RequestBody::Complete(body) => body,
                RequestBody::TooLarge => return Err(ProxyError::BodyTooLarge),
                RequestBody::TimedOut => return Err(ProxyError::BodyTimedOut),
            };
            let mut chat = match endpoint {
                Endpoint::Messages => {
                    anthropic::chat_request(body.clone(), headers.as_ref(), Operation::Complete)?
                }
                Endpoint::CountTokens => {
                    anthropic::chat_request(body.clone(), headers.as_ref(), Operation::CountTokens)?
                }
                _ => ChatRequest::parse_sent(body.clone())?,
            };
            if let Some(session) = headers.get("x-session-id").filter(|s| !s.is_empty()) {
                chat.session = Some(session);
            }
            // A route the caller may not use does not exist for it.
            let found = R::find(&chat.model)
                .filter(|found| caller.allows(found.route.name))
                .ok_or_else(|| ProxyError::ModelNotFound(chat.model.clone()))?;
            chat.star = found.star.map(str::to_owned);
            let route = found.route;
            let standing =
                accounting::open::<R, H>(host, caller, route, &mut chat, body.len(), started)
                    .await?;
            let mut answer = R::complete(host, route, &chat).await;
            // A body reports its own end; an answer without one has ended already.
            let status = match &answer {
                Ok(r) if matches!(r.body, ResponseBody::Upstream(_)) => None,
                Ok(r) => Some(r.status),
                Err(e) => Some(e.status()),
            };
            if let Some(status) = status {
                chat.meter.report(Reading {
                    usage: None,
                    answered_by: None,
                    status,
                });
            }
            if let (Ok(response), Some(standing)) = (&mut answer, standing) {
                response.headers.extend(limits::headers(&standing));
            }
            match (chat.operation, answer) {
                // Never a failure: a count the providers could not give is the proxy's estimate.
                (Operation::CountTokens, Err(_)) => Ok(anthropic::estimated_count(&chat)),
                (_, answer) => answer,
            }
        }
        Endpoint::ChatCompletions | Endpoint::Messages | Endpoint::CountTokens => {
            Err(ProxyError::MethodNotAllowed("POST"))
        }
        Endpoint::Status if read_only => Ok(status::page()),
        Endpoint::StatusJson if read_only => {
            operator::<R, H>(host, &request)?;
            Ok(status::json::<R, H>(host).await)
        }
        Endpoint::Metrics if read_only => {
            operator::<R, H>(host, &request)?;
            let text = host.metrics_text().ok_or(ProxyError::NotFound)?;
            Ok(ProxyResponse::full(
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                Bytes::from(text),
            ))
        }
        Endpoint::Index
        | Endpoint::Health
        | Endpoint::Models
        | Endpoint::Status
        | Endpoint::StatusJson
        | Endpoint::Metrics => Err(ProxyError::MethodNotAllowed("GET")),
    }
}

/// Only the operator's token opens what shows every client's use.
fn operator<R: Routes, H: Host>(host: &H, request: &IncomingRequest) -> Result<(), ProxyError> {
    match clients::identify::<R, H>(host, request)? {
        Caller::Operator => Ok(()),
        Caller::Client(_) => Err(ProxyError::OperatorOnly),
    }
}

fn preflight(request: &IncomingRequest) -> ProxyResponse {
    // `*` in Allow-Headers does not cover `Authorization`, so echo what the browser asks for.
    let allowed_headers = request
        .header("access-control-request-headers")
        .filter(|h| !h.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_ALLOWED_HEADERS.to_owned());
    let mut response = ProxyResponse::empty(204);
    response.headers.extend([
        ("access-control-allow-methods", ALLOWED_METHODS.to_owned()),
        ("access-control-allow-headers", allowed_headers),
        ("access-control-max-age", "86400".to_owned()),
    ]);
    response
}

#[derive(Serialize)]
struct ModelList {
    object: &'static str,
    data: Vec<Model>,
}

#[derive(Serialize)]
struct Model {
    id: &'static str,
    object: &'static str,
    created: u64,
    owned_by: &'static str,
}

/// The route names a client can send as they are: patterns (`claude-*`) are not models.
fn concrete<R: Routes>() -> impl Iterator<Item = &'static str> {
    R::routes()
        .iter()
        .map(|route| route.name)
        .filter(|name| !name.ends_with('*'))
}

fn models(names: impl Iterator<Item = &'static str>, created: u64) -> ProxyResponse {
    let list = ModelList {
        object: "list",
        data: names
            .map(|id| Model {
                id,
                object: "model",
                created,
                owned_by: "ai-worker-proxy",
            })
            .collect(),
    };
    ProxyResponse::json(
        200,
        Bytes::from(serde_json::to_vec(&list).unwrap_or_default()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_endpoints() {
        assert_eq!(
            endpoint("/v1/chat/completions"),
            Some(Endpoint::ChatCompletions)
        );
        assert_eq!(
            endpoint("/v1/chat/completions/"),
            Some(Endpoint::ChatCompletions)
        );
        assert_eq!(
            endpoint("/v1/chat/completions/chat/completions"),
            Some(Endpoint::ChatCompletions)
        );
        assert_eq!(
            endpoint("/chat/completions"),
            Some(Endpoint::ChatCompletions)
        );
        assert_eq!(endpoint("/v1/models"), Some(Endpoint::Models));
        assert_eq!(endpoint("/health"), Some(Endpoint::Health));
        assert_eq!(endpoint("/"), Some(Endpoint::Index));
        assert_eq!(endpoint("/v1/messages"), Some(Endpoint::Messages));
        assert_eq!(endpoint("/anthropic/v1/messages"), Some(Endpoint::Messages));
        assert_eq!(endpoint("/anthropic/messages"), Some(Endpoint::Messages));
        assert_eq!(
            endpoint("/v1/messages/count_tokens"),
            Some(Endpoint::CountTokens)
        );
        assert_eq!(endpoint("/v1/completions"), None);
        assert_eq!(endpoint("/v1/chat/completionsx"), None);
    }
}
