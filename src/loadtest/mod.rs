//! `oauth-mcp loadtest`: a closed-loop load generator for a running server, ours or any
//! other OAuth server (endpoints come from RFC 8414 metadata).
//!
//! It prepares what each scenario needs through the real protocol (codes through the login
//! form, one refresh-token chain per virtual user, MCP sessions), then runs each scenario at
//! each concurrency for a set duration and prints requests/s, latency percentiles and
//! errors by kind. `trivial` measures the generator itself against a bare actix-web POST
//! endpoint it starts in-process, as the ceiling to compare the other rates with.

pub mod client;
mod prepare;

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use serde::Serialize;

pub use prepare::{Target, TargetError, TargetOptions};

use client::Conn;

/// The `_meta` of a 2026-07-28 request: the protocol version and client details travel with
/// every request instead of an `initialize` (SEP-2575).
const STATELESS_META: &str = r#"{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"loadtest","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}"#;

/// How long one request may take before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// `grant_type=authorization_code` with PKCE; codes prepared through the login form.
    Code,
    /// `grant_type=refresh_token`, each virtual user chaining its own rotated tokens.
    Refresh,
    /// `grant_type=client_credentials`.
    ClientCredentials,
    /// An authenticated MCP `tools/call` in a session (protocol 2025-11-25).
    ToolsCall,
    /// An authenticated MCP `tools/call` without a session (protocol 2026-07-28: `_meta`
    /// names the version, rmcp serves it statelessly).
    ToolsCallStateless,
    /// A bare actix-web POST endpoint started by the generator: its own ceiling.
    Trivial,
}

/// Results of one scenario at one concurrency.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The scenario.
    pub scenario: Scenario,
    /// Virtual users.
    pub concurrency: usize,
    /// Measured seconds.
    pub seconds: f64,
    /// Successful requests.
    pub ok: u64,
    /// Successful requests per second.
    pub rps: f64,
    /// Latency percentiles, microseconds.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Maximum.
    pub max_us: u64,
    /// Errors by kind (`http 400`, `io`, ...).
    pub errors: BTreeMap<String, u64>,
    /// Server CPU time (user + system) per successful request during the measured window,
    /// when the server's pid was given (Linux `/proc`); with several pids, of them all.
    pub server_cpu_us: Option<f64>,
}

/// Keeps, for each scenario and concurrency, the report with the median rate (the lower
/// middle one for an even count), in first-seen order.
pub fn medians(reports: Vec<Report>) -> Vec<Report> {
    let mut groups: Vec<Vec<Report>> = Vec::new();
    for r in reports {
        match groups.iter_mut().find(|g| {
            g.first()
                .is_some_and(|f| (f.scenario, f.concurrency) == (r.scenario, r.concurrency))
        }) {
            Some(g) => g.push(r),
            None => groups.push(vec![r]),
        }
    }
    groups
        .into_iter()
        .filter_map(|mut g| {
            g.sort_by(|a, b| a.rps.total_cmp(&b.rps));
            let mid = g.len().saturating_sub(1) / 2;
            g.into_iter().nth(mid)
        })
        .collect()
}

/// CPU time (user + system) of process `pid` so far, in microseconds (Linux `/proc`).
pub fn process_cpu_us(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // Clock ticks are 100 Hz on every Linux configuration that matters here.
    Some((utime + stime) * 10_000)
}

/// CPU time of all of `pids` so far (the instances of one deployment), in microseconds;
/// `None` without pids or when one cannot be read.
pub fn processes_cpu_us(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter()
        .map(|&pid| process_cpu_us(pid))
        .sum::<Option<u64>>()
}

/// Per-virtual-user state for one scenario.
pub(crate) enum User {
    Code { codes: Vec<(String, String)> },
    Refresh { token: String },
    Plain,
    Tools { session: String },
    Stateless,
}

/// Runs one scenario at one concurrency: warm-up, then `duration` measured.
pub async fn run(
    target: &Target,
    scenario: Scenario,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
    server_pids: &[u32],
) -> Result<Report, TargetError> {
    let users = target.prepare(scenario, concurrency).await?;
    // Codes are single use and prepared in limited number: spend none on warming up.
    let warmup = if scenario == Scenario::Code {
        Duration::ZERO
    } else {
        warmup
    };
    let measuring = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for (index, user) in users.into_iter().enumerate() {
        let conn = target.conn_for(scenario, index);
        let target = target.clone();
        let (measuring, done, progress) = (
            Arc::clone(&measuring),
            Arc::clone(&done),
            Arc::clone(&progress),
        );
        tasks.push(tokio::spawn(async move {
            virtual_user(target, scenario, conn, user, measuring, done, progress).await
        }));
    }
    tokio::time::sleep(warmup).await;
    measuring.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let cpu_start = processes_cpu_us(server_pids);
    let mut last = 0;
    let mut next_report = Duration::from_secs(1);
    // Every user may stop early (the `code` scenario runs out of prepared codes): the
    // server's CPU time is read as soon as they have, so it covers only their requests.
    while started.elapsed() < duration && !tasks.iter().all(|t| t.is_finished()) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if started.elapsed() >= next_report {
            next_report += Duration::from_secs(1);
            let now = progress.load(Ordering::Relaxed);
            eprint!(
                "\r  {scenario:?} c={concurrency}: {:>8} ok, {:>7}/s   ",
                now,
                now - last
            );
            last = now;
        }
    }
    done.store(true, Ordering::SeqCst);
    let cpu_end = processes_cpu_us(server_pids);
    let seconds = started.elapsed().as_secs_f64();
    eprintln!();
    let mut latencies = Vec::new();
    let mut errors = BTreeMap::new();
    // Users that ran out of prepared codes stop early; the rate counts only the time during
    // which someone was still sending.
    let mut last_stop = started;
    let mut all_stopped_early = true;
    for t in tasks {
        let Ok((lat, errs, stopped)) = t.await else {
            continue;
        };
        match stopped {
            Some(at) => last_stop = last_stop.max(at),
            None => all_stopped_early = false,
        }
        latencies.extend(lat);
        for (k, v) in errs {
            *errors.entry(k).or_insert(0) += v;
        }
    }
    let seconds = if all_stopped_early {
        last_stop
            .saturating_duration_since(started)
            .as_secs_f64()
            .max(0.001)
    } else {
        seconds
    };
    latencies.sort_unstable();
    let pct = |p: f64| -> u64 {
        if latencies.is_empty() {
            return 0;
        }
        let i = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies.get(i).copied().unwrap_or(0)
    };
    let ok = latencies.len() as u64;
    Ok(Report {
        scenario,
        concurrency,
        seconds,
        ok,
        rps: ok as f64 / seconds,
        p50_us: pct(0.50),
        p90_us: pct(0.90),
        p99_us: pct(0.99),
        max_us: latencies.last().copied().unwrap_or(0),
        errors,
        server_cpu_us: match (cpu_start, cpu_end) {
            (Some(a), Some(b)) if ok > 0 => Some(b.saturating_sub(a) as f64 / ok as f64),
            _ => None,
        },
    })
}

async fn virtual_user(
    target: Target,
    scenario: Scenario,
    mut conn: Conn,
    mut user: User,
    measuring: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
    progress: Arc<AtomicU64>,
) -> (Vec<u64>, BTreeMap<String, u64>, Option<Instant>) {
    let mut latencies = Vec::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let basic = target.basic();
    let me = crate::domain::secrets::random_token();
    let mut next_id: u64 = 0;
    while !done.load(Ordering::Relaxed) {
        let (path, body, mcp): (String, String, bool) = match &mut user {
            User::Code { codes } => {
                let Some((code, verifier)) = codes.pop() else {
                    return (latencies, errors, Some(Instant::now()));
                };
                (target.token_path.clone(), format!("grant_type=authorization_code&code={code}&code_verifier={verifier}&redirect_uri={}", target.redirect_uri_encoded()), false)
            }
            User::Refresh { token } => (
                target.token_path.clone(),
                format!("grant_type=refresh_token&refresh_token={token}"),
                false,
            ),
            User::Plain if scenario == Scenario::Trivial => ("/".into(), "x".into(), false),
            User::Plain => (
                target.token_path.clone(),
                "grant_type=client_credentials".into(),
                false,
            ),
            User::Tools { .. } => {
                // Request ids must be unique within a session, and users share sessions.
                next_id += 1;
                let body = format!(
                    r#"{{"jsonrpc":"2.0","id":"{me}-{next_id}","method":"tools/call","params":{{"name":"add","arguments":{{"a":1,"b":2}}}}}}"#
                );
                (target.mcp_path.clone(), body, true)
            }
            User::Stateless => {
                next_id += 1;
                let body = format!(
                    r#"{{"jsonrpc":"2.0","id":"{me}-{next_id}","method":"tools/call","params":{{"name":"add","arguments":{{"a":1,"b":2}},"_meta":{STATELESS_META}}}}}"#
                );
                (target.mcp_path.clone(), body, true)
            }
        };
        let bearer;
        let mut headers: Vec<(&str, &str)> = Vec::with_capacity(6);
        if mcp {
            if let User::Tools { session } = &user {
                bearer = format!("Bearer {}", target.access_token);
                headers.push(("authorization", &bearer));
                headers.push(("content-type", "application/json"));
                headers.push(("accept", "application/json, text/event-stream"));
                headers.push(("mcp-session-id", session));
                headers.push(("mcp-protocol-version", "2025-11-25"));
            } else {
                bearer = format!("Bearer {}", target.access_token);
                headers.push(("authorization", &bearer));
                headers.push(("content-type", "application/json"));
                headers.push(("accept", "application/json, text/event-stream"));
                headers.push(("mcp-protocol-version", "2026-07-28"));
                headers.push(("mcp-method", "tools/call"));
                headers.push(("mcp-name", "add"));
            }
        } else {
            headers.push(("content-type", "application/x-www-form-urlencoded"));
            if scenario != Scenario::Trivial {
                headers.push(("authorization", &basic));
            }
        }
        let t0 = Instant::now();
        // A request the server never answers must not hang the run.
        let res = match tokio::time::timeout(
            REQUEST_TIMEOUT,
            conn.request("POST", &path, &headers, body.as_bytes()),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => {
                conn = conn.fresh();
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no answer in 10 s",
                ))
            }
        };
        let micros = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
        match res {
            Ok(r) if r.status == 200 => {
                if let User::Refresh { token } = &mut user {
                    match prepare::json_field(&r.body, "refresh_token") {
                        Some(t) => *token = t,
                        None => {
                            *errors
                                .entry("no refresh_token in reply".into())
                                .or_insert(0) += 1;
                            break;
                        }
                    }
                }
                if mcp && !r.body.windows(6).any(|w| w == b"result") {
                    *errors.entry("mcp error".into()).or_insert(0) += 1;
                } else if measuring.load(Ordering::Relaxed) {
                    latencies.push(micros);
                    progress.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(r) => {
                *errors.entry(format!("http {}", r.status)).or_insert(0) += 1;
                if matches!(user, User::Refresh { .. }) {
                    // The chain is broken; nothing more this user can do.
                    break;
                }
            }
            Err(e) => {
                *errors.entry(format!("io: {}", e.kind())).or_insert(0) += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    (latencies, errors, None)
}

/// Formats reports as a table.
pub fn table(reports: &[Report], trivial_rps: Option<f64>) -> String {
    let mut out = String::from("scenario            conc      req/s   of trivial    p50 µs    p90 µs    p99 µs    max µs  cpu µs/req  errors\n");
    for r in reports {
        let share = match trivial_rps {
            Some(t) if t > 0.0 && r.scenario != Scenario::Trivial => {
                format!("{:>9.1} %", 100.0 * r.rps / t)
            }
            _ => format!("{:>11}", "-"),
        };
        let errors = if r.errors.is_empty() {
            "none".to_owned()
        } else {
            r.errors
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let cpu = r
            .server_cpu_us
            .map_or_else(|| "-".to_owned(), |c| format!("{c:.0}"));
        out.push_str(&format!(
            "{:<18} {:>5} {:>10.0} {share} {:>9} {:>9} {:>9} {:>9} {cpu:>11}  {errors}\n",
            format!("{:?}", r.scenario),
            r.concurrency,
            r.rps,
            r.p50_us,
            r.p90_us,
            r.p99_us,
            r.max_us,
        ));
    }
    out
}

/// Starts the trivial endpoint on a loopback port in its own thread and System; answers its
/// address.
pub fn start_trivial_server() -> std::io::Result<std::net::SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::Builder::new()
        .name("trivial-server".into())
        .spawn(move || {
            let sys = actix_web::rt::System::new();
            sys.block_on(async move {
                let server = actix_web::HttpServer::new(|| {
                    actix_web::App::new().route(
                        "/",
                        actix_web::web::post().to(|body: actix_web::web::Bytes| async move {
                            // Read the body: actix closes the connection when a handler leaves it
                            // unread, which would measure reconnects instead.
                            actix_web::HttpResponse::Ok().body(if body.is_empty() {
                                ""
                            } else {
                                "ok"
                            })
                        }),
                    )
                })
                .workers(2)
                .tcp_nodelay(true)
                .disable_signals()
                .listen(listener);
                if let Ok(server) = server {
                    let _ = server.run().await;
                }
            });
        })?;
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(scenario: Scenario, concurrency: usize, rps: f64) -> Report {
        Report {
            scenario,
            concurrency,
            seconds: 5.0,
            ok: 1,
            rps,
            p50_us: 1,
            p90_us: 1,
            p99_us: 1,
            max_us: 1,
            errors: BTreeMap::new(),
            server_cpu_us: None,
        }
    }

    /// Several `--url`s: virtual users go round robin over the instances, one connection
    /// each; the trivial scenario always goes to the generator's own endpoint.
    #[test]
    fn virtual_users_are_spread_round_robin_over_the_instances() {
        let target = Target {
            addr: "a:1".into(),
            host: "a:1".into(),
            token_path: String::new(),
            authorize_path: String::new(),
            mcp_path: String::new(),
            client_id: String::new(),
            client_secret: String::new(),
            username: String::new(),
            password: String::new(),
            redirect_uri: String::new(),
            codes: 0,
            access_token: String::new(),
            trivial: Some("127.0.0.1:9".parse().unwrap()),
            others: vec![("b:2".into(), "b:2".into()), ("c:3".into(), "c:3".into())],
        };
        let addrs: Vec<String> = (0..5)
            .map(|i| target.conn_for(Scenario::Refresh, i).addr().to_owned())
            .collect();
        assert_eq!(addrs, ["a:1", "b:2", "c:3", "a:1", "b:2"]);
        assert_eq!(target.conn_for(Scenario::Trivial, 1).addr(), "127.0.0.1:9");
        let one = Target {
            others: Vec::new(),
            ..target
        };
        assert_eq!(one.conn_for(Scenario::Code, 7).addr(), "a:1");
    }

    #[test]
    fn medians_pick_the_middle_round_of_each_run() {
        let rounds = vec![
            report(Scenario::Refresh, 16, 300.0),
            report(Scenario::Code, 16, 10.0),
            report(Scenario::Refresh, 16, 100.0),
            report(Scenario::Code, 16, 30.0),
            report(Scenario::Refresh, 16, 200.0),
            report(Scenario::Refresh, 1, 7.0),
        ];
        let m: Vec<(Scenario, usize, f64)> = medians(rounds)
            .into_iter()
            .map(|r| (r.scenario, r.concurrency, r.rps))
            .collect();
        assert_eq!(
            m,
            vec![
                (Scenario::Refresh, 16, 200.0),
                (Scenario::Code, 16, 10.0),
                (Scenario::Refresh, 1, 7.0),
            ]
        );
    }
}
