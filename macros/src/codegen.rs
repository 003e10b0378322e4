//! [`RoutesFile`] → the Rust items the proxy compiles in: the file as `static` data of the
//! schema's own types, and `Table`, whose `find` is a `match` on the exact route names followed
//! by the patterns' prefixes, longest first, and whose `complete` is one `match` arm per route
//! calling each target's provider type in order. A provider no route names is never
//! instantiated, so it is not compiled into the Worker.

use ai_worker_proxy_config::{
    providers, Budget, BudgetPeriod, Client, CooldownPolicy, Deadlines, KeyStrategy, LimitsStore,
    LogFormat, LogLevel, Price, RequestLimits, RetryPolicy, Route, RoutesFile, ServerLimits,
    Target, TargetPolicy, Via,
};
use proc_macro2::{Literal, TokenStream};
use quote::quote;

/// Emits `AUTH_TOKEN_SECRET`, `ROUTES` and `Table` (the file's clients, prices and limits store
/// among its constants), plus an `include_bytes!` of `source_path` so that rustc records the
/// file as an input and cargo rebuilds when it changes.
pub fn generate(file: &RoutesFile, source_path: &str) -> Result<TokenStream, String> {
    let auth = file.auth_token;
    let level = match file.log.level {
        LogLevel::Off => quote!(Off),
        LogLevel::Errors => quote!(Errors),
        LogLevel::Info => quote!(Info),
    };
    let format = match file.log.format {
        LogFormat::Text => quote!(Text),
        LogFormat::Json => quote!(Json),
    };
    let RequestLimits {
        total_timeout_ms,
        max_subrequests,
    } = file.limits;
    let ServerLimits {
        header_read_timeout_ms,
        body_read_timeout_ms,
        keep_alive_timeout_ms,
        max_connections,
        max_header_bytes,
        shutdown_timeout_ms,
    } = file.server;
    let routes = file.routes.iter().map(route);
    let clients = file.clients.iter().map(client);
    let prices = file.prices.iter().map(price);
    let limits_store = option(file.limits_store.map(|store| match store {
        LimitsStore::RedisUrl(url) => quote!(LimitsStore::RedisUrl(#url)),
        LimitsStore::RedisSecret(name) => quote!(LimitsStore::RedisSecret(#name)),
    }));
    let find_body = find(file.routes);
    let dispatch_arms = file
        .routes
        .iter()
        .map(dispatch)
        .collect::<Result<Vec<_>, String>>()?;
    Ok(quote! {
        use crate::core::log::{LogConfig, LogFormat, LogLevel};
        use crate::core::route::{
            Client, CooldownPolicy, Deadlines, Found, KeyStrategy, LimitsStore, Price,
            RequestLimits, RetryPolicy, Route, Routes, ServerLimits, Target, TargetPolicy, Via,
        };

        /// Name of the secret that holds the proxy's bearer token (`[server].auth_token`).
        pub const AUTH_TOKEN_SECRET: &str = #auth;

        /// Every route of routes.toml, in file order.
        pub static ROUTES: &[Route] = &[#(#routes),*];

        /// The routing table compiled from routes.toml: what the hosts serve.
        pub struct Table;

        impl Routes for Table {
            const AUTH_TOKEN_SECRET: &'static str = AUTH_TOKEN_SECRET;

            const LOG: LogConfig = LogConfig {
                level: LogLevel::#level,
                format: LogFormat::#format,
            };

            const LIMITS: RequestLimits = RequestLimits {
                total_timeout_ms: #total_timeout_ms,
                max_subrequests: #max_subrequests,
            };

            const SERVER: ServerLimits = ServerLimits {
                header_read_timeout_ms: #header_read_timeout_ms,
                body_read_timeout_ms: #body_read_timeout_ms,
                keep_alive_timeout_ms: #keep_alive_timeout_ms,
                max_connections: #max_connections,
                max_header_bytes: #max_header_bytes,
                shutdown_timeout_ms: #shutdown_timeout_ms,
            };

            const CLIENTS: &'static [Client] = &[#(#clients),*];

            const PRICES: &'static [Price] = &[#(#prices),*];

            const LIMITS_STORE: Option<LimitsStore> = #limits_store;

            fn routes() -> &'static [Route] {
                ROUTES
            }

            fn find(model: &str) -> Option<Found<'_>> {
                #find_body
            }

            async fn complete<H: crate::core::host::Host>(
                host: &H,
                route: &'static Route,
                request: &crate::core::request::ChatRequest,
            ) -> Result<crate::core::http::ProxyResponse, crate::core::error::ProxyError> {
                // One `Prepare` per target, and one call site for them all: the failover loop
                // is compiled once, whatever the number of routes and targets.
                let targets: &'static [crate::core::provider::Prepare] = match route.name {
                    #(#dispatch_arms)*
                    // Only `find` hands out routes, and each has its arm above.
                    _ => &[],
                };
                let mut failover =
                    crate::core::failover::Failover::new(host, route, request, Self::LOG, Self::LIMITS);
                for (index, prepare) in targets.iter().enumerate() {
                    if let Some(done) = failover.target(index, *prepare).await {
                        return done;
                    }
                }
                Err(failover.exhausted())
            }
        }

        const _ROUTES_TOML: &[u8] = include_bytes!(#source_path);
    })
}

/// The body of `Table::find`: the exact names in a `match`, then each pattern's prefix, longest
/// first, then the catch-all `*` if there is one.
fn find(routes: &[Route]) -> TokenStream {
    let exact: Vec<TokenStream> = routes
        .iter()
        .enumerate()
        .filter(|(_, route)| route.pattern_prefix().is_none())
        .map(|(i, route)| {
            let name = route.name;
            let i = Literal::usize_unsuffixed(i);
            quote! { #name => return Some(Found { route: &ROUTES[#i], star: None }), }
        })
        .collect();
    let exact = (!exact.is_empty()).then(|| {
        quote! {
            match model {
                #(#exact)*
                _ => {}
            }
        }
    });
    let mut patterns: Vec<(usize, &str)> = routes
        .iter()
        .enumerate()
        .filter_map(|(i, route)| Some((i, route.pattern_prefix()?)))
        .collect();
    // Longest prefix first. Two patterns of one length have different prefixes (route names
    // are unique), so at most one of them matches a model and their order does not matter.
    patterns.sort_by_key(|(_, prefix)| std::cmp::Reverse(prefix.len()));
    let catch_all = match patterns.last() {
        Some((i, "")) => {
            let i = Literal::usize_unsuffixed(*i);
            patterns.pop();
            quote! { Some(Found { route: &ROUTES[#i], star: Some(model) }) }
        }
        _ => quote! { None },
    };
    let patterns = patterns.iter().map(|(i, prefix)| {
        let i = Literal::usize_unsuffixed(*i);
        quote! {
            if let Some(star) = model.strip_prefix(#prefix) {
                return Some(Found { route: &ROUTES[#i], star: Some(star) });
            }
        }
    });
    quote! {
        #exact
        #(#patterns)*
        #catch_all
    }
}

/// `"name" => { static TARGETS = [prepare_with::<P>, ...]; TARGETS }`: each target's provider
/// type, in order.
fn dispatch(route: &Route) -> Result<TokenStream, String> {
    let name = route.name;
    let steps = route
        .targets
        .iter()
        .map(|target| {
            let provider = provider_type(target.provider)?;
            Ok(quote! { crate::core::provider::prepare_with::<#provider> })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(quote! {
        #name => {
            static TARGETS: &[crate::core::provider::Prepare] = &[#(#steps),*];
            TARGETS
        }
    })
}

/// `crate::providers::<implementation>` for a provider routes.toml names.
pub(crate) fn provider_type(name: &str) -> Result<TokenStream, String> {
    let spec =
        providers::find(name).ok_or_else(|| format!("provider `{name}` is not registered"))?;
    let valid = spec.implementation.split("::").all(|seg| {
        seg.starts_with(|c: char| c.is_ascii_alphabetic())
            && seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    });
    let path = format!("crate::providers::{}", spec.implementation);
    match path.parse() {
        Ok(tokens) if valid => Ok(tokens),
        _ => Err(format!(
            "the registry's implementation of `{name}`, `{}`, is not a path",
            spec.implementation
        )),
    }
}

fn route(route: &Route) -> TokenStream {
    let Route { name, targets } = route;
    let targets = targets.iter().map(target);
    quote! {
        Route {
            name: #name,
            targets: &[#(#targets),*],
        }
    }
}

fn target(target: &Target) -> TokenStream {
    // Destructured so that a field added to the schema cannot be left out here.
    let Target {
        provider,
        model,
        base_url,
        vias,
        max_tokens,
        max_output_tokens,
        account_id,
        anthropic_betas,
        policy,
    } = target;
    let TargetPolicy {
        deadlines,
        key_strategy,
        retry,
        cooldown,
    } = policy;
    let vias = vias.iter().map(|via| match via {
        Via::Key(name) => quote!(Via::Key(#name)),
        Via::Binding(name) => quote!(Via::Binding(#name)),
    });
    let max_tokens = option(max_tokens.map(Literal::u32_unsuffixed));
    let max_output_tokens = option(max_output_tokens.map(Literal::u32_unsuffixed));
    let account_id = option(*account_id);
    let anthropic_betas = option(anthropic_betas.map(|betas| quote!(&[#(#betas),*])));
    let Deadlines {
        connect_ms,
        headers_ms,
        first_token_ms,
        idle_ms,
    } = deadlines;
    let key_strategy = match key_strategy {
        KeyStrategy::Ordered => quote!(Ordered),
        KeyStrategy::RoundRobin => quote!(RoundRobin),
        KeyStrategy::Sticky => quote!(Sticky),
    };
    let RetryPolicy {
        attempts,
        base_ms,
        max_ms,
    } = retry;
    let CooldownPolicy {
        rate_limited_ms,
        rejected_ms,
        failed_ms,
        max_ms: cooldown_max_ms,
    } = cooldown;
    quote! {
        Target {
            provider: #provider,
            model: #model,
            base_url: #base_url,
            vias: &[#(#vias),*],
            max_tokens: #max_tokens,
            max_output_tokens: #max_output_tokens,
            account_id: #account_id,
            anthropic_betas: #anthropic_betas,
            policy: TargetPolicy {
                deadlines: Deadlines {
                    connect_ms: #connect_ms,
                    headers_ms: #headers_ms,
                    first_token_ms: #first_token_ms,
                    idle_ms: #idle_ms,
                },
                key_strategy: KeyStrategy::#key_strategy,
                retry: RetryPolicy {
                    attempts: #attempts,
                    base_ms: #base_ms,
                    max_ms: #max_ms,
                },
                cooldown: CooldownPolicy {
                    rate_limited_ms: #rate_limited_ms,
                    rejected_ms: #rejected_ms,
                    failed_ms: #failed_ms,
                    max_ms: #cooldown_max_ms,
                },
            },
        }
    }
}

fn client(client: &Client) -> TokenStream {
    // Destructured so that a field added to the schema cannot be left out here.
    let Client {
        name,
        tokens,
        routes,
        requests_per_minute,
        tokens_per_minute,
        max_concurrent,
        budget,
    } = client;
    let routes = option(routes.map(|routes| quote!(&[#(#routes),*])));
    let requests_per_minute = option(requests_per_minute.map(Literal::u32_unsuffixed));
    let tokens_per_minute = option(tokens_per_minute.map(Literal::u64_unsuffixed));
    let max_concurrent = option(max_concurrent.map(Literal::u32_unsuffixed));
    // Full paths: a file without budgets would leave imports of these types unused.
    let budget = option(budget.map(|Budget { pico_usd, per }| {
        let pico_usd = Literal::u64_unsuffixed(pico_usd);
        let per = match per {
            BudgetPeriod::Day => quote!(Day),
            BudgetPeriod::Month => quote!(Month),
        };
        quote! {
            crate::core::route::Budget {
                pico_usd: #pico_usd,
                per: crate::core::route::BudgetPeriod::#per,
            }
        }
    }));
    quote! {
        Client {
            name: #name,
            tokens: &[#(#tokens),*],
            routes: #routes,
            requests_per_minute: #requests_per_minute,
            tokens_per_minute: #tokens_per_minute,
            max_concurrent: #max_concurrent,
            budget: #budget,
        }
    }
}

fn price(price: &Price) -> TokenStream {
    let Price {
        model,
        input,
        output,
        cache_read,
        cache_write,
    } = price;
    let [input, output, cache_read, cache_write] =
        [input, output, cache_read, cache_write].map(|n| Literal::u64_unsuffixed(*n));
    quote! {
        Price {
            model: #model,
            input: #input,
            output: #output,
            cache_read: #cache_read,
            cache_write: #cache_write,
        }
    }
}

fn option<T: quote::ToTokens>(value: Option<T>) -> TokenStream {
    match value {
        Some(v) => quote!(Some(#v)),
        None => quote!(None),
    }
}
