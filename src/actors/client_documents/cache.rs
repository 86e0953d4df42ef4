//! The document cache of [`ClientDocuments`](super::ClientDocuments): the last good copy of
//! each document, the failures remembered, and the fetches in flight. A document's client is
//! never stored, only cached (a restart fetches it again), and never mixed with registered
//! clients. The draft (draft-ietf-oauth-client-id-metadata-document §4.4) lets the server
//! cache as it sees fit, and §4.3 lets error responses inform its policies: here the HTTP
//! cache headers set the freshness ([`cache_policy`](client_document::cache_policy)), a
//! transient failure lets the last good copy stand in for a bounded time, and a deliberate
//! answer (an invalid document, a refused status, a blocked address) ends it at once.

use std::{collections::HashMap, time::Duration};

use futures_util::future::{BoxFuture, Shared};

use crate::{
    domain::client::Client,
    oauth::client_document::{self, ClientDocumentError},
};

/// Most client metadata documents cached at once (and, separately, most failures
/// remembered); beyond this, unusable entries are dropped and, if none are, a new one is
/// not cached.
pub(super) const MAX_CACHED_DOCUMENTS: usize = 10_000;

/// How long a failed document fetch is remembered (answered again without fetching).
pub const DOCUMENT_FAILURE_TTL_SECS: i64 = 30;

/// What one fetch ends with: the validated client and how it may be cached (`None`:
/// `no-store`), or why there is none.
pub(super) type FetchOutcome =
    Result<(Client, Option<client_document::CachePolicy>), ClientDocumentError>;

/// A fetch in flight, shared by every request waiting for the same URL.
pub(super) type PendingDocument = Shared<BoxFuture<'static, FetchOutcome>>;

/// A document client and until when (Unix seconds) it is fresh, and usable as the last
/// good copy when a refetch fails.
#[derive(Debug, Clone)]
pub(super) struct CachedDocument {
    pub(super) client: Client,
    pub(super) fresh_until: i64,
    pub(super) stale_until: i64,
}

/// Clients described by metadata documents, by URL.
#[derive(Default)]
pub(super) struct DocumentCache {
    /// URL → the last good document.
    pub(super) fresh: HashMap<String, CachedDocument>,
    /// URL → the failure of its last fetch, and until when it is answered from here.
    pub(super) failures: HashMap<String, (ClientDocumentError, i64)>,
    /// URL → the fetch in flight.
    pub(super) in_flight: HashMap<String, PendingDocument>,
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

    /// Drops the copies too old to stand in for anything and the failures no longer
    /// remembered (the actor's timer); returns how many entries went.
    pub(super) fn prune(&mut self, now: i64) -> usize {
        let before = self.fresh.len() + self.failures.len();
        self.fresh.retain(|_, d| d.stale_until > now);
        self.failures.retain(|_, (_, until)| *until > now);
        before - (self.fresh.len() + self.failures.len())
    }

    /// Records the outcome of the fetch of `url` started at `now`.
    pub(super) fn record(&mut self, url: &str, result: &FetchOutcome, now: i64) {
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
    pub(super) fn stale(&self, url: &str, error: &ClientDocumentError, now: i64) -> Option<Client> {
        let transient = matches!(
            error,
            ClientDocumentError::Unavailable(_) | ClientDocumentError::Busy
        );
        let doc = self.fresh.get(url).filter(|d| d.stale_until > now)?;
        transient.then(|| doc.client.clone())
    }
}
