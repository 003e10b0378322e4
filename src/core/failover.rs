//! The failover loop: each key of a target in order, then the next target, until one answers.
//! It knows no wire format: each target's [`Provider`] prepares the request, builds each call,
//! reads failures and translates the body, and [`UpstreamError::verdict`] says what a failure
//! means. The generated routing table calls [`Failover::target`] for each target of a route,
//! with the target's provider type.

use std::fmt;

use crate::core::error::{ErrorObject, ProxyError};
use crate::core::host::{BindingError, Host, UpstreamBody};
use crate::core::http::{ProxyResponse, ResponseBody};
use crate::core::log::{self, LogConfig, RequestLog};
use crate::core::provider::{PrepareError, Provider};
use crate::core::request::ChatRequest;
use crate::core::route::{Route, Target, Via};
use crate::core::stream::{self, ClientBody, EarlyFailure, Framing};
use crate::core::verdict::{self, UpstreamError, Verdict};

/// Largest upstream error body read to build the client's error message.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// One target/key tried, for the failure message and the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// The target's provider, as routes.toml names it.
    pub provider: &'static str,
    /// The target's model.
    pub model: &'static str,
    /// The key (its secret's *name*, never its value) or binding used.
    pub via: Via,
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
    /// The key's secret (or another secret the target needs) is not set in this deployment.
    KeyNotSet,
    /// A 200 whose body failed or reported an error before anything reached the client.
    FailedBeforeFirstByte(u16, String),
    /// The target needs a binding this host does not have (Workers AI on the native host).
    Unavailable(String),
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.provider, self.model)?;
        match self.via {
            Via::Key(name) => write!(f, " with key {name}")?,
            Via::Binding(name) => write!(f, " via the {name} binding")?,
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

/// One request's way through a route: the attempts so far, and what every attempt needs.
pub struct Failover<'a, H> {
    host: &'a H,
    route: &'static Route,
    request: &'a ChatRequest,
    attempts: Vec<Attempt>,
    log: RequestLog,
}

impl<'a, H: Host> Failover<'a, H> {
    /// Starts serving `request` on `route`, logging as `log` says (unless `PROXY_LOG`
    /// overrides it); nothing has been tried yet.
    pub fn new(
        host: &'a H,
        route: &'static Route,
        request: &'a ChatRequest,
        log: LogConfig,
        limits: crate::core::route::RequestLimits,
    ) -> Self {
        let _ = limits;
        Self {
            host,
            route,
            request,
            attempts: Vec::new(),
            log: RequestLog::new(log::config(host, log), route),
        }
    }

    /// Tries target `index` of the route through its provider `P`, each via in order. `Some`
    /// when the request is settled (answered, or a client error); `None` when every via failed
    /// and the next target should be tried.
    pub async fn target<P: Provider>(
        &mut self,
        index: usize,
    ) -> Option<Result<ProxyResponse, ProxyError>> {
        let settled = self.try_target::<P>(index).await?;
        let status = match &settled {
            Ok(response) => response.status,
            Err(error) => error.status(),
        };
        self.log.finish(self.host, status);
        Some(settled)
    }

    async fn try_target<P: Provider>(
        &mut self,
        index: usize,
    ) -> Option<Result<ProxyResponse, ProxyError>> {
        let target = self.route.targets.get(index)?;
        let host = self.host;
        // Translation happens once per target; a request this provider cannot express is the
        // client's problem, so it is answered now rather than failed over.
        let prepared = match P::prepare(target, self.request, &|name| host.secret(name)) {
            Ok(prepared) => prepared,
            Err(PrepareError::Invalid(error)) => return Some(Err(error)),
            Err(PrepareError::SecretNotSet(name)) => {
                self.failed(index, Via::Key(name), Outcome::KeyNotSet, "key-not-set", 0);
                return None;
            }
        };
        for &via in target.vias {
            if let Some(settled) = self.attempt::<P>(index, target, &prepared, via).await {
                return Some(settled);
            }
        }
        None
    }

    /// One attempt: `target` through `via`. `Some` settles the request, `None` moves on.
    async fn attempt<P: Provider>(
        &mut self,
        index: usize,
        target: &'static Target,
        prepared: &P::Prepared,
        via: Via,
    ) -> Option<Result<ProxyResponse, ProxyError>> {
        let host = self.host;
        let started = host.now_ms();
        let deadlines = target.policy.deadlines;
        let timeouts = crate::core::host::Timeouts {
            connect_ms: deadlines.connect_ms,
            idle_ms: deadlines.idle_ms,
            deadline_ms: started + 900_000,
        };
        let sent = match via {
            Via::Key(name) => match host.secret(name) {
                Some(key) => host
                    .send(P::request(target, prepared, &key), timeouts)
                    .await
                    .map_err(|e| Outcome::Network(e.0)),
                None => Err(Outcome::KeyNotSet),
            },
            Via::Binding(name) => match P::binding_call(target, prepared) {
                Some(call) => match host.call_binding(name, call, timeouts).await {
                    Ok(response) => Ok(response),
                    Err(BindingError::Unavailable(reason)) => Err(Outcome::Unavailable(reason)),
                    // A throw is an answer, not a lost connection: judged like a status.
                    Err(BindingError::Thrown(message)) => {
                        return self.judge(index, via, started, P::thrown(prepared, &message));
                    }
                },
                None => Err(Outcome::Unavailable(format!(
                    "`{}` is not reached through bindings",
                    target.provider
                ))),
            },
        };
        let response = match sent {
            Ok(response) => response,
            Err(outcome) => {
                let (status, ms) = match &outcome {
                    Outcome::KeyNotSet => ("key-not-set", 0),
                    Outcome::Unavailable(_) => ("unavailable", 0),
                    _ => ("network-error", host.now_ms().saturating_sub(started)),
                };
                self.failed(index, via, outcome, status, ms);
                return None;
            }
        };
        if !(200..300).contains(&response.status) {
            // Only an answer that may be the client's error is read: its message is what the
            // client will see. (A retried one's body is never shown, and an overloaded upstream
            // may never finish sending it.)
            let body = if verdict::of_status(response.status) == Verdict::ClientError {
                read_bounded(response.body).await
            } else {
                Vec::new()
            };
            let failure = P::failure(prepared, response.status, &body);
            return self.judge(index, via, started, failure);
        }
        let mut body = response.body;
        let mut translator = P::translator(target, prepared, host.now_ms() / 1000);
        let committed = match stream::commit(translator.as_mut(), &mut body).await {
            Ok(committed) => committed,
            Err(EarlyFailure::InBand(failure)) => {
                return self.judge(index, via, started, failure);
            }
            Err(EarlyFailure::Body(reason)) => {
                let failure =
                    UpstreamError::in_band(502, ErrorObject::for_status(reason, 502, None));
                return self.judge(index, via, started, failure);
            }
        };
        self.log(index, via, "200", host.now_ms().saturating_sub(started));
        let on_late_failure = self.log.on_interrupted(host, index, via);
        Some(Ok(self.respond(
            committed,
            translator,
            body,
            on_late_failure,
        )))
    }

    /// Every target has been tried: the error naming each attempt.
    pub fn exhausted(self) -> ProxyError {
        let error = ProxyError::AllFailed {
            route: self.route.name,
            attempts: self.attempts,
        };
        self.log.finish(self.host, error.status());
        error
    }

    /// Applies the verdict on `failure`: `Some` answers the client now, `None` moves on.
    fn judge(
        &mut self,
        index: usize,
        via: Via,
        started: u64,
        failure: UpstreamError,
    ) -> Option<Result<ProxyResponse, ProxyError>> {
        let ms = self.host.now_ms().saturating_sub(started);
        let status = failure.status;
        let (logged, outcome) = if failure.in_band {
            let reason = failure.error.message.clone();
            (
                format!("200-then-{status}"),
                Outcome::FailedBeforeFirstByte(status, reason),
            )
        } else {
            (status.to_string(), Outcome::Status(status))
        };
        self.log(index, via, &logged, ms);
        match failure.verdict() {
            // Answered now: the client's error, not an attempt that failed over.
            Verdict::ClientError => Some(Err(ProxyError::Upstream {
                status,
                error: failure.error,
            })),
            Verdict::Retry | Verdict::KeyRejected => {
                self.record(index, via, outcome);
                None
            }
        }
    }

    /// Logs a failed attempt and records it for the failure message.
    fn failed(&mut self, index: usize, via: Via, outcome: Outcome, status: &str, ms: u64) {
        self.log(index, via, status, ms);
        self.record(index, via, outcome);
    }

    fn log(&mut self, index: usize, via: Via, status: &str, ms: u64) {
        self.log.attempt(self.host, index, via, status, ms);
    }

    fn record(&mut self, index: usize, via: Via, outcome: Outcome) {
        if let Some(target) = self.route.targets.get(index) {
            self.attempts.push(Attempt {
                provider: target.provider,
                model: target.model,
                via,
                outcome,
            });
        }
    }

    /// The client's response once an attempt has produced its first bytes.
    fn respond(
        &self,
        committed: stream::Committed,
        translator: Box<dyn stream::Translate>,
        body: UpstreamBody,
        on_late_failure: stream::LateFailureHook,
    ) -> ProxyResponse {
        let stream = self.request.stream;
        let (framing, content_type) = if stream {
            (Framing::Sse, "text/event-stream; charset=utf-8")
        } else {
            (Framing::Json, "application/json")
        };
        let mut headers = vec![("content-type", content_type.to_owned())];
        if stream {
            headers.push(("cache-control", "no-cache".to_owned()));
            // A compressed event stream can sit in an encoder's buffer (workerd#7390).
            headers.push(("content-encoding", "identity".to_owned()));
        }
        ProxyResponse {
            status: 200,
            headers,
            body: ResponseBody::Upstream(ClientBody::new(
                committed,
                translator,
                body,
                framing,
                on_late_failure,
            )),
        }
    }
}

async fn read_bounded(mut body: UpstreamBody) -> Vec<u8> {
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
