//! Every invalid file in tests/routes/invalid states, in its header, the exact error, location
//! and help it must produce; this checks the parser against all of them, and that the
//! shipped and example files are valid.

use crate::parse::parse;

fn expectation<'a>(source: &'a str, key: &str) -> &'a str {
    source
        .lines()
        .find_map(|l| l.strip_prefix(&format!("# {key}: ")))
        .unwrap_or_else(|| panic!("fixture lacks a `# {key}:` line"))
}

#[test]
fn every_invalid_fixture_fails_with_its_stated_message() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/routes/invalid");
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
    ] {
        let path = format!("{}/../{file}", env!("CARGO_MANIFEST_DIR"));
        let source = std::fs::read_to_string(&path).expect("routes file");
        if let Err(d) = parse(&source) {
            panic!("{}", d.render(file, &source));
        }
    }
}

#[test]
fn the_issue_example_parses_to_the_expected_table() {
    use crate::model::*;
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
    assert_eq!(file.auth_token_secret, "PROXY_AUTH_TOKEN");
    let names: Vec<&str> = file.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["deep-think", "fast"]);
    assert_eq!(
        file.routes[0].targets[1],
        Target {
            provider: Provider::Google,
            model: "gemini-2.0-flash-thinking-exp-01-21".into(),
            base_url: "https://generativelanguage.googleapis.com".into(),
            api_keys: vec!["GOOGLE_KEY_1".into()],
            max_tokens: None,
            account_id: None,
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
}

#[test]
fn generated_code_is_a_static_table_and_a_match() {
    let src = "[server]\nauth_token = \"T\"\n[[routes.fast]]\nprovider = \"openai\"\nmodel = \"m\"\napi_keys = [\"K\"]\n";
    let code = crate::expand(src, "/abs/routes.toml", "routes.toml")
        .expect("valid")
        .to_string();
    assert!(
        code.contains("pub const AUTH_TOKEN_SECRET : & str = \"T\""),
        "{code}"
    );
    assert!(
        code.contains("\"fast\" => Some (& ROUTES [0usize])"),
        "{code}"
    );
    assert!(
        code.contains("include_bytes ! (\"/abs/routes.toml\")"),
        "{code}"
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
    let [binding, rest] = &file.routes[0].targets[..] else {
        panic!("two targets expected");
    };
    assert!(binding.api_keys.is_empty() && binding.account_id.is_none());
    assert_eq!(binding.base_url, "https://api.cloudflare.com/client/v4");
    assert_eq!(rest.account_id.as_deref(), Some("CF_ACCOUNT_ID"));
    assert_eq!(rest.api_keys, ["CF_API_TOKEN"]);
    let code = crate::expand(src, "/abs/routes.toml", "routes.toml")
        .expect("valid")
        .to_string();
    assert!(
        code.contains("account_id : Some (\"CF_ACCOUNT_ID\")"),
        "{code}"
    );
    assert!(code.contains("account_id : None"), "{code}");
}
