//! The soak client's tally: outcomes by request kind, latency percentiles, and the Markdown
//! report.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// What became of one request.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// 200, and a stream that ended with `[DONE]` and no error event, or a JSON completion.
    Ok,
    /// An HTTP error status from the proxy.
    Http(u16),
    /// A 200 stream that carried the proxy's in-stream error event.
    StreamError,
    /// A stream that ended without `[DONE]`, or a connection that broke mid-answer.
    Cut,
    /// A 200 JSON answer that was not a completion.
    BadAnswer,
    /// Given up by the client on purpose: a client disconnect.
    Abandoned,
    /// No connection to the proxy.
    ConnectError,
    /// The request could not be sent (the proxy closed the keep-alive connection).
    SendError,
    /// No end after the client's own limit (90 s).
    Timeout,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Ok => write!(f, "ok"),
            Outcome::Http(status) => write!(f, "HTTP {status}"),
            Outcome::StreamError => write!(f, "in-stream error"),
            Outcome::Cut => write!(f, "cut stream"),
            Outcome::BadAnswer => write!(f, "bad answer"),
            Outcome::Abandoned => write!(f, "abandoned (client disconnect)"),
            Outcome::ConnectError => write!(f, "connect error"),
            Outcome::SendError => write!(f, "send error"),
            Outcome::Timeout => write!(f, "client timeout"),
        }
    }
}

/// One request kind's tally.
#[derive(Default)]
struct Tally {
    outcomes: BTreeMap<Outcome, u64>,
    /// Microseconds to the first content event (requests that ended `Ok` or `Abandoned`) and
    /// to the end (`Ok` only).
    first_us: Vec<u64>,
    total_us: Vec<u64>,
}

/// Tallies by request kind (route and stream/JSON).
#[derive(Default)]
pub struct Report {
    kinds: BTreeMap<String, Tally>,
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

/// The `p`-th percentile of sorted values, in milliseconds; `-` when there are none.
fn percentile(sorted: &[u64], p: f64) -> String {
    if sorted.is_empty() {
        return "-".into();
    }
    let at = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    format!("{:.1} ms", sorted[at] as f64 / 1000.0)
}

impl Report {
    /// Counts one request of kind `name`.
    pub fn record(
        &mut self,
        name: &str,
        outcome: Outcome,
        first: Option<Duration>,
        total: Duration,
    ) {
        let tally = self.kinds.entry(name.to_owned()).or_default();
        *tally.outcomes.entry(outcome).or_default() += 1;
        // An abandoned stream had its first event too; only a whole answer has an end.
        if matches!(outcome, Outcome::Ok | Outcome::Abandoned) {
            if let Some(first) = first {
                tally.first_us.push(micros(first));
            }
        }
        if outcome == Outcome::Ok {
            tally.total_us.push(micros(total));
        }
    }

    /// Adds another client's tally.
    pub fn merge(&mut self, other: Report) {
        for (name, theirs) in other.kinds {
            let ours = self.kinds.entry(name).or_default();
            for (outcome, n) in theirs.outcomes {
                *ours.outcomes.entry(outcome).or_default() += n;
            }
            ours.first_us.extend(theirs.first_us);
            ours.total_us.extend(theirs.total_us);
        }
    }

    /// Every outcome's count over all kinds.
    fn outcomes(&self) -> BTreeMap<Outcome, u64> {
        let mut all = BTreeMap::new();
        for tally in self.kinds.values() {
            for (outcome, n) in &tally.outcomes {
                *all.entry(*outcome).or_default() += n;
            }
        }
        all
    }

    /// Prints the Markdown report, then `abandoned N` for the script.
    pub fn print(&self, mix: &str, clients: usize, elapsed: Duration) {
        let outcomes = self.outcomes();
        let requests: u64 = outcomes.values().sum();
        println!(
            "#### `{mix}`: {clients} clients, {:.0} s, {requests} requests ({:.0}/s)",
            elapsed.as_secs_f64(),
            requests as f64 / elapsed.as_secs_f64().max(0.001)
        );
        println!();
        println!("| outcome | requests | share |");
        println!("|---|---:|---:|");
        for (outcome, n) in &outcomes {
            let share = *n as f64 * 100.0 / requests.max(1) as f64;
            println!("| {outcome} | {n} | {share:.2} % |");
        }
        println!();
        println!("| request | n | outcomes | first event p50 | p99 | end p50 | p99 |");
        println!("|---|---:|---|---:|---:|---:|---:|");
        for (name, tally) in &self.kinds {
            let mut first = tally.first_us.clone();
            let mut total = tally.total_us.clone();
            first.sort_unstable();
            total.sort_unstable();
            let n: u64 = tally.outcomes.values().sum();
            let cell: Vec<String> = tally
                .outcomes
                .iter()
                .map(|(outcome, k)| format!("{outcome} {k}"))
                .collect();
            println!(
                "| {name} | {n} | {} | {} | {} | {} | {} |",
                cell.join(", "),
                percentile(&first, 0.50),
                percentile(&first, 0.99),
                percentile(&total, 0.50),
                percentile(&total, 0.99),
            );
        }
        println!();
        println!(
            "abandoned {}",
            outcomes.get(&Outcome::Abandoned).copied().unwrap_or(0)
        );
    }
}
