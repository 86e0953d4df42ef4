//! The change feed's SQL (issue 14: revocations, client and user changes made by one
//! instance, or by `oauth-mcp admin` through the stores, take effect on every instance):
//! [`publish`], which every intent that can deactivate a credential or change a principal
//! calls inside its own transaction, and [`ChangeListener`], the dedicated connection an
//! instance reads the feed on. What an instance does with a change (the token cache, the
//! client registry) is the actors' (`crate::actors::change_feed`); the design and its
//! staleness bound are in docs/storage.md, "The change feed".
//!
//! Why a numbered log and not `LISTEN/NOTIFY` alone: a notification is lost when the
//! listening connection is down, and nothing says so. The log is the truth and the
//! notification only a wake-up: a listener reads the rows numbered after the last one it
//! applied on every notification *and* on a short timer, so a lost notification delays a
//! change by one timer tick at most. Numbers come from the one row of `change_seq`, updated
//! in the writing transaction: its row lock, held until COMMIT, makes the numbers commit in
//! order and without gaps, so a reader that has seen number `n` has seen every change below
//! it (a `bigserial` hands numbers out at INSERT time, and a transaction with a smaller
//! number may commit after a reader has already passed it). The cost is that these
//! intents (all rare: revocations and administration) take turns on that row for the
//! rest of their transaction; issuance, rotation and redemption, the hot path, never touch
//! it.

use std::{sync::Arc, time::Duration};

use deadpool_postgres::GenericClient;
use futures_util::StreamExt as _;
use tokio::sync::{watch, Notify};
use tokio_postgres::AsyncMessage;

use crate::storage::StorageError;

/// The channel `publish` notifies and listeners `LISTEN` on.
pub const CHANNEL: &str = "oauth_mcp_changes";

/// The `application_name` of the listening connection (operators and tests find its
/// backend in `pg_stat_activity` by it).
pub const APPLICATION_NAME: &str = "oauth-mcp-change-feed";

/// How long changes are kept (the ledger's sweep trims older ones): far longer than any
/// listener that is up lags, so only one that was away finds a gap.
pub const KEEP: Duration = Duration::from_secs(600);

/// How long one statement of the listener may take before the connection is given up (and
/// the caches bypassed until a new one has caught up).
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(2);

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// A grant was revoked (directly, by refresh-token reuse, by revoking its refresh
    /// token, or by administration); the subject is its id in hex.
    Grant,
    /// An access token was revoked (its row removed); no subject.
    Token,
    /// A client was written or removed; the subject is its id.
    Client,
    /// A user was written or removed; the subject is the username.
    User,
}

impl ChangeKind {
    fn name(self) -> &'static str {
        match self {
            Self::Grant => "grant",
            Self::Token => "token",
            Self::Client => "client",
            Self::User => "user",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "grant" => Self::Grant,
            "token" => Self::Token,
            "client" => Self::Client,
            "user" => Self::User,
            _ => return None,
        })
    }
}

/// One row of the feed.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Its number: consecutive, in commit order.
    pub seq: i64,
    /// What changed; `None` for a kind this build does not know (a later build's): the
    /// reader must then treat everything as changed (fail closed).
    pub kind: Option<ChangeKind>,
    /// Which grant, client or user.
    pub subject: String,
    /// Milliseconds from the writing transaction's start to this read (the database's
    /// clock both times): how late the change is seen, for the log.
    pub delay_ms: f64,
}

/// Records a change inside the caller's transaction (call it last, just before COMMIT: the
/// counter's row lock is held from here to the end of the transaction) and notifies
/// [`CHANNEL`] (delivered at COMMIT, and not at all on rollback). One statement.
pub(super) async fn publish(
    c: &impl GenericClient,
    kind: ChangeKind,
    subject: &str,
) -> Result<i64, StorageError> {
    let stmt = c
        .prepare_cached(
            "WITH s AS (UPDATE change_seq SET seq = seq + 1 RETURNING seq), \
             i AS (INSERT INTO changes (seq, kind, subject) SELECT seq, $1, $2 FROM s RETURNING seq) \
             SELECT seq, pg_notify('oauth_mcp_changes', seq::text) FROM i",
        )
        .await?;
    let row = c.query_one(&stmt, &[&kind.name(), &subject]).await?;
    Ok(row.try_get(0)?)
}

/// The subject of a [`ChangeKind::Grant`] change.
pub(super) fn grant_subject(grant: &crate::storage::GrantId) -> String {
    grant.0.iter().map(|b| format!("{b:02x}")).collect()
}

/// Deletes at most `limit` changes older than `keep` (the ledger's sweep): a listener
/// that was away longer finds a gap and starts over from the stores (see
/// [`ChangeListener::read_after`]). Only a prefix of the numbers, those below the first
/// change younger than `keep`: `at` is when a change's transaction started, and numbers
/// follow commit order, so deleting by `at` alone could remove a number and keep an older
/// one, a gap a reader past the older one would not see.
pub(super) async fn trim(
    c: &impl GenericClient,
    keep: Duration,
    limit: i64,
) -> Result<u64, StorageError> {
    let secs = f64::from(u32::try_from(keep.as_secs()).unwrap_or(u32::MAX));
    Ok(c.execute(
        "DELETE FROM changes WHERE seq IN (SELECT seq FROM changes WHERE seq < \
             COALESCE((SELECT min(seq) FROM changes WHERE at >= now() - make_interval(secs => $1)), \
                      (SELECT seq + 1 FROM change_seq)) \
             ORDER BY seq LIMIT $2)",
        &[&secs, &limit],
    )
    .await?)
}

/// Why [`ChangeListener::wait`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// A notification arrived (one or more changes committed).
    Notified,
    /// The poll interval passed.
    Timer,
    /// The connection is gone: make a new one.
    Closed,
}

/// The dedicated connection an instance reads the feed on, outside the pool (a pooled
/// connection's `LISTEN` would follow it back into the pool), with `LISTEN` issued.
pub struct ChangeListener {
    client: tokio_postgres::Client,
    notified: Arc<Notify>,
    closed: watch::Receiver<bool>,
}

impl std::fmt::Debug for ChangeListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeListener").finish_non_exhaustive()
    }
}

/// A statement bounded by [`STATEMENT_TIMEOUT`].
async fn bounded<T>(
    f: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, StorageError> {
    match tokio::time::timeout(STATEMENT_TIMEOUT, f).await {
        Ok(out) => Ok(out?),
        Err(_) => Err(StorageError::Database(
            "the change feed's connection did not answer in time".into(),
        )),
    }
}

impl ChangeListener {
    /// Connects with `config` (named [`APPLICATION_NAME`]) and listens on [`CHANNEL`].
    pub(super) async fn connect(
        mut config: tokio_postgres::Config,
        tls: super::tls::MakeTls,
    ) -> Result<Self, StorageError> {
        config.application_name(APPLICATION_NAME);
        let (client, mut connection) = bounded(config.connect(tls)).await?;
        let notified = Arc::new(Notify::new());
        let (closed_tx, closed) = watch::channel(false);
        let wake = Arc::clone(&notified);
        // Polling the connection for its messages also drives it (the statements sent on
        // `client`); it ends when the server closes it or the client is dropped.
        tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(|cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(_)) => wake.notify_one(),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "change feed connection lost");
                        break;
                    }
                }
            }
            let _ = closed_tx.send(true);
        });
        let listener = Self {
            client,
            notified,
            closed,
        };
        bounded(listener.client.batch_execute("LISTEN oauth_mcp_changes")).await?;
        Ok(listener)
    }

    /// The number of the latest change committed.
    pub async fn head(&self) -> Result<i64, StorageError> {
        let row = bounded(self.client.query_one("SELECT seq FROM change_seq", &[])).await?;
        Ok(row.try_get(0)?)
    }

    /// The changes numbered after `last`, oldest first, at most `limit`. Numbers are
    /// consecutive: if the first is not `last + 1` (or there is none while
    /// [`head`](Self::head) is past `last`), the missing ones were trimmed and the reader
    /// must start over from the stores.
    pub async fn read_after(&self, last: i64, limit: i64) -> Result<Vec<Change>, StorageError> {
        let rows = bounded(self.client.query(
            "SELECT seq, kind, subject, \
             (extract(epoch FROM clock_timestamp() - at) * 1000)::float8 \
             FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2",
            &[&last, &limit],
        ))
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Change {
                    seq: row.try_get(0)?,
                    kind: ChangeKind::parse(row.try_get(1)?),
                    subject: row.try_get(2)?,
                    delay_ms: row.try_get(3)?,
                })
            })
            .collect()
    }

    /// Waits for a notification, `poll` to pass, or the connection to close, whichever
    /// comes first. A notification that arrived since the last call is not lost.
    pub async fn wait(&mut self, poll: Duration) -> Wake {
        if *self.closed.borrow() {
            return Wake::Closed;
        }
        tokio::select! {
            () = self.notified.notified() => Wake::Notified,
            () = tokio::time::sleep(poll) => Wake::Timer,
            _ = self.closed.changed() => Wake::Closed,
        }
    }

    /// Whether the connection is gone.
    pub fn is_closed(&self) -> bool {
        *self.closed.borrow() || self.client.is_closed()
    }
}
