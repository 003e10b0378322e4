//! routes.toml text → [`RoutesFile`], or the first problem found with its exact location.
//!
//! What is parsed is leaked: the result is the `'static` data the proxy compiles in (see
//! [`crate::schema`]), and the one caller, the `routes!()` macro, parses one file per build.

use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::prices::{price_of, price_of_every};
use crate::providers::{self, ProviderSpec, PROVIDERS};
use crate::schema::{
    named, Budget, BudgetPeriod, Client, CooldownPolicy, Deadlines, KeyStrategy, LimitsStore,
    LogConfig, LogFormat, LogLevel, Price, RequestLimits, RetryPolicy, Route, RoutesFile,
    ServerLimits, Target, TargetPolicy, Via,
};

const TOP_LEVEL_KEYS: [&str; 4] = ["server", "routes", "clients", "prices"];
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
const SERVER_KEYS: [&str; 13] = [
    "auth_token",
    "limits_store",
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
const CLIENT_KEYS: [&str; 6] = [
    "tokens",
    "routes",
    "requests_per_minute",
    "tokens_per_minute",
    "max_concurrent",
    "budget",
];
const BUDGET_KEYS: [&str; 2] = ["usd", "per"];
const PRICE_KEYS: [&str; 4] = ["input", "output", "cache_read", "cache_write"];
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
    let limits_store = match server.get("limits_store") {
        Some(value) => Some(limits_store(value)?),
        None => None,
    };

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
    let prices = match root.get("prices") {
        Some(value) => leak_slice(prices(value)?),
        None => &[],
    };
    let clients = match root.get("clients") {
        Some(value) => clients(value, auth_token, &routes, prices)?,
        None => Vec::new(),
    };
    if let Some((key, _)) = server.get_key_value("limits_store") {
        if !clients.iter().any(Client::limited) {
            warnings.push(
                Diagnostic::new(key.span(), "`limits_store` is set, but no client has a limit to keep in it")
                    .help("it holds the counts of `[clients.NAME]` limits (`requests_per_minute`, `tokens_per_minute`, `max_concurrent`, `budget`); add one, or remove `limits_store`"),
            );
        }
    }
    Ok(Checked {
        file: RoutesFile {
            auth_token,
            log,
            limits,
            server: connections,
            routes: leak_slice(routes),
            clients: leak_slice(clients),
            prices,
            limits_store,
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

/// The most a `budget` may be, in pico-USD: a million US dollars.
const MAX_BUDGET_PICO_USD: u64 = 1_000_000 * PICO_PER_USD;
/// Pico-USD in a US dollar.
const PICO_PER_USD: u64 = 1_000_000_000_000;
/// The most a price may be, in pico-USD per token: 10,000 US dollars per million tokens.
const MAX_PRICE: u64 = 10_000 * 1_000_000;

/// `[clients.NAME]` tables, in file order.
fn clients(
    value: &Spanned<DeValue<'_>>,
    auth_token: &str,
    routes: &[Route],
    prices: &[Price],
) -> Result<Vec<Client>> {
    let table = as_table(
        value,
        "`clients`",
        "a table of clients: `[clients.NAME]` with `tokens`",
    )?;
    let mut clients: Vec<Client> = Vec::with_capacity(table.len());
    for (name, value) in table.iter() {
        let client = client(name, value, auth_token, &clients, routes, prices)?;
        clients.push(client);
    }
    Ok(clients)
}

/// One `[clients.NAME]` table; `others` are the clients before it, whose tokens it may not
/// share.
fn client(
    name: &Spanned<std::borrow::Cow<'_, str>>,
    value: &Spanned<DeValue<'_>>,
    auth_token: &str,
    others: &[Client],
    routes: &[Route],
    prices: &[Price],
) -> Result<Client> {
    let client_name = name.get_ref().as_ref();
    let usable = !client_name.is_empty()
        && client_name.len() <= 64
        && client_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if !usable {
        return Err(Diagnostic::new(name.span(), format!("client name {client_name:?} is not usable"))
            .help("a client's name is what its limits count under and what logs show: 1 to 64 letters, digits and `-_.@`, e.g. `[clients.ci-bot]` (quoted if it has a `.`: `[clients.\"team.a\"]`)"));
    }
    let table = match value.get_ref() {
        DeValue::Table(table) => table,
        DeValue::Array(_) => {
            return Err(Diagnostic::new(
                name.span(),
                format!("client `{client_name}` must be one table, not a list"),
            )
            .help(format!(
                "write `[clients.{client_name}]` (single brackets) with `tokens` and its limits"
            )))
        }
        other => {
            return Err(Diagnostic::new(
                value.span(),
                format!(
                    "client `{client_name}` must be a table, found {}",
                    kind(other)
                ),
            )
            .help(format!(
                "write `[clients.{client_name}]` with `tokens = [\"...\"]` and its limits"
            )))
        }
    };
    // `[clients.team.a]` is client `team` with a table `a`: the name needed quotes.
    reject_unquoted_dot(
        table,
        name.span(),
        &CLIENT_KEYS,
        ("client", "clients", "client name"),
        client_name,
    )?;
    reject_unknown_keys(table, &CLIENT_KEYS, &format!("in client `{client_name}`"))?;
    let secret = suggested_secret(client_name);

    let tokens_value = table.get("tokens").ok_or_else(|| {
        Diagnostic::new(name.span(), format!("client `{client_name}` has no `tokens`"))
            .help(format!("add `tokens = [\"{secret}\"]`: the names of the secrets holding the tokens the client sends as `Authorization: Bearer ...`"))
    })?;
    let items = match tokens_value.get_ref() {
        DeValue::Array(items) => items,
        other => {
            return Err(Diagnostic::new(
                tokens_value.span(),
                format!(
                    "`tokens` of client `{client_name}` must be a list of secret names, found {}",
                    kind(other)
                ),
            )
            .help(format!("e.g. `tokens = [\"{secret}\"]`")))
        }
    };
    if items.is_empty() {
        return Err(Diagnostic::new(tokens_value.span(), format!("client `{client_name}` has no tokens: `tokens` is empty"))
            .help(format!("list the secrets holding its tokens, e.g. `tokens = [\"{secret}\"]`; to shut a client out, remove its table")));
    }
    let mut tokens: Vec<&'static str> = Vec::with_capacity(items.len());
    for item in items.iter() {
        let token = secret_name(item, "each entry of `tokens`")?;
        if tokens.contains(&token) {
            return Err(Diagnostic::new(
                item.span(),
                format!("token `{token}` is listed twice in client `{client_name}`"),
            )
            .help("list each secret once; to rotate a token, list the new secret beside the old one, then remove the old one"));
        }
        if token == auth_token {
            return Err(Diagnostic::new(item.span(), format!("token `{token}` of client `{client_name}` is the proxy's own `[server] auth_token`"))
                .help(format!("no client's routes or limits apply to the `auth_token`; give the client a secret of its own, e.g. `tokens = [\"{secret}\"]`")));
        }
        if let Some(other) = others.iter().find(|other| other.tokens.contains(&token)) {
            return Err(Diagnostic::new(item.span(), format!("token `{token}` of client `{client_name}` is also a token of client `{}`", other.name))
                .help(format!("a token tells the proxy which client is calling, so each secret belongs to one client: give `{client_name}` its own, e.g. `tokens = [\"{secret}\"]`")));
        }
        tokens.push(token);
    }

    let allowed = match table.get("routes") {
        Some(value) => Some(allow_list(value, client_name, routes)?),
        None => None,
    };
    let limit = |key: &str, most: u64, help: &str| -> Result<Option<u64>> {
        table
            .get(key)
            .map(|value| {
                let n = match value.get_ref() {
                    DeValue::Integer(i) => u64::from_str_radix(i.as_str(), i.radix()).ok(),
                    _ => None,
                };
                n.filter(|n| (1..=most).contains(n)).ok_or_else(|| {
                    Diagnostic::new(
                        value.span(),
                        format!("`{key}` of client `{client_name}` must be a whole number from 1 to {most}"),
                    )
                    .help(help.to_owned())
                })
            })
            .transpose()
    };
    let u32_most = 1_000_000;
    let requests_per_minute = limit("requests_per_minute", u32_most, "e.g. `requests_per_minute = 60`: requests the client may start per calendar minute; leave it out for no limit")?;
    let tokens_per_minute = limit("tokens_per_minute", 1_000_000_000_000, "e.g. `tokens_per_minute = 200_000`: input and output tokens the client may use per calendar minute; leave it out for no limit")?;
    let max_concurrent = limit("max_concurrent", u32_most, "e.g. `max_concurrent = 4`: requests the client may have in flight at once; leave it out for no limit")?;
    let budget = match table.get("budget") {
        Some(value) => Some(budget(value)?),
        None => None,
    };

    let client = Client {
        name: leak(client_name),
        tokens: leak_slice(tokens),
        routes: allowed,
        // At most a million, so they fit.
        requests_per_minute: requests_per_minute.map(|n| n as u32),
        tokens_per_minute,
        max_concurrent: max_concurrent.map(|n| n as u32),
        budget,
    };
    if let Some((key, _)) = table.get_key_value("budget") {
        budget_is_countable(&client, key.span(), routes, prices)?;
    }
    Ok(client)
}

/// A secret name to suggest for a client's token: `ci-bot` → `CI_BOT_TOKEN`.
fn suggested_secret(client_name: &str) -> String {
    let stem: String = client_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    if stem.starts_with(|c: char| c.is_ascii_digit()) {
        format!("CLIENT_{stem}_TOKEN")
    } else {
        format!("{stem}_TOKEN")
    }
}

/// A client's `routes`: route names, or prefixes ending in `*`, each allowing a route of the
/// file (see [`Client::entry_allows`]).
fn allow_list(
    value: &Spanned<DeValue<'_>>,
    client_name: &str,
    routes: &[Route],
) -> Result<&'static [&'static str]> {
    const EXAMPLE: &str = "e.g. `routes = [\"fast\", \"claude-*\"]`";
    let items = match value.get_ref() {
        DeValue::Array(items) => items,
        other => {
            return Err(Diagnostic::new(
                value.span(),
                format!(
                    "`routes` of client `{client_name}` must be a list of route names, found {}",
                    kind(other)
                ),
            )
            .help(format!(
                "{EXAMPLE}; leave `routes` out to allow every route"
            )))
        }
    };
    if items.is_empty() {
        return Err(Diagnostic::new(
            value.span(),
            format!("client `{client_name}` may use no route: `routes` is empty"),
        )
        .help(format!(
            "list the routes it may use, {EXAMPLE}, or leave `routes` out to allow every route"
        )));
    }
    let mut entries: Vec<&'static str> = Vec::with_capacity(items.len());
    for item in items.iter() {
        let entry = string(item, "each entry of `routes`")?;
        if entry.is_empty() || entry.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Diagnostic::new(item.span(), "each entry of `routes` must be a route name or a prefix ending in `*`, without spaces")
                .help(format!("{EXAMPLE}; routes in this file: {}", route_names(routes))));
        }
        if entry.strip_suffix('*').unwrap_or(entry).contains('*') {
            return Err(Diagnostic::new(item.span(), format!("`routes` entry `{entry}` has a `*` before its end"))
                .help("a `*` may only end an entry: `claude-*` allows every route whose name starts with `claude-`, `*` every route"));
        }
        if entries.contains(&entry) {
            return Err(Diagnostic::new(
                item.span(),
                format!("`{entry}` is listed twice in the `routes` of client `{client_name}`"),
            )
            .help("list each route or prefix once"));
        }
        if !routes
            .iter()
            .any(|route| Client::entry_allows(entry, route.name))
        {
            return Err(unknown_route(item.span(), entry, client_name, routes));
        }
        entries.push(leak(entry));
    }
    Ok(leak_slice(entries))
}

/// An entry of a client's `routes` that allows no route of the file.
fn unknown_route(
    span: Range<usize>,
    entry: &str,
    client_name: &str,
    routes: &[Route],
) -> Diagnostic {
    let list = route_names(routes);
    if entry.ends_with('*') {
        return Diagnostic::new(span, format!("`routes` entry `{entry}` of client `{client_name}` matches no route"))
            .help(format!("an entry ending in `*` allows the routes whose names start with what is before it; routes in this file: {list}"));
    }
    let d = Diagnostic::new(
        span,
        format!("unknown route `{entry}` in the `routes` of client `{client_name}`"),
    );
    // The model a client sends may reach a pattern route, but the list names routes.
    let pattern = routes
        .iter()
        .filter_map(|route| Some((route.name, route.pattern_prefix()?)))
        .filter(|(_, prefix)| entry.starts_with(prefix))
        .max_by_key(|(_, prefix)| prefix.len());
    if let Some((pattern, _)) = pattern {
        return d.help(format!("`{entry}` is a model that route `{pattern}` takes, not a route's name: allow `{pattern}`, or add a route named `{entry}`"));
    }
    let names: Vec<&str> = routes.iter().map(|route| route.name).collect();
    match did_you_mean(entry, &names) {
        Some(s) => d.help(format!("did you mean `{s}`? Routes: {list}")),
        None => d.help(format!("`routes` lists routes of this file: {list}")),
    }
}

fn route_names(routes: &[Route]) -> String {
    routes
        .iter()
        .map(|route| format!("`{}`", route.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `budget = { usd, per }`.
fn budget(value: &Spanned<DeValue<'_>>) -> Result<Budget> {
    const EXAMPLE: &str = "e.g. `budget = { usd = 25.0, per = \"month\" }`";
    let table = as_table(
        value,
        "`budget`",
        "an inline table: `budget = { usd = 25.0, per = \"month\" }`",
    )?;
    reject_unknown_keys(table, &BUDGET_KEYS, "in `budget`")?;
    let usd = table.get("usd").ok_or_else(|| {
        Diagnostic::new(value.span(), "`budget` has no `usd`").help(format!(
            "add the most the client may spend per period, in US dollars: {EXAMPLE}"
        ))
    })?;
    let pico_usd = scaled(usd.get_ref(), 12)
        .filter(|n| (1..=MAX_BUDGET_PICO_USD).contains(n))
        .ok_or_else(|| {
            Diagnostic::new(
                usd.span(),
                "`budget.usd` must be a number of US dollars, more than 0 and at most 1000000",
            )
            .help(EXAMPLE)
        })?;
    let per = table.get("per").ok_or_else(|| {
        Diagnostic::new(value.span(), "`budget` has no `per`").help(format!(
            "add the period it renews on, `\"day\"` or `\"month\"` (UTC): {EXAMPLE}"
        ))
    })?;
    Ok(Budget {
        pico_usd,
        per: one_of(per, "`budget.per`", &BudgetPeriod::NAMES)?,
    })
}

/// Checks that every model `client` can reach has a price, so its spending can be counted: a
/// target's `model` from `[prices]` or the built-in table, and a pattern route's `{*}` model
/// from a price ending in `*` that covers whatever the client may send.
fn budget_is_countable(
    client: &Client,
    at: Range<usize>,
    routes: &[Route],
    prices: &[Price],
) -> Result<()> {
    for route in routes.iter().filter(|route| client.allows(route.name)) {
        for target in route.targets {
            let model = target.model;
            let (priced, add) = match model.find(Target::STAR) {
                Some(star) => {
                    let prefix = &model[..star];
                    (
                        price_of_every(prices, prefix).is_some(),
                        format!("`{model}` is whatever the client sends after the route's prefix, so only a price ending in `*` covers it: add `[prices.\"{prefix}*\"]`"),
                    )
                }
                None => (
                    price_of(prices, model).is_some(),
                    format!("the built-in prices cover common OpenAI, Anthropic and Gemini models: add `[prices.\"{model}\"]`"),
                ),
            };
            if priced {
                continue;
            }
            let or = match client.routes {
                Some(_) => format!(
                    "or leave route `{}` out of the client's `routes`",
                    route.name
                ),
                None => "or list the priced routes it may use in `routes`".to_owned(),
            };
            return Err(Diagnostic::new(
                at,
                format!(
                    "client `{}` has a `budget`, but model `{model}` of route `{}` has no price",
                    client.name, route.name
                ),
            )
            .help(format!(
                "{add} with `input = ...` and `output = ...` in USD per million tokens, {or}"
            )));
        }
    }
    Ok(())
}

/// `[prices."MODEL"]` tables, in file order.
fn prices(value: &Spanned<DeValue<'_>>) -> Result<Vec<Price>> {
    let table = as_table(
        value,
        "`prices`",
        "a table of models: `[prices.\"MODEL\"]` with `input` and `output`",
    )?;
    table
        .iter()
        .map(|(name, value)| price(name, value))
        .collect()
}

/// One `[prices."MODEL"]` table: USD per million tokens in, pico-USD per token out.
fn price(name: &Spanned<std::borrow::Cow<'_, str>>, value: &Spanned<DeValue<'_>>) -> Result<Price> {
    let model = name.get_ref().as_ref();
    if model.is_empty() || model.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Diagnostic::new(name.span(), format!("price name {model:?} is not a model id"))
            .help("name the model id a target's `model` sends upstream, e.g. `[prices.\"gpt-4.1\"]`, or a prefix ending in `*`, e.g. `[prices.\"llama-3.1-*\"]`"));
    }
    if let Some(at) = model.find(Target::STAR) {
        return Err(Diagnostic::new(name.span(), format!("price name `{model}` has a `{{*}}`"))
            .help(format!("a price is for a model id, or for every model starting with a prefix, written with a final `*`: `[prices.\"{}*\"]`", &model[..at])));
    }
    if model.strip_suffix('*').unwrap_or(model).contains('*') {
        return Err(Diagnostic::new(name.span(), format!("price name `{model}` has a `*` before its end"))
            .help("a `*` may only end a price's name: `[prices.\"llama-*\"]` prices every model starting with `llama-`; an exact name wins, then the longest prefix"));
    }
    let header = format!("[prices.\"{model}\"]");
    let table = match value.get_ref() {
        DeValue::Table(table) => table,
        other => {
            return Err(Diagnostic::new(
                value.span(),
                format!(
                    "`{header}` must be a table with `input` and `output`, found {}",
                    kind(other)
                ),
            )
            .help(format!("write `{header}` on a line of its own, then `input = 2.0` and `output = 8.0` (USD per million tokens)")))
        }
    };
    // `[prices.gpt-4.1]` is model `gpt-4` with a table `1`: the id needed quotes.
    reject_unquoted_dot(
        table,
        name.span(),
        &PRICE_KEYS,
        ("price", "prices", "model id"),
        model,
    )?;
    reject_unknown_keys(table, &PRICE_KEYS, &format!("in `{header}`"))?;
    let rate = |key: &str| -> Result<Option<u64>> {
        table
            .get(key)
            .map(|value| {
                scaled(value.get_ref(), 6)
                    .filter(|n| *n <= MAX_PRICE)
                    .ok_or_else(|| {
                        Diagnostic::new(
                            value.span(),
                            format!("`{key}` in `{header}` must be a number of US dollars per million tokens, from 0 to 10000"),
                        )
                        .help(format!("e.g. `{key} = 2.5`: per million tokens, as providers' pricing pages list them"))
                    })
            })
            .transpose()
    };
    let required = |key: &str, what: &str| -> Result<u64> {
        rate(key)?.ok_or_else(|| {
            Diagnostic::new(name.span(), format!("`{header}` has no `{key}`"))
                .help(format!("add `{key} = ...`: US dollars per million {what} tokens, as the provider's pricing page lists them, e.g. `input = 2.0` and `output = 8.0`"))
        })
    };
    let input = required("input", "input")?;
    let output = required("output", "output")?;
    Ok(Price {
        model: leak(model),
        input,
        output,
        cache_read: rate("cache_read")?.unwrap_or(input),
        cache_write: rate("cache_write")?.unwrap_or(input),
    })
}

/// `[server] limits_store`: a Redis URL without credentials, or the name of a secret holding
/// one with them.
fn limits_store(value: &Spanned<DeValue<'_>>) -> Result<LimitsStore> {
    const FORMS: &str = "write a Redis URL without credentials, `limits_store = \"redis://127.0.0.1:6379\"` (`rediss://` for TLS; the port and a `/DB` number are optional), or the name of a secret whose value is the URL, credentials included: `limits_store = \"LIMITS_STORE_URL\"`";
    let text = string(value, "`limits_store`")?;
    let Some(rest) = text
        .strip_prefix("redis://")
        .or_else(|| text.strip_prefix("rediss://"))
    else {
        if is_secret_name(text) {
            return Ok(LimitsStore::RedisSecret(leak(text)));
        }
        // The value is deliberately not repeated: it may hold a password.
        return Err(Diagnostic::new(
            value.span(),
            "`limits_store` must be a `redis://` or `rediss://` URL, or the name of a secret holding one",
        )
        .help(FORMS));
    };
    if rest.contains('@') {
        return Err(Diagnostic::new(value.span(), "`limits_store` must not hold credentials: routes.toml is compiled into the binary")
            .help("put the whole URL, credentials included, in a secret (e.g. `LIMITS_STORE_URL=rediss://user:password@host:6380` in the server's environment) and write the secret's name instead: `limits_store = \"LIMITS_STORE_URL\"`"));
    }
    if let Some(problem) = redis_url_problem(rest) {
        return Err(Diagnostic::new(
            value.span(),
            format!("`limits_store` is not a usable Redis URL: {problem}"),
        )
        .help(FORMS));
    }
    Ok(LimitsStore::RedisUrl(leak(text)))
}

/// What is wrong with a Redis URL after its scheme (`host[:port][/db]`), if anything.
fn redis_url_problem(rest: &str) -> Option<&'static str> {
    if rest
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#')
    {
        return Some("it may have no spaces, query or fragment");
    }
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (host, port) = match authority.strip_prefix('[') {
        Some(bracketed) => {
            let Some((host, after)) = bracketed.split_once(']') else {
                return Some("its IPv6 host has no closing `]`");
            };
            if host.is_empty()
                || !host
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
            {
                return Some("its IPv6 host is not an address");
            }
            match after {
                "" => (host, None),
                _ => match after.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None => return Some("only `:PORT` may follow its IPv6 host"),
                },
            }
        }
        None => {
            let (host, port) = match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            };
            if !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                return Some("its host may only have letters, digits, `-`, `_` and `.`");
            }
            (host, port)
        }
    };
    if host.is_empty() {
        return Some("it has no host");
    }
    let number = |text: &str| !text.is_empty() && text.chars().all(|c| c.is_ascii_digit());
    if let Some(port) = port {
        if !number(port) || !port.parse::<u16>().is_ok_and(|p| p > 0) {
            return Some("its port must be a number from 1 to 65535");
        }
    }
    match path.strip_prefix('/') {
        None | Some("") => None,
        Some(db) if number(db) && db.parse::<u32>().is_ok() => None,
        Some(_) => Some("its only path may be a database number, e.g. `/0`"),
    }
}

/// A non-negative number (integer or float) × 10^`power`, rounded half up, computed from its
/// decimal digits so that `0.1` dollars is exactly 100,000,000,000 pico-USD; `None` if it is
/// not a finite non-negative number or does not fit in a `u64`.
fn scaled(value: &DeValue<'_>, power: u32) -> Option<u64> {
    let text = match value {
        DeValue::Integer(i) => {
            let n = u64::from_str_radix(i.as_str(), i.radix()).ok()?;
            return n.checked_mul(10u64.checked_pow(power)?);
        }
        DeValue::Float(f) => f.as_str().replace('_', ""),
        _ => return None,
    };
    let text = text.strip_prefix('+').unwrap_or(&text);
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], text[at + 1..].parse::<i64>().ok()?),
        None => (text, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    // `-`, `nan` and `inf` stop here.
    if whole.is_empty()
        || !whole
            .chars()
            .chain(fraction.chars())
            .all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let digits = format!("{whole}{fraction}");
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Some(0);
    }
    // The value is `digits` × 10^shift.
    let shift = exponent
        .checked_add(i64::from(power))?
        .checked_sub(fraction.len() as i64)?;
    if shift >= 0 {
        let n = digits.parse::<u64>().ok()?;
        return n.checked_mul(10u64.checked_pow(u32::try_from(shift).ok()?)?);
    }
    // Keep the whole part; the first digit after it rounds.
    let whole_digits = digits.len() as i64 + shift;
    if whole_digits < 0 {
        return Some(0);
    }
    let split = whole_digits as usize;
    let n = match &digits[..split] {
        "" => 0,
        part => part.parse::<u64>().ok()?,
    };
    let round_up = digits[split..].starts_with(['5', '6', '7', '8', '9']);
    n.checked_add(u64::from(round_up))
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
    if !is_secret_name(name) {
        // The value is deliberately not repeated: it may be a pasted key.
        return Err(Diagnostic::new(value.span(), format!("{what} must name a secret, and this is not a valid secret name"))
            .help("use the secret's name (letters, digits and `_`, not starting with a digit), e.g. `OPENAI_KEY_1`; its value goes in `wrangler secret put OPENAI_KEY_1` or the environment, never in routes.toml"));
    }
    Ok(leak(name))
}

/// Letters, digits and `_`, not starting with a digit: what a secret's name may be, and what a
/// pasted key (`sk-proj-...`) or URL never is.
fn is_secret_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A table under `[SECTION.NAME]` that holds a table of its own where none is allowed: the
/// name had a `.` and needed quotes (`[prices.gpt-4.1]` is model `gpt-4` with a table `1`).
/// `what` is (the entry's kind, its section, what its name is).
fn reject_unquoted_dot(
    table: &DeTable<'_>,
    span: Range<usize>,
    allowed: &[&str],
    (kind_name, section, noun): (&str, &str, &str),
    name: &str,
) -> Result<()> {
    let Some((key, _)) = table.iter().find(|(key, value)| {
        !allowed.contains(&key.get_ref().as_ref()) && matches!(value.get_ref(), DeValue::Table(_))
    }) else {
        return Ok(());
    };
    let key = key.get_ref();
    Err(
        Diagnostic::new(span, format!("{kind_name} `{name}` holds a table `{key}`")).help(format!(
            "a {noun} with a `.` must be quoted: `[{section}.\"{name}.{key}\"]`"
        )),
    )
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
