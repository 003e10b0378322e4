//! routes.toml text → [`RoutesFile`], or the first problem found with its exact location.
//!
//! What is parsed is leaked: the result is the `'static` data the proxy compiles in (see
//! [`crate::schema`]), and the one caller, the `routes!()` macro, parses one file per build.

use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::providers::{self, ProviderSpec, PROVIDERS};
use crate::schema::{
    named, CooldownPolicy, Deadlines, KeyStrategy, LogConfig, LogFormat, LogLevel, RequestLimits,
    RetryPolicy, Route, RoutesFile, ServerLimits, Target, TargetPolicy, Via,
};

const TOP_LEVEL_KEYS: [&str; 2] = ["server", "routes"];
/// `[server]` keys that bound the native server's client connections.
const CONNECTION_KEYS: [&str; 6] = [
    "header_read_timeout",
    "body_read_timeout",
    "keep_alive_timeout",
    "max_connections",
    "max_header_bytes",
    "shutdown_timeout",
];
/// `[server]` keys besides [`CONNECTION_KEYS`].
const SERVER_KEYS: [&str; 12] = [
    "auth_token",
    "log",
    "log_format",
    "total_timeout",
    "max_subrequests",
    "connect_timeout",
    "headers_timeout",
    "first_token_timeout",
    "idle_timeout",
    "key_strategy",
    "retry",
    "cooldown",
];
const TARGET_KEYS: [&str; 15] = [
    "provider",
    "model",
    "base_url",
    "api_keys",
    "max_tokens",
    "account_id",
    "max_output_tokens",
    "anthropic_betas",
    "connect_timeout",
    "headers_timeout",
    "first_token_timeout",
    "idle_timeout",
    "key_strategy",
    "retry",
    "cooldown",
];
const RETRY_KEYS: [&str; 3] = ["attempts", "base_ms", "max_ms"];
const COOLDOWN_KEYS: [&str; 4] = ["rate_limited", "rejected", "failed", "max"];

/// The longest any timeout or cool-down may be: a day.
const MAX_SECONDS: f64 = 86_400.0;

/// `base` (a target inherits `[server]`'s), with whatever `table` sets instead.
fn policy(table: &DeTable<'_>, base: &TargetPolicy) -> Result<TargetPolicy> {
    let seconds_or = |key: &str, base: u64| -> Result<u64> {
        table.get(key).map_or(Ok(base), |v| seconds(v, key, false))
    };
    Ok(TargetPolicy {
        deadlines: Deadlines {
            connect_ms: seconds_or("connect_timeout", base.deadlines.connect_ms)?,
            headers_ms: seconds_or("headers_timeout", base.deadlines.headers_ms)?,
            first_token_ms: seconds_or("first_token_timeout", base.deadlines.first_token_ms)?,
            idle_ms: seconds_or("idle_timeout", base.deadlines.idle_ms)?,
        },
        key_strategy: match table.get("key_strategy") {
            Some(v) => one_of(v, "`key_strategy`", &KeyStrategy::NAMES)?,
            None => base.key_strategy,
        },
        retry: match table.get("retry") {
            Some(v) => retry(v, &base.retry)?,
            None => base.retry,
        },
        cooldown: match table.get("cooldown") {
            Some(v) => cooldown(v, &base.cooldown)?,
            None => base.cooldown,
        },
    })
}

/// A routes file and the warnings it deserves (they do not stop the build).
#[derive(Debug)]
pub struct Checked {
    /// The file.
    pub file: RoutesFile,
    /// What may go wrong at run time, located in the file.
    pub warnings: Vec<Diagnostic>,
}

type Result<T> = std::result::Result<T, Diagnostic>;

/// Parses and validates a whole routes.toml.
pub fn parse(source: &str) -> Result<RoutesFile> {
    check(source).map(|checked| checked.file)
}

/// Parses and validates a whole routes.toml, and finds what deserves a warning: a route whose
/// worst case makes more upstream calls than `max_subrequests` allows.
pub fn check(source: &str) -> Result<Checked> {
    let root = DeTable::parse(source).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        Diagnostic::new(span, format!("invalid TOML: {}", e.message().trim_end()))
            .help("fix the TOML syntax; see the routes.toml reference in README.md")
    })?;
    let root_span = 0..source.len().min(1);
    let root = root.get_ref();
    reject_unknown_keys(root, &TOP_LEVEL_KEYS, "at the top level of routes.toml")?;

    let server = match root.get("server") {
        Some(value) => as_table(value, "`server`", "a table: `[server]`")?,
        None => {
            return Err(Diagnostic::new(root_span, "missing the `[server]` table")
                .help("add `[server]` with `auth_token = \"PROXY_AUTH_TOKEN\"` (the name of the secret holding the proxy's bearer token)"))
        }
    };
    let server_keys: Vec<&str> = SERVER_KEYS
        .iter()
        .chain(&CONNECTION_KEYS)
        .copied()
        .collect();
    reject_unknown_keys(server, &server_keys, "in `[server]`")?;
    let auth_token = match server.get("auth_token") {
        Some(value) => secret_name(value, "`auth_token`")?,
        None => {
            let span = root
                .get_key_value("server")
                .map_or(root_span.clone(), |(k, _)| k.span());
            return Err(Diagnostic::new(span, "`[server]` has no `auth_token`")
                .help("add `auth_token = \"PROXY_AUTH_TOKEN\"`: the name of the secret that holds the proxy's bearer token"));
        }
    };

    let log = LogConfig {
        level: match server.get("log") {
            Some(value) => one_of(value, "`log`", &LogLevel::NAMES)?,
            None => LogConfig::DEFAULT.level,
        },
        format: match server.get("log_format") {
            Some(value) => one_of(value, "`log_format`", &LogFormat::NAMES)?,
            None => LogConfig::DEFAULT.format,
        },
    };

    let limits = RequestLimits {
        total_timeout_ms: match server.get("total_timeout") {
            Some(v) => seconds(v, "total_timeout", false)?,
            None => RequestLimits::DEFAULT.total_timeout_ms,
        },
        max_subrequests: match server.get("max_subrequests") {
            Some(v) => positive_u32(v, "`max_subrequests`", 50)?,
            None => RequestLimits::DEFAULT.max_subrequests,
        },
    };
    let policies = policy(server, &TargetPolicy::DEFAULT)?;
    let connections = server_limits(server)?;

    let routes_value = root.get("routes").ok_or_else(|| {
        Diagnostic::new(root_span.clone(), "routes.toml defines no routes").help(
            "add at least one route: `[[routes.my-model]]` with `provider`, `model` and `api_keys`",
        )
    })?;
    let routes_table = as_table(
        routes_value,
        "`routes`",
        "a table of routes: `[[routes.NAME]]`",
    )?;
    if routes_table.is_empty() {
        return Err(Diagnostic::new(routes_value.span(), "routes.toml defines no routes")
            .help("add at least one route: `[[routes.my-model]]` with `provider`, `model` and `api_keys`"));
    }
    let mut routes = Vec::with_capacity(routes_table.len());
    let mut warnings = Vec::new();
    for (name, value) in routes_table.iter() {
        let route = route(name, value, &policies)?;
        let calls = worst_case_calls(&route);
        if calls > u64::from(limits.max_subrequests) {
            warnings.push(
                Diagnostic::new(name.span(), format!(
                    "route `{}` may make up to {calls} upstream calls on one request, more than `max_subrequests` ({})",
                    route.name, limits.max_subrequests
                ))
                .help("every key and every retry is one subrequest; the proxy stops at the limit (the Workers Free plan allows 50 per request): list fewer keys, lower `retry.attempts`, or raise `[server] max_subrequests` on a paid plan"),
            );
        }
        routes.push(route);
    }
    Ok(Checked {
        file: RoutesFile {
            auth_token,
            log,
            limits,
            server: connections,
            routes: leak_slice(routes),
        },
        warnings,
    })
}

/// The native server's connection limits in `[server]`, defaults for what it leaves out.
fn server_limits(server: &DeTable<'_>) -> Result<ServerLimits> {
    let base = ServerLimits::DEFAULT;
    let seconds_or = |key: &str, base: u64, zero_ok: bool| -> Result<u64> {
        server
            .get(key)
            .map_or(Ok(base), |v| seconds(v, key, zero_ok))
    };
    let max_header_bytes = match server.get("max_header_bytes") {
        Some(v) => {
            let (least, most) = (
                ServerLimits::MIN_HEADER_BYTES,
                ServerLimits::MAX_HEADER_BYTES,
            );
            positive_u32(v, "`max_header_bytes`", base.max_header_bytes)
                .ok()
                .filter(|n| (least..=most).contains(n))
                .ok_or_else(|| {
                    Diagnostic::new(
                        v.span(),
                        format!("`max_header_bytes` must be a whole number of bytes from {least} to {most}"),
                    )
                    .help("e.g. `max_header_bytes = 32768`; the request line and every header count")
                })?
        }
        None => base.max_header_bytes,
    };
    Ok(ServerLimits {
        header_read_timeout_ms: seconds_or(
            "header_read_timeout",
            base.header_read_timeout_ms,
            false,
        )?,
        body_read_timeout_ms: seconds_or("body_read_timeout", base.body_read_timeout_ms, false)?,
        keep_alive_timeout_ms: seconds_or("keep_alive_timeout", base.keep_alive_timeout_ms, true)?,
        max_connections: match server.get("max_connections") {
            Some(v) => positive_u32(v, "`max_connections`", 4096)?,
            None => base.max_connections,
        },
        max_header_bytes,
        shutdown_timeout_ms: seconds_or("shutdown_timeout", base.shutdown_timeout_ms, true)?,
    })
}

/// Upstream calls a request makes on `route` when every one fails: each via of each target,
/// each retried as its target's `retry` allows.
pub fn worst_case_calls(route: &Route) -> u64 {
    route
        .targets
        .iter()
        .map(|t| t.vias.len() as u64 * (1 + u64::from(t.policy.retry.attempts)))
        .sum()
}

fn route(
    name: &Spanned<std::borrow::Cow<'_, str>>,
    value: &Spanned<DeValue<'_>>,
    policies: &TargetPolicy,
) -> Result<Route> {
    let route_name = name.get_ref().as_ref();
    if route_name.is_empty()
        || route_name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Diagnostic::new(name.span(), format!("route name {route_name:?} is not a usable model name"))
            .help("a route name is what clients send as `model`: use letters, digits and `-_.:/@`, no spaces"));
    }
    // With `*` only at the end, a pattern is a prefix, and the longest prefix a model starts
    // with picks one route unambiguously; a `*` elsewhere would let two patterns tie.
    if route_name
        .strip_suffix('*')
        .unwrap_or(route_name)
        .contains('*')
    {
        return Err(Diagnostic::new(name.span(), format!("route name `{route_name}` has a `*` before its end"))
            .help("a `*` may only end a route name, once: `[[routes.\"claude-*\"]]` takes every model starting with `claude-`, `[[routes.\"*\"]]` every model; an exact name wins, then the longest prefix"));
    }
    let targets = match value.get_ref() {
        DeValue::Array(items) => items,
        DeValue::Table(_) => {
            return Err(Diagnostic::new(name.span(), format!("route `{route_name}` must be a list of targets"))
                .help(format!("write each target as `[[routes.{route_name}]]` (double brackets), one per provider to try")))
        }
        _ => {
            return Err(Diagnostic::new(value.span(), format!("route `{route_name}` must be a list of targets"))
                .help(format!("write each target as `[[routes.{route_name}]]` with `provider`, `model` and `api_keys`")))
        }
    };
    if targets.is_empty() {
        return Err(Diagnostic::new(value.span(), format!("route `{route_name}` has no targets"))
            .help(format!("add at least one `[[routes.{route_name}]]` table with `provider`, `model` and `api_keys`")));
    }
    let targets = targets
        .iter()
        .map(|t| target(route_name, name.span(), t, policies))
        .collect::<Result<Vec<_>>>()?;
    Ok(Route {
        name: leak(route_name),
        targets: leak_slice(targets),
    })
}

fn target(
    route_name: &str,
    route_span: Range<usize>,
    value: &Spanned<DeValue<'_>>,
    policies: &TargetPolicy,
) -> Result<Target> {
    let what = format!("a target of route `{route_name}`");
    let table = as_table(
        value,
        &format!("each target of route `{route_name}`"),
        "a table",
    )?;
    // An empty `[[routes.x]]` has an empty span; point at the route's name instead.
    let header = if value.span().is_empty() {
        route_span
    } else {
        value.span()
    };
    if let Some((key, _)) = table.get_key_value("total_timeout") {
        return Err(Diagnostic::new(key.span(), "`total_timeout` bounds a whole request, every target included, so it cannot be set on one target")
            .help("move it to `[server]`; on a target, `headers_timeout`, `first_token_timeout` and `idle_timeout` bound its own attempts"));
    }
    if let Some((key, _)) = CONNECTION_KEYS
        .iter()
        .find_map(|name| table.get_key_value(*name))
    {
        return Err(Diagnostic::new(key.span(), format!("`{}` limits the proxy's own client connections, so it cannot be set on one target", key.get_ref()))
            .help("move it to `[server]`; on a target, `connect_timeout`, `headers_timeout`, `first_token_timeout` and `idle_timeout` bound its upstream calls"));
    }
    reject_unknown_keys(table, &TARGET_KEYS, &format!("in {what}"))?;
    let policy = policy(table, policies)?;

    let provider_value = table.get("provider").ok_or_else(|| {
        Diagnostic::new(header.clone(), format!("{what} has no `provider`")).help(format!(
            "add `provider = \"...\"`, one of: {}",
            provider_names(PROVIDERS.iter())
        ))
    })?;
    let provider_name = string(provider_value, "`provider`")?;
    let provider = providers::find(provider_name).ok_or_else(|| {
        let d = Diagnostic::new(
            provider_value.span(),
            format!("unknown provider `{provider_name}`"),
        );
        let names: Vec<&str> = PROVIDERS.iter().map(|p| p.name).collect();
        match did_you_mean(provider_name, &names) {
            Some(s) => d.help(format!(
                "did you mean `{s}`? Providers: {}",
                provider_names(PROVIDERS.iter())
            )),
            None => d.help(format!("use one of: {}", provider_names(PROVIDERS.iter()))),
        }
    })?;

    let model = match table.get("model") {
        Some(v) => {
            let m = string(v, "`model`")?;
            if m.trim().is_empty() {
                return Err(Diagnostic::new(v.span(), "`model` is empty")
                    .help("set it to the provider's model id, e.g. `model = \"gpt-4o-mini\"`"));
            }
            placeholders(v, m, route_name)?;
            leak(m)
        }
        None => return Err(
            Diagnostic::new(header, format!("{what} has no `model`")).help(
                "add `model = \"...\"`: the provider's model id, e.g. `model = \"gpt-4o-mini\"`",
            ),
        ),
    };

    let base_url = match table.get("base_url") {
        Some(v) => http_url(v)?,
        None => match provider.default_base_url {
            Some(url) => url,
            None => {
                return Err(Diagnostic::new(provider_value.span(), format!("{} `{provider_name}` target needs a `base_url`", article(provider_name)))
                    .help("add the API's base URL including its version path, e.g. `base_url = \"https://integrate.api.nvidia.com/v1\"`"))
            }
        },
    };

    let api_keys = match table.get("api_keys") {
        Some(v) => key_names(v)?,
        None => Vec::new(),
    };
    let binding = match provider.binding {
        Some(binding) if api_keys.is_empty() => Some(binding),
        None if api_keys.is_empty() => {
            let span = table.get("api_keys").map_or(header, |v| v.span());
            return Err(Diagnostic::new(span, format!("provider `{provider_name}` needs at least one API key in `api_keys`"))
                .help("set `api_keys = [\"MY_KEY_1\"]`: names of secrets (`wrangler secret put MY_KEY_1`), tried in order"));
        }
        _ => None,
    };

    let max_tokens = match table.get("max_tokens") {
        Some(v) => Some(positive_u32(v, "`max_tokens`", 8192)?),
        None => None,
    };
    let max_output_tokens = match table.get("max_output_tokens") {
        Some(v) => Some(max_output_tokens(v)?),
        None => None,
    };
    if let (Some(default), Some(most), Some(v)) =
        (max_tokens, max_output_tokens, table.get("max_tokens"))
    {
        if default > most {
            return Err(Diagnostic::new(
                v.span(),
                format!("`max_tokens` ({default}) is above this target's `max_output_tokens` ({most})"),
            )
            .help(format!("the default budget is sent when a client sets none; set `max_tokens = {most}` or less")));
        }
    }

    // `account_id` names the secret holding a Cloudflare account id. It only means something
    // over the REST API (keys listed); through a binding there is no account to name, so a stray
    // one is reported rather than silently ignored.
    let account_id = match table.get("account_id") {
        Some(v) => {
            if !provider.account_id {
                let takers = PROVIDERS.iter().filter(|p| p.account_id);
                return Err(Diagnostic::new(
                    table.get_key_value("account_id").map_or(v.span(), |(k, _)| k.span()),
                    format!("`account_id` only applies to {} targets, not `{provider_name}`", provider_names(takers)),
                )
                .help("remove `account_id`; it names the secret holding the Cloudflare account id for Workers AI's REST API"));
            }
            let name = secret_name(v, "`account_id`")?;
            if let Some(binding) = binding {
                return Err(Diagnostic::new(v.span(), format!("`account_id` is set but `api_keys` is empty: an empty `api_keys` means the Worker's {binding} binding, which needs no account id"))
                    .help("for the REST API add the API token's secret name, e.g. `api_keys = [\"CF_API_TOKEN\"]`; for the binding remove `account_id`"));
            }
            Some(name)
        }
        None => None,
    };
    if provider.account_id && binding.is_none() && account_id.is_none() {
        let span = table.get("api_keys").map_or(header, |v| v.span());
        let or_binding = provider.binding.map_or(String::new(), |b| {
            format!(", or set `api_keys = []` to use the Worker's {b} binding")
        });
        return Err(Diagnostic::new(span, format!("a `{provider_name}` target with `api_keys` uses the REST API and needs `account_id`"))
            .help(format!("add `account_id = \"CF_ACCOUNT_ID\"` (the name of the secret holding your account id){or_binding}")));
    }

    let anthropic_betas = match table.get_key_value("anthropic_betas") {
        Some((key, v)) => {
            if !provider.anthropic_betas {
                let takers = PROVIDERS.iter().filter(|p| p.anthropic_betas);
                return Err(Diagnostic::new(key.span(), format!("`anthropic_betas` only applies to {} targets, not `{provider_name}`", provider_names(takers)))
                    .help("remove `anthropic_betas`; it lists the `anthropic-beta` header values the proxy forwards to an Anthropic target"));
            }
            Some(beta_names(v)?)
        }
        None => None,
    };

    let vias: Vec<Via> = match binding {
        Some(binding) => vec![Via::Binding(binding)],
        None => api_keys.into_iter().map(Via::Key).collect(),
    };
    Ok(Target {
        provider: provider.name,
        model,
        base_url,
        vias: leak_slice(vias),
        max_tokens,
        max_output_tokens,
        account_id,
        anthropic_betas,
        policy,
    })
}

/// Checks that `model` (the value `value`) uses no placeholder but [`Target::STAR`], and that
/// only where the route's name has a `*` to fill it.
fn placeholders(value: &Spanned<DeValue<'_>>, model: &str, route_name: &str) -> Result<()> {
    for (at, _) in model.match_indices('{') {
        let rest = &model[at..];
        if !rest.starts_with(Target::STAR) {
            let placeholder = rest.find('}').map_or(rest, |end| &rest[..=end]);
            return Err(Diagnostic::new(value.span(), format!("`model` has an unknown placeholder `{placeholder}`"))
                .help("the only placeholder is `{*}`, the text a route name's `*` matched, e.g. `model = \"claude-{*}\"` in `[[routes.\"claude-*\"]]`"));
        }
        if !route_name.ends_with('*') {
            return Err(Diagnostic::new(value.span(), "`{*}` needs a route name ending in `*`")
                .help(format!("`{{*}}` stands for the text a route name's `*` matched, and route `{route_name}` is reached by its exact name: write the model id in full, or end the route name in `*`, e.g. `[[routes.\"claude-*\"]]` with `model = \"claude-{{*}}\"`")));
        }
    }
    Ok(())
}

/// `max_output_tokens`: what the model can write in one answer, up to [`Target::MAX_OUTPUT_TOKENS`].
fn max_output_tokens(value: &Spanned<DeValue<'_>>) -> Result<u32> {
    let most = Target::MAX_OUTPUT_TOKENS;
    let parsed = match value.get_ref() {
        DeValue::Integer(i) => u32::from_str_radix(i.as_str(), i.radix()).ok(),
        _ => None,
    };
    parsed.filter(|n| (1..=most).contains(n)).ok_or_else(|| {
        Diagnostic::new(
            value.span(),
            format!("`max_output_tokens` must be a whole number from 1 to {most}"),
        )
        .help("e.g. `max_output_tokens = 64000`: the most tokens the model can write in one answer; a client's `max_tokens` above it is lowered to it")
    })
}

/// `anthropic_betas`: each entry one `anthropic-beta` value, as the header lists them
/// comma-separated.
fn beta_names(value: &Spanned<DeValue<'_>>) -> Result<&'static [&'static str]> {
    const EXAMPLE: &str =
        "e.g. `anthropic_betas = [\"interleaved-thinking-2025-05-14\", \"context-1m-2025-08-07\"]`";
    let items = match value.get_ref() {
        DeValue::Array(items) => items,
        other => {
            return Err(Diagnostic::new(
                value.span(),
                format!(
                    "`anthropic_betas` must be a list of beta names, found {}",
                    kind(other)
                ),
            )
            .help(EXAMPLE))
        }
    };
    let mut names = Vec::with_capacity(items.len());
    for item in items.iter() {
        let name = string(item, "each entry of `anthropic_betas`")?;
        // Visible ASCII, as a header value must be; a comma would smuggle a second value in.
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_graphic() && c != ',') {
            return Err(Diagnostic::new(item.span(), "each entry of `anthropic_betas` must be one non-empty beta name: printable ASCII, no commas or whitespace")
                .help(format!("list each `anthropic-beta` value as its own string, {EXAMPLE}")));
        }
        names.push(leak(name));
    }
    Ok(leak_slice(names))
}

/// A duration in seconds (fractions allowed), as whole milliseconds: positive, or also zero
/// where `zero_ok`, and at most a day.
fn seconds(value: &Spanned<DeValue<'_>>, key: &str, zero_ok: bool) -> Result<u64> {
    let secs = match value.get_ref() {
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
            .ok()
            .map(|n| n as f64),
        DeValue::Float(f) => f.as_str().replace('_', "").parse::<f64>().ok(),
        _ => None,
    };
    let ms = secs
        .filter(|s| s.is_finite() && *s >= 0.0 && *s <= MAX_SECONDS)
        .map(|s| (s * 1000.0).round() as u64)
        .filter(|ms| zero_ok || *ms > 0);
    let least = if zero_ok {
        "zero or more"
    } else {
        "more than zero"
    };
    ms.ok_or_else(|| {
        Diagnostic::new(
            value.span(),
            format!("`{key}` must be a number of seconds, {least} and at most a day (86400)"),
        )
        .help(format!("e.g. `{key} = 30` or `{key} = 2.5`"))
    })
}

/// A `retry = { attempts, base_ms, max_ms }` table; what it leaves out comes from `base`.
fn retry(value: &Spanned<DeValue<'_>>, base: &RetryPolicy) -> Result<RetryPolicy> {
    let table = as_table(
        value,
        "`retry`",
        "an inline table: `retry = { attempts = 2, base_ms = 200, max_ms = 2000 }`",
    )?;
    reject_unknown_keys(table, &RETRY_KEYS, "in `retry`")?;
    let whole = |key: &str, base: u64, least: u64, most: u64| -> Result<u64> {
        let Some(v) = table.get(key) else {
            return Ok(base);
        };
        let n = match v.get_ref() {
            DeValue::Integer(i) => u64::from_str_radix(i.as_str(), i.radix()).ok(),
            _ => None,
        };
        n.filter(|n| (least..=most).contains(n)).ok_or_else(|| {
            Diagnostic::new(
                v.span(),
                format!("`retry.{key}` must be a whole number from {least} to {most}"),
            )
            .help("e.g. `retry = { attempts = 2, base_ms = 200, max_ms = 2000 }`")
        })
    };
    let attempts = whole("attempts", u64::from(base.attempts), 0, 10)? as u32;
    let base_ms = whole("base_ms", base.base_ms, 1, 60_000)?;
    let max_ms = whole("max_ms", base.max_ms.max(base_ms), base_ms, 600_000)?;
    Ok(RetryPolicy {
        attempts,
        base_ms,
        max_ms,
    })
}

/// A `cooldown = { rate_limited, rejected, failed, max }` table in seconds; what it leaves out
/// comes from `base`.
fn cooldown(value: &Spanned<DeValue<'_>>, base: &CooldownPolicy) -> Result<CooldownPolicy> {
    let table = as_table(value, "`cooldown`", "an inline table of seconds: `cooldown = { rate_limited = 5, rejected = 600, failed = 5, max = 600 }`")?;
    reject_unknown_keys(table, &COOLDOWN_KEYS, "in `cooldown`")?;
    let secs = |key: &str, base: u64| -> Result<u64> {
        match table.get(key) {
            Some(v) => seconds(v, &format!("cooldown.{key}"), true),
            None => Ok(base),
        }
    };
    Ok(CooldownPolicy {
        rate_limited_ms: secs("rate_limited", base.rate_limited_ms)?,
        rejected_ms: secs("rejected", base.rejected_ms)?,
        failed_ms: secs("failed", base.failed_ms)?,
        max_ms: secs("max", base.max_ms)?,
    })
}

/// `a` or `an`, as the provider's name is read aloud.
fn article(name: &str) -> &'static str {
    if name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

fn provider_names<'a>(providers: impl Iterator<Item = &'a ProviderSpec>) -> String {
    providers
        .map(|p| format!("`{}`", p.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Gives parsed text the `'static` lifetime of the compiled-in table (see the module docs).
fn leak(text: &str) -> &'static str {
    Box::leak(text.to_owned().into_boxed_str())
}

/// Gives a parsed list the `'static` lifetime of the compiled-in table (see the module docs).
fn leak_slice<T>(items: Vec<T>) -> &'static [T] {
    Box::leak(items.into_boxed_slice())
}

fn reject_unknown_keys(table: &DeTable<'_>, allowed: &[&str], place: &str) -> Result<()> {
    for key in table.keys() {
        let k = key.get_ref().as_ref();
        if !allowed.contains(&k) {
            let d = Diagnostic::new(key.span(), format!("unknown field `{k}` {place}"));
            let list = allowed
                .iter()
                .map(|a| format!("`{a}`"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(match did_you_mean(k, allowed) {
                Some(s) => d.help(format!("did you mean `{s}`? Allowed here: {list}")),
                None => d.help(format!("allowed here: {list}")),
            });
        }
    }
    Ok(())
}

fn as_table<'a, 'i>(
    value: &'a Spanned<DeValue<'i>>,
    what: &str,
    expected: &str,
) -> Result<&'a DeTable<'i>> {
    match value.get_ref() {
        DeValue::Table(t) => Ok(t),
        other => Err(Diagnostic::new(
            value.span(),
            format!("{what} must be {expected}, found {}", kind(other)),
        )),
    }
}

fn string<'a>(value: &'a Spanned<DeValue<'_>>, what: &str) -> Result<&'a str> {
    match value.get_ref() {
        DeValue::String(s) => Ok(s.as_ref()),
        other => Err(Diagnostic::new(
            value.span(),
            format!("{what} must be a string, found {}", kind(other)),
        )
        .help("put the value in double quotes")),
    }
}

/// One of a fixed set of names.
fn one_of<T: Copy>(value: &Spanned<DeValue<'_>>, what: &str, names: &[(&str, T)]) -> Result<T> {
    let text = string(value, what)?;
    named(text, names).ok_or_else(|| {
        let list: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
        let quoted = list
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let d = Diagnostic::new(value.span(), format!("{what} cannot be `{text}`"));
        match did_you_mean(text, &list) {
            Some(s) => d.help(format!("did you mean `{s}`? One of: {quoted}")),
            None => d.help(format!("use one of: {quoted}")),
        }
    })
}

fn positive_u32(value: &Spanned<DeValue<'_>>, what: &str, example: u32) -> Result<u32> {
    let parsed = match value.get_ref() {
        DeValue::Integer(i) => u32::from_str_radix(i.as_str(), i.radix())
            .ok()
            .filter(|n| *n > 0),
        _ => None,
    };
    parsed.ok_or_else(|| {
        Diagnostic::new(
            value.span(),
            format!("{what} must be a positive whole number"),
        )
        .help(format!("e.g. `{} = {example}`", what.trim_matches('`')))
    })
}

/// A secret *name* (what `wrangler secret put NAME` takes), never a secret value.
fn secret_name(value: &Spanned<DeValue<'_>>, what: &str) -> Result<&'static str> {
    let name = string(value, what)?;
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        // The value is deliberately not repeated: it may be a pasted key.
        return Err(Diagnostic::new(value.span(), format!("{what} must name a secret, and this is not a valid secret name"))
            .help("use the secret's name (letters, digits and `_`, not starting with a digit), e.g. `OPENAI_KEY_1`; its value goes in `wrangler secret put OPENAI_KEY_1` or the environment, never in routes.toml"));
    }
    Ok(leak(name))
}

fn key_names(value: &Spanned<DeValue<'_>>) -> Result<Vec<&'static str>> {
    let items = match value.get_ref() {
        DeValue::Array(items) => items,
        other => {
            return Err(Diagnostic::new(
                value.span(),
                format!(
                    "`api_keys` must be a list of secret names, found {}",
                    kind(other)
                ),
            )
            .help("e.g. `api_keys = [\"OPENAI_KEY_1\", \"OPENAI_KEY_2\"]`"))
        }
    };
    let mut names: Vec<&'static str> = Vec::with_capacity(items.len());
    for item in items.iter() {
        let name = secret_name(item, "each entry of `api_keys`")?;
        if names.contains(&name) {
            return Err(Diagnostic::new(
                item.span(),
                format!("key `{name}` is listed twice in this target"),
            )
            .help("list each secret once; to retry a key, add another secret name"));
        }
        names.push(name);
    }
    Ok(names)
}

fn http_url(value: &Spanned<DeValue<'_>>) -> Result<&'static str> {
    let url = string(value, "`base_url`")?;
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or(""));
    let ok = host.is_some_and(|h| !h.is_empty() && !h.starts_with(':'))
        && !url.chars().any(|c| c.is_whitespace() || c.is_control())
        && !url.contains(['?', '#']);
    if !ok {
        return Err(Diagnostic::new(
            value.span(),
            format!("`base_url` {url:?} is not an http(s) URL"),
        )
        .help(
            "write an absolute URL with no query, e.g. `base_url = \"https://api.openai.com/v1\"`",
        ));
    }
    Ok(leak(url.trim_end_matches('/')))
}

fn kind(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date",
        DeValue::Array(_) => "a list",
        DeValue::Table(_) => "a table",
    }
}
