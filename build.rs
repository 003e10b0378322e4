//! Chooses the routes file the `routes!()` macro compiles and makes cargo rebuild when the
//! file's content or the choice changes. Parsing and validation live in the macro (macros/),
//! which reports problems with the file's own line and column; a proc macro cannot warn on
//! stable Rust, so what deserves only a warning (a route whose worst case exceeds
//! `max_subrequests`) is reported from here, through the same parser.

use std::path::Path;

fn main() {
    println!("cargo::rerun-if-env-changed=ROUTES_TOML");
    let display = std::env::var("ROUTES_TOML").unwrap_or_else(|_| "routes.toml".to_owned());
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    // Relative paths are relative to the project root, wherever cargo was started.
    let path = Path::new(&manifest_dir).join(&display);
    println!("cargo::rerun-if-changed={}", path.display());
    println!("cargo::rustc-env=AI_WORKER_PROXY_ROUTES={}", path.display());
    println!("cargo::rustc-env=AI_WORKER_PROXY_ROUTES_DISPLAY={display}");
    // An unreadable or invalid file is the macro's to report, as a compile error.
    if let Ok(source) = std::fs::read_to_string(&path) {
        if let Ok(checked) = ai_worker_proxy_config::parse::check(&source) {
            for warning in checked.warnings {
                for line in warning.render(&display, &source).lines() {
                    println!("cargo::warning={line}");
                }
            }
        }
    }
}
