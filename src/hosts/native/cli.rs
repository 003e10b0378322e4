//! The `ai-worker-proxy` command line.

use std::net::SocketAddr;

/// Where the server listens unless `--listen` says otherwise (wrangler dev's port).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8787";

/// What the command line asked for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Serve on this address.
    Serve(SocketAddr),
    /// Print usage.
    Help,
}

/// Usage text.
pub const USAGE: &str = "Usage: ai-worker-proxy [--listen ADDR]

Serves the routes compiled from routes.toml (set ROUTES_TOML at build time for another file).
Secrets come from the environment, then from ./.dev.vars.

  --listen ADDR   address to listen on (default 127.0.0.1:8787)
  -h, --help      print this help";

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut listen = DEFAULT_LISTEN.to_owned();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--listen" => {
                listen = args
                    .next()
                    .ok_or("--listen needs an address, e.g. 127.0.0.1:8787")?
            }
            other => match other.strip_prefix("--listen=") {
                Some(value) => listen = value.to_owned(),
                None => return Err(format!("unknown argument `{other}`\n\n{USAGE}")),
            },
        }
    }
    listen
        .parse()
        .map(Command::Serve)
        .map_err(|_| format!("`{listen}` is not an address like 127.0.0.1:8787"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn listen_defaults_and_overrides() {
        assert_eq!(
            parse(args(&[])),
            Ok(Command::Serve("127.0.0.1:8787".parse().unwrap()))
        );
        assert_eq!(
            parse(args(&["--listen", "0.0.0.0:9000"])),
            Ok(Command::Serve("0.0.0.0:9000".parse().unwrap()))
        );
        assert_eq!(
            parse(args(&["--listen=[::1]:80"])),
            Ok(Command::Serve("[::1]:80".parse().unwrap()))
        );
        assert_eq!(parse(args(&["-h"])), Ok(Command::Help));
        assert!(parse(args(&["--listen"])).is_err());
        assert!(parse(args(&["--listen", "nope"])).is_err());
        assert!(parse(args(&["--port", "1"])).is_err());
    }
}
