//! Compiles `routes.toml` into the proxy's routing table and provider dispatch.
//!
//! `build.rs` resolves which file to read (`ROUTES_TOML` or `./routes.toml`) and tells cargo
//! to rebuild when it or that variable changes; the schema crate (`ai-worker-proxy-config`)
//! parses and validates it, and this macro writes it out as plain `static` data plus the
//! `match` that binds every route's targets to their provider types. A problem in the file
//! becomes a `compile_error!` naming `file:line:column`, what is wrong, and what would be right:
//! a stable proc macro cannot point a span into a data file, so the location is written into
//! the message (as askama does).

mod codegen;

use proc_macro::TokenStream;

/// Env var set by build.rs: absolute path of the routes file to compile.
const PATH_VAR: &str = "AI_WORKER_PROXY_ROUTES";
/// Env var set by build.rs: the path as the user wrote it, for messages.
const DISPLAY_VAR: &str = "AI_WORKER_PROXY_ROUTES_DISPLAY";

/// Expands to `AUTH_TOKEN_SECRET`, `ROUTES` and `Table`, the `core::route::Routes` the
/// proxy serves, from routes.toml.
#[proc_macro]
pub fn routes(input: TokenStream) -> TokenStream {
    if !input.is_empty() {
        return compile_error(
            "routes!() takes no arguments; set ROUTES_TOML to compile another file",
        );
    }
    let (path, display) = match (std::env::var(PATH_VAR), std::env::var(DISPLAY_VAR)) {
        (Ok(path), Ok(display)) => (path, display),
        _ => {
            let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
            (format!("{dir}/routes.toml"), "routes.toml".to_owned())
        }
    };
    let source = match std::fs::read_to_string(&path) {
        Ok(s) => s,
        Err(e) => {
            return compile_error(&format!(
            "{display}: cannot read the routes file ({e}); create it or point ROUTES_TOML at one"
        ))
        }
    };
    match expand(&source, &path, &display) {
        Ok(tokens) => tokens.into(),
        Err(message) => compile_error(&message),
    }
}

/// Parses `source` and generates the table, or renders the first problem for `display`.
fn expand(source: &str, path: &str, display: &str) -> Result<proc_macro2::TokenStream, String> {
    let file =
        ai_worker_proxy_config::parse::parse(source).map_err(|d| d.render(display, source))?;
    codegen::generate(&file, path)
}

fn compile_error(message: &str) -> TokenStream {
    syn::Error::new(proc_macro2::Span::call_site(), message)
        .to_compile_error()
        .into()
}

#[cfg(test)]
mod tests;
