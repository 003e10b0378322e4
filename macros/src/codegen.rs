//! [`RoutesFile`] → the Rust items the proxy compiles in: plain `static` data and one `match`.

use proc_macro2::TokenStream;
use quote::quote;

use crate::model::{Provider, RoutesFile, Target};

/// Emits `AUTH_TOKEN_SECRET`, `ROUTES` and `find`, plus an `include_bytes!` of `source_path`
/// so that rustc records the file as an input and cargo rebuilds when it changes.
pub fn generate(file: &RoutesFile, source_path: &str) -> TokenStream {
    let auth = &file.auth_token_secret;
    let routes = file.routes.iter().map(|route| {
        let name = &route.name;
        let targets = route.targets.iter().map(target);
        quote! {
            crate::core::route::Route {
                name: #name,
                targets: &[#(#targets),*],
            }
        }
    });
    let arms = file.routes.iter().enumerate().map(|(i, route)| {
        let name = &route.name;
        quote! { #name => Some(&ROUTES[#i]), }
    });
    quote! {
        /// Name of the secret that holds the proxy's bearer token (`[server].auth_token`).
        pub const AUTH_TOKEN_SECRET: &str = #auth;

        /// Every route of routes.toml, in file order.
        pub static ROUTES: &[crate::core::route::Route] = &[#(#routes),*];

        /// The route a client reaches by sending `model`, if there is one.
        pub fn find(model: &str) -> Option<&'static crate::core::route::Route> {
            match model {
                #(#arms)*
                _ => None,
            }
        }

        const _ROUTES_TOML: &[u8] = include_bytes!(#source_path);
    }
}

fn target(t: &Target) -> TokenStream {
    let provider = match t.provider {
        Provider::Anthropic => quote!(Anthropic),
        Provider::Google => quote!(Google),
        Provider::OpenAi => quote!(OpenAi),
        Provider::OpenAiCompatible => quote!(OpenAiCompatible),
        Provider::CloudflareAi => quote!(CloudflareAi),
    };
    let model = &t.model;
    let base_url = &t.base_url;
    let keys = &t.api_keys;
    let max_tokens = match t.max_tokens {
        Some(n) => quote!(Some(#n)),
        None => quote!(None),
    };
    let account_id = match &t.account_id {
        Some(name) => quote!(Some(#name)),
        None => quote!(None),
    };
    quote! {
        crate::core::route::Target {
            provider: crate::core::route::Provider::#provider,
            model: #model,
            base_url: #base_url,
            api_keys: &[#(#keys),*],
            max_tokens: #max_tokens,
            account_id: #account_id,
        }
    }
}
