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
    assert!(code.contains("\"fast\" => Some (& ROUTES [0])"), "{code}");
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
    let arm = |route: &str, steps: &[(&str, usize)]| {
        let calls: String = steps
            .iter()
            .map(|(ty, i)| {
                format!(
                    "if let Some (done) = failover . target :: < crate :: providers :: {ty} > ({i}) . await {{ return done ; }} "
                )
            })
            .collect();
        format!("\"{route}\" => {{ {calls}}}")
    };
    assert!(
        code.contains(&arm(
            "deep",
            &[("anthropic :: Anthropic", 0), ("openai :: OpenAi", 1)]
        )),
        "{code}"
    );
    assert!(
        code.contains(&arm("llama", &[("workers_ai :: WorkersAi", 0)])),
        "{code}"
    );
    assert!(
        code.contains("vias : & [Via :: Binding (\"AI\")]"),
        "{code}"
    );
    assert!(code.contains("account_id : None"), "{code}");
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
