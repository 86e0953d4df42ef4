//! The client documents actor: owns the clients named by client ID metadata documents
//! (MCP 2025-11-25 "Client ID Metadata Documents", draft-ietf-oauth-client-id-metadata-document),
//! their cache, the fetches in flight and the fetching itself (through [`crate::fetch`],
//! whose [`DocumentFetcher`] holds the global and per-host fetch limits). Nothing here is
//! stored: a restart fetches the documents again.
//!
//! An actor of its own, apart from the client registry, because its work is outbound HTTP
//! to hosts the client chooses: a slow or hostile document host must never hold up client
//! authentication, sign-in or registration, and the registry should not make network
//! requests at all. The fetch runs as a future spawned beside the actor, so this actor also
//! keeps answering cache hits while one is in flight; concurrent requests for one URL share
//! that single fetch.
//!
//! What is cached and for how long (`cache.rs`): a document for as long as its HTTP cache
//! headers allow; past its freshness the last good copy stands in for a bounded time when a
//! refetch fails for a transient reason or no fetch slot is free
//! ([`cache_policy`](client_document::cache_policy) says how long; a deliberate answer such
//! as an invalid document or a 410 ends it at once); a failed fetch is remembered for
//! [`DOCUMENT_FAILURE_TTL_SECS`] so that requests naming a broken document do not each
//! fetch it again (the draft's §4.4 lets the server cache as it sees fit and §4.3 lets
//! error responses inform its policies).
//!
//! Files: `mod.rs` (the actor, its one message and the fetch of one document), `cache.rs`
//! (the cache and its rules), `tests.rs` (actor-level tests).

use std::sync::Arc;

use actix::prelude::*;
use futures_util::future::FutureExt;

use super::Stop;
use crate::{
    config::Settings,
    domain::{client::Client, clock::Clock},
    fetch::DocumentFetcher,
    metrics::{DocumentFetch, Metrics},
    oauth::client_document::{self, ClientDocumentError},
};

mod cache;
#[cfg(test)]
mod tests;

pub use cache::DOCUMENT_FAILURE_TTL_SECS;

use cache::{DocumentCache, FetchOutcome};

/// The client a client ID metadata document URL describes: from the cache while the
/// document is fresh, otherwise fetched, validated and cached for as long as its HTTP cache
/// headers allow. Concurrent requests for one URL share a single fetch.
#[derive(Debug, Message)]
#[rtype(result = "Result<Client, ClientDocumentError>")]
pub struct ResolveClientDocument {
    /// The `client_id`, a URL.
    pub url: String,
}

/// The client documents actor.
///
/// Not [`Metered`](crate::metrics::Metered): its answers may wait for a remote server,
/// which the actor-wait histogram does not measure, so the endpoints ask it with their own
/// bound (the actor timeout plus the fetch timeout) rather than through `Services::ask`.
pub struct ClientDocuments {
    documents: DocumentCache,
    fetcher: Arc<DocumentFetcher>,
    settings: Arc<Settings>,
    clock: Arc<dyn Clock>,
    /// Where document fetches are counted, when the server keeps metrics.
    metrics: Option<Arc<Metrics>>,
}

impl ClientDocuments {
    /// An empty cache, fetching under the limits of `settings`.
    pub fn new(settings: Arc<Settings>, clock: Arc<dyn Clock>) -> Self {
        Self {
            documents: DocumentCache::default(),
            fetcher: Arc::new(
                DocumentFetcher::new(&settings.config)
                    .with_extra_roots(settings.client_metadata_roots.clone()),
            ),
            settings,
            clock,
            metrics: None,
        }
    }

    /// Counts document fetches by outcome in `metrics` (served at `GET /metrics`).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }
}

impl Actor for ClientDocuments {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.settings.config.mailbox_capacity);
        ctx.run_interval(self.settings.config.sweep_interval, |act, _| {
            act.documents.prune(act.clock.now());
        });
    }
}

impl Handler<Stop> for ClientDocuments {
    type Result = ();
    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// Fetches and validates one document (draft-ietf-oauth-client-id-metadata-document §4).
async fn fetch_document(
    fetcher: Arc<DocumentFetcher>,
    settings: Arc<Settings>,
    metrics: Option<Arc<Metrics>>,
    url: String,
    now: i64,
) -> FetchOutcome {
    let result = async {
        let parsed = client_document::document_url(&url, fetcher.allows_http())?;
        if !client_document::host_trusted(&parsed, &settings.config.client_metadata_trusted_hosts) {
            return Err(ClientDocumentError::Untrusted);
        }
        let fetched = fetcher.fetch(&parsed).await?;
        let client = client_document::parse_document(&url, &fetched.body, &settings, now)?;
        let cache_control: Vec<&str> = fetched.cache_control.iter().map(String::as_str).collect();
        let policy = client_document::cache_policy(
            &cache_control,
            fetched.expires.as_deref(),
            fetched.date.as_deref(),
            fetched.age.as_deref(),
            chrono::DateTime::from_timestamp(now, 0).unwrap_or_default(),
            settings.config.client_metadata_max_cache,
            settings.config.client_metadata_stale_if_error,
        );
        Ok((client, policy))
    }
    .await;
    let outcome = match &result {
        Ok(_) => Some(DocumentFetch::Accepted),
        Err(ClientDocumentError::Invalid(_)) => Some(DocumentFetch::Invalid),
        Err(ClientDocumentError::Blocked) => Some(DocumentFetch::Blocked),
        Err(ClientDocumentError::Fetch(_) | ClientDocumentError::Unavailable(_)) => {
            Some(DocumentFetch::Failed)
        }
        Err(ClientDocumentError::Busy) => Some(DocumentFetch::Busy),
        // A URL that breaks the rules is never fetched.
        Err(ClientDocumentError::Url(_) | ClientDocumentError::Untrusted) => None,
    };
    if let (Some(metrics), Some(outcome)) = (&metrics, outcome) {
        metrics.document_fetched(outcome);
    }
    match &result {
        // `?url`: the client_id is whatever the request said, so it is logged escaped.
        Ok((_, policy)) => tracing::debug!(
            client_id = ?url,
            cached_for_secs = policy.map_or(0, |p| p.fresh.as_secs()),
            "client metadata document fetched"
        ),
        Err(e) => tracing::info!(client_id = ?url, error = %e, "client metadata document refused"),
    }
    result
}

impl Handler<ResolveClientDocument> for ClientDocuments {
    type Result = ResponseActFuture<Self, Result<Client, ClientDocumentError>>;
    fn handle(&mut self, msg: ResolveClientDocument, _: &mut Self::Context) -> Self::Result {
        let now = self.clock.now();
        let url = msg.url;
        if let Some(doc) = self.documents.fresh.get(&url) {
            if doc.fresh_until > now {
                return Box::pin(fut::ready(Ok(doc.client.clone())));
            }
        }
        // A recent failure is answered without fetching again, by the last good copy when
        // it may stand in.
        if let Some((error, until)) = self.documents.failures.get(&url) {
            if *until > now {
                let answer = self.documents.stale(&url, error, now).ok_or(error.clone());
                return Box::pin(fut::ready(answer));
            }
        }
        let pending = match self.documents.in_flight.get(&url) {
            Some(p) => p.clone(),
            None => {
                let p = fetch_document(
                    self.fetcher.clone(),
                    self.settings.clone(),
                    self.metrics.clone(),
                    url.clone(),
                    now,
                )
                .boxed()
                .shared();
                self.documents.in_flight.insert(url.clone(), p.clone());
                p
            }
        };
        let this = pending.clone();
        // The fetch runs beside the actor (a spawned actor future), so the actor keeps
        // answering other messages meanwhile; only the first waiter to finish records the
        // outcome, and every waiter may be answered by the last good copy.
        Box::pin(pending.into_actor(self).map(move |result, act, _| {
            let first = act
                .documents
                .in_flight
                .get(&url)
                .is_some_and(|p| p.ptr_eq(&this));
            if first {
                act.documents.in_flight.remove(&url);
                act.documents.record(&url, &result, now);
            }
            match result {
                Ok((client, _)) => Ok(client),
                Err(e) => match act.documents.stale(&url, &e, now) {
                    Some(client) => {
                        if first {
                            // Once per failed fetch, not per request served meanwhile.
                            tracing::warn!(
                                client_id = ?url,
                                error = %e,
                                "client metadata document not refetched, its last good copy is used"
                            );
                        }
                        Ok(client)
                    }
                    None => Err(e),
                },
            }
        }))
    }
}
