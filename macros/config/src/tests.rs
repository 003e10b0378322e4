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
