//! Every invalid file in tests/routes/invalid states, in its header, the exact error, location
//! and help it must produce; this checks the parser against all of them, and that the
//! shipped and example files are valid.

#![cfg(feature = "parse")]

use crate::parse::parse;
use crate::schema::{LogConfig, LogFormat, LogLevel, Target, TargetPolicy, Via};

fn expectation<'a>(source: &'a str, key: &str) -> &'a str {
    source
        .lines()
        .find_map(|l| l.strip_prefix(&format!("# {key}: ")))
        .unwrap_or_else(|| panic!("fixture lacks a `# {key}:` line"))
}

#[test]
fn every_invalid_fixture_fails_with_its_stated_message() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/routes/invalid");
    let mut seen = 0;
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(dir).expect("fixture dir") {
        let path = entry.expect("entry").path();
        let source = std::fs::read_to_string(&path).expect("fixture");
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let diagnostic = match parse(&source) {
            Err(d) => d,
            Ok(_) => panic!("{name}: parsed, but should have failed"),
        };
        let rendered = diagnostic.render("routes.toml", &source);
        let first_line = rendered.lines().next().unwrap_or_default();
        let want = format!(
            "routes.toml:{}: {}",
            expectation(&source, "at"),
            expectation(&source, "error")
        );
        let help = expectation(&source, "help");
        if first_line != want || !rendered.contains(help) {
            failures.push(format!(
                "{name}: expected `{want}` with help containing {help:?}, got:\n{rendered}"
            ));
        }
        seen += 1;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(
        seen >= 15,
        "expected every validation case to have a fixture, found {seen}"
    );
}

#[test]
fn shipped_routes_files_are_valid() {
    for file in [
        "routes.toml",
        "tests/routes/e2e.toml",
        "tests/routes/bench.toml",
        "benches/size/openai-only.toml",
        "benches/size/all-providers.toml",
    ] {
        let path = format!("{}/../../{file}", env!("CARGO_MANIFEST_DIR"));
        let source = std::fs::read_to_string(&path).expect("routes file");
        if let Err(d) = parse(&source) {
            panic!("{}", d.render(file, &source));
        }
    }
}

#[test]
fn the_issue_example_parses_to_the_expected_table() {
    let src = r#"
[server]
auth_token = "PROXY_AUTH_TOKEN"

[[routes.deep-think]]
provider = "anthropic"
model = "claude-opus-4-20250514"
api_keys = ["ANTHROPIC_KEY_1", "ANTHROPIC_KEY_2"]

[[routes.deep-think]]
provider = "google"
model = "gemini-2.0-flash-thinking-exp-01-21"
api_keys = ["GOOGLE_KEY_1"]

[[routes.fast]]
provider = "openai-compatible"
base_url = "https://integrate.api.nvidia.com/v1/"
model = "nvidia/llama-3.1-nemotron-70b-instruct"
api_keys = ["NVIDIA_KEY_1", "NVIDIA_KEY_2"]
"#;
    let file = parse(src).expect("valid");
    assert_eq!(file.auth_token, "PROXY_AUTH_TOKEN");
    let names: Vec<&str> = file.routes.iter().map(|r| r.name).collect();
    assert_eq!(names, ["deep-think", "fast"]);
    assert_eq!(
        file.routes[0].targets[1],
        Target {
            provider: "google",
            model: "gemini-2.0-flash-thinking-exp-01-21",
            base_url: "https://generativelanguage.googleapis.com",
            vias: &[Via::Key("GOOGLE_KEY_1")],
            max_tokens: None,
            max_output_tokens: None,
            account_id: None,
            anthropic_betas: None,
            policy: TargetPolicy::DEFAULT,
        }
    );
    assert_eq!(
        file.routes[0].targets[0].base_url,
        "https://api.anthropic.com"
    );
    // A trailing slash is dropped so paths can be appended uniformly.
    assert_eq!(
        file.routes[1].targets[0].base_url,
        "https://integrate.api.nvidia.com/v1"
    );
    assert_eq!(
        file.routes[1].targets[0].vias,
        [Via::Key("NVIDIA_KEY_1"), Via::Key("NVIDIA_KEY_2")]
    );
}

#[test]
fn cloudflare_ai_targets_use_the_binding_or_rest_with_an_account_id() {
    let src = r#"
[server]
auth_token = "T"

[[routes.llama]]
provider = "cloudflare-ai"
model = "@cf/meta/llama-3.1-8b-instruct"
api_keys = []

[[routes.llama]]
provider = "cloudflare-ai"
model = "@cf/meta/llama-3.1-8b-instruct"
api_keys = ["CF_API_TOKEN"]
account_id = "CF_ACCOUNT_ID"
max_tokens = 2048
"#;
    let file = parse(src).expect("valid");
    let [binding, rest] = file.routes[0].targets else {
        panic!("two targets expected");
    };
    assert_eq!(binding.vias, [Via::Binding("AI")]);
    assert_eq!(binding.account_id, None);
    assert_eq!(binding.base_url, "https://api.cloudflare.com/client/v4");
    assert_eq!(rest.account_id, Some("CF_ACCOUNT_ID"));
    assert_eq!(rest.vias, [Via::Key("CF_API_TOKEN")]);
    assert_eq!(rest.max_tokens, Some(2048));
}

#[test]
fn logging_defaults_to_every_attempt_as_text_and_is_set_in_server() {
    let routes = "\n[[routes.fast]]\nprovider = \"openai\"\nmodel = \"m\"\napi_keys = [\"K\"]\n";
    let file = parse(&format!("[server]\nauth_token = \"T\"\n{routes}")).expect("valid");
    assert_eq!(file.log, LogConfig::DEFAULT);
    let file = parse(&format!(
        "[server]\nauth_token = \"T\"\nlog = \"errors\"\nlog_format = \"json\"\n{routes}"
    ))
    .expect("valid");
    assert_eq!(
        file.log,
        LogConfig {
            level: LogLevel::Errors,
            format: LogFormat::Json
        }
    );
}

#[test]
fn the_run_time_override_reads_level_and_optional_format() {
    let config = |level, format| Some(LogConfig { level, format });
    assert_eq!(
        LogConfig::parse("off"),
        config(LogLevel::Off, LogFormat::Text)
    );
    assert_eq!(
        LogConfig::parse("info,json"),
        config(LogLevel::Info, LogFormat::Json)
    );
    assert_eq!(
        LogConfig::parse(" errors , text "),
        config(LogLevel::Errors, LogFormat::Text)
    );
    assert_eq!(LogConfig::parse("verbose"), None);
    assert_eq!(LogConfig::parse("info,xml"), None);
}

#[test]
fn policies_default_then_server_then_target_field_by_field() {
    use crate::schema::{CooldownPolicy, Deadlines, KeyStrategy, RequestLimits, RetryPolicy};
    let file = parse(
        r#"
[server]
auth_token = "T"
total_timeout = 120
max_subrequests = 20
headers_timeout = 90
idle_timeout = 2.5
key_strategy = "round-robin"
retry = { attempts = 2 }
cooldown = { failed = 1.5, max = 300 }

[[routes.r]]
provider = "openai"
model = "a"
api_keys = ["K"]

[[routes.r]]
provider = "openai"
model = "b"
api_keys = ["K"]
first_token_timeout = 0.25
key_strategy = "sticky"
retry = { base_ms = 50, max_ms = 100 }
cooldown = { rate_limited = 0 }
"#,
    )
    .expect("valid");
    assert_eq!(
        file.limits,
        RequestLimits {
            total_timeout_ms: 120_000,
            max_subrequests: 20
        }
    );
    let [server, own] = file.routes[0].targets else {
        panic!("two targets expected");
    };
    assert_eq!(
        server.policy.deadlines,
        Deadlines {
            headers_ms: 90_000,
            idle_ms: 2_500,
            ..Deadlines::DEFAULT
        }
    );
    assert_eq!(server.policy.key_strategy, KeyStrategy::RoundRobin);
    assert_eq!(
        server.policy.retry,
        RetryPolicy {
            attempts: 2,
            ..RetryPolicy::DEFAULT
        }
    );
    assert_eq!(
        server.policy.cooldown,
        CooldownPolicy {
            failed_ms: 1_500,
            max_ms: 300_000,
            ..CooldownPolicy::DEFAULT
        }
    );
    assert_eq!(
        own.policy.deadlines,
        Deadlines {
            first_token_ms: 250,
            ..server.policy.deadlines
        }
    );
    assert_eq!(own.policy.key_strategy, KeyStrategy::Sticky);
    assert_eq!(
        own.policy.retry,
        RetryPolicy {
            attempts: 2,
            base_ms: 50,
            max_ms: 100
        }
    );
    assert_eq!(
        own.policy.cooldown,
        CooldownPolicy {
            rate_limited_ms: 0,
            ..server.policy.cooldown
        }
    );
    let minimal = parse("[server]\nauth_token = \"T\"\n[[routes.r]]\nprovider = \"openai\"\nmodel = \"m\"\napi_keys = [\"K\"]\n").expect("valid");
    assert_eq!(minimal.limits, RequestLimits::DEFAULT);
    assert_eq!(minimal.routes[0].targets[0].policy, TargetPolicy::DEFAULT);
}

#[test]
fn a_route_whose_worst_case_exceeds_max_subrequests_is_warned_about_where_it_is_named() {
    let source = r#"[server]
auth_token = "T"
max_subrequests = 5
retry = { attempts = 1 }

[[routes.small]]
provider = "openai"
model = "m"
api_keys = ["A", "B"]

[[routes.big]]
provider = "openai"
model = "m"
api_keys = ["A", "B"]

[[routes.big]]
provider = "openai"
model = "n"
api_keys = ["C"]
"#;
    let checked = crate::parse::check(source).expect("valid");
    let [warning] = &checked.warnings[..] else {
        panic!("one warning expected: {:?}", checked.warnings);
    };
    let rendered = warning.render("routes.toml", source);
    assert!(
        rendered.starts_with("routes.toml:11:10: route `big` may make up to 6 upstream calls on one request, more than `max_subrequests` (5)"),
        "{rendered}"
    );
}

#[test]
fn server_limits_default_and_are_read_from_server() {
    use crate::schema::ServerLimits;
    let minimal = parse("[server]\nauth_token = \"T\"\n[[routes.r]]\nprovider = \"openai\"\nmodel = \"m\"\napi_keys = [\"K\"]\n").expect("valid");
    assert_eq!(minimal.server, ServerLimits::DEFAULT);
    let file = parse(
        r#"
[server]
auth_token = "T"
header_read_timeout = 2.5
body_read_timeout = 20
keep_alive_timeout = 0
max_connections = 100
max_header_bytes = 8192
shutdown_timeout = 0

[[routes.r]]
provider = "openai"
model = "m"
api_keys = ["K"]
"#,
    )
    .expect("valid");
    assert_eq!(
        file.server,
        ServerLimits {
            header_read_timeout_ms: 2_500,
            body_read_timeout_ms: 20_000,
            keep_alive_timeout_ms: 0,
            max_connections: 100,
            max_header_bytes: 8192,
            shutdown_timeout_ms: 0,
        }
    );
}

/// The first line of what parsing `source` reports, located in `routes.toml`.
fn error(source: &str) -> String {
    match parse(source) {
        Ok(_) => panic!("parsed, but should have failed:\n{source}"),
        Err(d) => d
            .render("routes.toml", source)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned(),
    }
}

/// A file whose one route is `name`, with one target of `provider` that adds `extra` lines.
fn one_route(name: &str, provider: &str, extra: &str) -> String {
    format!("[server]\nauth_token = \"T\"\n[[routes.\"{name}\"]]\nprovider = \"{provider}\"\napi_keys = [\"K\"]\n{extra}\n")
}

#[test]
fn a_route_name_may_end_in_one_star() {
    let file = parse(
        r#"
[server]
auth_token = "T"

[[routes."claude-*"]]
provider = "anthropic"
model = "claude-{*}"
api_keys = ["K"]

[[routes."openai/*"]]
provider = "openai"
model = "{*}"
api_keys = ["K"]

[[routes."*"]]
provider = "openai"
model = "gpt-4o-mini"
api_keys = ["K"]

[[routes.fast]]
provider = "openai"
model = "gpt-4o-mini"
api_keys = ["K"]
"#,
    )
    .expect("valid");
    let prefixes: Vec<Option<&str>> = file.routes.iter().map(|r| r.pattern_prefix()).collect();
    assert_eq!(prefixes, [Some("claude-"), Some("openai/"), Some(""), None]);
    assert_eq!(file.routes[0].targets[0].model, "claude-{*}");
    assert_eq!(file.routes[1].targets[0].model, "{*}");
}

#[test]
fn a_star_anywhere_but_the_end_of_a_route_name_is_an_error() {
    for name in ["claude-*-latest", "**", "*-latest", "a*b*"] {
        let got = error(&one_route(name, "openai", "model = \"m\""));
        assert_eq!(
            got,
            format!("routes.toml:3:10: route name `{name}` has a `*` before its end"),
            "{name}"
        );
    }
}

#[test]
fn the_star_placeholder_needs_a_pattern_route_and_is_the_only_placeholder() {
    assert_eq!(
        error(&one_route("claude", "anthropic", "model = \"claude-{*}\"")),
        "routes.toml:6:9: `{*}` needs a route name ending in `*`"
    );
    for (model, placeholder) in [
        ("claude-{date}", "{date}"),
        ("{}", "{}"),
        ("{*}-{model}", "{model}"),
        ("claude-{*", "{*"),
        ("claude-{", "{"),
    ] {
        assert_eq!(
            error(&one_route(
                "claude-*",
                "anthropic",
                &format!("model = \"{model}\"")
            )),
            format!("routes.toml:6:9: `model` has an unknown placeholder `{placeholder}`"),
            "{model}"
        );
    }
    // A pattern route need not use what its `*` matched.
    let file = parse(&one_route("*", "openai", "model = \"gpt-4o-mini\"")).expect("valid");
    assert_eq!(file.routes[0].targets[0].model, "gpt-4o-mini");
}

#[test]
fn max_output_tokens_is_a_whole_number_up_to_ten_million_on_any_provider() {
    for provider in ["anthropic", "google", "openai"] {
        let file = parse(&one_route(
            "r",
            provider,
            "model = \"m\"\nmax_output_tokens = 64_000",
        ))
        .expect("valid");
        assert_eq!(file.routes[0].targets[0].max_output_tokens, Some(64_000));
    }
    let most = parse(&one_route(
        "r",
        "openai",
        "model = \"m\"\nmax_output_tokens = 10_000_000",
    ))
    .expect("valid");
    assert_eq!(
        most.routes[0].targets[0].max_output_tokens,
        Some(10_000_000)
    );
    let unset = parse(&one_route("r", "openai", "model = \"m\"")).expect("valid");
    assert_eq!(unset.routes[0].targets[0].max_output_tokens, None);
    for value in ["0", "-1", "10_000_001", "4294967296", "1.5", "\"64000\""] {
        assert_eq!(
            error(&one_route(
                "r",
                "openai",
                &format!("model = \"m\"\nmax_output_tokens = {value}")
            )),
            "routes.toml:7:21: `max_output_tokens` must be a whole number from 1 to 10000000",
            "{value}"
        );
    }
}

#[test]
fn anthropic_betas_lists_header_values_on_anthropic_targets_only() {
    let betas = |list: &str| {
        parse(&one_route(
            "r",
            "anthropic",
            &format!("model = \"m\"\nanthropic_betas = {list}"),
        ))
        .map(|file| file.routes[0].targets[0].anthropic_betas)
    };
    assert_eq!(
        betas(r#"["interleaved-thinking-2025-05-14", "context-1m-2025-08-07"]"#),
        Ok(Some(
            &["interleaved-thinking-2025-05-14", "context-1m-2025-08-07"][..]
        ))
    );
    // Empty forwards none, which is not the same as the default list.
    assert_eq!(betas("[]"), Ok(Some(&[][..])));
    let unset = parse(&one_route("r", "anthropic", "model = \"m\"")).expect("valid");
    assert_eq!(unset.routes[0].targets[0].anthropic_betas, None);

    for bad in [
        r#"[""]"#,
        r#"["a,b"]"#,
        r#"["a b"]"#,
        r#"["ok", "tab\there"]"#,
        r#"["é"]"#,
    ] {
        let message = betas(bad).map(|_| ()).map_err(|d| d.message);
        assert_eq!(
            message,
            Err("each entry of `anthropic_betas` must be one non-empty beta name: printable ASCII, no commas or whitespace".to_owned()),
            "{bad}"
        );
    }
    assert_eq!(
        betas("[1]").map(|_| ()).map_err(|d| d.message),
        Err("each entry of `anthropic_betas` must be a string, found an integer".to_owned())
    );
    assert_eq!(
        betas("\"a,b\"").map(|_| ()).map_err(|d| d.message),
        Err("`anthropic_betas` must be a list of beta names, found a string".to_owned())
    );
    for provider in ["openai", "google"] {
        assert_eq!(
            error(&one_route(
                "r",
                provider,
                "model = \"m\"\nanthropic_betas = [\"x\"]"
            )),
            format!("routes.toml:7:1: `anthropic_betas` only applies to `anthropic` targets, not `{provider}`")
        );
    }
}

/// Two routes (`fast` on gpt-4o-mini, `llama` on an unpriced model, `claude-*` passing its
/// text through), the server's token `T`, and `extra` after them.
fn with_clients(extra: &str) -> String {
    format!(
        r#"[server]
auth_token = "T"

[[routes.fast]]
provider = "openai"
model = "gpt-4o-mini"
api_keys = ["K"]

[[routes.llama]]
provider = "openai-compatible"
base_url = "https://llama.example.com/v1"
model = "my-llama"
api_keys = ["K"]

[[routes."claude-*"]]
provider = "anthropic"
model = "claude-{{*}}"
api_keys = ["K"]
{extra}
"#
    )
}

/// The message (without location) of what parsing `source` reports.
fn message(source: &str) -> String {
    match parse(source) {
        Ok(_) => panic!("parsed, but should have failed:\n{source}"),
        Err(d) => d.message,
    }
}

/// The help line of what parsing `source` reports.
fn help(source: &str) -> String {
    match parse(source) {
        Ok(_) => panic!("parsed, but should have failed:\n{source}"),
        Err(d) => d.help.unwrap_or_default(),
    }
}

#[test]
fn the_issue_example_of_clients_prices_and_limits_store_parses() {
    use crate::schema::{Budget, BudgetPeriod, Client, LimitsStore, Price};
    let file = parse(&with_clients(
        r#"
[clients.ci-bot]
tokens = ["CI_BOT_TOKEN", "CI_BOT_TOKEN_NEXT"]
routes = ["fast", "claude-*"]
requests_per_minute = 60
tokens_per_minute = 200_000
max_concurrent = 4
budget = { usd = 25.0, per = "month" }

[clients."team.b"]
tokens = ["TEAM_B_TOKEN"]

[prices."claude-*"]
input = 3
output = 15.0
cache_read = 0.3
cache_write = 3.75

[prices."gpt-4.1"]
input = 2.0
output = 8.0
"#,
    ))
    .expect("valid");
    assert_eq!(
        file.clients,
        [
            Client {
                name: "ci-bot",
                tokens: &["CI_BOT_TOKEN", "CI_BOT_TOKEN_NEXT"],
                routes: Some(&["fast", "claude-*"]),
                requests_per_minute: Some(60),
                tokens_per_minute: Some(200_000),
                max_concurrent: Some(4),
                budget: Some(Budget {
                    pico_usd: 25_000_000_000_000,
                    per: BudgetPeriod::Month
                }),
            },
            Client {
                name: "team.b",
                tokens: &["TEAM_B_TOKEN"],
                routes: None,
                requests_per_minute: None,
                tokens_per_minute: None,
                max_concurrent: None,
                budget: None,
            }
        ]
    );
    assert!(file.clients[0].limited());
    assert!(!file.clients[1].limited());
    assert_eq!(
        file.prices,
        [
            Price {
                model: "claude-*",
                input: 3_000_000,
                output: 15_000_000,
                cache_read: 300_000,
                cache_write: 3_750_000,
            },
            // The cache rates default to the input rate.
            Price {
                model: "gpt-4.1",
                input: 2_000_000,
                output: 8_000_000,
                cache_read: 2_000_000,
                cache_write: 2_000_000,
            }
        ]
    );
    assert_eq!(file.limits_store, None);
    let minimal = parse(&with_clients("")).expect("valid");
    assert_eq!(
        (minimal.clients, minimal.prices, minimal.limits_store),
        (&[][..], &[][..], None)
    );
    let stored = |value: &str| {
        parse(&with_clients("").replace(
            "auth_token = \"T\"",
            &format!("auth_token = \"T\"\nlimits_store = \"{value}\""),
        ))
        .map(|file| file.limits_store)
        .map_err(|d| d.message)
    };
    for url in [
        "redis://127.0.0.1:6379",
        "rediss://redis.internal",
        "redis://redis:6379/2",
        "redis://localhost/",
        "redis://[::1]:6379/0",
    ] {
        assert_eq!(stored(url), Ok(Some(LimitsStore::RedisUrl(url))), "{url}");
    }
    assert_eq!(
        stored("LIMITS_STORE_URL"),
        Ok(Some(LimitsStore::RedisSecret("LIMITS_STORE_URL")))
    );
}

#[test]
fn a_client_allows_its_listed_routes_and_the_routes_its_prefixes_start() {
    use crate::schema::Client;
    let client = |routes| Client {
        name: "c",
        tokens: &["C"],
        routes,
        requests_per_minute: None,
        tokens_per_minute: None,
        max_concurrent: None,
        budget: None,
    };
    let every = client(None);
    assert!(every.allows("fast") && every.allows("*") && every.allows("claude-*"));
    let some = client(Some(&["fast", "claude-*"]));
    for allowed in [
        "fast",
        "claude-*",
        "claude-opus",
        "claude-opus-*",
        "claude-",
    ] {
        assert!(some.allows(allowed), "{allowed}");
    }
    for refused in ["fast-2", "fas", "claude", "*", "gpt-*", ""] {
        assert!(!some.allows(refused), "{refused}");
    }
    let star = client(Some(&["*"]));
    assert!(star.allows("anything") && star.allows("*"));
    assert!(!client(Some(&[])).allows("fast"));
    // An exact entry is not a prefix, even of a pattern route's name.
    assert!(!client(Some(&["claude-"])).allows("claude-*"));
}

#[test]
fn client_names_and_keys_are_checked() {
    for name in [
        "\"\"",
        "\"a b\"",
        "\"a/b\"",
        "\"a*\"",
        &format!("\"{}\"", "x".repeat(65)),
    ] {
        assert!(
            message(&with_clients(&format!(
                "[clients.{name}]\ntokens = [\"C\"]"
            )))
            .starts_with("client name "),
            "{name}"
        );
    }
    assert_eq!(
        message(&with_clients(
            "[clients.a]\ntokens = [\"C\"]\nrequest_per_minute = 1"
        )),
        "unknown field `request_per_minute` in client `a`"
    );
    assert!(help(&with_clients(
        "[clients.a]\ntokens = [\"C\"]\nrequest_per_minute = 1"
    ))
    .starts_with("did you mean `requests_per_minute`?"));
    assert_eq!(
        message(&with_clients("[clients.team.a]\ntokens = [\"C\"]")),
        "client `team` holds a table `a`"
    );
    assert_eq!(
        message(&with_clients("[[clients.a]]\ntokens = [\"C\"]")),
        "client `a` must be one table, not a list"
    );
    assert_eq!(
        message(&with_clients("[clients]\na = \"C\"")),
        "client `a` must be a table, found a string"
    );
    assert_eq!(
        message(&format!("clients = 1\n{}", with_clients(""))),
        "`clients` must be a table of clients: `[clients.NAME]` with `tokens`, found an integer"
    );
    assert_eq!(
        message(&with_clients("[clients.a]\nrequests_per_minute = 1")),
        "client `a` has no `tokens`"
    );
    assert_eq!(
        help(&with_clients("[clients.ci-bot]\nrequests_per_minute = 1")),
        "add `tokens = [\"CI_BOT_TOKEN\"]`: the names of the secrets holding the tokens the client sends as `Authorization: Bearer ...`"
    );
    // An empty `[clients]` is no clients.
    assert_eq!(
        parse(&with_clients("[clients]")).map(|f| f.clients.len()),
        Ok(0)
    );
}

#[test]
fn client_tokens_are_secret_names_each_of_one_client_and_not_the_servers() {
    let tokens = |list: &str| message(&with_clients(&format!("[clients.a]\ntokens = {list}")));
    assert_eq!(tokens("[]"), "client `a` has no tokens: `tokens` is empty");
    assert_eq!(
        tokens("\"A\""),
        "`tokens` of client `a` must be a list of secret names, found a string"
    );
    assert_eq!(
        tokens("[\"sk-proj-abc123\"]"),
        "each entry of `tokens` must name a secret, and this is not a valid secret name"
    );
    assert_eq!(
        tokens("[\"A\", \"A\"]"),
        "token `A` is listed twice in client `a`"
    );
    assert_eq!(
        tokens("[\"A\", \"T\"]"),
        "token `T` of client `a` is the proxy's own `[server] auth_token`"
    );
    let shared =
        with_clients("[clients.a]\ntokens = [\"A\", \"S\"]\n[clients.b]\ntokens = [\"B\", \"S\"]");
    assert_eq!(
        error(&shared),
        "routes.toml:22:16: token `S` of client `b` is also a token of client `a`"
    );
}

#[test]
fn client_routes_name_routes_of_the_file_or_prefixes_of_them() {
    let routes = |list: &str| {
        parse(&with_clients(&format!(
            "[clients.a]\ntokens = [\"A\"]\nroutes = {list}"
        )))
        .map(|file| file.clients[0].routes)
        .map_err(|d| (d.message, d.help.unwrap_or_default()))
    };
    assert_eq!(
        routes("[\"fast\", \"claude-*\"]"),
        Ok(Some(&["fast", "claude-*"][..]))
    );
    // A prefix allows routes, pattern routes among them.
    assert_eq!(routes("[\"cl*\", \"*\"]"), Ok(Some(&["cl*", "*"][..])));
    let refused = |list: &str| routes(list).map(|_| ()).unwrap_err();
    assert_eq!(
        refused("[\"fsat\"]"),
        (
            "unknown route `fsat` in the `routes` of client `a`".to_owned(),
            "did you mean `fast`? Routes: `fast`, `llama`, `claude-*`".to_owned()
        )
    );
    assert_eq!(
        refused("[\"claude-opus-4\"]"),
        (
            "unknown route `claude-opus-4` in the `routes` of client `a`".to_owned(),
            "`claude-opus-4` is a model that route `claude-*` takes, not a route's name: allow `claude-*`, or add a route named `claude-opus-4`".to_owned()
        )
    );
    assert_eq!(
        refused("[\"gemini-*\"]").0,
        "`routes` entry `gemini-*` of client `a` matches no route"
    );
    assert_eq!(
        refused("[\"a*b\"]").0,
        "`routes` entry `a*b` has a `*` before its end"
    );
    assert_eq!(
        refused("[\"fast\", \"fast\"]").0,
        "`fast` is listed twice in the `routes` of client `a`"
    );
    assert_eq!(
        refused("[]").0,
        "client `a` may use no route: `routes` is empty"
    );
    assert_eq!(
        refused("[\"\"]").0,
        "each entry of `routes` must be a route name or a prefix ending in `*`, without spaces"
    );
    assert_eq!(
        refused("\"fast\"").0,
        "`routes` of client `a` must be a list of route names, found a string"
    );
}

#[test]
fn client_limits_are_whole_numbers_in_range() {
    let limit = |key: &str, value: &str| {
        parse(&with_clients(&format!(
            "[clients.a]\ntokens = [\"A\"]\n{key} = {value}"
        )))
        .map(|file| file.clients[0])
        .map_err(|d| d.message)
    };
    let ok = |key: &str, value: &str| limit(key, value).expect("valid");
    assert_eq!(ok("requests_per_minute", "1").requests_per_minute, Some(1));
    assert_eq!(
        ok("requests_per_minute", "1_000_000").requests_per_minute,
        Some(1_000_000)
    );
    assert_eq!(ok("max_concurrent", "4").max_concurrent, Some(4));
    assert_eq!(
        ok("tokens_per_minute", "200_000").tokens_per_minute,
        Some(200_000)
    );
    assert_eq!(
        ok("tokens_per_minute", "1_000_000_000_000").tokens_per_minute,
        Some(1_000_000_000_000)
    );
    for key in ["requests_per_minute", "max_concurrent"] {
        for bad in ["0", "-1", "1_000_001", "1.5", "\"60\"", "4294967296"] {
            assert_eq!(
                limit(key, bad).map(|_| ()),
                Err(format!(
                    "`{key}` of client `a` must be a whole number from 1 to 1000000"
                )),
                "{key} = {bad}"
            );
        }
    }
    for bad in ["0", "1_000_000_000_001", "2.0"] {
        assert_eq!(
            limit("tokens_per_minute", bad).map(|_| ()),
            Err(
                "`tokens_per_minute` of client `a` must be a whole number from 1 to 1000000000000"
                    .to_owned()
            ),
            "{bad}"
        );
    }
}

#[test]
fn a_budget_is_usd_per_day_or_month_in_pico_usd() {
    use crate::schema::{Budget, BudgetPeriod};
    let budget = |value: &str| {
        parse(&with_clients(&format!(
            "[clients.a]\ntokens = [\"A\"]\nroutes = [\"fast\"]\nbudget = {value}"
        )))
        .map(|file| file.clients[0].budget)
        .map_err(|d| d.message)
    };
    let pico = |usd: &str| {
        budget(&format!("{{ usd = {usd}, per = \"day\" }}")).map(|b| b.map(|b| b.pico_usd))
    };
    assert_eq!(
        budget("{ usd = 25.0, per = \"month\" }"),
        Ok(Some(Budget {
            pico_usd: 25 * 1_000_000_000_000,
            per: BudgetPeriod::Month
        }))
    );
    assert_eq!(pico("10"), Ok(Some(10_000_000_000_000)));
    assert_eq!(pico("0.1"), Ok(Some(100_000_000_000)));
    assert_eq!(pico("1_000.5"), Ok(Some(1_000_500_000_000_000)));
    assert_eq!(pico("2.5e-3"), Ok(Some(2_500_000_000)));
    assert_eq!(pico("1e6"), Ok(Some(1_000_000_000_000_000_000)));
    assert_eq!(
        pico("999999.999999999999"),
        Ok(Some(999_999_999_999_999_999))
    );
    // Rounded to the nearest pico-USD.
    assert_eq!(pico("0.0000000000015"), Ok(Some(2)));
    assert_eq!(pico("0.0000000000014"), Ok(Some(1)));
    for bad in [
        "0",
        "0.0",
        "-1",
        "1_000_000.01",
        "1e7",
        "nan",
        "inf",
        "0.0000000000004",
        "\"25\"",
    ] {
        assert_eq!(
            pico(bad),
            Err(
                "`budget.usd` must be a number of US dollars, more than 0 and at most 1000000"
                    .to_owned()
            ),
            "{bad}"
        );
    }
    assert_eq!(
        budget("{ usd = 1, per = \"week\" }"),
        Err("`budget.per` cannot be `week`".to_owned())
    );
    assert_eq!(
        budget("{ per = \"day\" }"),
        Err("`budget` has no `usd`".to_owned())
    );
    assert_eq!(
        budget("{ usd = 1 }"),
        Err("`budget` has no `per`".to_owned())
    );
    assert_eq!(
        budget("{ usd = 1, per = \"day\", eur = 1 }"),
        Err("unknown field `eur` in `budget`".to_owned())
    );
    assert_eq!(
        budget("25").map(|_| ()),
        Err("`budget` must be an inline table: `budget = { usd = 25.0, per = \"month\" }`, found an integer".to_owned())
    );
}

#[test]
fn a_budget_needs_a_price_for_every_model_the_client_can_reach() {
    let client = |routes: &str, prices: &str| {
        parse(&with_clients(&format!(
            "[clients.a]\ntokens = [\"A\"]\n{routes}budget = {{ usd = 5, per = \"day\" }}\n{prices}"
        )))
        .map(|file| file.clients.len())
        .map_err(|d| (d.message, d.help.unwrap_or_default()))
    };
    // gpt-4o-mini has a built-in price.
    assert_eq!(client("routes = [\"fast\"]\n", ""), Ok(1));
    assert_eq!(
        client("routes = [\"fast\", \"llama\"]\n", ""),
        Err((
            "client `a` has a `budget`, but model `my-llama` of route `llama` has no price".to_owned(),
            "the built-in prices cover common OpenAI, Anthropic and Gemini models: add `[prices.\"my-llama\"]` with `input = ...` and `output = ...` in USD per million tokens, or leave route `llama` out of the client's `routes`".to_owned()
        ))
    );
    let llama = "[prices.\"my-llama\"]\ninput = 0.2\noutput = 0.6\n";
    assert_eq!(client("routes = [\"fast\", \"llama\"]\n", llama), Ok(1));
    assert_eq!(
        client(
            "routes = [\"fast\", \"llama\"]\n",
            "[prices.\"my-*\"]\ninput = 1\noutput = 1\n"
        ),
        Ok(1)
    );
    // `claude-{*}` can be any Claude model: only a price ending in `*` that covers `claude-`.
    assert_eq!(
        client("", llama),
        Err((
            "client `a` has a `budget`, but model `claude-{*}` of route `claude-*` has no price".to_owned(),
            "`claude-{*}` is whatever the client sends after the route's prefix, so only a price ending in `*` covers it: add `[prices.\"claude-*\"]` with `input = ...` and `output = ...` in USD per million tokens, or list the priced routes it may use in `routes`".to_owned()
        ))
    );
    for not_enough in ["claude-opus-*", "claude-3"] {
        assert!(
            client(
                "",
                &format!("{llama}[prices.\"{not_enough}\"]\ninput = 1\noutput = 1\n")
            )
            .is_err(),
            "{not_enough}"
        );
    }
    for covering in ["claude-*", "claude*", "c*", "*"] {
        assert_eq!(
            client(
                "",
                &format!("{llama}[prices.\"{covering}\"]\ninput = 1\noutput = 1\n")
            ),
            Ok(1),
            "{covering}"
        );
    }
    // A built-in family covers a pattern route that keeps to it.
    let sonnet = "[[routes.\"sonnet-*\"]]\nprovider = \"anthropic\"\nmodel = \"claude-sonnet-4-{*}\"\napi_keys = [\"K\"]\n";
    assert_eq!(client("routes = [\"sonnet-*\"]\n", sonnet), Ok(1));
    // Without a budget, nothing needs a price.
    assert_eq!(
        parse(&with_clients(
            "[clients.a]\ntokens = [\"A\"]\nrequests_per_minute = 1"
        ))
        .map(|f| f.clients.len()),
        Ok(1)
    );
}

#[test]
fn prices_are_usd_per_million_tokens_in_pico_usd_per_token() {
    let price = |body: &str| {
        parse(&with_clients(&format!("[prices.\"m\"]\n{body}")))
            .map(|file| {
                let p = file.prices[0];
                (p.input, p.output, p.cache_read, p.cache_write)
            })
            .map_err(|d| d.message)
    };
    assert_eq!(
        price("input = 2.5\noutput = 10\ncache_read = 0.01875\ncache_write = 3.125"),
        Ok((2_500_000, 10_000_000, 18_750, 3_125_000))
    );
    assert_eq!(price("input = 0\noutput = 0"), Ok((0, 0, 0, 0)));
    assert_eq!(
        price("input = 10_000\noutput = 1e4"),
        Ok((
            10_000_000_000,
            10_000_000_000,
            10_000_000_000,
            10_000_000_000
        ))
    );
    assert_eq!(
        price("input = 0.0000001\noutput = 0.0000005"),
        Ok((0, 1, 0, 0))
    );
    assert_eq!(
        price("output = 8"),
        Err("`[prices.\"m\"]` has no `input`".to_owned())
    );
    assert_eq!(
        price("input = 2"),
        Err("`[prices.\"m\"]` has no `output`".to_owned())
    );
    for bad in ["-1", "10_000.5", "\"2\"", "nan", "true"] {
        assert_eq!(
            price(&format!("input = {bad}\noutput = 1")),
            Err("`input` in `[prices.\"m\"]` must be a number of US dollars per million tokens, from 0 to 10000".to_owned()),
            "{bad}"
        );
    }
    assert_eq!(
        price("input = 1\noutput = 1\ncached = 1"),
        Err("unknown field `cached` in `[prices.\"m\"]`".to_owned())
    );
    assert!(help(&with_clients(
        "[prices.\"m\"]\ninput = 1\noutput = 1\ncache_reads = 1"
    ))
    .starts_with("did you mean `cache_read`?"));
    let named = |name: &str| {
        message(&with_clients(&format!(
            "[prices.\"{name}\"]\ninput = 1\noutput = 1"
        )))
    };
    assert_eq!(named(""), "price name \"\" is not a model id");
    assert_eq!(named("a b"), "price name \"a b\" is not a model id");
    assert_eq!(named("a*b*"), "price name `a*b*` has a `*` before its end");
    assert_eq!(named("claude-{*}"), "price name `claude-{*}` has a `{*}`");
    assert_eq!(
        message(&with_clients("[prices.gpt-4.1]\ninput = 1\noutput = 1")),
        "price `gpt-4` holds a table `1`"
    );
    assert_eq!(
        message(&with_clients("[prices]\nm = 1")),
        "`[prices.\"m\"]` must be a table with `input` and `output`, found an integer"
    );
}

#[test]
fn limits_store_is_a_redis_url_without_credentials_or_a_secret_name() {
    let store = |value: &str| {
        let source = with_clients("").replace(
            "auth_token = \"T\"",
            &format!("auth_token = \"T\"\nlimits_store = {value}"),
        );
        parse(&source)
            .map(|file| file.limits_store)
            .map_err(|d| d.message)
    };
    for with_password in [
        "\"redis://default:hunter2@redis:6379\"",
        "\"rediss://:hunter2@redis\"",
        "\"redis://user@redis\"",
        "\"redis://:pa/ss@redis\"",
    ] {
        assert_eq!(
            store(with_password),
            Err(
                "`limits_store` must not hold credentials: routes.toml is compiled into the binary"
                    .to_owned()
            ),
            "{with_password}"
        );
    }
    for (url, problem) in [
        ("redis://", "it has no host"),
        ("redis://:6379", "it has no host"),
        (
            "redis://redis:0",
            "its port must be a number from 1 to 65535",
        ),
        (
            "redis://redis:65536",
            "its port must be a number from 1 to 65535",
        ),
        (
            "redis://redis:+1",
            "its port must be a number from 1 to 65535",
        ),
        (
            "redis://redis:",
            "its port must be a number from 1 to 65535",
        ),
        (
            "redis://redis/db",
            "its only path may be a database number, e.g. `/0`",
        ),
        (
            "redis://redis/0/1",
            "its only path may be a database number, e.g. `/0`",
        ),
        (
            "redis://redis?protocol=resp3",
            "it may have no spaces, query or fragment",
        ),
        ("redis://red is", "it may have no spaces, query or fragment"),
        (
            "redis://red!s",
            "its host may only have letters, digits, `-`, `_` and `.`",
        ),
        ("redis://[::1", "its IPv6 host has no closing `]`"),
        ("redis://[zz]:1", "its IPv6 host is not an address"),
        ("redis://[::1]6379", "only `:PORT` may follow its IPv6 host"),
    ] {
        assert_eq!(
            store(&format!("\"{url}\"")),
            Err(format!(
                "`limits_store` is not a usable Redis URL: {problem}"
            )),
            "{url}"
        );
    }
    for garbage in [
        "\"\"",
        "\"127.0.0.1:6379\"",
        "\"http://redis:6379\"",
        "\"REDIS://x\"",
        "\"my store\"",
    ] {
        assert_eq!(
            store(garbage),
            Err("`limits_store` must be a `redis://` or `rediss://` URL, or the name of a secret holding one".to_owned()),
            "{garbage}"
        );
    }
    assert_eq!(
        store("6379"),
        Err("`limits_store` must be a string, found an integer".to_owned())
    );
}

#[test]
fn a_limits_store_without_limited_clients_is_warned_about() {
    let source = |clients: &str| {
        with_clients(clients).replace(
            "auth_token = \"T\"",
            "auth_token = \"T\"\nlimits_store = \"REDIS_URL\"",
        )
    };
    let warnings = |clients: &str| {
        crate::parse::check(&source(clients))
            .expect("valid")
            .warnings
            .iter()
            .map(|w| {
                w.render("routes.toml", &source(clients))
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        warnings("[clients.a]\ntokens = [\"A\"]"),
        ["routes.toml:3:1: `limits_store` is set, but no client has a limit to keep in it"]
    );
    assert!(warnings("[clients.a]\ntokens = [\"A\"]\nmax_concurrent = 2").is_empty());
}
