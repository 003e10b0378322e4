//! The routes.toml parser, the one the `routes!()` macro and build.rs call: any UTF-8 text is
//! either a routes file or a diagnostic that renders (with its line, column and caret) as the
//! compiler would print it.
#![no_main]

use ai_worker_proxy_config::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    match parse::check(source) {
        Ok(checked) => {
            assert!(!checked.file.routes.is_empty());
            for route in checked.file.routes {
                assert!(
                    !route.targets.is_empty(),
                    "route {} has no targets",
                    route.name
                );
                parse::worst_case_calls(route);
            }
            for warning in &checked.warnings {
                warning.render("routes.toml", source);
            }
        }
        Err(diagnostic) => {
            let text = diagnostic.render("routes.toml", source);
            assert!(text.starts_with("routes.toml:"), "{text}");
        }
    }
});
