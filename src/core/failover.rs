//! The failover loop: each key of a target (in the target's `key_strategy` order, cooling keys
//! skipped), then the next target, until one answers, within the request's deadlines and
//! subrequest budget. It knows no wire format: each target's [`Provider`] prepares the request,
//! builds each call, reads failures and translates the body, and [`UpstreamError::verdict`] says
//! what a failure means. The generated routing table calls [`Failover::target`] for each target
//! of a route, with the target's provider type.

use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::future::{select, Either};

use crate::core::entropy;
use crate::core::error::{ErrorObject, ProxyError};
use crate::core::health::{KeyHealth, Strike};
use crate::core::host::{
    seconds, BindingError, BodyError, Host, NetworkError, Timeouts, UpstreamBody, UpstreamResponse,
};
use crate::core::http::{ProxyResponse, ResponseBody};
use crate::core::log::{self, LogConfig, RequestLog};
use crate::core::meter::{Answered, BodyEnd};
use crate::core::provider::{Prepare, PrepareError, PreparedRequest};
use crate::core::redact::{Redacting, Redaction};
use crate::core::request::{ChatRequest, Operation};
use crate::core::route::{KeyStrategy, RequestLimits, Route, Target, Via};
use crate::core::stream::{self, ClientBody, EarlyFailure, Framing};
use crate::core::verdict::{self, UpstreamError, Verdict};
use crate::front::anthropic::{response as front_response, stream as front_stream};

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
    /// A deadline passed: which one, in words.
    Timeout(String),
    /// Not tried: the key × model failed recently and is skipped for this many more ms.
    CoolingDown(u64),
    /// Not tried: this target cannot express the request (the client's error, if no target can).
    CannotExpress(String),
}

/// Why a call brought no response to judge.
enum NoResponse {
    /// It failed: how.
    Failed(Outcome),
    /// A binding threw: its error's text, an answer the provider reads (judged like a status).
    Thrown(String),
    /// Its headers (a binding's answer) did not come within the wait.
    Late,
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.provider, self.model)?;
        if let Outcome::CannotExpress(reason) = &self.outcome {
            return write!(f, ": cannot take this request ({reason})");
        }
        match self.via {
            Via::Key(name) => write!(f, " with key {name}")?,
            Via::Binding(name) => write!(f, " via the {name} binding")?,
        }
        match &self.outcome {
            Outcome::Status(status @ 300..=399) => {
                write!(f, ": HTTP {status} (redirects are not followed)")
            }
            Outcome::Status(status) => write!(f, ": HTTP {status}"),
            Outcome::Network(reason) => write!(f, ": network error ({reason})"),
            Outcome::KeyNotSet => f.write_str(": secret not set"),
            Outcome::FailedBeforeFirstByte(status, reason) => {
                write!(f, ": HTTP 200 then {status} ({reason})")
            }
            Outcome::Unavailable(reason) => write!(f, ": unavailable ({reason})"),
            Outcome::Timeout(reason) => write!(f, ": timed out ({reason})"),
            Outcome::CoolingDown(ms) => {
                write!(f, ": cooling down ({}s left)", ms.div_ceil(1000))
            }
            Outcome::CannotExpress(_) => Ok(()),
        }
    }
}

/// Why the loop stopped before every key of every target was tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The request's `total_timeout` (ms) passed.
    Deadline(u64),
    /// The request made `max_subrequests` upstream calls.
    Subrequests(u32),
}

/// What one attempt came to.
enum Tried {
    /// The request is settled: answered, or the client's error.
    Settled(Result<ProxyResponse, ProxyError>),
    /// The attempt failed; `true` if the same key may be tried again (a 5xx, a network error or
    /// a timeout, and nothing reached the client).
    Failed(bool),
}

/// One call in flight: the target and key it went to, and when it started.
#[derive(Clone, Copy)]
struct Call<'k> {
    index: usize,
    target: &'static Target,
    via: Via,
    /// The cool-down memory's key for `via` on the target's model.
    key: &'k str,
    started: u64,
    /// What hides the key's value in whatever the upstream says.
    redaction: Option<&'k Redaction>,
}

/// One request's way through a route: the attempts so far, and what every attempt needs.
pub struct Failover<'a, H> {
    host: &'a H,
    route: &'static Route,
    request: &'a ChatRequest,
    limits: RequestLimits,
    attempts: Vec<Attempt>,
    log: RequestLog,
    /// When the request must be over (`total_timeout`), in ms since the epoch.
    deadline_ms: u64,
    /// Upstream calls made so far (each a Workers subrequest).
    calls: u32,
    stopped: Option<Stop>,
    /// The first "cannot express this request" error: the client's answer if no target can.
    inexpressible: Option<ProxyError>,
    /// Whether the shared cool-downs were brought in for this request.
    refreshed: bool,
}

impl<'a, H: Host> Failover<'a, H> {
    /// Starts serving `request` on `route`, logging as `log` says (unless `PROXY_LOG`
    /// overrides it) within `limits`; nothing has been tried yet.
    pub fn new(
        host: &'a H,
        route: &'static Route,
        request: &'a ChatRequest,
        log: LogConfig,
        limits: RequestLimits,
    ) -> Self {
        Self {
            host,
            route,
            request,
            limits,
            attempts: Vec::new(),
            log: RequestLog::new(log::config(host, log), route),
            deadline_ms: host.now_ms().saturating_add(limits.total_timeout_ms),
            calls: 0,
            stopped: None,
            inexpressible: None,
            refreshed: false,
        }
    }

    /// Tries target `index` of the route through its provider's [`Prepare`]
    /// (`prepare_with::<P>`), its keys in the target's order. `Some` when the request is settled
    /// (answered, or a client error); `None` when every key failed or was skipped and the next
    /// target should be tried. Not generic over the provider, so that this code is compiled
    /// once rather than once per provider.
    pub async fn target(
        &mut self,
        index: usize,
        prepare: Prepare,
    ) -> Option<Result<ProxyResponse, ProxyError>> {
        if self.stopped.is_some() {
            return None;
        }
        let target = self.route.targets.get(index)?;
        let prepared = self.prepare(index, target, prepare)?;
        if !self.refreshed {
            self.refreshed = true;
            self.host.refresh_health().await;
        }
        let settled = self.try_target(index, target, prepared.as_ref()).await?;
        let status = match &settled {
            Ok(response) => response.status,
            Err(error) => error.status(),
        };
        self.log.finish(self.host, status);
        Some(settled)
    }

    /// Translates the request for target `index`, once: the result serves every key. A request
    /// this provider cannot express is skipped here, and is the client's error only if no
    /// target of the route can take it.
    fn prepare(
        &mut self,
        index: usize,
        target: &'static Target,
        prepare: Prepare,
    ) -> Option<Box<dyn PreparedRequest>> {
        let host = self.host;
        let first_via = *target.vias.first()?;
        match prepare(target, self.request, &|name| host.secret(name)) {
            Ok(prepared) => Some(prepared),
            Err(PrepareError::Invalid(error)) => {
                let reason = error.to_error_object().message;
                self.failed(
                    index,
                    first_via,
                    Outcome::CannotExpress(reason),
                    "cannot-express",
                    0,
                );
                self.inexpressible.get_or_insert(error);
                None
            }
            Err(PrepareError::SecretNotSet(name)) => {
                self.failed(index, Via::Key(name), Outcome::KeyNotSet, "key-not-set", 0);
                None
            }
        }
    }

    /// Tries `prepared` on target `index`, its keys in the target's order (or counts its tokens).
    async fn try_target(
        &mut self,
        index: usize,
        target: &'static Target,
        prepared: &dyn PreparedRequest,
    ) -> Option<Result<ProxyResponse, ProxyError>> {
        let host = self.host;
        if self.request.operation == Operation::CountTokens {
            return self.count(index, target, prepared).await;
        }
        let retry = target.policy.retry;
        for via in self.key_order(target) {
            let key = health_key(via, target.model);
            if let Some(ms) = host.health().cooling(&key, host.now_ms()) {
                self.failed(index, via, Outcome::CoolingDown(ms), "cooling-down", 0);
                continue;
            }
            let mut retries = 0;
            loop {
                if let Some(stop) = self.over_limits() {
                    self.stopped = Some(stop);
                    return None;
                }
                self.calls += 1;
                match self.attempt(index, target, prepared, via, &key).await {
                    Tried::Settled(settled) => return Some(settled),
                    Tried::Failed(again) if again && retries < retry.attempts => {
                        // Full jitter: a random wait up to base × 2^n, capped.
                        let cap = retry
                            .base_ms
                            .saturating_mul(1 << retries.min(20))
                            .min(retry.max_ms);
                        let wait = random(host, retries) % (cap + 1);
                        if host.now_ms().saturating_add(wait) >= self.deadline_ms {
                            break;
                        }
                        host.sleep(wait).await;
                        retries += 1;
                    }
                    Tried::Failed(_) => break,
                }
            }
        }
        None
    }

    /// The target's keys in the order its strategy gives: the healthy ones first (rotated for
    /// round-robin, the session's own first for sticky), then the cooling ones, which are only
    /// recorded as skipped.
    fn key_order(&self, target: &'static Target) -> Vec<Via> {
        let vias = target.vias;
        let start = match target.policy.key_strategy {
            KeyStrategy::Ordered => return vias.to_vec(),
            // A target is `'static` data: its address names it in every thread.
            KeyStrategy::RoundRobin => Some(
                self.host
                    .health()
                    .next_turn(std::ptr::from_ref(target) as usize) as u64,
            ),
            KeyStrategy::Sticky => self.request.session.as_deref().map(fnv1a),
        };
        let Some(start) = start else {
            return vias.to_vec();
        };
        let now = self.host.now_ms();
        let health = self.host.health();
        let (mut healthy, cooling): (Vec<Via>, Vec<Via>) = vias.iter().partition(|via| {
            health
                .cooling(&health_key(**via, target.model), now)
                .is_none()
        });
        if !healthy.is_empty() {
            let len = healthy.len() as u64;
            // Reduced in 64 bits: on wasm32 a `usize` would keep only the hash's low half.
            healthy.rotate_left((start % len) as usize);
        }
        healthy.extend(cooling);
        healthy
    }

    /// Why no further call may be made, if one of the request's limits is reached.
    fn over_limits(&self) -> Option<Stop> {
        if self.host.now_ms() >= self.deadline_ms {
            Some(Stop::Deadline(self.limits.total_timeout_ms))
        } else if self.calls >= self.limits.max_subrequests {
            Some(Stop::Subrequests(self.limits.max_subrequests))
        } else {
            None
        }
    }

    /// Milliseconds until `step_ms` or the request's deadline, whichever is sooner, and
    /// whether it is the deadline.
    fn wait(&self, step_ms: u64) -> (u64, bool) {
        let left = self.deadline_ms.saturating_sub(self.host.now_ms());
        if left <= step_ms {
            (left, true)
        } else {
            (step_ms, false)
        }
    }

    /// One call: `target` through `via`, within the target's deadlines.
    async fn attempt(
        &mut self,
        index: usize,
        target: &'static Target,
        prepared: &dyn PreparedRequest,
        via: Via,
        key: &str,
    ) -> Tried {
        let host = self.host;
        let started = host.now_ms();
        let secret = match via {
            Via::Key(name) => host.secret(name),
            Via::Binding(_) => None,
        };
        let redaction = match (via, &secret) {
            (Via::Key(name), Some(value)) => Redaction::new(name, value),
            _ => None,
        };
        let call = Call {
            index,
            target,
            via,
            key,
            started,
            redaction: redaction.as_ref(),
        };
        let deadlines = target.policy.deadlines;
        let (wait, is_deadline) = self.wait(deadlines.headers_ms);
        let timeouts = Timeouts {
            connect_ms: deadlines.connect_ms,
            headers_ms: wait,
            idle_ms: deadlines.idle_ms,
            deadline_ms: self.deadline_ms,
        };
        let sent = match via {
            Via::Key(_) => match &secret {
                Some(secret) => match host.send(prepared.request(target, secret), timeouts).await {
                    Ok(response) => Ok(response),
                    Err(NetworkError::Failed(reason)) => {
                        Err(NoResponse::Failed(Outcome::Network(reason)))
                    }
                    Err(NetworkError::NoHeaders) => Err(NoResponse::Late),
                },
                None => Err(NoResponse::Failed(Outcome::KeyNotSet)),
            },
            Via::Binding(name) => match prepared.binding_call(target) {
                Some(call) => match host.call_binding(name, call, timeouts).await {
                    Ok(response) => Ok(response),
                    Err(BindingError::Unavailable(reason)) => {
                        Err(NoResponse::Failed(Outcome::Unavailable(reason)))
                    }
                    Err(BindingError::Thrown(message)) => Err(NoResponse::Thrown(message)),
                    Err(BindingError::NoAnswer) => Err(NoResponse::Late),
                },
                None => Err(NoResponse::Failed(Outcome::Unavailable(format!(
                    "`{}` is not reached through bindings",
                    target.provider
                )))),
            },
        };
        let response = match sent {
            Ok(response) => response,
            Err(NoResponse::Late) => {
                let what = format!("no response headers within {}", seconds(wait));
                return self.timed_out(&call, "headers_timeout", what, is_deadline);
            }
            // A throw is an answer, not a lost connection: judged like a status.
            Err(NoResponse::Thrown(message)) => {
                return self.judge(&call, prepared.thrown(&message), None)
            }
            Err(NoResponse::Failed(outcome)) => {
                let (status, strike) = match &outcome {
                    Outcome::KeyNotSet => ("key-not-set", None),
                    Outcome::Unavailable(_) => ("unavailable", None),
                    _ => ("network-error", Some(Strike::Failed)),
                };
                let ms = host.now_ms().saturating_sub(started);
                if let Some(strike) = strike {
                    self.strike(target, key, strike);
                }
                self.failed(index, via, outcome, status, ms);
                return Tried::Failed(strike.is_some());
            }
        };
        if !(200..300).contains(&response.status) {
            return self.refused(&call, prepared, response).await;
        }
        let mut body = response.body;
        let mut translator = prepared.translator(target, host.now_ms() / 1000);
        if let Some(redaction) = call.redaction {
            translator = Redacting::wrap(translator, redaction.clone());
        }
        if let Some(inbound) = self.request.anthropic() {
            if !prepared.speaks_front() {
                translator = if self.request.stream {
                    front_stream::stream_translator(
                        translator,
                        front_stream::StreamContext {
                            input_tokens: inbound.input_estimate,
                        },
                    )
                } else {
                    front_response::json_translator(translator)
                };
            }
        }
        // A stream commits on its first token, raced against its deadline; a whole answer once
        // it has all been read, which the host's body already bounds by idle_timeout and the
        // request's deadline (ending it with a BodyError), so it needs no timer of its own.
        let (wait, is_deadline) = if self.request.stream {
            self.wait(
                deadlines
                    .first_token_ms
                    .saturating_sub(host.now_ms().saturating_sub(started)),
            )
        } else {
            (u64::MAX, false)
        };
        let committed =
            match within(host, wait, stream::commit(translator.as_mut(), &mut body)).await {
                None => {
                    let what = format!(
                        "no token within {} of sending",
                        seconds(deadlines.first_token_ms)
                    );
                    return self.timed_out(&call, "first_token_timeout", what, is_deadline);
                }
                Some(Ok(committed)) => committed,
                Some(Err(EarlyFailure::InBand(failure))) => {
                    return self.judge(&call, failure, None);
                }
                Some(Err(EarlyFailure::Body(reason))) => {
                    if BodyError(reason.clone()).is_deadline() {
                        return self.timed_out(&call, "total_timeout", reason, true);
                    }
                    let failure =
                        UpstreamError::in_band(502, ErrorObject::for_status(reason, 502, None));
                    return self.judge(&call, failure, None);
                }
            };
        host.health().recovered(key);
        self.log(index, via, "200", host.now_ms().saturating_sub(started));
        let on_late_failure = self.log.on_interrupted(host, index, via);
        let on_end = self.request.meter.for_body(Answered {
            target,
            model: self.request.upstream_model(target).into_owned(),
            via,
            calls: self.calls,
            first_token_at_ms: host.now_ms(),
        });
        Tried::Settled(Ok(self.respond(
            committed,
            translator,
            body,
            on_late_failure,
            on_end,
        )))
    }

    /// A non-2xx answer, judged. Only an answer that may be the client's error, or that may
    /// carry a retry hint in its body (a 429), is read: the client sees the first's message; a
    /// retried one's body is never shown, and an overloaded upstream may never finish sending.
    async fn refused(
        &mut self,
        call: &Call<'_>,
        prepared: &dyn PreparedRequest,
        response: UpstreamResponse,
    ) -> Tried {
        let status = response.status;
        let body = if status == 429 || verdict::of_status(status) == Verdict::ClientError {
            // A 429's body only matters for a retry hint: not worth a long wait.
            let idle = call.target.policy.deadlines.idle_ms;
            let (wait, _) = self.wait(if status == 429 { idle.min(5_000) } else { idle });
            within(self.host, wait, read_bounded(response.body))
                .await
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let hint = response
            .retry_after
            .as_deref()
            .and_then(verdict::retry_after_ms);
        let failure = prepared.failure(status, &body);
        self.judge(call, failure, hint)
    }

    /// Counts the request's input tokens on `target` with its first healthy key that answers;
    /// `None` when the target has no count endpoint or none of its keys answered (the handler
    /// then gives the proxy's estimate).
    async fn count(
        &mut self,
        index: usize,
        target: &'static Target,
        prepared: &dyn PreparedRequest,
    ) -> Option<Result<ProxyResponse, ProxyError>> {
        let host = self.host;
        for via in self.key_order(target) {
            let Via::Key(name) = via else {
                return None;
            };
            let key = health_key(via, target.model);
            if host.health().cooling(&key, host.now_ms()).is_some() {
                continue;
            }
            let secret = host.secret(name)?;
            let call = prepared.count_request(target, &secret)?;
            if self.over_limits().is_some() {
                return None;
            }
            self.calls += 1;
            let started = host.now_ms();
            let deadlines = target.policy.deadlines;
            let timeouts = Timeouts {
                connect_ms: deadlines.connect_ms,
                headers_ms: self.wait(deadlines.headers_ms).0,
                idle_ms: deadlines.idle_ms,
                deadline_ms: self.deadline_ms,
            };
            // The host bounds the wait for the headers, and the body by idle_timeout and the
            // request's deadline.
            let answer = match host.send(call, timeouts).await {
                Ok(response) => {
                    let ok = (200..300).contains(&response.status);
                    let body = read_bounded(response.body).await;
                    Some((
                        response.status,
                        ok.then(|| prepared.count_answer(&body)).flatten(),
                    ))
                }
                Err(_) => None,
            };
            let ms = host.now_ms().saturating_sub(started);
            match answer {
                Some((status, Some(tokens))) => {
                    self.log(index, via, &status.to_string(), ms);
                    let body = format!(r#"{{"input_tokens":{tokens}}}"#);
                    return Some(Ok(ProxyResponse::json(200, body.into())));
                }
                Some((status, None)) => self.log(index, via, &status.to_string(), ms),
                None => self.log(index, via, "network-error", ms),
            }
        }
        None
    }

    /// A deadline passed before the client got a byte: the attempt failed. `total` says it was
    /// the request's own deadline, after which nothing more is tried.
    fn timed_out(&mut self, call: &Call<'_>, which: &str, what: String, total: bool) -> Tried {
        let ms = self.host.now_ms().saturating_sub(call.started);
        let reason = if total {
            self.stopped = Some(Stop::Deadline(self.limits.total_timeout_ms));
            format!(
                "total_timeout of {} passed",
                seconds(self.limits.total_timeout_ms)
            )
        } else {
            format!("{what} ({which})")
        };
        self.strike(call.target, call.key, Strike::Failed);
        self.failed(
            call.index,
            call.via,
            Outcome::Timeout(reason),
            "timeout",
            ms,
        );
        Tried::Failed(!total)
    }

    /// Every target has been tried, or the loop stopped: the error naming each attempt.
    pub fn exhausted(mut self) -> ProxyError {
        let every_inexpressible = self
            .attempts
            .iter()
            .all(|a| matches!(a.outcome, Outcome::CannotExpress(_)));
        let error = match self.inexpressible.take() {
            Some(error) if every_inexpressible => error,
            _ => ProxyError::AllFailed {
                route: self.route.name,
                attempts: self.attempts,
                stop: self.stopped,
            },
        };
        self.log.finish(self.host, error.status());
        error
    }

    /// Applies the verdict on `failure`: settles the request with the client's error, or
    /// records the failed attempt and cools its key down.
    fn judge(
        &mut self,
        call: &Call<'_>,
        mut failure: UpstreamError,
        hint_ms: Option<u64>,
    ) -> Tried {
        if let Some(redaction) = call.redaction {
            redaction.error(&mut failure.error);
        }
        let ms = self.host.now_ms().saturating_sub(call.started);
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
        self.log(call.index, call.via, &logged, ms);
        let verdict = failure.verdict();
        let strike = match verdict {
            // Answered now: the client's error, not an attempt that failed over.
            Verdict::ClientError => {
                return Tried::Settled(Err(ProxyError::Upstream {
                    status,
                    error: failure.error,
                }))
            }
            Verdict::KeyRejected => Strike::Rejected,
            Verdict::Retry if status == 429 => Strike::RateLimited {
                hint_ms: hint_ms.or(failure.retry_after_ms),
            },
            Verdict::Retry => Strike::Failed,
        };
        self.strike(call.target, call.key, strike);
        self.record(call.index, call.via, outcome);
        Tried::Failed(status >= 500)
    }

    /// Cools `key` down as `target`'s policy says, and shares the cool-down if it is new.
    fn strike(&self, target: &'static Target, key: &str, strike: Strike) {
        let now = self.host.now_ms();
        let policy = &target.policy.cooldown;
        if let Some(cooldown) = self.host.health().strike(key, strike, policy, now) {
            self.host.share_cooldown(key, cooldown);
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
        on_end: Option<BodyEnd>,
    ) -> ProxyResponse {
        let stream = self.request.stream;
        let (framing, content_type) = match (stream, self.request.anthropic().is_some()) {
            (true, false) => (Framing::Sse, "text/event-stream; charset=utf-8"),
            (true, true) => (Framing::AnthropicSse, "text/event-stream; charset=utf-8"),
            (false, _) => (Framing::Json, "application/json"),
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
            body: ResponseBody::Upstream(
                ClientBody::new(committed, translator, body, framing, on_late_failure)
                    .with_end(on_end),
            ),
        }
    }
}

/// The cool-down memory's key for `via` on `model`.
pub(crate) fn health_key(via: Via, model: &str) -> String {
    match via {
        Via::Key(name) => KeyHealth::key(name, model),
        Via::Binding(name) => KeyHealth::key(&format!("binding:{name}"), model),
    }
}

/// `future`'s output, or `None` if `ms` pass first (the future is then dropped, which abandons
/// what it was doing upstream).
async fn within<H: Host, F: Future>(host: &H, ms: u64, future: F) -> Option<F::Output> {
    if ms == u64::MAX {
        return Some(future.await);
    }
    let future = pin!(future);
    let timer = pin!(host.sleep(ms));
    match select(future, timer).await {
        Either::Left((output, _)) => Some(output),
        Either::Right(_) => None,
    }
}

/// FNV-1a: a session id's stable hash, the same on every host and isolate.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A pseudo-random number for backoff jitter (splitmix64 over the clock and a counter): jitter
/// needs spread, not secrecy.
fn random<H: Host>(host: &H, salt: u32) -> u64 {
    static TURN: AtomicU64 = AtomicU64::new(0);
    let turn = TURN.fetch_add(1, Ordering::Relaxed);
    entropy::splitmix(host.now_ms().wrapping_add(u64::from(salt)), turn)
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
