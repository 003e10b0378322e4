//! The failover rules, driven through a scripted in-process host (no sockets, no timers) and
//! the real providers, bound to each target's provider type the way the generated routing table
//! binds them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use ai_worker_proxy::core::error::ProxyError;
use ai_worker_proxy::core::failover::Failover;
use ai_worker_proxy::core::failover::{Outcome, Stop};
use ai_worker_proxy::core::health::KeyHealth;
use ai_worker_proxy::core::host::{
    BindingCall, BindingError, BodyError, Host, NetworkError, Timeouts, UpstreamRequest,
    UpstreamResponse,
};
use ai_worker_proxy::core::http::{ProxyResponse, ResponseBody};
use ai_worker_proxy::core::log::{LogConfig, LogFormat, LogLevel};
use ai_worker_proxy::core::provider::prepare_with;
use ai_worker_proxy::core::request::ChatRequest;
use ai_worker_proxy::core::route::{
    CooldownPolicy, Deadlines, KeyStrategy, RequestLimits, RetryPolicy, Route, Target,
    TargetPolicy, Via,
};
use ai_worker_proxy::providers::anthropic::Anthropic;
use ai_worker_proxy::providers::google::Google;
use ai_worker_proxy::providers::openai::OpenAi;
use ai_worker_proxy::providers::workers_ai::WorkersAi;
use bytes::Bytes;
use futures_util::{stream, FutureExt, StreamExt};

/// `&[Via::Key(..), ...]` for key names.
macro_rules! keys {
    ($($name:literal),* $(,)?) => { &[$(Via::Key($name)),*] };
}

/// What the generated table does for a route: each target through its provider type.
async fn complete<H: Host>(
    host: &H,
    route: &'static Route,
    request: &ChatRequest,
) -> Result<ProxyResponse, ProxyError> {
    complete_logging(host, route, request, LogConfig::DEFAULT).await
}

async fn complete_logging<H: Host>(
    host: &H,
    route: &'static Route,
    request: &ChatRequest,
    log: LogConfig,
) -> Result<ProxyResponse, ProxyError> {
    complete_within(host, route, request, log, RequestLimits::DEFAULT).await
}

async fn complete_within<H: Host>(
    host: &H,
    route: &'static Route,
    request: &ChatRequest,
    log: LogConfig,
    limits: RequestLimits,
) -> Result<ProxyResponse, ProxyError> {
    let mut failover = Failover::new(host, route, request, log, limits);
    for (index, target) in route.targets.iter().enumerate() {
        let settled = match target.provider {
            "anthropic" => failover.target(index, prepare_with::<Anthropic>).await,
            "google" => failover.target(index, prepare_with::<Google>).await,
            "cloudflare-ai" => failover.target(index, prepare_with::<WorkersAi>).await,
            _ => failover.target(index, prepare_with::<OpenAi>).await,
        };
        if let Some(settled) = settled {
            return settled;
        }
    }
    Err(failover.exhausted())
}

/// What the fake upstream does for a given key value.
#[derive(Clone)]
enum Reply {
    Status(u16, &'static str),
    /// A status with a `retry-after` header.
    Hinted(u16, &'static str),
    Network,
    Ok(Vec<&'static str>, Option<&'static str>),
    /// Accepts the request and never answers.
    Hang,
    /// A 200 whose body sends these chunks, then hangs.
    OkThenHang(Vec<&'static str>),
}

#[derive(Clone, Default)]
struct FakeHost {
    replies: Rc<HashMap<&'static str, Reply>>,
    secrets: Rc<HashMap<&'static str, &'static str>>,
    sent: Rc<RefCell<Vec<(String, String, String)>>>,
    logs: Rc<RefCell<Vec<String>>>,
    /// What the AI binding's `run` does: `None` = no binding; `Ok(json)` answers; `Err(message)`
    /// throws.
    ai: Option<Result<&'static str, &'static str>>,
    health: Rc<KeyHealth>,
    /// Virtual time: `sleep` moves it on, so deadlines pass without waiting.
    clock: Rc<std::cell::Cell<u64>>,
}

impl Host for FakeHost {
    async fn send(
        &self,
        request: UpstreamRequest,
        timeouts: Timeouts,
    ) -> Result<UpstreamResponse, NetworkError> {
        let key = request
            .headers
            .iter()
            .find(|(n, _)| *n == "authorization" || *n == "x-goog-api-key")
            .map(|(_, v)| v.trim_start_matches("Bearer ").to_owned())
            .unwrap_or_default();
        self.sent.borrow_mut().push((
            request.url.clone(),
            key.clone(),
            String::from_utf8_lossy(&request.body).into_owned(),
        ));
        let reply = self
            .replies
            .get(key.as_str())
            .cloned()
            .unwrap_or(Reply::Status(401, "{}"));
        let mut retry_after = None;
        let (status, items): (u16, Vec<Result<Bytes, BodyError>>) = match reply {
            Reply::Network => return Err(NetworkError::Failed("connection refused".into())),
            // Hosts bound the wait for the headers themselves: the wait passes in virtual time.
            Reply::Hang => {
                self.clock.set(self.clock.get() + timeouts.headers_ms);
                return Err(NetworkError::NoHeaders);
            }
            Reply::OkThenHang(chunks) => {
                let chunks = chunks
                    .into_iter()
                    .map(|c| Ok::<_, BodyError>(Bytes::from_static(c.as_bytes())));
                return Ok(UpstreamResponse {
                    status: 200,
                    content_type: None,
                    retry_after: None,
                    body: Box::new(stream::iter(chunks).chain(stream::pending())),
                });
            }
            Reply::Hinted(status, hint) => {
                retry_after = Some(hint.to_owned());
                (status, vec![Ok(Bytes::from_static(b"{}"))])
            }
            Reply::Status(status, body) => (status, vec![Ok(Bytes::from_static(body.as_bytes()))]),
            Reply::Ok(chunks, fail) => {
                let mut items: Vec<_> = chunks
                    .into_iter()
                    .map(|c| Ok(Bytes::from_static(c.as_bytes())))
                    .collect();
                if let Some(f) = fail {
                    items.push(Err(BodyError(f.into())));
                }
                (200, items)
            }
        };
        Ok(UpstreamResponse {
            status,
            content_type: None,
            retry_after,
            body: Box::new(stream::iter(items)),
        })
    }
    fn secret(&self, name: &str) -> Option<std::rc::Rc<str>> {
        self.secrets.get(name).map(|s| std::rc::Rc::from(*s))
    }
    fn now_ms(&self) -> u64 {
        self.clock.get()
    }
    async fn sleep(&self, ms: u64) {
        self.clock.set(self.clock.get() + ms);
    }
    fn health(&self) -> &KeyHealth {
        &self.health
    }
    fn log(&self, line: &str) {
        self.logs.borrow_mut().push(line.to_owned());
    }
    async fn call_binding(
        &self,
        binding: &str,
        call: BindingCall,
        _timeouts: Timeouts,
    ) -> Result<UpstreamResponse, BindingError> {
        assert_eq!((binding, call.method), ("AI", "run"));
        let model: String = serde_json::from_slice(&call.args[0]).unwrap();
        self.sent.borrow_mut().push((
            format!("binding:{model}"),
            String::new(),
            String::from_utf8_lossy(&call.args[1]).into_owned(),
        ));
        match self.ai {
            None => Err(BindingError::Unavailable("no binding".into())),
            Some(Err(message)) => Err(BindingError::Thrown(message.into())),
            Some(Ok(json)) => Ok(UpstreamResponse {
                status: 200,
                content_type: Some("application/json".into()),
                retry_after: None,
                body: Box::new(stream::iter([Ok(Bytes::from_static(json.as_bytes()))])),
            }),
        }
    }
}

const SECRETS: [(&str, &str); 16] = [
    ("K_OK", "v-ok"),
    ("K_429", "v-429"),
    ("K_500", "v-500"),
    ("K_529", "v-529"),
    ("K_401", "v-401"),
    ("K_403", "v-403"),
    ("K_400", "v-400"),
    ("K_NET", "v-net"),
    ("K_HANG", "v-hang"),
    ("K_ROLE", "v-role"),
    ("K_OK_SSE", "v-ok-sse"),
    ("K_HINT", "v-hint"),
    ("K_OK2", "v-ok2"),
    ("K_OK3", "v-ok3"),
    ("K_404", "v-404"),
    ("K_307", "v-307"),
];

const JSON_OK: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","choices":[]}"#;
const SSE_OK: [&str; 2] = [
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n",
    "data: [DONE]\n\n",
];

fn host(extra: &[(&'static str, Reply)]) -> FakeHost {
    let mut replies: HashMap<&'static str, Reply> = HashMap::from([
        ("v-ok", Reply::Ok(vec![JSON_OK], None)),
        (
            "v-429",
            Reply::Status(
                429,
                r#"{"error":{"message":"slow down","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#,
            ),
        ),
        ("v-500", Reply::Status(500, "oops")),
        ("v-529", Reply::Status(529, "overloaded")),
        ("v-401", Reply::Status(401, "bad key v-401")),
        ("v-403", Reply::Status(403, "forbidden")),
        (
            "v-400",
            Reply::Status(
                400,
                r#"{"error":{"message":"bad temperature","type":"invalid_request_error","param":"temperature","code":"invalid_value"}}"#,
            ),
        ),
        ("v-net", Reply::Network),
    ]);
    replies.extend(extra.iter().cloned());
    FakeHost {
        replies: Rc::new(replies),
        secrets: Rc::new(SECRETS.into_iter().collect()),
        ..Default::default()
    }
}

const fn target(model: &'static str, vias: &'static [Via]) -> Target {
    Target {
        provider: "openai-compatible",
        model,
        base_url: "http://up/v1",
        vias,
        max_tokens: None,
        max_output_tokens: None,
        account_id: None,
        anthropic_betas: None,
        policy: TargetPolicy::DEFAULT,
    }
}

fn request(stream: bool) -> ChatRequest {
    let body = format!(
        r#"{{"model":"r","messages":[{{"role":"user","content":"hi"}}],"stream":{stream}}}"#
    );
    ChatRequest::parse(body.as_bytes()).unwrap()
}

fn run(host: &FakeHost, route: &'static Route, stream: bool) -> Result<(u16, String), ProxyError> {
    let response = complete(host, route, &request(stream))
        .now_or_never()
        .expect("fake host is never pending")?;
    Ok((response.status, body_text(response.body)))
}

fn body_text(body: ResponseBody) -> String {
    let stream = match body {
        ResponseBody::Full(b) => return String::from_utf8(b.to_vec()).unwrap(),
        ResponseBody::Upstream(body) => body.into_stream(),
    };
    stream
        .map(|item| String::from_utf8(item.unwrap().to_vec()).unwrap())
        .collect::<Vec<_>>()
        .now_or_never()
        .unwrap()
        .concat()
}

fn keys_sent(host: &FakeHost) -> Vec<String> {
    host.sent
        .borrow()
        .iter()
        .map(|(_, k, _)| k.clone())
        .collect()
}

fn assert_no_secret_values(host: &FakeHost, text: &str) {
    for (_, value) in SECRETS {
        assert!(
            !text.contains(value),
            "secret value {value} leaked into: {text}"
        );
        for line in host.logs.borrow().iter() {
            assert!(
                !line.contains(value),
                "secret value {value} leaked into log: {line}"
            );
        }
    }
}

#[test]
fn retryable_statuses_and_network_errors_rotate_keys_in_order() {
    static ROUTE: Route = Route {
        name: "r",
        targets: &[target(
            "m",
            keys!["K_429", "K_500", "K_529", "K_401", "K_403", "K_NET", "K_OK"],
        )],
    };
    let h = host(&[]);
    assert_eq!(run(&h, &ROUTE, false).unwrap(), (200, JSON_OK.to_owned()));
    assert_eq!(
        keys_sent(&h),
        ["v-429", "v-500", "v-529", "v-401", "v-403", "v-net", "v-ok"]
    );
    let logs = h.logs.borrow().join("\n");
    assert!(
        logs.contains(
            "route=r target=1/1 provider=openai-compatible model=m key=K_429 status=429 ms=0"
        ),
        "{logs}"
    );
    assert!(logs.contains("key=K_NET status=network-error"), "{logs}");
    assert!(logs.contains("key=K_OK status=200"), "{logs}");
    assert_no_secret_values(&h, &logs);
}

#[test]
fn client_errors_return_at_once_with_status_and_message() {
    static ROUTE: Route = Route {
        name: "r",
        targets: &[target("m", keys!["K_400", "K_OK"])],
    };
    let h = host(&[]);
    match run(&h, &ROUTE, false) {
        Err(ProxyError::Upstream { status, error }) => {
            assert_eq!(status, 400);
            assert_eq!(error.message, "bad temperature");
            assert_eq!(error.param.as_deref(), Some("temperature"));
        }
        other => panic!("expected the upstream 400, got {other:?}"),
    }
    assert_eq!(
        keys_sent(&h),
        ["v-400"],
        "a client error must not be retried"
    );
}

#[test]
fn spent_targets_fail_over_to_the_next_with_its_model() {
    static ROUTE: Route = Route {
        name: "r",
        targets: &[
            target("first", keys!["K_429", "K_500"]),
            target("second", keys!["K_OK"]),
        ],
    };
    let h = host(&[]);
    assert_eq!(run(&h, &ROUTE, false).unwrap().0, 200);
    let sent = h.sent.borrow();
    assert_eq!(sent.len(), 3);
    assert!(sent[0].2.contains(r#""model":"first""#) && sent[2].2.contains(r#""model":"second""#));
}

#[test]
fn unset_secrets_are_skipped_without_a_request() {
    static ROUTE: Route = Route {
        name: "r",
        targets: &[target("m", keys!["K_MISSING", "K_OK"])],
    };
    let h = host(&[]);
    assert_eq!(run(&h, &ROUTE, false).unwrap().0, 200);
    assert_eq!(keys_sent(&h), ["v-ok"]);
    assert!(h.logs.borrow()[0].contains("key=K_MISSING status=key-not-set"));
}

#[test]
fn all_rate_limited_is_429_otherwise_500_naming_every_attempt() {
    static LIMITED: Route = Route {
        name: "r",
        targets: &[target("a", keys!["K_429"]), target("b", keys!["K_429"])],
    };
    let err = run(&host(&[]), &LIMITED, false).unwrap_err();
    assert_eq!(err.status(), 429);

    static MIXED: Route = Route {
        name: "r",
        targets: &[
            target("a", keys!["K_500", "K_MISSING"]),
            target("b", keys!["K_401", "K_NET"]),
        ],
    };
    let h = host(&[]);
    let err = run(&h, &MIXED, false).unwrap_err();
    assert_eq!(err.status(), 500);
    let message = err.to_error_object().message;
    assert_eq!(
        message,
        "All 4 attempts for model `r` failed: openai-compatible a with key K_500: HTTP 500; \
         openai-compatible a with key K_MISSING: secret not set; openai-compatible b with key K_401: HTTP 401; \
         openai-compatible b with key K_NET: network error (connection refused)"
    );
    assert_no_secret_values(&h, &message);
}

#[test]
fn a_stream_that_fails_before_its_first_byte_fails_over() {
    static ROUTE: Route = Route {
        name: "r",
        targets: &[target("m", keys!["K_EMPTY", "K_RESET", "K_OK"])],
    };
    let h = FakeHost {
        secrets: Rc::new(HashMap::from([
            ("K_EMPTY", "v-empty"),
            ("K_RESET", "v-reset"),
            ("K_OK", "v-ok"),
        ])),
        ..host(&[
            ("v-empty", Reply::Ok(vec![], None)),
            ("v-reset", Reply::Ok(vec![""], Some("reset"))),
            ("v-ok", Reply::Ok(SSE_OK.to_vec(), None)),
        ])
    };
    let (status, body) = run(&h, &ROUTE, true).unwrap();
    assert_eq!((status, body), (200, SSE_OK.concat()));
    assert_eq!(keys_sent(&h), ["v-empty", "v-reset", "v-ok"]);
}

#[test]
fn a_stream_that_fails_after_bytes_ends_with_an_error_event_and_done() {
    static ROUTE: Route = Route {
        name: "r",
        targets: &[target("m", keys!["K_OK", "K_429"])],
    };
    let h = host(&[("v-ok", Reply::Ok(vec![SSE_OK[0]], Some("connection reset")))]);
    let (status, body) = run(&h, &ROUTE, true).unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        body,
        format!("{}data: {{\"error\":{{\"message\":\"the upstream connection failed mid-response: connection reset\",\"type\":\"upstream_error\",\"param\":null,\"code\":\"stream_interrupted\"}}}}\n\ndata: [DONE]\n\n", SSE_OK[0])
    );
    assert!(!body.contains("finish_reason"));
    assert_eq!(
        keys_sent(&h),
        ["v-ok"],
        "no failover once bytes reached the client"
    );
    assert!(h
        .logs
        .borrow()
        .iter()
        .any(|l| l.contains("stream-interrupted")));
}

#[test]
fn a_stream_whose_first_event_is_an_error_fails_over() {
    static ROUTE: Route = Route {
        name: "r",
        targets: &[target("m", keys!["K_429", "K_OK"])],
    };
    let h = host(&[
        ("v-429", Reply::Ok(vec!["data: {\"error\":{\"message\":\"Rate limit\",\"type\":\"rate_limit_error\"}}\n\n", "data: [DONE]\n\n"], None)),
        ("v-ok", Reply::Ok(SSE_OK.to_vec(), None)),
    ]);
    assert_eq!(run(&h, &ROUTE, true).unwrap(), (200, SSE_OK.concat()));
    assert_eq!(keys_sent(&h), ["v-429", "v-ok"]);
    assert!(
        h.logs.borrow()[0].contains("key=K_429 status=200-then-429"),
        "{:?}",
        h.logs.borrow()
    );
}

#[test]
fn a_gemini_invalid_key_400_rotates_but_a_schema_400_is_returned() {
    const BAD_KEY: &str = r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID"}]}}"#;
    const GEMINI_TEXT: &str = r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"hi"}]},"finishReason":"STOP","index":0}],"responseId":"r"}"#;
    static GEMINI: Route = Route {
        name: "g",
        targets: &[Target {
            provider: "google",
            model: "gemini-2.5-flash",
            base_url: "https://g",
            vias: keys!["K_401", "K_400", "K_OK"],
            max_tokens: None,
            max_output_tokens: None,
            account_id: None,
            anthropic_betas: None,
            policy: TargetPolicy::DEFAULT,
        }],
    };
    let h = host(&[
        ("v-401", Reply::Status(400, BAD_KEY)),
        ("v-ok", Reply::Ok(vec![GEMINI_TEXT], None)),
        (
            "v-400",
            Reply::Status(
                400,
                r#"{"error":{"code":400,"message":"Invalid JSON payload received. Unknown name \"const\"","status":"INVALID_ARGUMENT"}}"#,
            ),
        ),
    ]);
    let err = run(&h, &GEMINI, false).unwrap_err();
    assert_eq!(keys_sent(&h), ["v-401", "v-400"]);
    assert_eq!(err.status(), 400);
    let e = err.to_error_object();
    assert_eq!(
        e.message,
        "Invalid JSON payload received. Unknown name \"const\""
    );
    assert_eq!(e.code.as_deref(), Some("invalid_argument"));
    static GEMINI_OK: Route = Route {
        name: "g",
        targets: &[Target {
            provider: "google",
            model: "gemini-2.5-flash",
            base_url: "https://g",
            vias: keys!["K_401", "K_OK"],
            max_tokens: None,
            max_output_tokens: None,
            account_id: None,
            anthropic_betas: None,
            policy: TargetPolicy::DEFAULT,
        }],
    };
    let h = host(&[
        ("v-401", Reply::Status(400, BAD_KEY)),
        ("v-ok", Reply::Ok(vec![GEMINI_TEXT], None)),
    ]);
    let (status, body) = run(&h, &GEMINI_OK, false).unwrap();
    assert_eq!(status, 200);
    assert!(body.contains(r#""content":"hi""#), "{body}");
    assert_eq!(keys_sent(&h), ["v-401", "v-ok"]);
    assert!(h.sent.borrow()[0]
        .0
        .ends_with("/v1beta/models/gemini-2.5-flash:generateContent"));
}

const WAI_BINDING: Target = Target {
    provider: "cloudflare-ai",
    model: "@cf/meta/llama-3.1-8b-instruct",
    base_url: "https://api.cloudflare.com/client/v4",
    vias: &[Via::Binding("AI")],
    max_tokens: None,
    max_output_tokens: None,
    account_id: None,
    anthropic_betas: None,
    policy: TargetPolicy::DEFAULT,
};

const WAI_REST: Target = Target {
    vias: keys!["K_429", "K_OK"],
    account_id: Some("ACCOUNT"),
    policy: TargetPolicy::DEFAULT,
    ..WAI_BINDING
};

fn wai_host(ai: Option<Result<&'static str, &'static str>>) -> FakeHost {
    let mut h = host(&[(
        "v-ok",
        Reply::Ok(
            vec![r#"{"result":{"response":"via rest"},"success":true}"#],
            None,
        ),
    )]);
    let mut secrets: HashMap<&'static str, &'static str> = SECRETS.into_iter().collect();
    secrets.insert("ACCOUNT", "acct-1");
    h.secrets = Rc::new(secrets);
    h.ai = ai;
    h
}

#[test]
fn workers_ai_binding_answers_and_its_errors_fail_over_or_return_by_code() {
    static ROUTE: Route = Route {
        name: "r",
        targets: &[WAI_BINDING, WAI_REST],
    };
    // The binding answers: nothing goes over HTTP.
    let h = wai_host(Some(Ok(r#"{"response":"via binding"}"#)));
    let (status, body) = run(&h, &ROUTE, false).unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("via binding"), "{body}");
    assert_eq!(h.sent.borrow().len(), 1);
    assert!(h.sent.borrow()[0].2.contains("\"max_tokens\":4096"));
    // No binding (the native host), or capacity (3040 → 429): on to REST, whose account id is
    // in the path and whose first key is rate-limited.
    for ai in [
        None,
        Some(Err(
            "InferenceUpstreamError: 3040: Capacity temporarily exceeded",
        )),
    ] {
        let h = wai_host(ai);
        let (status, body) = run(&h, &ROUTE, false).unwrap();
        assert_eq!(status, 200);
        assert!(body.contains("via rest"), "{body}");
        let sent = h.sent.borrow();
        assert_eq!(sent.len(), 3);
        assert_eq!(
            sent[2].0,
            "https://api.cloudflare.com/client/v4/accounts/acct-1/ai/run/@cf/meta/llama-3.1-8b-instruct"
        );
        let logs = h.logs.borrow();
        assert!(logs[0].contains("key=binding:AI"), "{logs:?}");
    }
    // Bad input (5004 → 400) is the client's: answered at once, no REST attempt.
    let h = wai_host(Some(Err("AiError: 5004: Invalid data")));
    match run(&h, &ROUTE, false) {
        Err(ProxyError::Upstream { status, error }) => {
            assert_eq!(status, 400);
            assert_eq!(error.code.as_deref(), Some("5004"));
            assert!(error.message.contains("Invalid data"));
        }
        other => panic!("expected a 400, got {other:?}"),
    }
    assert_eq!(h.sent.borrow().len(), 1);
}

#[test]
fn workers_ai_rest_without_its_account_secret_moves_on() {
    static ROUTE: Route = Route {
        name: "r",
        targets: &[
            Target {
                account_id: Some("NOT_SET"),
                policy: TargetPolicy::DEFAULT,
                ..WAI_REST
            },
            target("m", keys!["K_OK"]),
        ],
    };
    let h = wai_host(None);
    let (status, _) = run(&h, &ROUTE, false).unwrap();
    assert_eq!(status, 200);
    assert_eq!(keys_sent(&h), ["v-ok"]);
    match run(&wai_host(None), &ONLY_BINDING, false) {
        Err(e @ ProxyError::AllFailed { .. }) => {
            assert_eq!(e.status(), 500);
            let message = e.to_error_object().message;
            assert!(message.contains("via the AI binding"), "{message}");
        }
        other => panic!("expected AllFailed, got {:?}", other.map(|r| r.0)),
    }
}

static ONLY_BINDING: Route = Route {
    name: "r",
    targets: &[WAI_BINDING],
};

#[test]
fn a_pass_through_stream_is_relayed_after_its_first_event() {
    static ROUTE: Route = Route {
        name: "r",
        targets: &[target("m", keys!["K_OK"])],
    };
    let h = host(&[("v-ok", Reply::Ok(SSE_OK.to_vec(), None))]);
    // A request the proxy meters, without the client's own `include_usage`: the proxy asks for
    // the usage chunk and takes it out of the stream again: every chunk must pass through it,
    // so that is no relay.
    let mut metered = request(true);
    metered.usage_wanted = true;
    let response = complete(&h, &ROUTE, &metered)
        .now_or_never()
        .unwrap()
        .unwrap();
    let ResponseBody::Upstream(body) = response.body else {
        panic!("expected an upstream body, got {:?}", response.body);
    };
    assert!(!body.relays());
    // Unmetered, it is relayed.
    let response = complete(&h, &ROUTE, &request(true))
        .now_or_never()
        .unwrap()
        .unwrap();
    let ResponseBody::Upstream(body) = response.body else {
        panic!("expected an upstream body, got {:?}", response.body);
    };
    assert!(body.relays());
    let mut asked = ChatRequest::parse(
        br#"{"model":"r","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}"#,
    )
    .unwrap();
    // The client asked for usage itself and the proxy meters: nothing to take out, but the
    // proxy reads the usage, so the host must not carry the rest unread.
    asked.usage_wanted = true;
    let response = complete(&h, &ROUTE, &asked)
        .now_or_never()
        .unwrap()
        .unwrap();
    let ResponseBody::Upstream(body) = response.body else {
        panic!("expected an upstream body, got {:?}", response.body);
    };
    assert!(!body.relays());
    asked.usage_wanted = false;
    let response = complete(&h, &ROUTE, &asked)
        .now_or_never()
        .unwrap()
        .unwrap();
    let ResponseBody::Upstream(body) = response.body else {
        panic!("expected an upstream body, got {:?}", response.body);
    };
    assert!(body.relays());
    type Chunks = stream::Iter<std::vec::IntoIter<Result<Bytes, BodyError>>>;
    let body = match body.take_rest::<String>() {
        Err(body) => body,
        Ok(_) => panic!("a relay's rest is the host's own body type, not any type"),
    };
    let Ok(mut parts) = body.take_rest::<Chunks>() else {
        panic!("the fake host's body is its own type");
    };
    assert_eq!(&parts.first[..], SSE_OK[0].as_bytes());
    let rest: Vec<_> = (&mut parts.rest)
        .map(|c| c.unwrap())
        .collect::<Vec<_>>()
        .now_or_never()
        .unwrap();
    assert_eq!(rest, [Bytes::from_static(SSE_OK[1].as_bytes())]);
    assert_eq!(
        parts.framing.failure_tail("reset").unwrap(),
        "\n\ndata: {\"error\":{\"message\":\"the upstream connection failed mid-response: reset\",\"type\":\"upstream_error\",\"param\":null,\"code\":\"stream_interrupted\"}}\n\ndata: [DONE]\n\n"
    );
    // A translated stream is never relayed: every chunk goes through its translator.
    static GEMINI: Route = Route {
        name: "g",
        targets: &[Target {
            provider: "google",
            model: "gemini-2.5-flash",
            base_url: "https://g",
            vias: keys!["K_OK"],
            max_tokens: None,
            max_output_tokens: None,
            account_id: None,
            anthropic_betas: None,
            policy: TargetPolicy::DEFAULT,
        }],
    };
    let h = host(&[(
        "v-ok",
        Reply::Ok(
            vec![
                "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"hi\"}]},\"index\":0}],\"responseId\":\"r\"}\r\n\r\n",
                "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"!\"}]},\"finishReason\":\"STOP\",\"index\":0}],\"responseId\":\"r\"}\r\n\r\n",
            ],
            None,
        ),
    )]);
    let response = complete(&h, &GEMINI, &request(true))
        .now_or_never()
        .unwrap()
        .unwrap();
    let ResponseBody::Upstream(body) = response.body else {
        panic!("expected an upstream body");
    };
    assert!(!body.relays());
    // The host may read the rest itself and feed the driver, a call per chunk.
    let Ok(mut parts) = body.take_driver::<Chunks>() else {
        panic!("the fake host's body is its own type");
    };
    let mut out = String::from_utf8(parts.first.to_vec()).unwrap();
    while let Some(chunk) = parts.rest.next().now_or_never().unwrap() {
        out.push_str(std::str::from_utf8(&parts.driver.chunk(chunk.unwrap()).unwrap()).unwrap());
    }
    out.push_str(std::str::from_utf8(&parts.driver.end().unwrap()).unwrap());
    assert!(parts.driver.is_done());
    assert!(out.contains("\"content\":\"!\""), "{out}");
    assert!(out.ends_with("data: [DONE]\n\n"), "{out}");
}

#[test]
fn logging_follows_its_level_and_format() {
    static ROUTE: Route = Route {
        name: "r",
        targets: &[target("m", keys!["K_429", "K_OK"])],
    };
    let run_with = |level, format, secrets: &[(&'static str, &'static str)]| {
        let mut h = host(&[]);
        let mut all: HashMap<&'static str, &'static str> = SECRETS.into_iter().collect();
        all.extend(secrets.iter().copied());
        h.secrets = Rc::new(all);
        let log = LogConfig { level, format };
        complete_logging(&h, &ROUTE, &request(false), log)
            .now_or_never()
            .unwrap()
            .unwrap();
        let logs = h.logs.borrow().clone();
        logs
    };
    let text = run_with(LogLevel::Info, LogFormat::Text, &[]);
    assert_eq!(text.len(), 2, "{text:?}");
    assert!(text[1].ends_with("key=K_OK status=200 ms=0"), "{text:?}");
    let errors = run_with(LogLevel::Errors, LogFormat::Text, &[]);
    assert_eq!(errors.len(), 1);
    assert!(errors[0].contains("key=K_429 status=429"), "{errors:?}");
    assert!(run_with(LogLevel::Off, LogFormat::Text, &[]).is_empty());
    let json = run_with(LogLevel::Info, LogFormat::Json, &[]);
    assert_eq!(
        json,
        [
            r#"{"route":"r","status":200,"attempts":[{"target":1,"provider":"openai-compatible","model":"m","key":"K_429","status":"429","ms":0},{"target":1,"provider":"openai-compatible","model":"m","key":"K_OK","status":"200","ms":0}]}"#
        ]
    );
    // PROXY_LOG overrides routes.toml at run time; an invalid value does not.
    assert!(run_with(LogLevel::Info, LogFormat::Text, &[("PROXY_LOG", "off")]).is_empty());
    assert_eq!(
        run_with(LogLevel::Info, LogFormat::Text, &[("PROXY_LOG", "loud")]).len(),
        2
    );
    assert_eq!(
        run_with(
            LogLevel::Off,
            LogFormat::Text,
            &[("PROXY_LOG", "errors,json")]
        ),
        json
    );
}

// ---- deadlines, cool-downs, key strategies, retries, limits (the fault-tolerance rules)

const fn with(model: &'static str, vias: &'static [Via], policy: TargetPolicy) -> Target {
    Target {
        policy,
        ..target(model, vias)
    }
}

const SHORT: Deadlines = Deadlines {
    connect_ms: 1_000,
    headers_ms: 1_000,
    first_token_ms: 1_500,
    idle_ms: 1_000,
};

const FAST: TargetPolicy = TargetPolicy {
    deadlines: SHORT,
    ..TargetPolicy::DEFAULT
};

const ROLE_CHUNK: &str =
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n";

fn run_with(
    host: &FakeHost,
    route: &'static Route,
    request: &ChatRequest,
    limits: RequestLimits,
) -> Result<(u16, String), ProxyError> {
    let response = complete_within(host, route, request, LogConfig::DEFAULT, limits)
        .now_or_never()
        .expect("the fake host's clock makes every deadline pass at once")?;
    Ok((response.status, body_text(response.body)))
}

fn outcomes(error: &ProxyError) -> Vec<Outcome> {
    match error {
        ProxyError::AllFailed { attempts, .. } => {
            attempts.iter().map(|a| a.outcome.clone()).collect()
        }
        other => panic!("expected AllFailed, got {other:?}"),
    }
}

#[test]
fn a_hung_key_is_given_up_at_the_headers_deadline_and_the_next_key_answers() {
    static ROUTE: Route = Route {
        name: "r",
        targets: &[with("m", keys!["K_HANG", "K_OK"], FAST)],
    };
    let h = host(&[("v-hang", Reply::Hang)]);
    assert_eq!(run(&h, &ROUTE, false).unwrap(), (200, JSON_OK.to_owned()));
    assert_eq!(keys_sent(&h), ["v-hang", "v-ok"]);
    assert_eq!(h.clock.get(), 1_000, "waited exactly headers_timeout");
    let logs = h.logs.borrow().join("\n");
    assert!(logs.contains("key=K_HANG status=timeout ms=1000"), "{logs}");
}

#[test]
fn a_stream_that_sends_only_its_role_chunk_fails_over_at_the_first_token_deadline() {
    static ROUTE: Route = Route {
        name: "r",
        targets: &[with("m", keys!["K_ROLE", "K_OK_SSE"], FAST)],
    };
    let h = host(&[
        (
            "v-role",
            Reply::OkThenHang(vec![ROLE_CHUNK, ": keep-alive\n\n"]),
        ),
        ("v-ok-sse", Reply::Ok(SSE_OK.to_vec(), None)),
    ]);
    let (status, body) = run(&h, &ROUTE, true).unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, SSE_OK.concat());
    assert_eq!(keys_sent(&h), ["v-role", "v-ok-sse"]);
    assert_eq!(h.clock.get(), 1_500, "waited exactly first_token_timeout");
}

#[test]
fn the_total_deadline_ends_the_request_with_504_and_tries_nothing_after_it() {
    static ROUTE: Route = Route {
        name: "r",
        targets: &[
            target("m", keys!["K_HANG", "K_OK"]),
            target("n", keys!["K_OK"]),
        ],
    };
    let h = host(&[("v-hang", Reply::Hang)]);
    let limits = RequestLimits {
        total_timeout_ms: 5_000,
        ..RequestLimits::DEFAULT
    };
    let error = run_with(&h, &ROUTE, &request(false), limits).unwrap_err();
    assert_eq!(error.status(), 504);
    assert_eq!(keys_sent(&h), ["v-hang"]);
    assert!(matches!(
        error,
        ProxyError::AllFailed {
            stop: Some(Stop::Deadline(5_000)),
            ..
        }
    ));
    let object = error.to_error_object();
    assert_eq!(object.code.as_deref(), Some("deadline_exceeded"));
    assert!(
        object.message.contains("total_timeout of 5 s passed"),
        "{}",
        object.message
    );
}

#[test]
fn a_key_that_answered_429_is_skipped_until_its_retry_after_passes() {
    static ROUTE: Route = Route {
        name: "r",
        targets: &[target("m", keys!["K_HINT", "K_OK"])],
    };
    let h = host(&[("v-hint", Reply::Hinted(429, "30"))]);
    assert_eq!(run(&h, &ROUTE, false).unwrap().0, 200);
    assert_eq!(keys_sent(&h), ["v-hint", "v-ok"]);
    h.sent.borrow_mut().clear();
    assert_eq!(run(&h, &ROUTE, false).unwrap().0, 200);
    assert_eq!(keys_sent(&h), ["v-ok"], "the cooled key costs no request");
    let logs = h.logs.borrow().join("\n");
    assert!(logs.contains("key=K_HINT status=cooling-down"), "{logs}");
    h.clock.set(h.clock.get() + 30_000);
    h.sent.borrow_mut().clear();
    run(&h, &ROUTE, false).unwrap();
    assert_eq!(
        keys_sent(&h),
        ["v-hint", "v-ok"],
        "tried again once the hint passed"
    );
}

#[test]
fn when_every_key_cools_down_the_answer_is_429_at_once_with_the_earliest_recovery() {
    static ROUTE: Route = Route {
        name: "r",
        targets: &[target("m", keys!["K_HINT"]), target("n", keys!["K_401"])],
    };
    let h = host(&[("v-hint", Reply::Hinted(429, "12"))]);
    let first = run(&h, &ROUTE, false).unwrap_err();
    assert_eq!(
        first.status(),
        500,
        "a 429 then a 401 is not all rate-limited"
    );
    h.sent.borrow_mut().clear();
    let second = run(&h, &ROUTE, false).unwrap_err();
    assert!(
        h.sent.borrow().is_empty(),
        "no upstream call while every key cools down"
    );
    assert_eq!(second.status(), 429);
    assert_eq!(
        outcomes(&second),
        [Outcome::CoolingDown(12_000), Outcome::CoolingDown(600_000)]
    );
    assert_eq!(second.retry_after_secs(), Some(12));
    let response = second.into_response();
    assert!(response.headers.contains(&("retry-after", "12".to_owned())));
    let body = body_text(response.body);
    assert!(
        body.contains("with key K_HINT: cooling down (12s left)"),
        "{body}"
    );
}

#[test]
fn a_429_without_a_hint_cools_for_the_policy_default_and_a_shorter_hint_never_shortens_it() {
    static POLICY: TargetPolicy = TargetPolicy {
        cooldown: CooldownPolicy {
            rate_limited_ms: 20_000,
            ..CooldownPolicy::DEFAULT
        },
        ..TargetPolicy::DEFAULT
    };
    static ROUTE: Route = Route {
        name: "r",
        targets: &[with("m", keys!["K_429"], POLICY)],
    };
    let h = host(&[]);
    run(&h, &ROUTE, false).unwrap_err();
    let error = run(&h, &ROUTE, false).unwrap_err();
    assert_eq!(outcomes(&error), [Outcome::CoolingDown(20_000)]);
}

#[test]
fn round_robin_spreads_requests_over_the_healthy_keys() {
    static ROUTE: Route = Route {
        name: "r",
        targets: &[with(
            "m",
            keys!["K_OK", "K_OK2", "K_OK3"],
            TargetPolicy {
                key_strategy: KeyStrategy::RoundRobin,
                ..TargetPolicy::DEFAULT
            },
        )],
    };
    let h = host(&[
        ("v-ok2", Reply::Ok(vec![JSON_OK], None)),
        ("v-ok3", Reply::Ok(vec![JSON_OK], None)),
    ]);
    for _ in 0..6 {
        run(&h, &ROUTE, false).unwrap();
    }
    assert_eq!(
        keys_sent(&h),
        ["v-ok", "v-ok2", "v-ok3", "v-ok", "v-ok2", "v-ok3"]
    );
}

#[test]
fn sticky_keeps_a_session_on_one_key_and_moves_it_only_while_that_key_cools() {
    static ROUTE: Route = Route {
        name: "r",
        targets: &[with(
            "m",
            keys!["K_A", "K_B", "K_C"],
            TargetPolicy {
                key_strategy: KeyStrategy::Sticky,
                ..TargetPolicy::DEFAULT
            },
        )],
    };
    let ok = || Reply::Ok(vec![JSON_OK], None);
    let h = host(&[("v-a", ok()), ("v-b", ok()), ("v-c", ok())]);
    let mut h = h;
    h.secrets = Rc::new(HashMap::from([
        ("K_A", "v-a"),
        ("K_B", "v-b"),
        ("K_C", "v-c"),
    ]));
    let session = |user: &str| {
        ChatRequest::parse(
            format!(
                r#"{{"model":"r","messages":[{{"role":"user","content":"hi"}}],"user":"{user}"}}"#
            )
            .as_bytes(),
        )
        .unwrap()
    };
    for _ in 0..5 {
        run_with(&h, &ROUTE, &session("alice"), RequestLimits::DEFAULT).unwrap();
    }
    let sent = keys_sent(&h);
    assert!(
        sent.iter().all(|k| *k == sent[0]),
        "one key for one session: {sent:?}"
    );
    h.sent.borrow_mut().clear();
    for user in 0..12 {
        run_with(
            &h,
            &ROUTE,
            &session(&format!("user-{user}")),
            RequestLimits::DEFAULT,
        )
        .unwrap();
    }
    let mut used = keys_sent(&h);
    used.sort();
    used.dedup();
    assert!(used.len() >= 2, "sessions spread over the keys: {used:?}");
}

#[test]
fn same_key_retries_back_off_within_the_cap_and_never_retry_a_client_error() {
    static POLICY: TargetPolicy = TargetPolicy {
        retry: RetryPolicy {
            attempts: 2,
            base_ms: 200,
            max_ms: 300,
        },
        ..TargetPolicy::DEFAULT
    };
    static ROUTE: Route = Route {
        name: "r",
        targets: &[with("m", keys!["K_500", "K_OK"], POLICY)],
    };
    let h = host(&[]);
    assert_eq!(run(&h, &ROUTE, false).unwrap().0, 200);
    assert_eq!(keys_sent(&h), ["v-500", "v-500", "v-500", "v-ok"]);
    assert!(
        h.clock.get() <= 200 + 300,
        "full jitter stays under base, then the cap"
    );

    static CLIENT: Route = Route {
        name: "r",
        targets: &[with("m", keys!["K_400", "K_OK"], POLICY)],
    };
    let h = host(&[]);
    assert_eq!(run(&h, &CLIENT, false).unwrap_err().status(), 400);
    assert_eq!(keys_sent(&h), ["v-400"]);
    static LIMITED: Route = Route {
        name: "r",
        targets: &[with("m", keys!["K_429", "K_OK"], POLICY)],
    };
    let h = host(&[]);
    run(&h, &LIMITED, false).unwrap();
    assert_eq!(
        keys_sent(&h),
        ["v-429", "v-ok"],
        "a 429 moves to the next key at once"
    );
}

#[test]
fn the_loop_stops_before_exceeding_max_subrequests() {
    static ROUTE: Route = Route {
        name: "r",
        targets: &[
            target("m", keys!["K_500", "K_529", "K_NET"]),
            target("n", keys!["K_500", "K_OK"]),
        ],
    };
    let h = host(&[]);
    let limits = RequestLimits {
        max_subrequests: 4,
        ..RequestLimits::DEFAULT
    };
    let error = run_with(&h, &ROUTE, &request(false), limits).unwrap_err();
    assert_eq!(keys_sent(&h), ["v-500", "v-529", "v-net", "v-500"]);
    assert!(error
        .to_error_object()
        .message
        .ends_with("a request may make at most 4 upstream calls (max_subrequests)."));
}

#[test]
fn upstream_404_and_redirects_fail_over() {
    static ROUTE: Route = Route {
        name: "r",
        targets: &[target("m", keys!["K_404", "K_307", "K_OK"])],
    };
    let h = host(&[
        (
            "v-404",
            Reply::Status(404, r#"{"error":{"message":"no such model"}}"#),
        ),
        ("v-307", Reply::Status(307, "")),
    ]);
    let mut h = h;
    let mut secrets: HashMap<&'static str, &'static str> = SECRETS.into_iter().collect();
    secrets.extend([("K_404", "v-404"), ("K_307", "v-307")]);
    h.secrets = Rc::new(secrets);
    assert_eq!(run(&h, &ROUTE, false).unwrap().0, 200);
    assert_eq!(keys_sent(&h), ["v-404", "v-307", "v-ok"]);
}

#[test]
fn a_target_that_cannot_express_the_request_is_skipped_and_never_hides_a_429() {
    static ROUTE: Route = Route {
        name: "r",
        targets: &[
            Target {
                provider: "anthropic",
                base_url: "http://up",
                ..target("claude", keys!["K_OK"])
            },
            target("m", keys!["K_OK"]),
        ],
    };
    let two =
        ChatRequest::parse(br#"{"model":"r","messages":[{"role":"user","content":"hi"}],"n":2}"#)
            .unwrap();
    let h = host(&[]);
    assert_eq!(
        run_with(&h, &ROUTE, &two, RequestLimits::DEFAULT)
            .unwrap()
            .0,
        200
    );
    assert_eq!(keys_sent(&h), ["v-ok"], "the OpenAI target took it");

    static ONLY: Route = Route {
        name: "r",
        targets: &[Target {
            provider: "anthropic",
            base_url: "http://up",
            ..target("claude", keys!["K_OK"])
        }],
    };
    let error = run_with(&host(&[]), &ONLY, &two, RequestLimits::DEFAULT).unwrap_err();
    assert_eq!(error.status(), 400, "no target can: the client's error");
    assert_eq!(error.to_error_object().param.as_deref(), Some("n"));

    static LIMITED: Route = Route {
        name: "r",
        targets: &[
            target("m", keys!["K_429"]),
            Target {
                provider: "anthropic",
                base_url: "http://up",
                ..target("claude", keys!["K_OK"])
            },
        ],
    };
    let error = run_with(&host(&[]), &LIMITED, &two, RequestLimits::DEFAULT).unwrap_err();
    assert_eq!(error.status(), 429, "the 429 is not hidden by the 400");
    assert!(error
        .to_error_object()
        .message
        .contains("cannot take this request"));
}
