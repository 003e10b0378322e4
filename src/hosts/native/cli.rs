//! The `ai-worker-proxy` command line.

use std::net::SocketAddr;

/// Where the server listens unless `--listen` says otherwise (wrangler dev's port).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8787";

/// How to serve.
#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Server threads, each with its own event loop; `None`: one per core.
    pub threads: Option<usize>,
}

/// What the command line asked for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Serve.
    Serve(Options),
    /// Print usage.
    Help,
}

/// Usage text.
pub const USAGE: &str = "Usage: ai-worker-proxy [--listen ADDR] [--threads N]

Serves the routes compiled from routes.toml (set ROUTES_TOML at build time for another file).
Secrets come from the environment, then from ./.dev.vars.

  --listen ADDR   address to listen on (default 127.0.0.1:8787)
  --threads N     server threads (default: one per core)
  -h, --help      print this help";

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut listen = DEFAULT_LISTEN.to_owned();
    let mut threads = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg, None),
        };
        let mut value = |hint: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs {hint}"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--listen" => listen = value("an address, e.g. 127.0.0.1:8787")?,
            "--threads" => {
                let n = value("a number of threads, e.g. 2")?;
                threads = Some(
                    n.parse::<usize>()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| format!("`{n}` is not a positive number of threads"))?,
                );
            }
            other => return Err(format!("unknown argument `{other}`\n\n{USAGE}")),
        }
    }
    let listen = listen
        .parse()
        .map_err(|_| format!("`{listen}` is not an address like 127.0.0.1:8787"))?;
    Ok(Command::Serve(Options { listen, threads }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn serve(listen: &str, threads: Option<usize>) -> Result<Command, String> {
        Ok(Command::Serve(Options {
            listen: listen.parse().unwrap(),
            threads,
        }))
    }

    #[test]
    fn listen_defaults_and_overrides() {
        assert_eq!(parse(args(&[])), serve("127.0.0.1:8787", None));
        assert_eq!(
            parse(args(&["--listen", "0.0.0.0:9000"])),
            serve("0.0.0.0:9000", None)
        );
        assert_eq!(parse(args(&["--listen=[::1]:80"])), serve("[::1]:80", None));
        assert_eq!(
            parse(args(&["--threads", "3", "--listen=[::1]:80"])),
            serve("[::1]:80", Some(3))
        );
        assert!(parse(args(&["--threads", "0"])).is_err());
        assert!(parse(args(&["--threads"])).is_err());
        assert_eq!(parse(args(&["-h"])), Ok(Command::Help));
        assert!(parse(args(&["--listen"])).is_err());
        assert!(parse(args(&["--listen", "nope"])).is_err());
        assert!(parse(args(&["--port", "1"])).is_err());
    }
}
