//! Clients named by client ID metadata documents (MCP 2025-11-25,
//! draft-ietf-oauth-client-id-metadata-document): never stored, cached in memory for as
//! long as each document's HTTP cache headers allow, fetched through [`crate::fetch`] by a
//! future spawned beside the actor, with the last good copy standing in for a bounded time
//! and failures remembered for [`DOCUMENT_FAILURE_TTL_SECS`] (the draft's §4.3 and §4.4).

use std::{collections::HashMap, sync::Arc, time::Duration};

use actix::prelude::*;
use futures_util::future::{BoxFuture, FutureExt, Shared};

use super::ClientRegistry;
use crate::{
    config::Settings,
    domain::client::Client,
    fetch::DocumentFetcher,
    metrics::{DocumentFetch, Metrics},
    oauth::client_document::{self, ClientDocumentError},
};

/// The client a client ID metadata document URL describes: from the registry's cache while
/// the document is fresh, otherwise fetched, validated and cached for as long as its HTTP
/// cache headers allow. Concurrent requests for one URL share a single fetch.
#[derive(Debug, Message)]
#[rtype(result = "Result<Client, ClientDocumentError>")]
pub struct ResolveClientDocument {
    /// The `client_id`, a URL.
    pub url: String,
}

/// Most client metadata documents cached at once (and, separately, most failures
/// remembered); beyond this, unusable entries are dropped and, if none are, a new one is
/// not cached.
pub(super) const MAX_CACHED_DOCUMENTS: usize = 10_000;

/// How long a failed document fetch is remembered (answered again without fetching).
pub const DOCUMENT_FAILURE_TTL_SECS: i64 = 30;

/// A fetch in flight: the validated client and how it may be cached (`None`: `no-store`).
type PendingDocument = Shared<
    BoxFuture<'static, Result<(Client, Option<client_document::CachePolicy>), ClientDocumentError>>,
>;

/// A document client and until when (Unix seconds) it is fresh, and usable as the last
/// good copy when a refetch fails.
#[derive(Debug, Clone)]
pub(super) struct CachedDocument {
    pub(super) client: Client,
    pub(super) fresh_until: i64,
    pub(super) stale_until: i64,
}

/// Clients described by metadata documents: not stored, only cached (a restart fetches
/// them again), and never mixed with registered clients.
#[derive(Default)]
pub(super) struct DocumentCache {
    /// URL → the last good document.
    pub(super) fresh: HashMap<String, CachedDocument>,
    /// URL → the failure of its last fetch, and until when it is answered from here.
    pub(super) failures: HashMap<String, (ClientDocumentError, i64)>,
    in_flight: HashMap<String, PendingDocument>,
}

impl DocumentCache {
    pub(super) fn insert(&mut self, url: String, doc: CachedDocument, now: i64) {
        if self.fresh.len() >= MAX_CACHED_DOCUMENTS {
            self.fresh.retain(|_, d| d.stale_until > now);
        }
        if self.fresh.len() < MAX_CACHED_DOCUMENTS {
            self.fresh.insert(url, doc);
        }
    }

    fn remember_failure(&mut self, url: String, error: ClientDocumentError, now: i64) {
        if self.failures.len() >= MAX_CACHED_DOCUMENTS {
            self.failures.retain(|_, (_, until)| *until > now);
        }
        if self.failures.len() < MAX_CACHED_DOCUMENTS {
            let until = now.saturating_add(DOCUMENT_FAILURE_TTL_SECS);
            self.failures.insert(url, (error, until));
        }
    }

    /// Records the outcome of the fetch of `url` started at `now`.
    fn record(
        &mut self,
        url: &str,
        result: &Result<(Client, Option<client_document::CachePolicy>), ClientDocumentError>,
        now: i64,
    ) {
        match result {
            Ok((client, policy)) => {
                self.failures.remove(url);
                let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                match policy {
                    Some(p) if !(p.fresh.is_zero() && p.stale.is_zero()) => {
                        let fresh_until = now.saturating_add(secs(p.fresh));
                        let doc = CachedDocument {
                            client: client.clone(),
                            fresh_until,
                            stale_until: fresh_until.saturating_add(secs(p.stale)),
                        };
                        self.insert(url.to_owned(), doc, now);
                    }
                    // `no-store`, or nothing to keep: not even the previous copy is kept.
                    _ => {
                        self.fresh.remove(url);
                    }
                }
            }
            // Our own limits, not the document's fault: nothing to remember.
            Err(ClientDocumentError::Busy) => {}
            // The URL is checked before any fetch, and that is cheap: not remembered.
            Err(ClientDocumentError::Url(_) | ClientDocumentError::Untrusted) => {}
            // The host may recover: remember the failure, keep the last good copy.
            Err(e @ ClientDocumentError::Unavailable(_)) => {
                self.remember_failure(url.to_owned(), e.clone(), now);
            }
            // A deliberate answer (invalid document, refused status, blocked address): the
            // last good copy is no longer the client's word.
            Err(e) => {
                self.fresh.remove(url);
                self.remember_failure(url.to_owned(), e.clone(), now);
            }
        }
    }

    /// The last good copy of `url`, if it may stand in for a fetch that failed with
    /// `error` at `now`.
    fn stale(&self, url: &str, error: &ClientDocumentError, now: i64) -> Option<Client> {
        let transient = matches!(
            error,
            ClientDocumentError::Unavailable(_) | ClientDocumentError::Busy
        );
        let doc = self.fresh.get(url).filter(|d| d.stale_until > now)?;
        transient.then(|| doc.client.clone())
    }
}

/// Fetches and validates one document (draft-ietf-oauth-client-id-metadata-document §4).
async fn fetch_document(
    fetcher: Arc<DocumentFetcher>,
    settings: Arc<Settings>,
    metrics: Option<Arc<Metrics>>,
    url: String,
    now: i64,
) -> Result<(Client, Option<client_document::CachePolicy>), ClientDocumentError> {
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

impl Handler<ResolveClientDocument> for ClientRegistry {
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
        // The fetch runs beside the actor (a spawned actor future), so the registry keeps
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
