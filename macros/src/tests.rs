//! What the macro generates for a parsed file (the parser's own tests are in the schema crate).

fn expand(src: &str) -> String {
    crate::expand(src, "/abs/routes.toml", "routes.toml")
        .expect("valid")
        .to_string()
}

#[test]
fn generated_code_is_a_static_table_and_a_match() {
    let code = expand("[server]\nauth_token = \"T\"\n[[routes.fast]]\nprovider = \"openai\"\nmodel = \"m\"\napi_keys = [\"K\"]\n");
    assert!(
        code.contains("pub const AUTH_TOKEN_SECRET : & str = \"T\""),
        "{code}"
    );
    assert!(
        code.contains("\"fast\" => return Some (Found { route : & ROUTES [0] , star : None }) ,"),
        "{code}"
    );
    assert!(code.contains("vias : & [Via :: Key (\"K\")]"), "{code}");
    assert!(
        code.contains("include_bytes ! (\"/abs/routes.toml\")"),
        "{code}"
    );
}

#[test]
fn each_target_is_bound_to_its_provider_type_in_order() {
    let code = expand(
        r#"
[server]
auth_token = "T"

[[routes.deep]]
provider = "anthropic"
model = "claude"
api_keys = ["A"]

[[routes.deep]]
provider = "openai-compatible"
base_url = "https://x/v1"
model = "llama"
api_keys = ["N"]

[[routes.llama]]
provider = "cloudflare-ai"
model = "@cf/meta/llama"
api_keys = []
"#,
    );
    let arm = |route: &str, providers: &[&str]| {
        let steps: Vec<String> = providers
            .iter()
            .map(|ty| {
                format!(
                    "crate :: core :: provider :: prepare_with :: < crate :: providers :: {ty} >"
                )
            })
            .collect();
        format!(
            "\"{route}\" => {{ static TARGETS : & [crate :: core :: provider :: Prepare] = & [{}] ; TARGETS }}",
            steps.join(" , ")
        )
    };
    assert!(
        code.contains(&arm(
            "deep",
            &["anthropic :: Anthropic", "openai :: OpenAi"]
        )),
        "{code}"
    );
    assert!(
        code.contains(&arm("llama", &["workers_ai :: WorkersAi"])),
        "{code}"
    );
    assert!(
        code.contains("vias : & [Via :: Binding (\"AI\")]"),
        "{code}"
    );
    assert!(code.contains("account_id : None"), "{code}");
    assert!(code.contains("max_output_tokens : None"), "{code}");
    assert!(code.contains("anthropic_betas : None"), "{code}");
    // Only the providers the file names appear.
    assert!(!code.contains("google"), "{code}");
}

#[test]
fn every_registered_implementation_is_a_path() {
    for spec in ai_worker_proxy_config::providers::PROVIDERS {
        assert!(
            crate::codegen::provider_type(spec.name).is_ok(),
            "{}",
            spec.name
        );
    }
}

#[test]
fn find_tries_exact_names_then_prefixes_longest_first_then_the_catch_all() {
    let code = expand(
        r#"
[server]
auth_token = "T"

[[routes."*"]]
provider = "openai"
model = "gpt-4o-mini"
api_keys = ["K"]

[[routes."claude-*"]]
provider = "anthropic"
model = "claude-{*}"
api_keys = ["K"]

[[routes."claude-opus-*"]]
provider = "anthropic"
model = "claude-opus-4-20250514"
api_keys = ["K"]

[[routes.fast]]
provider = "openai"
model = "gpt-4o-mini"
api_keys = ["K"]
"#,
    );
    let body = code
        .split("fn find (model : & str) -> Option < Found < '_ >> {")
        .nth(1)
        .and_then(|rest| rest.split("async fn complete").next())
        .unwrap_or_else(|| panic!("no find in {code}"));
    let exact = "match model { \"fast\" => return Some (Found { route : & ROUTES [3] , star : None }) , _ => { } }";
    let opus = "if let Some (star) = model . strip_prefix (\"claude-opus-\") { return Some (Found { route : & ROUTES [2] , star : Some (star) }) ; }";
    let claude = "if let Some (star) = model . strip_prefix (\"claude-\") { return Some (Found { route : & ROUTES [1] , star : Some (star) }) ; }";
    let catch_all = "Some (Found { route : & ROUTES [0] , star : Some (model) }) }";
    let at = |part: &str| {
        body.find(part)
            .unwrap_or_else(|| panic!("{part} not in {body}"))
    };
    assert!(at(exact) < at(opus), "{body}");
    assert!(at(opus) < at(claude), "{body}");
    assert!(at(claude) < at(catch_all), "{body}");
    // Patterns are not exact names, and a catch-all leaves nothing to fall through to.
    assert!(!body.contains("\"*\" =>"), "{body}");
    assert!(!body.trim_end().ends_with("None }"), "{body}");
}

#[test]
fn find_without_patterns_or_exact_names_has_no_empty_parts() {
    let only_exact =
        expand("[server]\nauth_token = \"T\"\n[[routes.a]]\nprovider = \"openai\"\nmodel = \"m\"\napi_keys = [\"K\"]\n");
    assert!(!only_exact.contains("strip_prefix"), "{only_exact}");
    assert!(only_exact.contains("_ => { } } None }"), "{only_exact}");
    let only_pattern = expand(
        "[server]\nauth_token = \"T\"\n[[routes.\"a/*\"]]\nprovider = \"openai\"\nmodel = \"{*}\"\napi_keys = [\"K\"]\n",
    );
    assert!(!only_pattern.contains("match model"), "{only_pattern}");
}

#[test]
fn new_target_fields_are_written_out() {
    let code = expand(
        r#"
[server]
auth_token = "T"

[[routes.deep]]
provider = "anthropic"
model = "claude"
api_keys = ["A"]
max_output_tokens = 64000
anthropic_betas = ["interleaved-thinking-2025-05-14", "context-1m-2025-08-07"]

[[routes.none]]
provider = "anthropic"
model = "claude"
api_keys = ["A"]
anthropic_betas = []
"#,
    );
    assert!(code.contains("max_output_tokens : Some (64000)"), "{code}");
    assert!(
        code.contains("anthropic_betas : Some (& [\"interleaved-thinking-2025-05-14\" , \"context-1m-2025-08-07\"])"),
        "{code}"
    );
    assert!(code.contains("anthropic_betas : Some (& [])"), "{code}");
}

#[test]
fn clients_prices_and_the_limits_store_are_written_out() {
    let code = expand(
        r#"
[server]
auth_token = "T"
limits_store = "redis://127.0.0.1:6379/0"

[[routes.fast]]
provider = "openai"
model = "gpt-4o-mini"
api_keys = ["K"]

[clients.ci-bot]
tokens = ["CI_BOT_TOKEN", "CI_BOT_TOKEN_NEXT"]
routes = ["fast"]
requests_per_minute = 60
tokens_per_minute = 200_000
max_concurrent = 4
budget = { usd = 25.5, per = "month" }

[clients.open]
tokens = ["OPEN_TOKEN"]
budget = { usd = 1, per = "day" }

[prices."gpt-4o-mini"]
input = 0.15
output = 0.6
cache_read = 0.075
"#,
    );
    assert!(
        code.contains("const CLIENTS : & 'static [Client] = & [Client { name : \"ci-bot\" , tokens : & [\"CI_BOT_TOKEN\" , \"CI_BOT_TOKEN_NEXT\"] , routes : Some (& [\"fast\"]) , requests_per_minute : Some (60) , tokens_per_minute : Some (200000) , max_concurrent : Some (4) , budget : Some (crate :: core :: route :: Budget { pico_usd : 25500000000000 , per : crate :: core :: route :: BudgetPeriod :: Month , }) , } , Client { name : \"open\" , tokens : & [\"OPEN_TOKEN\"] , routes : None , requests_per_minute : None , tokens_per_minute : None , max_concurrent : None , budget : Some (crate :: core :: route :: Budget { pico_usd : 1000000000000 , per : crate :: core :: route :: BudgetPeriod :: Day , }) , }] ;"),
        "{code}"
    );
    assert!(
        code.contains("const PRICES : & 'static [Price] = & [Price { model : \"gpt-4o-mini\" , input : 150000 , output : 600000 , cache_read : 75000 , cache_write : 150000 , }] ;"),
        "{code}"
    );
    assert!(
        code.contains("const LIMITS_STORE : Option < LimitsStore > = Some (LimitsStore :: RedisUrl (\"redis://127.0.0.1:6379/0\")) ;"),
        "{code}"
    );
    let none = expand("[server]\nauth_token = \"T\"\nlimits_store = \"REDIS_URL\"\n[[routes.a]]\nprovider = \"openai\"\nmodel = \"m\"\napi_keys = [\"K\"]\n");
    assert!(
        none.contains("const CLIENTS : & 'static [Client] = & [] ;"),
        "{none}"
    );
    assert!(
        none.contains("const PRICES : & 'static [Price] = & [] ;"),
        "{none}"
    );
    assert!(
        none.contains("const LIMITS_STORE : Option < LimitsStore > = Some (LimitsStore :: RedisSecret (\"REDIS_URL\")) ;"),
        "{none}"
    );
    let unset =
        expand("[server]\nauth_token = \"T\"\n[[routes.a]]\nprovider = \"openai\"\nmodel = \"m\"\napi_keys = [\"K\"]\n");
    assert!(
        unset.contains("const LIMITS_STORE : Option < LimitsStore > = None ;"),
        "{unset}"
    );
}
