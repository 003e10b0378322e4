//! The cool-down memory: which keys failed recently, per key × model, so that the next requests
//! skip them instead of hammering a key that answered 429 a second ago. Hosts keep one
//! [`KeyHealth`] per process (native, shared by every thread) or per isolate (Worker, which can
//! also share cool-downs between isolates through a Durable Object).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use serde::Serialize;

use crate::core::route::CooldownPolicy;

/// How long a key × model is skipped, and how often it failed in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cooldown {
    /// Skipped until then, in ms since the epoch.
    pub until_ms: u64,
    /// Failures in a row that set a cool-down: a repeated 429 without a hint waits longer.
    pub strikes: u32,
}

/// What kind of failure starts a cool-down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strike {
    /// 429, or an in-band rate limit: the hint if the upstream gave one, else a growing default.
    RateLimited {
        /// `Retry-After` or Gemini's `RetryInfo`, in ms.
        hint_ms: Option<u64>,
    },
    /// 401/403/402, Gemini's key-invalid 400: a long cool-down.
    Rejected,
    /// 5xx, a network error or a timeout: a short cool-down.
    Failed,
}

/// Entries kept before expired ones are swept out.
const SWEEP_AT: usize = 1024;

/// Cool-downs by key (`SECRET_NAME|model`), and the round-robin turn of each target.
#[derive(Debug, Default)]
pub struct KeyHealth {
    cooldowns: Mutex<HashMap<String, Cooldown>>,
    turns: Mutex<HashMap<usize, usize>>,
    /// Keys whose last failure was a rejection (401/403/402), until one answers again.
    rejected: Mutex<HashSet<String>>,
}

/// How a key stands, for the status page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum KeyState {
    /// Tried in turn.
    Healthy,
    /// Skipped for `ms` more after failures.
    CoolingDown {
        /// Milliseconds left.
        ms: u64,
    },
    /// Skipped for `ms` more: the provider rejected the key.
    Rejected {
        /// Milliseconds left.
        ms: u64,
    },
}

impl KeyHealth {
    /// An empty memory: every key healthy.
    pub fn new() -> Self {
        Self::default()
    }

    /// The memory's key for a via × model.
    pub fn key(via: &str, model: &str) -> String {
        let mut key = String::with_capacity(via.len() + 1 + model.len());
        key.push_str(via);
        key.push('|');
        key.push_str(model);
        key
    }

    /// Milliseconds left on `key`'s cool-down at `now_ms`, if it is cooling down.
    pub fn cooling(&self, key: &str, now_ms: u64) -> Option<u64> {
        let cooldowns = self.cooldowns.lock().ok()?;
        let cooldown = cooldowns.get(key)?;
        (cooldown.until_ms > now_ms).then(|| cooldown.until_ms - now_ms)
    }

    /// Records a failure of `key` at `now_ms` under `policy`. Returns the cool-down now in force
    /// if this failure started or lengthened one (for the host to share), `None` if nothing
    /// changed (the policy is off, or a longer cool-down was already running).
    pub fn strike(
        &self,
        key: &str,
        strike: Strike,
        policy: &CooldownPolicy,
        now_ms: u64,
    ) -> Option<Cooldown> {
        if let Ok(mut rejected) = self.rejected.lock() {
            if strike == Strike::Rejected {
                rejected.insert(key.to_owned());
            } else {
                rejected.remove(key);
            }
        }
        let mut cooldowns = self.cooldowns.lock().ok()?;
        let previous = cooldowns.get(key).copied();
        let strikes = previous.map_or(0, |c| c.strikes).saturating_add(1);
        let ms = match strike {
            Strike::RateLimited {
                hint_ms: Some(hint),
            } => hint,
            Strike::RateLimited { hint_ms: None } => {
                // Doubles on each repeat: 1×, 2×, 4×... the default, up to the cap below.
                let doublings = strikes.saturating_sub(1).min(20);
                policy.rate_limited_ms.saturating_mul(1 << doublings)
            }
            Strike::Rejected => policy.rejected_ms,
            Strike::Failed => policy.failed_ms,
        }
        .min(policy.max_ms);
        if ms == 0 {
            return None;
        }
        let until_ms = now_ms.saturating_add(ms);
        // A later, shorter hint never shortens a running cool-down.
        let until_ms = match previous {
            Some(p) if p.until_ms >= until_ms => {
                cooldowns.insert(key.to_owned(), Cooldown { strikes, ..p });
                return None;
            }
            _ => until_ms,
        };
        if cooldowns.len() >= SWEEP_AT {
            cooldowns.retain(|_, c| c.until_ms > now_ms);
        }
        let cooldown = Cooldown { until_ms, strikes };
        cooldowns.insert(key.to_owned(), cooldown);
        Some(cooldown)
    }

    /// `key` answered: its strikes are forgotten.
    pub fn recovered(&self, key: &str) {
        // A removal hashes the key even from an empty map, and nearly every answer is a healthy
        // key's.
        if let Ok(mut cooldowns) = self.cooldowns.lock() {
            if !cooldowns.is_empty() {
                cooldowns.remove(key);
            }
        }
        if let Ok(mut rejected) = self.rejected.lock() {
            if !rejected.is_empty() {
                rejected.remove(key);
            }
        }
    }

    /// How `key` stands at `now_ms`.
    pub fn state(&self, key: &str, now_ms: u64) -> KeyState {
        match self.cooling(key, now_ms) {
            None => KeyState::Healthy,
            Some(ms) if self.rejected.lock().is_ok_and(|r| r.contains(key)) => {
                KeyState::Rejected { ms }
            }
            Some(ms) => KeyState::CoolingDown { ms },
        }
    }

    /// Takes in a cool-down another instance recorded; the later end wins.
    pub fn merge(&self, key: &str, cooldown: Cooldown) {
        if let Ok(mut cooldowns) = self.cooldowns.lock() {
            match cooldowns.get_mut(key) {
                Some(mine) if mine.until_ms >= cooldown.until_ms => {}
                Some(mine) => *mine = cooldown,
                None => {
                    cooldowns.insert(key.to_owned(), cooldown);
                }
            }
        }
    }

    /// The running cool-downs at `now_ms`, for a host that shares them.
    pub fn snapshot(&self, now_ms: u64) -> Vec<(String, Cooldown)> {
        match self.cooldowns.lock() {
            Ok(cooldowns) => cooldowns
                .iter()
                .filter(|(_, c)| c.until_ms > now_ms)
                .map(|(k, c)| (k.clone(), *c))
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The next round-robin turn of the target identified by `slot`: 0, 1, 2... per target, so
    /// that one target's turns do not depend on how often the others are tried.
    pub fn next_turn(&self, slot: usize) -> usize {
        match self.turns.lock() {
            Ok(mut turns) => {
                let turn = turns.entry(slot).or_insert(0);
                let this = *turn;
                *turn = turn.wrapping_add(1);
                this
            }
            Err(_) => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: CooldownPolicy = CooldownPolicy {
        rate_limited_ms: 1_000,
        rejected_ms: 600_000,
        failed_ms: 5_000,
        max_ms: 60_000,
    };

    #[test]
    fn a_429_without_a_hint_cools_longer_on_each_repeat_up_to_the_cap() {
        let health = KeyHealth::new();
        let limited = Strike::RateLimited { hint_ms: None };
        let mut now = 0;
        let mut lengths = Vec::new();
        for _ in 0..8 {
            let cooldown = health
                .strike("K|m", limited, &POLICY, now)
                .map(|c| c.until_ms - now);
            lengths.push(cooldown.unwrap_or(0));
            now += 100_000;
        }
        assert_eq!(
            lengths,
            [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000]
        );
        health.recovered("K|m");
        let after = health.strike("K|m", limited, &POLICY, now);
        assert_eq!(after.map(|c| c.until_ms - now), Some(1_000));
    }

    #[test]
    fn a_shorter_hint_never_shortens_a_running_cooldown() {
        let health = KeyHealth::new();
        let long = Strike::RateLimited {
            hint_ms: Some(30_000),
        };
        let short = Strike::RateLimited {
            hint_ms: Some(2_000),
        };
        assert!(health.strike("K|m", long, &POLICY, 0).is_some());
        assert_eq!(health.strike("K|m", short, &POLICY, 1_000), None);
        assert_eq!(health.cooling("K|m", 1_000), Some(29_000));
        assert_eq!(health.cooling("K|other-model", 1_000), None);
        assert_eq!(health.cooling("K|m", 30_000), None);
    }

    #[test]
    fn rejected_keys_cool_long_and_failures_short_both_capped() {
        let health = KeyHealth::new();
        let rejected = health.strike("A|m", Strike::Rejected, &POLICY, 0);
        assert_eq!(rejected.map(|c| c.until_ms), Some(60_000));
        let failed = health.strike("B|m", Strike::Failed, &POLICY, 0);
        assert_eq!(failed.map(|c| c.until_ms), Some(5_000));
        let off = CooldownPolicy {
            max_ms: 0,
            ..POLICY
        };
        let hinted = Strike::RateLimited {
            hint_ms: Some(9_000),
        };
        assert_eq!(health.strike("C|m", hinted, &off, 0), None);
        assert_eq!(health.cooling("C|m", 0), None);
    }

    #[test]
    fn merging_keeps_the_later_end() {
        let health = KeyHealth::new();
        health.merge(
            "K|m",
            Cooldown {
                until_ms: 5_000,
                strikes: 1,
            },
        );
        health.merge(
            "K|m",
            Cooldown {
                until_ms: 3_000,
                strikes: 4,
            },
        );
        assert_eq!(health.cooling("K|m", 0), Some(5_000));
        assert_eq!(health.snapshot(0).len(), 1);
        assert!(health.snapshot(5_000).is_empty());
    }
}
