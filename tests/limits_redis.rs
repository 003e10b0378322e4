//! Client limits in Redis (`[server] limits_store`) against the in-memory `Counters`: the same
//! scenario table through both, step by step, must give identical grants and refusals; two
//! stores (two "processes") reserving at once never grant more than the limit; and the store's
//! failures are `LimitsUnavailable` without a password in them.
//!
//! Each test starts its own `redis-server` on a free port. Without the binary the tests skip,
//! unless `AIWP_REQUIRE_REDIS` is set (CI sets it: scripts/bootstrap.sh installs redis-server).
//!
//! The round-trip latency of a reserve and its settle (ignored by default):
//! `cargo test --test limits_redis -- --ignored --nocapture round_trip_latency`.

#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use ai_worker_proxy::core::host::LimitsUnavailable;
use ai_worker_proxy::core::limits::{Ask, Counters, Grant, Limit, Refusal, Used};
use ai_worker_proxy::core::route::{Budget, BudgetPeriod, Client};
use ai_worker_proxy::hosts::native::redis::{RedisLimits, RedisUrl};

const MINUTE: u64 = 60_000;
/// 2026-12-04 10:00:00 UTC.
const T0: u64 = 1_796_378_400_000;
/// 2027-01-01 00:00:00 UTC.
const JAN_2027: u64 = 1_798_761_600_000;

/// A `redis-server` of this test's own, stopped when dropped.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    /// A fresh server with `args` added, or `None` (with a message) when the binary is missing
    /// and `AIWP_REQUIRE_REDIS` is unset.
    fn start(test: &str, args: &[&str]) -> Option<Self> {
        if Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            if std::env::var_os("AIWP_REQUIRE_REDIS").is_some() {
                panic!("AIWP_REQUIRE_REDIS is set but redis-server is not on PATH (scripts/bootstrap.sh installs it)");
            }
            eprintln!(
                "SKIPPED {test}: redis-server is not on PATH (scripts/bootstrap.sh installs it; AIWP_REQUIRE_REDIS=1 makes this a failure)"
            );
            return None;
        }
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server starts");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // the port was taken meanwhile: another one
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Some(Self { child, port });
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("redis-server did not start");
    }

    fn url(&self) -> Arc<RedisUrl> {
        Arc::new(RedisUrl::parse(&format!("redis://127.0.0.1:{}", self.port)).unwrap())
    }

    /// `redis-cli` with `args` against this server; its output.
    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "--no-auth-warning"])
            .args(args)
            .output()
            .expect("redis-cli runs");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn client(name: &str) -> Client {
    Client {
        name: Box::leak(name.to_owned().into_boxed_str()),
        tokens: &["UNUSED_TOKEN"],
        routes: None,
        requests_per_minute: None,
        tokens_per_minute: None,
        max_concurrent: None,
        budget: None,
    }
}

#[derive(Debug, Clone, Copy)]
enum Step {
    /// A reservation at `at`, and the limit expected to refuse it (`None`: granted).
    Reserve {
        at: u64,
        tokens: u64,
        cost: u64,
        deadline: u64,
        refused_by: Option<Limit>,
    },
    /// Settles the grant of step `grant` with what was used.
    Settle {
        grant: usize,
        tokens: u64,
        cost: u64,
    },
}

fn ok(at: u64, tokens: u64, cost: u64) -> Step {
    Step::Reserve {
        at,
        tokens,
        cost,
        deadline: at + 900_000,
        refused_by: None,
    }
}

fn no(limit: Limit, at: u64, tokens: u64, cost: u64) -> Step {
    Step::Reserve {
        at,
        tokens,
        cost,
        deadline: at + 900_000,
        refused_by: Some(limit),
    }
}

fn with_deadline(step: Step, deadline: u64) -> Step {
    match step {
        Step::Reserve {
            at,
            tokens,
            cost,
            refused_by,
            ..
        } => Step::Reserve {
            at,
            tokens,
            cost,
            deadline,
            refused_by,
        },
        settle => settle,
    }
}

fn settle(grant: usize, tokens: u64, cost: u64) -> Step {
    Step::Settle {
        grant,
        tokens,
        cost,
    }
}

struct Scenario {
    name: &'static str,
    client: Client,
    steps: Vec<Step>,
}

fn scenarios() -> Vec<Scenario> {
    let limited = |name: &'static str, set: &dyn Fn(&mut Client)| {
        let mut c = client(name);
        set(&mut c);
        c
    };
    let month = |pico_usd| {
        Some(Budget {
            pico_usd,
            per: BudgetPeriod::Month,
        })
    };
    vec![
        Scenario {
            name: "rpm-exhausted-then-next-minute",
            client: limited("rpm", &|c| c.requests_per_minute = Some(3)),
            steps: vec![
                ok(T0, 1, 0),
                ok(T0 + 1, 1, 0),
                ok(T0 + 2, 1, 0),
                no(Limit::Requests, T0 + 20_000, 1, 0),
                no(Limit::Requests, T0 + MINUTE - 1, 1, 0),
                ok(T0 + MINUTE, 1, 0),
                ok(T0 + MINUTE + 30_000, 1, 0),
                // A request from a process whose clock is behind rolls the window back.
                ok(T0 + 59_000, 1, 0),
                ok(T0 + 3 * MINUTE + 17, 1, 0),
            ],
        },
        Scenario {
            name: "tpm-with-settle",
            client: limited("tpm", &|c| c.tokens_per_minute = Some(1_000)),
            steps: vec![
                ok(T0, 900, 0),
                no(Limit::Tokens, T0 + 1, 200, 0),
                settle(0, 300, 0),
                ok(T0 + 2, 200, 0),
                ok(T0 + 3, 100, 0),
                ok(T0 + 4, 400, 0),
                no(Limit::Tokens, T0 + 5, 1, 0),
                settle(5, 0, 0),
                ok(T0 + 6, 400, 0),
                ok(T0 + MINUTE, 50, 0),
                // A reservation from the last minute settles nothing into this one.
                settle(4, 700, 0),
                no(Limit::Tokens, T0 + MINUTE + 1, 951, 0),
                ok(T0 + MINUTE + 2, 950, 0),
                // More used than reserved, in its own minute.
                settle(9, 2_000, 0),
                no(Limit::Tokens, T0 + MINUTE + 3, 1, 0),
            ],
        },
        Scenario {
            name: "one-oversized-request-runs-alone",
            client: limited("big", &|c| {
                c.tokens_per_minute = Some(1_000);
                c.requests_per_minute = Some(5);
            }),
            steps: vec![
                ok(T0, 5_000, 0),
                no(Limit::Tokens, T0 + 1, 1, 0),
                ok(T0 + MINUTE, 1, 0),
                // Not alone any more in this minute: refused.
                no(Limit::Tokens, T0 + MINUTE + 1, 5_000, 0),
                // Counts beyond 2^53 stay exact, and additions saturate as in Rust.
                ok(T0 + 2 * MINUTE, u64::MAX - 5, 0),
                no(Limit::Tokens, T0 + 2 * MINUTE + 1, 1, 0),
                settle(4, 9_007_199_254_740_993, 0),
                no(Limit::Tokens, T0 + 2 * MINUTE + 2, 1, 0),
                settle(4, 0, 0),
                ok(T0 + 2 * MINUTE + 3, 1_000, 0),
            ],
        },
        Scenario {
            name: "concurrency-with-settle-and-expired-deadlines",
            client: limited("conc", &|c| c.max_concurrent = Some(2)),
            steps: vec![
                ok(T0, 1, 0),
                ok(T0 + 1, 1, 0),
                no(Limit::Concurrency, T0 + 2, 1, 0),
                settle(0, 1, 0),
                ok(T0 + 3, 1, 0),
                no(Limit::Concurrency, T0 + 4, 1, 0),
                // Settling twice frees one place only.
                settle(0, 1, 0),
                no(Limit::Concurrency, T0 + 5, 1, 0),
                // Neither was settled: both free once their deadline passed (T0 + 900_003
                // is the later one's deadline itself, which is past).
                ok(T0 + 900_003, 1, 0),
                settle(8, 1, 0),
                // A place taken with a short deadline and never settled.
                with_deadline(ok(T0 + 900_010, 1, 0), T0 + 900_020),
                ok(T0 + 900_011, 1, 0),
                no(Limit::Concurrency, T0 + 900_019, 1, 0),
                // At its deadline it is over.
                ok(T0 + 900_020, 1, 0),
                // Two places with the same deadline: a settle frees one of them.
                settle(11, 1, 0),
                settle(13, 1, 0),
                with_deadline(ok(T0 + 900_030, 1, 0), T0 + 2_000_000),
                with_deadline(ok(T0 + 900_031, 1, 0), T0 + 2_000_000),
                no(Limit::Concurrency, T0 + 900_032, 1, 0),
                settle(16, 1, 0),
                ok(T0 + 900_033, 1, 0),
                no(Limit::Concurrency, T0 + 900_034, 1, 0),
            ],
        },
        Scenario {
            name: "budget-with-settle-and-next-month",
            client: limited("budget", &|c| c.budget = month(1_000_000)),
            steps: vec![
                ok(T0, 1, 800_000),
                no(Limit::Budget, T0, 1, 300_000),
                settle(0, 1, 500_000),
                ok(T0 + 1, 1, 300_000),
                ok(T0 + 2, 1, 200_000),
                no(Limit::Budget, T0 + 3, 1, 1),
                // A settle from the last period changes nothing in this one.
                ok(JAN_2027, 1, 900_000),
                settle(3, 1, 0),
                no(Limit::Budget, JAN_2027 + 1, 1, 100_001),
                ok(JAN_2027 + 2, 1, 100_000),
                settle(6, 1, 0),
                ok(JAN_2027 + 3, 1, 900_000),
            ],
        },
        Scenario {
            name: "daily-budget-in-pico-usd-beyond-2^53",
            client: limited("daily", &|c| {
                c.budget = Some(Budget {
                    pico_usd: 1_000_000_000_000_000_000,
                    per: BudgetPeriod::Day,
                })
            }),
            steps: vec![
                ok(T0, 1, 999_999_999_999_999_999),
                ok(T0 + 1, 1, 1),
                no(Limit::Budget, T0 + 2, 1, 1),
                no(Limit::Budget, T0 + 3, 1, u64::MAX),
                settle(1, 1, 0),
                ok(T0 + 4, 1, 1),
                settle(0, 1, 9_007_199_254_740_993),
                ok(T0 + 5, 1, 990_992_800_745_259_005),
                no(Limit::Budget, T0 + 6, 1, 2),
                ok(T0 + 7, 1, 1),
                ok(T0 + 14 * 3_600_000, 1, 1),
            ],
        },
        Scenario {
            name: "limits-near-u64-max-stay-exact",
            client: limited("huge", &|c| {
                c.tokens_per_minute = Some(18_000_000_000_000_000_000);
                c.budget = month(u64::MAX - 1);
            }),
            steps: vec![
                ok(T0, 9_007_199_254_740_993, 0),
                ok(T0 + 1, 1, 0),
                ok(T0 + 2, 17_990_992_800_745_259_006, 0),
                no(Limit::Tokens, T0 + 3, 1, 0),
                settle(2, 3, 0),
                ok(T0 + 4, 17_990_992_800_745_259_003, 0),
                no(Limit::Budget, T0 + 5, 0, u64::MAX),
                ok(T0 + 6, 0, u64::MAX - 1),
                no(Limit::Budget, T0 + 7, 0, 1),
                settle(7, 0, u64::MAX),
                no(Limit::Budget, T0 + 8, 0, 0),
                settle(7, 0, 3),
                ok(T0 + 9, 0, u64::MAX - 5),
            ],
        },
        Scenario {
            name: "every-limit-in-its-order",
            client: limited("all", &|c| {
                c.max_concurrent = Some(1);
                c.requests_per_minute = Some(2);
                c.tokens_per_minute = Some(100);
                c.budget = month(1_000);
            }),
            steps: vec![
                ok(T0, 10, 100),
                // Concurrency is checked first.
                no(Limit::Concurrency, T0 + 1, 1_000, 10_000),
                settle(0, 20, 50),
                no(Limit::Tokens, T0 + 2, 81, 0),
                no(Limit::Budget, T0 + 3, 80, 951),
                ok(T0 + 4, 80, 950),
                settle(5, 80, 950),
                // Requests before tokens and budget.
                no(Limit::Requests, T0 + 5, 1_000, 10_000),
                ok(T0 + MINUTE, 100, 0),
                settle(8, 1, 0),
                no(Limit::Budget, T0 + MINUTE + 1, 1, 1),
            ],
        },
        Scenario {
            name: "counts-without-limits-stay-unseen",
            client: limited("count-only", &|c| c.requests_per_minute = Some(1_000)),
            steps: vec![
                ok(T0, 500, 10),
                settle(0, 1, 1),
                ok(T0 + 1, u64::MAX, u64::MAX),
                ok(T0 + 2, 0, 0),
            ],
        },
    ]
}

/// Runs `scenario` through a fresh `Counters` and through `store`, step by step.
async fn compare(store: &RedisLimits, scenario: &Scenario) {
    let client: &'static Client = Box::leak(Box::new(scenario.client));
    let mut counters = Counters::default();
    let mut grants: HashMap<usize, Grant> = HashMap::new();
    for (i, step) in scenario.steps.iter().enumerate() {
        let at = format!("{}, step {i} ({step:?})", scenario.name);
        match *step {
            Step::Reserve {
                at: now_ms,
                tokens,
                cost,
                deadline,
                refused_by,
            } => {
                let ask = Ask {
                    now_ms,
                    tokens,
                    cost,
                    deadline_ms: deadline,
                };
                let memory = counters.reserve(client, &ask);
                let redis = store
                    .reserve(client, &ask)
                    .await
                    .unwrap_or_else(|e| panic!("{at}: {e:?}"));
                assert_eq!(redis, memory, "{at}: Redis and Counters differ");
                assert_eq!(
                    memory.as_ref().err().map(|r: &Refusal| r.limit),
                    refused_by,
                    "{at}: the scenario expected otherwise"
                );
                if let Ok(grant) = memory {
                    grants.insert(i, grant);
                }
            }
            Step::Settle {
                grant,
                tokens,
                cost,
            } => {
                let grant = grants[&grant];
                let used = Used { tokens, cost };
                counters.settle(&grant, &used);
                store
                    .settle(client, &grant, &used)
                    .await
                    .unwrap_or_else(|e| panic!("{at}: {e:?}"));
            }
        }
        // What the status page reads: the same counts, places in flight in any order.
        let mut held = store.counters(client).await.unwrap();
        let mut expected = counters.clone();
        held.in_flight.sort_unstable();
        expected.in_flight.sort_unstable();
        if client.budget.is_none() {
            // Without a budget Redis keeps no spend (nothing reads it).
            (expected.period, expected.spent) = (0, 0);
        }
        assert_eq!(held, expected, "{at}: the counts differ");
    }
}

#[test]
fn the_scenario_table_gives_the_same_answers_in_redis_as_in_memory() {
    let Some(redis) = Redis::start("the_scenario_table", &[]) else {
        return;
    };
    let store = RedisLimits::new(redis.url());
    runtime().block_on(async {
        for scenario in scenarios() {
            compare(&store, &scenario).await;
        }
    });
    // Idle clients' keys expire: the minute a minute after its end, the budget a day after its
    // period, places in flight at their last deadline (times from each request's own clock).
    let ttl = |key: &str| redis.cli(&["PTTL", key]).parse::<i64>().unwrap();
    let minute = ttl("aiwp:limits:{all}:minute");
    assert!((1..=120_000).contains(&minute), "minute TTL {minute}");
    let in_flight = ttl("aiwp:limits:{conc}:inflight");
    assert!(
        (1..=2_000_000).contains(&in_flight),
        "in-flight TTL {in_flight}"
    );
    assert_eq!(ttl("aiwp:limits:{rpm}:budget"), -2, "no budget, no key");
    // The budget: until 2027-02-01 (the end of the last request's period) and a day.
    let month = ttl("aiwp:limits:{budget}:budget");
    assert!(
        (32 * 86_400_000 - 60_000..=32 * 86_400_000).contains(&month),
        "budget TTL {month}"
    );
}

#[test]
fn the_scripts_run_by_their_sha_once_the_server_knows_them() {
    let Some(redis) = Redis::start("the_scripts_run_by_their_sha", &[]) else {
        return;
    };
    let store = RedisLimits::new(redis.url());
    let client: &'static Client = Box::leak(Box::new(client("sha")));
    runtime().block_on(async {
        for n in 0..5 {
            let ask = Ask {
                now_ms: T0 + n,
                tokens: 1,
                cost: 1,
                deadline_ms: T0 + 1_000_000,
            };
            let grant = store.reserve(client, &ask).await.unwrap().unwrap();
            store.settle(client, &grant, &grant.reserved).await.unwrap();
        }
    });
    let stats = redis.cli(&["INFO", "commandstats"]);
    let calls = |command: &str| {
        stats
            .lines()
            .find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:calls=")))
            .and_then(|rest| rest.split(',').next()?.parse::<u32>().ok())
            .unwrap_or(0)
    };
    // Each script once by its source (after one NOSCRIPT), then always by its SHA-1.
    assert_eq!(calls("eval"), 2, "{stats}");
    assert_eq!(calls("evalsha"), 10, "{stats}");
}

/// `stores` threads, each a current-thread runtime with its own store (a "process"), reserving
/// `per_store` requests at once, all at `now_ms`; the grants and refusals together.
fn race(
    redis: &Redis,
    client: &'static Client,
    stores: usize,
    per_store: usize,
) -> (usize, Vec<Limit>) {
    let granted = Arc::new(AtomicUsize::new(0));
    let refusals = Arc::new(std::sync::Mutex::new(Vec::new()));
    let start = Arc::new(Barrier::new(stores));
    let threads: Vec<_> = (0..stores)
        .map(|_| {
            let (url, granted, refusals, start) = (
                redis.url(),
                Arc::clone(&granted),
                Arc::clone(&refusals),
                Arc::clone(&start),
            );
            std::thread::spawn(move || {
                let store = RedisLimits::new(url);
                let local = tokio::task::LocalSet::new();
                local.block_on(&runtime(), async move {
                    // Connections open first, so the reservations really go at once.
                    store.ping().await.unwrap();
                    start.wait();
                    let tasks: Vec<_> = (0..per_store)
                        .map(|n| {
                            let store = store.clone();
                            tokio::task::spawn_local(async move {
                                let ask = Ask {
                                    now_ms: T0 + 1_000 + n as u64,
                                    tokens: 1,
                                    cost: 0,
                                    deadline_ms: T0 + 900_000,
                                };
                                store.reserve(client, &ask).await.unwrap()
                            })
                        })
                        .collect();
                    for task in tasks {
                        match task.await.unwrap() {
                            Ok(_) => {
                                granted.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(refusal) => refusals.lock().unwrap().push(refusal.limit),
                        }
                    }
                });
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let refusals = refusals.lock().unwrap().clone();
    (granted.load(Ordering::SeqCst), refusals)
}

#[test]
fn two_stores_reserving_at_once_never_grant_more_than_the_limit() {
    let Some(redis) = Redis::start("two_stores_reserving_at_once", &[]) else {
        return;
    };
    let mut rpm = client("race-rpm");
    rpm.requests_per_minute = Some(10);
    let rpm: &'static Client = Box::leak(Box::new(rpm));
    let (granted, refused) = race(&redis, rpm, 2, 40);
    assert_eq!(granted, 10);
    assert_eq!(refused, vec![Limit::Requests; 70]);

    let mut concurrent = client("race-concurrent");
    concurrent.max_concurrent = Some(3);
    let concurrent: &'static Client = Box::leak(Box::new(concurrent));
    let (granted, refused) = race(&redis, concurrent, 2, 40);
    assert_eq!(granted, 3);
    assert_eq!(refused, vec![Limit::Concurrency; 77]);
}

#[test]
fn credentials_and_a_database_number_from_the_url_are_used() {
    let Some(redis) = Redis::start(
        "credentials_and_a_database",
        &["--requirepass", "s3cr3t-pw"],
    ) else {
        return;
    };
    let port = redis.port;
    let client: &'static Client = Box::leak(Box::new(client("auth")));
    let ask = Ask {
        now_ms: T0,
        tokens: 1,
        cost: 0,
        deadline_ms: T0 + 900_000,
    };
    runtime().block_on(async {
        for url in [
            format!("redis://:s3cr3t-pw@127.0.0.1:{port}/2"),
            format!("redis://default:s3cr3t%2Dpw@127.0.0.1:{port}/2"),
        ] {
            let store = RedisLimits::new(Arc::new(RedisUrl::parse(&url).unwrap()));
            assert!(store.reserve(client, &ask).await.unwrap().is_ok(), "{url}");
        }
        let wrong = format!("redis://:not-the-pw@127.0.0.1:{port}");
        let store = RedisLimits::new(Arc::new(RedisUrl::parse(&wrong).unwrap()));
        let LimitsUnavailable { why, .. } = store.reserve(client, &ask).await.unwrap_err();
        assert!(
            why.starts_with(&format!(
                "redis at 127.0.0.1:{port}: AUTH refused: WRONGPASS"
            )),
            "{why}"
        );
        assert!(!why.contains("not-the-pw"), "{why}");
        let none = format!("redis://127.0.0.1:{port}");
        let store = RedisLimits::new(Arc::new(RedisUrl::parse(&none).unwrap()));
        let LimitsUnavailable { why, .. } = store.reserve(client, &ask).await.unwrap_err();
        // Redis refuses a long command from a client that has not authenticated.
        assert!(
            why.starts_with(&format!("redis at 127.0.0.1:{port}: the server answered: ")),
            "{why}"
        );
    });
    let requests = redis.cli(&[
        "-a",
        "s3cr3t-pw",
        "-n",
        "2",
        "HGET",
        "aiwp:limits:{auth}:minute",
        "requests",
    ]);
    assert_eq!(requests, "2", "both reservations counted in database 2");
    let in_db0 = redis.cli(&["-a", "s3cr3t-pw", "EXISTS", "aiwp:limits:{auth}:minute"]);
    assert_eq!(in_db0, "0");
}

#[test]
fn a_store_that_is_down_or_silent_is_unavailable_within_its_timeouts() {
    let client: &'static Client = Box::leak(Box::new(client("down")));
    let ask = Ask {
        now_ms: T0,
        tokens: 1,
        cost: 0,
        deadline_ms: T0 + 900_000,
    };
    // Nothing listens on the port, and no other test's server can take it meanwhile (a port
    // from `free_port` could be handed to one of theirs): it is a connected socket's own port.
    let peer = TcpListener::bind("127.0.0.1:0").unwrap();
    let holder = std::net::TcpStream::connect(peer.local_addr().unwrap()).unwrap();
    let closed = holder.local_addr().unwrap().port();
    let url = format!("redis://:hunter2@127.0.0.1:{closed}");
    let store = RedisLimits::new(Arc::new(RedisUrl::parse(&url).unwrap()));
    let LimitsUnavailable { why, .. } =
        runtime().block_on(store.reserve(client, &ask)).unwrap_err();
    assert!(
        why.starts_with(&format!("redis at 127.0.0.1:{closed}: cannot connect: ")),
        "{why}"
    );
    assert!(!why.contains("hunter2"), "{why}");
    drop((holder, peer));

    // A server that accepts and never answers: the command gives up after a second.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let store = RedisLimits::new(Arc::new(
        RedisUrl::parse(&format!("redis://127.0.0.1:{port}")).unwrap(),
    ));
    let started = Instant::now();
    let LimitsUnavailable { why, .. } =
        runtime().block_on(store.reserve(client, &ask)).unwrap_err();
    let took = started.elapsed();
    assert_eq!(
        why,
        format!("redis at 127.0.0.1:{port}: no answer within 1 s")
    );
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_secs(3),
        "{took:?}"
    );
    // With a password, the silence is in AUTH: the connection gives up after a second.
    let store = RedisLimits::new(Arc::new(
        RedisUrl::parse(&format!("redis://:hunter2@127.0.0.1:{port}")).unwrap(),
    ));
    let LimitsUnavailable { why, .. } =
        runtime().block_on(store.reserve(client, &ask)).unwrap_err();
    assert_eq!(
        why,
        format!("redis at 127.0.0.1:{port}: no connection within 1 s")
    );
    drop(silent);
}

#[test]
fn a_restarted_server_is_reconnected_to_and_learns_the_scripts_again() {
    let Some(mut redis) = Redis::start("a_restarted_server", &[]) else {
        return;
    };
    let store = RedisLimits::new(redis.url());
    let mut c = client("restart");
    c.requests_per_minute = Some(100);
    let client: &'static Client = Box::leak(Box::new(c));
    let ask = |n| Ask {
        now_ms: T0 + n,
        tokens: 1,
        cost: 0,
        deadline_ms: T0 + 900_000,
    };
    let rt = runtime();
    let grant = rt
        .block_on(store.reserve(client, &ask(0)))
        .unwrap()
        .unwrap();
    assert_eq!(grant.standing.requests, Some((100, 99)));
    // Same port, a new server: the pooled connection is closed, the scripts unknown.
    let port = redis.port;
    let _ = redis.child.kill();
    let _ = redis.child.wait();
    std::thread::sleep(Duration::from_millis(100));
    redis.child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not restart");
        std::thread::sleep(Duration::from_millis(20));
    }
    let grant = rt
        .block_on(store.reserve(client, &ask(1)))
        .unwrap()
        .unwrap();
    assert_eq!(
        grant.standing.requests,
        Some((100, 99)),
        "a new server's counts"
    );
}

/// A CA and a server certificate for `localhost` and 127.0.0.1 it signed, made with `openssl`
/// in `dir`: (the CA in DER, the server's certificate and key files).
fn certificates(dir: &std::path::Path) -> Option<(Vec<u8>, String, String)> {
    let openssl = |args: &str| {
        Command::new("openssl")
            .args(args.split_whitespace())
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .ok()?;
    let made = openssl(&format!(
        "req -x509 {ec} -keyout ca.key -out ca.crt -days 2 -subj /CN=aiwp-test-ca"
    )) && openssl(&format!(
        "req {ec} -keyout server.key -out server.csr -subj /CN=localhost"
    )) && openssl(
        "x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile server.ext",
    ) && openssl("x509 -in ca.crt -outform DER -out ca.der");
    if !made {
        return None;
    }
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    Some((
        std::fs::read(dir.join("ca.der")).ok()?,
        path("server.crt"),
        path("server.key"),
    ))
}

#[test]
fn rediss_urls_speak_tls_and_check_the_servers_certificate() {
    let dir = std::env::temp_dir().join(format!("aiwp-redis-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let Some((ca, cert, key)) = certificates(&dir) else {
        if std::env::var_os("AIWP_REQUIRE_REDIS").is_some() {
            panic!("AIWP_REQUIRE_REDIS is set but openssl could not make test certificates");
        }
        eprintln!("SKIPPED rediss_urls_speak_tls: openssl could not make test certificates");
        return;
    };
    let tls_port = free_port().to_string();
    let Some(redis) = Redis::start(
        "rediss_urls_speak_tls",
        &[
            "--tls-port",
            &tls_port,
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &cert,
            "--tls-auth-clients",
            "no",
            "--requirepass",
            "tls-pw",
        ],
    ) else {
        return;
    };
    let mut c = client("tls");
    c.requests_per_minute = Some(2);
    let client: &'static Client = Box::leak(Box::new(c));
    let ask = Ask {
        now_ms: T0,
        tokens: 1,
        cost: 0,
        deadline_ms: T0 + 900_000,
    };
    runtime().block_on(async {
        for host in ["127.0.0.1", "localhost"] {
            let url = format!("rediss://:tls-pw@{host}:{tls_port}");
            let url = Arc::new(RedisUrl::parse(&url).unwrap());
            let store = RedisLimits::with_extra_root(url, ca.clone()).unwrap();
            let grant = store.reserve(client, &ask).await.unwrap().unwrap();
            store.settle(client, &grant, &grant.reserved).await.unwrap();
        }
        // Mozilla's roots alone do not trust this server.
        let url = format!("rediss://:tls-pw@127.0.0.1:{tls_port}");
        let store = RedisLimits::new(Arc::new(RedisUrl::parse(&url).unwrap()));
        let LimitsUnavailable { why, .. } = store.reserve(client, &ask).await.unwrap_err();
        assert!(
            why.starts_with(&format!(
                "redis at 127.0.0.1:{tls_port}: TLS: invalid peer certificate"
            )),
            "{why}"
        );
        assert!(!why.contains("tls-pw"), "{why}");
    });
    let requests = redis.cli(&[
        "-a",
        "tls-pw",
        "HGET",
        "aiwp:limits:{tls}:minute",
        "requests",
    ]);
    assert_eq!(requests, "2", "both reservations went over TLS");
    let _ = std::fs::remove_dir_all(&dir);
}

/// p50/p99 of one reserve and its settle, one after the other on one connection.
#[test]
#[ignore = "a measurement: cargo test --test limits_redis -- --ignored --nocapture round_trip_latency"]
fn round_trip_latency() {
    let Some(redis) = Redis::start("round_trip_latency", &[]) else {
        return;
    };
    let store = RedisLimits::new(redis.url());
    let mut c = client("latency");
    c.requests_per_minute = Some(1_000_000);
    c.tokens_per_minute = Some(1_000_000_000);
    c.max_concurrent = Some(100);
    c.budget = Some(Budget {
        pico_usd: 1_000_000_000_000_000,
        per: BudgetPeriod::Month,
    });
    let client: &'static Client = Box::leak(Box::new(c));
    let calls = 10_000;
    let mut took = Vec::with_capacity(calls);
    runtime().block_on(async {
        for n in 0..calls as u64 + 100 {
            let now_ms = T0 + n;
            let ask = Ask {
                now_ms,
                tokens: 1_000,
                cost: 5_000_000,
                deadline_ms: now_ms + 900_000,
            };
            let started = Instant::now();
            let grant = store.reserve(client, &ask).await.unwrap().unwrap();
            let used = Used {
                tokens: 700,
                cost: 3_000_000,
            };
            store.settle(client, &grant, &used).await.unwrap();
            // The first hundred warm up (connection, script cache).
            if n >= 100 {
                took.push(started.elapsed());
            }
        }
    });
    took.sort();
    let at = |q: f64| took[((took.len() as f64 * q) as usize).min(took.len() - 1)];
    println!(
        "reserve+settle over {calls} calls: p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
        at(0.50),
        at(0.90),
        at(0.99),
        took[took.len() - 1]
    );
}
