//! The failover loop: each target in order, each of its keys in order, until one answers.
//! It knows nothing of any wire format; providers build requests and translate bodies.

use std::fmt;

use crate::core::error::ProxyError;
use crate::core::host::{AiRunError, Host};
use crate::core::http::{ProxyResponse, ResponseBody};
use crate::core::request::ChatRequest;
use crate::core::route::{Provider, Route, Target};
use crate::core::stream::{self, EarlyFailure, Framing};
use crate::providers;

/// The key label of an attempt through the Workers AI binding (no key involved).
pub const BINDING: &str = "binding:AI";

/// Largest upstream error body read to build the client's error message.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// One target/key tried, for the failure message and the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// The target's provider.
    pub provider: Provider,
    /// The target's model.
    pub model: &'static str,
    /// The key's secret *name* (never its value); empty when no key was used.
    pub key: &'static str,
    /// What happened.
    pub outcome: Outcome,
}

/// How an attempt failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The upstream answered with this retryable status (429, 5xx, 401/403...).
    Status(u16),
    /// No response: connect, DNS, TLS, reset, timeout.
    Network(String),
    /// The key's secret is not set in this deployment.
    KeyNotSet,
    /// A 200 whose body failed or reported an error before anything reached the client.
    FailedBeforeFirstByte(u16, String),
    /// The target needs a binding this host does not have (Workers AI on the native host).
    Unavailable(String),
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.provider.name(), self.model)?;
        if self.key == BINDING {
            f.write_str(" via the AI binding")?;
        } else if !self.key.is_empty() {
            write!(f, " with key {}", self.key)?;
        }
        match &self.outcome {
            Outcome::Status(status) => write!(f, ": HTTP {status}"),
            Outcome::Network(reason) => write!(f, ": network error ({reason})"),
            Outcome::KeyNotSet => f.write_str(": secret not set"),
            Outcome::FailedBeforeFirstByte(status, reason) => {
                write!(f, ": HTTP 200 then {status} ({reason})")
            }
            Outcome::Unavailable(reason) => write!(f, ": unavailable ({reason})"),
        }
    }
}

/// What to do after a non-2xx upstream status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Try the next key, then the next target.
    Retry,
    /// The request itself is at fault: answer the client now.
    ClientError,
}

/// 429, 5xx (529 included), 401/403 (a bad or revoked key), 402 (a key out of credit) and
/// 408/409 (transient) move on; the other 4xx say the request is wrong and no key fixes it.
pub fn verdict(status: u16) -> Verdict {
    match status {
        401 | 402 | 403 | 408 | 409 | 429 => Verdict::Retry,
        400..=499 => Verdict::ClientError,
        _ => Verdict::Retry,
    }
}

/// Serves `request` from `route`, failing over across keys and targets.
pub async fn complete<H: Host>(
    host: &H,
    route: &'static Route,
    request: &ChatRequest,
) -> Result<ProxyResponse, ProxyError> {
    let mut attempts = Vec::new();
    for (index, target) in route.targets.iter().enumerate() {
        let log = |key: &str, status: &str, ms: u64| {
            host.log(&format!(
                "{} status={status} ms={ms}",
                AttemptLabel {
                    route,
                    index,
                    target,
                    key
                }
            ));
        };
        let adapter = providers::adapter(target.provider);
        // Translation happens once per target; a request this provider cannot express is the
        // client's problem, so it is answered now rather than failed over.
        let prepared = adapter.prepare(target, request)?;
        // A REST target that needs an account id (Workers AI) cannot use any of its keys
        // without it: one "secret not set" attempt, then the next target.
        let account = match target.account_id {
            Some(name) => match host.secret(name) {
                Some(value) => Some(value),
                None => {
                    log(name, "key-not-set", 0);
                    attempts.push(attempt(target, name, Outcome::KeyNotSet));
                    continue;
                }
            },
            None => None,
        };
        let binding = adapter.uses_binding(target);
        let vias: &[&'static str] = if binding { &[BINDING] } else { target.api_keys };
        for &key_name in vias {
            let started = host.now_ms();
            let elapsed = || host.now_ms().saturating_sub(started);
            let sent = if binding {
                match host.run_ai(target.model, prepared.clone()).await {
                    Ok(response) => Ok(response),
                    Err(AiRunError::Unavailable(reason)) => {
                        log(key_name, "unavailable", 0);
                        attempts.push(attempt(target, key_name, Outcome::Unavailable(reason)));
                        continue;
                    }
                    // A thrown error is an answer, not a lost connection: the adapter turns it
                    // into the status its code stands for, so the usual verdict applies.
                    Err(AiRunError::Thrown(message)) => Ok(adapter.thrown(&message)),
                }
            } else {
                let Some(key) = host.secret(key_name) else {
                    log(key_name, "key-not-set", 0);
                    attempts.push(attempt(target, key_name, Outcome::KeyNotSet));
                    continue;
                };
                let call =
                    adapter.upstream_request(target, &prepared, &key, account.as_deref(), request);
                host.send(call).await.map_err(|e| e.0)
            };
            let response = match sent {
                Ok(response) => response,
                Err(reason) => {
                    log(key_name, "network-error", elapsed());
                    attempts.push(attempt(target, key_name, Outcome::Network(reason)));
                    continue;
                }
            };
            let status = response.status;
            if !(200..300).contains(&status) {
                log(key_name, &status.to_string(), elapsed());
                if verdict(status) == Verdict::ClientError {
                    let body = read_bounded(response.body).await;
                    if !adapter.key_rejected(status, &body) {
                        return Err(ProxyError::Upstream {
                            status,
                            error: adapter.error(status, &body),
                        });
                    }
                }
                attempts.push(attempt(target, key_name, Outcome::Status(status)));
                continue;
            }
            let mut body = response.body;
            let mut translator = adapter.translator(target, request, host.now_ms() / 1000);
            let committed = match stream::commit(translator.as_mut(), &mut body).await {
                Ok(committed) => committed,
                Err(failure) => {
                    let (status, reason) = match failure {
                        EarlyFailure::InBand(e) => (e.status, e.error.message),
                        EarlyFailure::Body(reason) => (502, reason),
                    };
                    log(key_name, &format!("200-then-{status}"), elapsed());
                    attempts.push(attempt(
                        target,
                        key_name,
                        Outcome::FailedBeforeFirstByte(status, reason),
                    ));
                    continue;
                }
            };
            log(key_name, "200", elapsed());
            let late_log = host.clone();
            let label = AttemptLabel {
                route,
                index,
                target,
                key: key_name,
            }
            .to_string();
            let on_late_failure = Box::new(move |reason: &str| {
                late_log.log(&format!("{label} stream-interrupted reason={reason:?}"))
            });
            let (framing, content_type) = if request.stream {
                (Framing::Sse, "text/event-stream; charset=utf-8")
            } else {
                (Framing::Json, "application/json")
            };
            let mut headers = vec![("content-type", content_type)];
            if request.stream {
                headers.push(("cache-control", "no-cache"));
                // A compressed event stream can sit in an encoder's buffer (workerd#7390).
                headers.push(("content-encoding", "identity"));
            }
            let headers = headers
                .into_iter()
                .map(|(n, v)| (n, v.to_owned()))
                .collect();
            return Ok(ProxyResponse {
                status: 200,
                headers,
                body: ResponseBody::Stream(stream::client_body(
                    committed,
                    translator,
                    body,
                    framing,
                    on_late_failure,
                )),
            });
        }
    }
    Err(ProxyError::AllFailed {
        route: route.name,
        attempts,
    })
}

/// `route=.. target=i/n provider=.. model=.. key=..`: how every log line names an attempt.
struct AttemptLabel<'a> {
    route: &'a Route,
    index: usize,
    target: &'a Target,
    key: &'a str,
}

impl fmt::Display for AttemptLabel<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "route={} target={}/{} provider={} model={} key={}",
            self.route.name,
            self.index + 1,
            self.route.targets.len(),
            self.target.provider.name(),
            self.target.model,
            if self.key.is_empty() { "-" } else { self.key }
        )
    }
}

fn attempt(target: &'static Target, key: &'static str, outcome: Outcome) -> Attempt {
    Attempt {
        provider: target.provider,
        model: target.model,
        key,
        outcome,
    }
}

async fn read_bounded(mut body: crate::core::host::UpstreamBody) -> Vec<u8> {
    use futures_util::StreamExt;
    let mut out = Vec::new();
    while let Some(Ok(chunk)) = body.next().await {
        out.extend_from_slice(&chunk[..chunk.len().min(MAX_ERROR_BODY - out.len())]);
        if out.len() >= MAX_ERROR_BODY {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests;
