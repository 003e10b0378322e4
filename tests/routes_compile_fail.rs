//! A wrong routes.toml must fail `cargo build` with `file:line:column`, what is wrong and what
//! would be right. Each file in tests/routes/invalid states its expected error in its header;
//! this compiles the crate against each one (in a separate target dir) and checks the message
//! rustc prints. The same fixtures are checked without a compiler in macros/config/src/tests.rs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::Path;
use std::process::Command;

fn header<'a>(source: &'a str, key: &str) -> &'a str {
    source
        .lines()
        .find_map(|l| l.strip_prefix(&format!("# {key}: ")))
        .unwrap_or_else(|| panic!("fixture lacks `# {key}:`"))
}

fn check_with(routes: &str) -> (bool, String) {
    let root = env!("CARGO_MANIFEST_DIR");
    let output = Command::new(env!("CARGO"))
        .args(["check", "--lib", "--quiet", "--color", "never"])
        .current_dir(root)
        .env("ROUTES_TOML", routes)
        .env(
            "CARGO_TARGET_DIR",
            Path::new(root).join("target/compile-fail"),
        )
        .output()
        .expect("cargo runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn every_invalid_routes_file_fails_the_build_with_its_message() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/routes/invalid");
    let mut fixtures: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    fixtures.sort();
    assert!(fixtures.len() >= 15);
    let mut failures = Vec::new();
    for path in &fixtures {
        let name = path.file_name().unwrap().to_str().unwrap();
        let source = std::fs::read_to_string(path).unwrap();
        let display = format!("tests/routes/invalid/{name}");
        let (ok, stderr) = check_with(&display);
        let want = format!(
            "error: {display}:{}: {}",
            header(&source, "at"),
            header(&source, "error")
        );
        let help = format!("= help: {}", header(&source, "help"));
        if ok || !stderr.contains(&want) || !stderr.contains(&help) {
            failures.push(format!(
                "{name}: wanted `{want}` and `{help}`, build ok={ok}, stderr:\n{stderr}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_valid_routes_file_builds() {
    let (ok, stderr) = check_with("tests/routes/e2e.toml");
    assert!(ok, "{stderr}");
}
