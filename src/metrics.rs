//! Operational metrics, served at `GET /metrics` in the Prometheus text exposition format
//! (version 0.0.4).
//!
//! What is counted: requests and errors per endpoint (errors by HTTP status and OAuth error
//! code), tokens issued per grant type and revoked, failed logins, active MCP sessions,
//! client ID metadata document fetches by outcome, how
//! long requests wait for each actor (mailbox wait plus handling), and how long each
//! group-commit flush takes. No label ever carries a client id, user name, token or
//! address: nothing per user is exposed.
//!
//! Why hand-written rather than a metrics crate: every request updates these counters, so
//! they are fixed arrays of atomics indexed by small enums: a few nanoseconds, no lock and
//! no allocation on the request path (a registry keyed by label strings costs a hash and a
//! lock per update). Errors, which carry a free-form code, are the one exception: they take
//! a short mutex, and only on the error path.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Mutex, PoisonError,
    },
    time::Duration,
};

use crate::storage::FlushObserver;

/// The endpoints counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Endpoint {
    /// RFC 8414 metadata.
    AuthorizationServerMetadata,
    /// RFC 9728 metadata.
    ProtectedResourceMetadata,
    /// `/authorize` (login and consent page).
    Authorize,
    /// `/authorize/decision`.
    Decision,
    /// `/token`.
    Token,
    /// `/revoke`.
    Revoke,
    /// `/introspect`.
    Introspect,
    /// `/register`.
    Register,
    /// The MCP endpoint.
    Mcp,
}

impl Endpoint {
    const ALL: [Self; 9] = [
        Self::AuthorizationServerMetadata,
        Self::ProtectedResourceMetadata,
        Self::Authorize,
        Self::Decision,
        Self::Token,
        Self::Revoke,
        Self::Introspect,
        Self::Register,
        Self::Mcp,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::AuthorizationServerMetadata => "authorization_server_metadata",
            Self::ProtectedResourceMetadata => "protected_resource_metadata",
            Self::Authorize => "authorize",
            Self::Decision => "authorize_decision",
            Self::Token => "token",
            Self::Revoke => "revoke",
            Self::Introspect => "introspect",
            Self::Register => "register",
            Self::Mcp => "mcp",
        }
    }
}

/// The actors whose answers are timed: labels only (each actor names its own kind by
/// implementing [`Metered`] next to its definition).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ActorKind {
    /// The client registry.
    Registry,
    /// The code issuer.
    Codes,
    /// The token ledger.
    Ledger,
    /// The MCP session table.
    Sessions,
}

impl ActorKind {
    const ALL: [Self; 4] = [Self::Registry, Self::Codes, Self::Ledger, Self::Sessions];

    fn label(self) -> &'static str {
        match self {
            Self::Registry => "client_registry",
            Self::Codes => "code_issuer",
            Self::Ledger => "token_ledger",
            Self::Sessions => "mcp_sessions",
        }
    }
}

/// An actor whose answers are timed when the services ask it something. Implemented by
/// each actor, next to its definition.
pub trait Metered {
    /// Which one it is.
    const KIND: ActorKind;
}

/// Grant types of issued tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Grant {
    /// A code exchange.
    AuthorizationCode,
    /// A refresh (rotation).
    RefreshToken,
    /// client_credentials.
    ClientCredentials,
}

impl Grant {
    const ALL: [Self; 3] = [
        Self::AuthorizationCode,
        Self::RefreshToken,
        Self::ClientCredentials,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
            Self::ClientCredentials => "client_credentials",
        }
    }
}

/// Outcomes of fetching a client ID metadata document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DocumentFetch {
    /// Fetched and valid.
    Accepted,
    /// Fetched, but not an acceptable document.
    Invalid,
    /// Not fetched: the host is, or resolves to, a non-public address.
    Blocked,
    /// The fetch failed (connection, timeout, status, redirect, size).
    Failed,
    /// Not fetched: every fetch slot was taken.
    Busy,
}

impl DocumentFetch {
    const ALL: [Self; 5] = [
        Self::Accepted,
        Self::Invalid,
        Self::Blocked,
        Self::Failed,
        Self::Busy,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Invalid => "invalid",
            Self::Blocked => "blocked",
            Self::Failed => "failed",
            Self::Busy => "busy",
        }
    }
}

/// Upper bounds of the latency buckets, in microseconds.
const BOUNDS_US: [u64; 14] = [
    25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
];

/// A latency histogram (cumulative buckets are computed when rendering).
#[derive(Debug, Default)]
struct Histogram {
    /// Observations per bucket, the last one for everything above the largest bound.
    buckets: [AtomicU64; BOUNDS_US.len() + 1],
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = BOUNDS_US
            .iter()
            .position(|b| us <= *b)
            .unwrap_or(BOUNDS_US.len());
        if let Some(b) = self.buckets.get(i) {
            b.fetch_add(1, Relaxed);
        }
        self.sum_us.fetch_add(us, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (bound, bucket) in BOUNDS_US.iter().zip(&self.buckets) {
            cumulative += bucket.load(Relaxed);
            let le = *bound as f64 / 1e6;
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let sum = self.sum_us.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// One counter family with a single label: its HELP and TYPE lines, then one sample per
/// label value.
fn counter_family<'a>(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    samples: impl Iterator<Item = (&'static str, &'a AtomicU64)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (value, count) in samples {
        let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {}", count.load(Relaxed));
    }
}

/// The counters of one server.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: [AtomicU64; Endpoint::ALL.len()],
    /// (endpoint, HTTP status, OAuth error code or "") → count.
    errors: Mutex<BTreeMap<(Endpoint, u16, &'static str), u64>>,
    tokens_issued: [AtomicU64; Grant::ALL.len()],
    tokens_revoked: AtomicU64,
    login_failures: AtomicU64,
    undecodable_revocations: AtomicU64,
    document_fetches: [AtomicU64; DocumentFetch::ALL.len()],
    actor_wait: [Histogram; ActorKind::ALL.len()],
    flush: Histogram,
}

impl Metrics {
    /// Counts a request to `endpoint`; `status` ≥ 400 also counts an error, labelled with
    /// the OAuth error code when there is one.
    pub fn request(&self, endpoint: Endpoint, status: u16, error: Option<&'static str>) {
        if let Some(c) = self.requests.get(endpoint as usize) {
            c.fetch_add(1, Relaxed);
        }
        if status >= 400 {
            let mut errors = self.errors.lock().unwrap_or_else(PoisonError::into_inner);
            *errors
                .entry((endpoint, status, error.unwrap_or("")))
                .or_insert(0) += 1;
        }
    }

    /// Counts tokens issued by one successful token request.
    pub fn tokens_issued(&self, grant: Grant, tokens: u64) {
        if let Some(c) = self.tokens_issued.get(grant as usize) {
            c.fetch_add(tokens, Relaxed);
        }
    }

    /// Counts a revocation request that was honoured.
    pub fn token_revoked(&self) {
        self.tokens_revoked.fetch_add(1, Relaxed);
    }

    /// Counts revocation records (revoked grants, possibly redeemed codes) that could not
    /// be decoded, each time a load or a sweep meets one: they are kept and refused, never
    /// dropped, and need an operator.
    pub fn undecodable_revocations(&self, records: usize) {
        let records = u64::try_from(records).unwrap_or(u64::MAX);
        self.undecodable_revocations.fetch_add(records, Relaxed);
    }

    /// Counts a failed password login.
    pub fn login_failed(&self) {
        self.login_failures.fetch_add(1, Relaxed);
    }

    /// Counts one client ID metadata document fetch attempt by its outcome.
    pub fn document_fetched(&self, outcome: DocumentFetch) {
        if let Some(c) = self.document_fetches.get(outcome as usize) {
            c.fetch_add(1, Relaxed);
        }
    }

    /// Records how long a request waited for an actor's answer.
    pub fn actor_wait(&self, actor: ActorKind, waited: Duration) {
        if let Some(h) = self.actor_wait.get(actor as usize) {
            h.observe(waited);
        }
    }

    /// Records the duration of one group-commit flush.
    pub fn flush(&self, took: Duration) {
        self.flush.observe(took);
    }

    /// The text exposition of every metric; `active_sessions` is read from the session
    /// actor by the caller.
    pub fn render(&self, active_sessions: usize) -> String {
        let mut out = String::with_capacity(8 * 1024);
        counter_family(
            &mut out,
            "oauth_mcp_http_requests_total",
            "Requests received, per endpoint.",
            "endpoint",
            Endpoint::ALL.iter().map(|e| e.label()).zip(&self.requests),
        );
        out.push_str(
            "# HELP oauth_mcp_http_errors_total Error responses, per endpoint, HTTP status and OAuth error code.\n\
             # TYPE oauth_mcp_http_errors_total counter\n",
        );
        let errors = self
            .errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for ((e, status, code), n) in errors {
            let _ = writeln!(
                out,
                "oauth_mcp_http_errors_total{{endpoint=\"{}\",status=\"{status}\",error=\"{code}\"}} {n}",
                e.label()
            );
        }
        counter_family(
            &mut out,
            "oauth_mcp_tokens_issued_total",
            "Access and refresh tokens issued, per grant type.",
            "grant_type",
            Grant::ALL
                .iter()
                .map(|g| g.label())
                .zip(&self.tokens_issued),
        );
        let _ = write!(
            out,
            "# HELP oauth_mcp_token_revocations_total Revocation requests honoured (RFC 7009).\n\
             # TYPE oauth_mcp_token_revocations_total counter\n\
             oauth_mcp_token_revocations_total {}\n\
             # HELP oauth_mcp_login_failures_total Failed password logins.\n\
             # TYPE oauth_mcp_login_failures_total counter\n\
             oauth_mcp_login_failures_total {}\n\
             # HELP oauth_mcp_mcp_sessions Live MCP sessions.\n\
             # TYPE oauth_mcp_mcp_sessions gauge\n\
             oauth_mcp_mcp_sessions {active_sessions}\n\
             # HELP oauth_mcp_undecodable_revocations_total Revocation records that could not be decoded, counted each time a load or sweep met one (kept and refused, never dropped).\n\
             # TYPE oauth_mcp_undecodable_revocations_total counter\n\
             oauth_mcp_undecodable_revocations_total {}\n",
            self.tokens_revoked.load(Relaxed),
            self.login_failures.load(Relaxed),
            self.undecodable_revocations.load(Relaxed),
        );
        counter_family(
            &mut out,
            "oauth_mcp_client_metadata_fetches_total",
            "Client ID metadata document fetches, per outcome (cache hits are not fetches).",
            "result",
            DocumentFetch::ALL
                .iter()
                .map(|o| o.label())
                .zip(&self.document_fetches),
        );
        out.push_str(
            "# HELP oauth_mcp_actor_wait_seconds Time from sending a message to an actor to its answer (mailbox wait and handling).\n\
             # TYPE oauth_mcp_actor_wait_seconds histogram\n",
        );
        for (a, h) in ActorKind::ALL.iter().zip(&self.actor_wait) {
            h.render(
                &mut out,
                "oauth_mcp_actor_wait_seconds",
                &format!("actor=\"{}\"", a.label()),
            );
        }
        out.push_str(
            "# HELP oauth_mcp_flush_seconds Duration of each group-commit flush (write and sync).\n\
             # TYPE oauth_mcp_flush_seconds histogram\n",
        );
        self.flush
            .render(&mut out, "oauth_mcp_flush_seconds", "db=\"sled\"");
        out
    }
}

/// The group-commit thread reports each flush here.
impl FlushObserver for Metrics {
    fn flushed(&self, took: Duration) {
        self.flush(took);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_errors_and_cumulative_buckets() {
        let m = Metrics::default();
        m.request(Endpoint::Token, 200, None);
        m.request(Endpoint::Token, 400, Some("invalid_grant"));
        m.request(Endpoint::Mcp, 401, Some("invalid_token"));
        m.tokens_issued(Grant::RefreshToken, 2);
        m.token_revoked();
        m.login_failed();
        m.actor_wait(ActorKind::Ledger, Duration::from_micros(30));
        m.actor_wait(ActorKind::Ledger, Duration::from_secs(5));
        m.flush(Duration::from_micros(300));
        m.document_fetched(DocumentFetch::Blocked);
        let text = m.render(3);
        for line in [
            "oauth_mcp_http_requests_total{endpoint=\"token\"} 2",
            "oauth_mcp_http_requests_total{endpoint=\"mcp\"} 1",
            "oauth_mcp_http_errors_total{endpoint=\"token\",status=\"400\",error=\"invalid_grant\"} 1",
            "oauth_mcp_http_errors_total{endpoint=\"mcp\",status=\"401\",error=\"invalid_token\"} 1",
            "oauth_mcp_tokens_issued_total{grant_type=\"refresh_token\"} 2",
            "oauth_mcp_client_metadata_fetches_total{result=\"blocked\"} 1",
            "oauth_mcp_client_metadata_fetches_total{result=\"accepted\"} 0",
            "oauth_mcp_token_revocations_total 1",
            "oauth_mcp_login_failures_total 1",
            "oauth_mcp_mcp_sessions 3",
            "oauth_mcp_actor_wait_seconds_bucket{actor=\"token_ledger\",le=\"0.000025\"} 0",
            "oauth_mcp_actor_wait_seconds_bucket{actor=\"token_ledger\",le=\"0.00005\"} 1",
            "oauth_mcp_actor_wait_seconds_bucket{actor=\"token_ledger\",le=\"1\"} 1",
            "oauth_mcp_actor_wait_seconds_bucket{actor=\"token_ledger\",le=\"+Inf\"} 2",
            "oauth_mcp_actor_wait_seconds_count{actor=\"token_ledger\"} 2",
            "oauth_mcp_flush_seconds_bucket{db=\"sled\",le=\"0.0005\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        // Every sample line is `name{labels} value` or `name value`, with a numeric value.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let value = l.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "bad sample {l:?}");
        }
    }
}
