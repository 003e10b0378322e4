//! The HTTP surface: paths, CORS, auth, and the hand-off to failover.

use bytes::Bytes;
use serde::Serialize;

use crate::core::auth;
use crate::core::error::ProxyError;
use crate::core::host::Host;
use crate::core::http::{IncomingRequest, Method, ProxyResponse, RequestBody};
use crate::core::pages;
use crate::core::request::ChatRequest;
use crate::core::route::Routes;

const ALLOWED_METHODS: &str = "GET, POST, OPTIONS";
/// Sent when a preflight names no headers: what the OpenAI SDKs need at minimum.
const DEFAULT_ALLOWED_HEADERS: &str = "authorization, content-type";

/// Answers one request from the routing table `R`. Never fails: every error becomes an
/// OpenAI-shaped response, and every response carries `Access-Control-Allow-Origin: *`.
pub async fn handle<R: Routes, H: Host>(host: &H, request: IncomingRequest) -> ProxyResponse {
    let mut response = match serve::<R, H>(host, request).await {
        Ok(response) => response,
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
            authorize::<R, H>(host, &request)?;
            Ok(models::<R>(host.now_ms() / 1000))
        }
        Endpoint::ChatCompletions if request.method == Method::Post => {
            authorize::<R, H>(host, &request)?;
            let body = match request.body.await {
                RequestBody::Complete(body) => body,
                RequestBody::TooLarge => return Err(ProxyError::BodyTooLarge),
                RequestBody::TimedOut => return Err(ProxyError::BodyTimedOut),
            };
            let mut chat = ChatRequest::parse(&body)?;
            if let Some(session) = request
                .headers
                .get("x-session-id")
                .filter(|s| !s.is_empty())
            {
                chat.session = Some(session);
            }
            let route = R::find(&chat.model)
                .ok_or_else(|| ProxyError::ModelNotFound(chat.model.clone()))?;
            R::complete(host, route, &chat).await
        }
        Endpoint::ChatCompletions => Err(ProxyError::MethodNotAllowed("POST")),
        Endpoint::Index | Endpoint::Health | Endpoint::Models => {
            Err(ProxyError::MethodNotAllowed("GET"))
        }
    }
}

fn authorize<R: Routes, H: Host>(host: &H, request: &IncomingRequest) -> Result<(), ProxyError> {
    let expected = host
        .secret(R::AUTH_TOKEN_SECRET)
        .filter(|t| !t.is_empty())
        .ok_or(ProxyError::AuthNotConfigured(R::AUTH_TOKEN_SECRET))?;
    let authorization = request.header("authorization");
    match auth::presented_token(authorization.as_deref()) {
        Some(token) if auth::tokens_match(token, &expected) => Ok(()),
        _ => Err(ProxyError::Unauthorized),
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

fn models<R: Routes>(created: u64) -> ProxyResponse {
    let list = ModelList {
        object: "list",
        data: R::routes()
            .iter()
            .map(|route| Model {
                id: route.name,
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
        assert_eq!(endpoint("/v1/completions"), None);
        assert_eq!(endpoint("/v1/chat/completionsx"), None);
    }
}
