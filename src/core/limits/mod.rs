//! A client's limits (`[clients.NAME]`): requests and tokens per calendar minute, requests in
//! flight, and spend per day or month.
//!
//! A request reserves before dispatch: one request, its estimated tokens (input estimate + the
//! most it may write) and their estimated cost; it settles after its answer ended, which puts
//! the real tokens and cost in place of the estimate and frees its place in flight. The
//! arithmetic is [`Counters`], plain data: the in-process store runs it under a lock, the
//! Worker's Durable Object runs the same code on its stored copy, and the Redis store's script
//! is tested against the same cases, so every host enforces exactly the same rule.
//!
//! Windows are calendar windows (a UTC minute; a UTC day or month), so a limit holds exactly
//! within each window, and every store agrees on where one ends without sharing a clock
//! beyond the request's own time.

pub mod answer;
pub mod calendar;
pub mod estimate;
pub mod local;

use serde::{Deserialize, Serialize};

use crate::core::route::{BudgetPeriod, Client};

pub use answer::{error_object, headers};

/// What a request asks of its client's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ask {
    /// Now, in ms since the epoch.
    pub now_ms: u64,
    /// Estimated input tokens plus the most the answer may write.
    pub tokens: u64,
    /// The estimate's cost in pico-USD, at the dearest target the route may use.
    pub cost: u64,
    /// When the request will be over at the latest (its `total_timeout`): a place in flight
    /// that was never settled (a process that died) is free again after it.
    pub deadline_ms: u64,
}

/// What a request actually used, known once its answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Used {
    /// Input and output tokens.
    pub tokens: u64,
    /// Their cost in pico-USD.
    pub cost: u64,
}

/// A reservation made: what to settle, and the client's standing for the response headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The minute window the reservation counts in.
    pub minute: u64,
    /// The budget period it counts in.
    pub period: u64,
    /// What was reserved.
    pub reserved: Used,
    /// Its place in flight (the deadline it was taken with).
    pub deadline_ms: u64,
    /// The client's standing after the reservation.
    pub standing: Standing,
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Limit {
    /// `requests_per_minute`.
    Requests,
    /// `tokens_per_minute`.
    Tokens,
    /// `max_concurrent`.
    Concurrency,
    /// `budget`.
    Budget,
}

/// A request refused: which limit, and when trying again can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The limit that refused it.
    pub limit: Limit,
    /// How long until the limit lets a request like this one through, in ms: the window's
    /// end; for concurrency, a second (a place frees when another request ends).
    pub retry_after_ms: u64,
    /// The client's standing.
    pub standing: Standing,
}

/// A client's standing against its per-minute limits, as OpenAI's `x-ratelimit-*` headers tell
/// it, and against its budget.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Standing {
    /// `requests_per_minute` and what is left of it this minute.
    pub requests: Option<(u64, u64)>,
    /// `tokens_per_minute` and what is left of it this minute.
    pub tokens: Option<(u64, u64)>,
    /// When the minute window ends, in ms from now.
    pub minute_reset_ms: u64,
    /// The budget and what is spent of it this period, in pico-USD.
    pub budget: Option<(u64, u64)>,
}

/// One client's counts: all the state its limits need, in whichever store holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// The minute window the counts below are for (minutes since the epoch).
    pub minute: u64,
    /// Requests started in that minute.
    pub requests: u64,
    /// Tokens reserved or used by requests started in that minute.
    pub tokens: u64,
    /// The deadline of each request in flight.
    pub in_flight: Vec<u64>,
    /// The budget period `spent` is for.
    pub period: u64,
    /// Spent or reserved this period, in pico-USD.
    pub spent: u64,
}

impl Counters {
    /// Reserves `ask` for `client`, or says which limit refuses it. Nothing changes on a
    /// refusal: a refused request costs the client nothing.
    pub fn reserve(&mut self, client: &Client, ask: &Ask) -> Result<Grant, Refusal> {
        let minute = calendar::minute(ask.now_ms);
        let minute_reset_ms = calendar::minute_end_ms(minute).saturating_sub(ask.now_ms);
        let period = client
            .budget
            .map_or(0, |b| calendar::period(b.per, ask.now_ms));
        self.roll(minute, period, ask.now_ms);

        let refuse = |counters: &Self, limit, retry_after_ms| Refusal {
            limit,
            retry_after_ms,
            standing: counters.standing(client, minute_reset_ms),
        };
        if let Some(max) = client.max_concurrent {
            if self.in_flight.len() as u64 >= u64::from(max) {
                return Err(refuse(self, Limit::Concurrency, 1_000));
            }
        }
        if let Some(max) = client.requests_per_minute {
            if self.requests >= u64::from(max) {
                return Err(refuse(self, Limit::Requests, minute_reset_ms));
            }
        }
        if let Some(max) = client.tokens_per_minute {
            // A request larger than the whole limit still gets its turn in an empty window,
            // or it could never run; then nothing else runs in that minute.
            if self.tokens > 0 && self.tokens.saturating_add(ask.tokens) > max {
                return Err(refuse(self, Limit::Tokens, minute_reset_ms));
            }
        }
        if let Some(budget) = client.budget {
            if self.spent.saturating_add(ask.cost) > budget.pico_usd {
                let retry = calendar::period_end_ms(budget.per, period).saturating_sub(ask.now_ms);
                return Err(refuse(self, Limit::Budget, retry));
            }
        }

        self.requests += 1;
        self.tokens = self.tokens.saturating_add(ask.tokens);
        self.spent = self.spent.saturating_add(ask.cost);
        self.in_flight.push(ask.deadline_ms);
        Ok(Grant {
            minute,
            period,
            reserved: Used {
                tokens: ask.tokens,
                cost: ask.cost,
            },
            deadline_ms: ask.deadline_ms,
            standing: self.standing(client, minute_reset_ms),
        })
    }

    /// Puts what a request used in place of what it reserved, and frees its place in flight.
    /// What counted in a window that has since ended stays there.
    pub fn settle(&mut self, grant: &Grant, used: &Used) {
        if let Some(at) = self.in_flight.iter().position(|d| *d == grant.deadline_ms) {
            self.in_flight.swap_remove(at);
        }
        if self.minute == grant.minute {
            self.tokens = self
                .tokens
                .saturating_sub(grant.reserved.tokens)
                .saturating_add(used.tokens);
        }
        if self.period == grant.period {
            self.spent = self
                .spent
                .saturating_sub(grant.reserved.cost)
                .saturating_add(used.cost);
        }
    }

    /// Starts new windows when theirs ended, and forgets places in flight past their deadline.
    fn roll(&mut self, minute: u64, period: u64, now_ms: u64) {
        if self.minute != minute {
            self.minute = minute;
            self.requests = 0;
            self.tokens = 0;
        }
        if self.period != period {
            self.period = period;
            self.spent = 0;
        }
        self.in_flight.retain(|deadline| *deadline > now_ms);
    }

    fn standing(&self, client: &Client, minute_reset_ms: u64) -> Standing {
        let left = |max: u64, used: u64| (max, max.saturating_sub(used));
        Standing {
            requests: client
                .requests_per_minute
                .map(|max| left(u64::from(max), self.requests)),
            tokens: client.tokens_per_minute.map(|max| left(max, self.tokens)),
            minute_reset_ms,
            budget: client.budget.map(|b| (b.pico_usd, self.spent)),
        }
    }
}

/// Which windows a budget period is counted in (for stores that key their data by period).
pub fn period_of(per: Option<BudgetPeriod>, now_ms: u64) -> u64 {
    per.map_or(0, |per| calendar::period(per, now_ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::route::Budget;

    const MINUTE: u64 = 60_000;
    /// 2026-12-04 10:00:00 UTC.
    const T0: u64 = 1_796_378_400_000;

    fn client() -> Client {
        Client {
            name: "ci-bot",
            tokens: &["CI_BOT_TOKEN"],
            routes: None,
            requests_per_minute: Some(3),
            tokens_per_minute: Some(1_000),
            max_concurrent: Some(2),
            budget: Some(Budget {
                pico_usd: 1_000_000,
                per: BudgetPeriod::Month,
            }),
        }
    }

    fn ask(now_ms: u64, tokens: u64, cost: u64) -> Ask {
        Ask {
            now_ms,
            tokens,
            cost,
            deadline_ms: now_ms + 900_000,
        }
    }

    #[test]
    fn requests_per_minute_hold_within_the_minute_and_renew_with_the_next() {
        let mut client = client();
        client.max_concurrent = None;
        let mut counters = Counters::default();
        for n in 0..3 {
            let grant = counters.reserve(&client, &ask(T0 + n, 1, 0)).unwrap();
            assert_eq!(grant.standing.requests, Some((3, 2 - n)));
        }
        let refused = counters
            .reserve(&client, &ask(T0 + 20_000, 1, 0))
            .unwrap_err();
        assert_eq!(refused.limit, Limit::Requests);
        assert_eq!(refused.retry_after_ms, 40_000);
        assert_eq!(counters.requests, 3, "a refusal counts nothing");
        assert!(counters.reserve(&client, &ask(T0 + MINUTE, 1, 0)).is_ok());
    }

    #[test]
    fn concurrency_frees_on_settle_and_after_a_lost_requests_deadline() {
        let client = client();
        let mut counters = Counters::default();
        let first = counters.reserve(&client, &ask(T0, 1, 0)).unwrap();
        counters.reserve(&client, &ask(T0 + 1, 1, 0)).unwrap();
        let refused = counters.reserve(&client, &ask(T0 + 2, 1, 0)).unwrap_err();
        assert_eq!(
            (refused.limit, refused.retry_after_ms),
            (Limit::Concurrency, 1_000)
        );
        counters.settle(&first, &Used { tokens: 1, cost: 0 });
        assert!(counters.reserve(&client, &ask(T0 + 3, 1, 0)).is_ok());
        // Both still in flight were never settled: free once their deadline passed.
        let mut late = client;
        late.requests_per_minute = None;
        assert!(counters.reserve(&late, &ask(T0 + 4, 1, 0)).is_err());
        assert!(counters.reserve(&late, &ask(T0 + 900_003, 1, 0)).is_ok());
    }

    #[test]
    fn tokens_settle_to_what_was_used_in_the_minute_they_were_reserved() {
        let mut client = client();
        client.max_concurrent = None;
        client.requests_per_minute = None;
        let mut counters = Counters::default();
        let grant = counters.reserve(&client, &ask(T0, 900, 0)).unwrap();
        let refused = counters.reserve(&client, &ask(T0 + 1, 200, 0)).unwrap_err();
        assert_eq!(refused.limit, Limit::Tokens);
        assert_eq!(refused.standing.tokens, Some((1_000, 100)));
        counters.settle(
            &grant,
            &Used {
                tokens: 300,
                cost: 0,
            },
        );
        assert_eq!(counters.tokens, 300);
        assert!(counters.reserve(&client, &ask(T0 + 2, 200, 0)).is_ok());
        // A reservation from the last minute settles nothing into this one.
        let old = counters.reserve(&client, &ask(T0 + 3, 100, 0)).unwrap();
        counters.reserve(&client, &ask(T0 + MINUTE, 50, 0)).unwrap();
        counters.settle(
            &old,
            &Used {
                tokens: 700,
                cost: 0,
            },
        );
        assert_eq!(counters.tokens, 50);
    }

    #[test]
    fn one_request_larger_than_the_token_limit_runs_alone_in_its_minute() {
        let mut client = client();
        client.max_concurrent = None;
        let mut counters = Counters::default();
        assert!(counters.reserve(&client, &ask(T0, 5_000, 0)).is_ok());
        let refused = counters.reserve(&client, &ask(T0 + 1, 1, 0)).unwrap_err();
        assert_eq!(refused.limit, Limit::Tokens);
    }

    #[test]
    fn a_budget_refuses_what_would_exceed_it_and_renews_with_the_month() {
        let mut client = client();
        client.max_concurrent = None;
        client.requests_per_minute = None;
        client.tokens_per_minute = None;
        let mut counters = Counters::default();
        let grant = counters.reserve(&client, &ask(T0, 1, 800_000)).unwrap();
        let refused = counters.reserve(&client, &ask(T0, 1, 300_000)).unwrap_err();
        assert_eq!(refused.limit, Limit::Budget);
        // Until 2027-01-01 00:00 UTC.
        assert_eq!(refused.retry_after_ms, 1_798_761_600_000 - T0);
        assert_eq!(refused.standing.budget, Some((1_000_000, 800_000)));
        counters.settle(
            &grant,
            &Used {
                tokens: 1,
                cost: 500_000,
            },
        );
        assert!(counters.reserve(&client, &ask(T0, 1, 300_000)).is_ok());
        assert_eq!(counters.spent, 800_000);
        assert!(counters
            .reserve(&client, &ask(1_798_761_600_000, 1, 900_000))
            .is_ok());
    }

    #[test]
    fn the_counters_round_trip_through_json_for_stores_that_keep_text() {
        let mut counters = Counters::default();
        counters.reserve(&client(), &ask(T0, 10, 20)).unwrap();
        let text = serde_json::to_string(&counters).unwrap();
        assert_eq!(serde_json::from_str::<Counters>(&text).unwrap(), counters);
    }
}
