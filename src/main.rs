//! `ai-worker-proxy`: the native host's server binary.

/// mimalloc: fewer instructions per allocation than glibc's malloc, and it keeps memory per
/// thread, which suits a thread per core (measured in benches/load/run.sh).
#[cfg(not(target_arch = "wasm32"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    use ai_worker_proxy::core::route::Routes;
    use ai_worker_proxy::hosts::native::{cli, dev_vars, server, Shared};
    use ai_worker_proxy::routes::Table;
    use std::process::ExitCode;

    let options = match cli::parse(std::env::args().skip(1)) {
        Ok(cli::Command::Serve(options)) => options,
        Ok(cli::Command::Help) => {
            println!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let shared = match Shared::with_limits_store(dev_vars::load(), Table::LIMITS_STORE) {
        Ok(shared) => shared,
        Err(message) => {
            eprintln!("ai-worker-proxy: {message}");
            return ExitCode::FAILURE;
        }
    };
    match server::run(options.listen, options.threads, shared, Table::SERVER) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ai-worker-proxy: cannot serve on {}: {e}", options.listen);
            ExitCode::FAILURE
        }
    }
}

/// The Worker is the library (`cdylib`); this binary only exists natively.
#[cfg(target_arch = "wasm32")]
fn main() {}
