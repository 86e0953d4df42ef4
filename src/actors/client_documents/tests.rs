//! Tests of the client documents actor: the cache's rules on plain values, and the actor
//! through `Addr::send` against local sockets (no HTTP server of ours).

use std::{net::TcpListener, time::Duration};

use super::{
    cache::{CachedDocument, DocumentCache, MAX_CACHED_DOCUMENTS},
    *,
};
use crate::{
    config::Config,
    domain::{client::ClientOrigin, clock::ManualClock},
    oauth::client_document::CachePolicy,
    storage::fixtures::client,
};

fn document_client(url: &str) -> Client {
    Client {
        used: true,
        ..client(url, ClientOrigin::Document)
    }
}

#[test]
fn the_document_cache_is_bounded_and_makes_room_from_expired_entries() {
    let client = document_client("https://app.example/c.json");
    let mut cache = DocumentCache::default();
    let doc = |until: i64| CachedDocument {
        client: client.clone(),
        fresh_until: until,
        stale_until: until,
    };
    for i in 0..MAX_CACHED_DOCUMENTS {
        // Half of them expire at 100, half at 1000.
        let expires = if i % 2 == 0 { 100 } else { 1_000 };
        cache.insert(format!("u{i}"), doc(expires), 0);
    }
    assert_eq!(cache.fresh.len(), MAX_CACHED_DOCUMENTS);
    // Full and nothing expired: used but not cached.
    cache.insert("late".into(), doc(1_000), 50);
    assert!(!cache.fresh.contains_key("late"));
    assert_eq!(cache.fresh.len(), MAX_CACHED_DOCUMENTS);
    // Once some have expired they make room.
    cache.insert("later".into(), doc(1_000), 200);
    assert!(cache.fresh.contains_key("later"));
    assert_eq!(cache.fresh.len(), MAX_CACHED_DOCUMENTS / 2 + 1);
}

#[test]
fn a_transient_failure_keeps_the_last_good_copy_and_a_deliberate_one_ends_it() {
    const URL: &str = "https://app.example/c.json";
    let policy = CachePolicy {
        fresh: Duration::from_secs(60),
        stale: Duration::from_secs(600),
    };
    let mut cache = DocumentCache::default();
    cache.record(URL, &Ok((document_client(URL), Some(policy))), 1_000);
    let unavailable = ClientDocumentError::Unavailable("status 503".into());

    // Past freshness, within the stale window: a transient failure is answered by the copy,
    // and remembered.
    cache.record(URL, &Err(unavailable.clone()), 1_100);
    assert!(cache.stale(URL, &unavailable, 1_100).is_some());
    assert!(cache
        .stale(URL, &ClientDocumentError::Busy, 1_100)
        .is_some());
    assert!(cache.failures.contains_key(URL));
    // Past the stale window the copy stands in no more, and the timer drops it.
    assert!(cache.stale(URL, &unavailable, 1_000 + 660).is_none());
    assert_eq!(cache.prune(1_000 + 660), 2, "the copy and the failure");
    assert!(cache.fresh.is_empty() && cache.failures.is_empty());

    // A deliberate answer ends the copy at once.
    cache.record(URL, &Ok((document_client(URL), Some(policy))), 2_000);
    let invalid = ClientDocumentError::Invalid("no redirect_uris".into());
    cache.record(URL, &Err(invalid.clone()), 2_100);
    assert!(!cache.fresh.contains_key(URL));
    assert!(cache.stale(URL, &unavailable, 2_100).is_none());

    // `no-store` keeps nothing, not even the previous copy.
    cache.record(URL, &Ok((document_client(URL), Some(policy))), 3_000);
    cache.record(URL, &Ok((document_client(URL), None)), 3_001);
    assert!(!cache.fresh.contains_key(URL));
    assert!(
        !cache.failures.contains_key(URL),
        "a success clears the failure"
    );
}

/// The `oauth_mcp_client_metadata_fetches_total` sample for `result`.
fn fetches(metrics: &Metrics, result: &str) -> u64 {
    let line = format!("oauth_mcp_client_metadata_fetches_total{{result=\"{result}\"}} ");
    metrics
        .render(0)
        .lines()
        .find_map(|l| l.strip_prefix(line.as_str()))
        .and_then(|n| n.parse().ok())
        .unwrap()
}

fn start(cfg: Config) -> (Addr<ClientDocuments>, Arc<ManualClock>, Arc<Metrics>) {
    let settings = Arc::new(cfg.settings(8000).unwrap());
    let clock = ManualClock::new(1_000);
    let metrics = Arc::new(Metrics::default());
    let actor = ClientDocuments::new(settings, clock.clone()).with_metrics(metrics.clone());
    (actor.start(), clock, metrics)
}

fn resolve(url: &str) -> ResolveClientDocument {
    ResolveClientDocument { url: url.into() }
}

#[actix::test]
async fn a_url_breaking_the_rules_is_refused_unfetched_and_a_blocked_host_is_remembered() {
    let mut cfg = Config::default();
    cfg.client_metadata_allow_http = true;
    let (addr, clock, metrics) = start(cfg);

    let answer = addr.send(resolve("http://127.0.0.1:9/")).await.unwrap();
    assert!(
        matches!(answer, Err(ClientDocumentError::Url(_))),
        "{answer:?}"
    );

    // Loopback, without `client_metadata_allow_private`: refused before connecting,
    // counted once, and answered from memory while the failure is remembered.
    const BLOCKED: &str = "http://127.0.0.1:9/client.json";
    for _ in 0..3 {
        let answer = addr.send(resolve(BLOCKED)).await.unwrap();
        assert!(
            matches!(answer, Err(ClientDocumentError::Blocked)),
            "{answer:?}"
        );
    }
    assert_eq!(fetches(&metrics, "blocked"), 1);
    clock.advance(Duration::from_secs(
        DOCUMENT_FAILURE_TTL_SECS.unsigned_abs(),
    ));
    let answer = addr.send(resolve(BLOCKED)).await.unwrap();
    assert!(
        matches!(answer, Err(ClientDocumentError::Blocked)),
        "{answer:?}"
    );
    assert_eq!(fetches(&metrics, "blocked"), 2, "forgotten, so tried again");
}

#[actix::test]
async fn waiters_share_one_fetch_and_the_actor_answers_others_meanwhile() {
    // A host that accepts connections (the kernel's backlog) and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/client.json", silent.local_addr().unwrap());
    let mut cfg = Config::default();
    cfg.client_metadata_allow_http = true;
    cfg.client_metadata_allow_private = true;
    cfg.client_metadata_timeout = Duration::from_millis(500);
    let (addr, _clock, metrics) = start(cfg);

    let first = addr.send(resolve(&url));
    let second = addr.send(resolve(&url));
    let waiting = futures_util::future::join(first, second);
    let mut waiting = std::pin::pin!(waiting);
    // While both wait for the silent host, another request is answered at once.
    tokio::select! {
        _ = &mut waiting => panic!("the silent host answered"),
        answer = addr.send(resolve("http://127.0.0.1:9/")) => {
            assert!(matches!(answer.unwrap(), Err(ClientDocumentError::Url(_))));
        }
    }
    let (first, second) = waiting.await;
    for answer in [first.unwrap(), second.unwrap()] {
        assert!(
            matches!(answer, Err(ClientDocumentError::Unavailable(_))),
            "{answer:?}"
        );
    }
    assert_eq!(fetches(&metrics, "failed"), 1, "one fetch for both waiters");
    drop(silent);
}
