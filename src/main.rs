//! `ai-worker-proxy`: the native host's server binary.

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    use ai_worker_proxy::hosts::native::{cli, dev_vars, server, NativeHost};
    use std::process::ExitCode;

    let addr = match cli::parse(std::env::args().skip(1)) {
        Ok(cli::Command::Serve(addr)) => addr,
        Ok(cli::Command::Help) => {
            println!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let host = match NativeHost::new(dev_vars::load()) {
        Ok(host) => host,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::FAILURE;
        }
    };
    match server::run(addr, host) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ai-worker-proxy: cannot serve on {addr}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The Worker is the library (`cdylib`); this binary only exists natively.
#[cfg(target_arch = "wasm32")]
fn main() {}
