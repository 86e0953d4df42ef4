//! Group commit over the network (issue 14, "Durability"): the hot intents (issue tokens,
//! rotate a refresh token, issue a code, redeem a code) that arrive while a transaction is
//! in flight are collected and run together in the next one, each under its own
//! `SAVEPOINT`, with one `COMMIT` for all; every requester is answered after that commit.
//! This is the network counterpart of the sled backend's flusher (`storage::group_commit`):
//! there, callers that arrive during a flush share the next flush; here, intents that
//! arrive while a batch is in flight share the next transaction.
//!
//! # What a batch must get right
//! - **One intent's failure is its own.** Each intent runs after `SAVEPOINT intent` (one
//!   round trip together with the `RELEASE` of the previous one); a failing statement (a
//!   unique violation, a deadlock victim) is followed by `ROLLBACK TO SAVEPOINT intent`, so
//!   only its writes are undone and the batch goes on.
//! - **Nothing is answered before the commit.** Outcomes are held until `COMMIT` returned;
//!   if it fails, or the connection is lost during it (outcome unknown), every intent of
//!   the batch answers an error and no credential leaves the server. An intent that failed
//!   answers its error at once: its writes were rolled back and will never commit.
//! - **Intents on one row inside one transaction** see each other's writes, exactly as if
//!   the earlier one had committed first: a second rotation of one refresh token finds it
//!   rotated (and answers `Repeated`, or `Reused` past the window), a second redemption of
//!   one code finds the marker (`Replayed`). The row lock the first took is the
//!   transaction's, so the second does not wait on it.
//! - **No deadlock across batches.** A lone intent takes its locks in one order (a token's
//!   row, then its grant's lock), so lone intents never deadlock; a batch holds the locks of
//!   its earlier intents while a later one takes its own, which breaks that order (a
//!   revocation holding token B and waiting for grant G, while a batch holds G for token A
//!   and waits for B). So only the first intent of a batch, which holds nothing yet, may
//!   wait for a lock as long as it takes; every later one runs under `SET LOCAL
//!   lock_timeout` ([`LATER_LOCK_TIMEOUT`]): instead of waiting while holding locks, it is
//!   rolled back to its savepoint (`55P03`, or a `40P01`/`40001` lost race) and run again
//!   after the batch committed, alone, as a lone intent (which waits safely). Every
//!   waiting transaction then either holds nothing or is a lone intent, so no cycle can
//!   form, across lanes and across instances alike: nobody waits for PostgreSQL's deadlock
//!   detector (a one-second stall).
//!
//! # Lanes
//! `lanes` batches may be in flight at once (each on its own pooled connection); a free lane
//! takes everything queued, up to [`MAX_BATCH`] intents. With zero lanes there is no
//! batching: each intent is its own transaction on its own pooled connection, as before.
//! Which is faster depends on how much PostgreSQL already groups the WAL flushes of
//! concurrent commits; BENCHMARKS.md ("PostgreSQL") has the measurements behind the default
//! ([`DEFAULT_LANES`], overridden by the environment variable [`LANES_ENV`]).

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};

use deadpool_postgres::{GenericClient, Pool};
use tokio::sync::{mpsc, oneshot, Mutex};

use super::{codes, tokens};
use crate::{
    domain::secrets::TokenKey,
    storage::{
        CodeRecord, IssueOutcome, NewToken, Redemption, RotateOutcome, Rotation, StorageError,
    },
};

/// At most this many intents share one transaction (a bound on the time the first of them
/// waits for the last).
pub const MAX_BATCH: usize = 64;

/// How long an intent after the first of a batch may wait for a lock before it is moved
/// out of the batch (rolled back to its savepoint and run alone after the commit). Short:
/// waits happen only when another transaction holds the same token or grant, rare outside
/// a client retrying one refresh token through several instances.
pub const LATER_LOCK_TIMEOUT: &str = "20ms";

/// Batches in flight at once when [`LANES_ENV`] does not say otherwise.
pub const DEFAULT_LANES: usize = 2;

/// The environment variable that sets the number of lanes (`0`: no batching).
pub const LANES_ENV: &str = "OAUTH_MCP_PG_BATCH_LANES";

/// The lanes the environment asks for, else [`DEFAULT_LANES`]; a value that is not a number
/// is refused (fail at start, not at the first request).
pub fn lanes_from_env() -> Result<usize, StorageError> {
    match std::env::var(LANES_ENV) {
        Err(_) => Ok(DEFAULT_LANES),
        Ok(v) => v.trim().parse().map_err(|_| {
            StorageError::Database(format!("{LANES_ENV}={v:?} is not a number of lanes"))
        }),
    }
}

/// One hot intent with its arguments, kept so that it can run again after a deadlock.
pub(super) enum Intent {
    Issue {
        access: NewToken,
        refresh: Option<NewToken>,
    },
    Rotate(Rotation),
    InsertCode {
        key: TokenKey,
        record: CodeRecord,
    },
    Redeem {
        key: TokenKey,
        client_id: String,
        now: i64,
        forget_at: i64,
    },
}

/// An intent's answer, to be released once its transaction committed.
pub(super) enum Outcome {
    Issued(IssueOutcome),
    Rotated(RotateOutcome),
    CodeInserted,
    Redeemed(Redemption),
}

impl Intent {
    /// Runs the intent's statements on `c` (a transaction, at a savepoint in a batch).
    async fn run(&self, c: &impl GenericClient) -> Result<Outcome, StorageError> {
        Ok(match self {
            Self::Issue { access, refresh } => {
                Outcome::Issued(tokens::issue_in(c, access, refresh.as_ref()).await?)
            }
            Self::Rotate(r) => Outcome::Rotated(tokens::rotate_in(c, r).await?),
            Self::InsertCode { key, record } => {
                codes::insert_in(c, key, record).await?;
                Outcome::CodeInserted
            }
            Self::Redeem {
                key,
                client_id,
                now,
                forget_at,
            } => Outcome::Redeemed(codes::redeem_in(c, key, client_id, *now, *forget_at).await?),
        })
    }
}

struct Job {
    intent: Intent,
    reply: oneshot::Sender<Result<Outcome, StorageError>>,
}

impl Job {
    fn answer(self, result: Result<Outcome, StorageError>) {
        // A requester that gave up no longer listens; its intent's writes stand or fall
        // with the batch like the others'.
        let _ = self.reply.send(result);
    }
}

/// Runs the hot intents of one pool: batched over `lanes` transactions in flight, or one
/// transaction each (no lanes). Cloning shares the lanes.
#[derive(Clone, Debug)]
pub(super) struct Batcher {
    pool: Pool,
    queue: Option<mpsc::UnboundedSender<Job>>,
    counts: Arc<Counts>,
}

/// What the lanes did so far (for tests and logs): committed batches, and the intents they
/// answered.
#[derive(Debug, Default)]
pub(super) struct Counts {
    pub(super) batches: AtomicU64,
    pub(super) intents: AtomicU64,
}

impl Batcher {
    /// Starts `lanes` batch runners on the current tokio runtime (none: no batching). They
    /// stop when every clone of the batcher is dropped, or fail every intent once the pool
    /// is closed.
    pub(super) fn start(pool: Pool, lanes: usize) -> Self {
        let counts = Arc::new(Counts::default());
        if lanes == 0 {
            return Self {
                pool,
                queue: None,
                counts,
            };
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..lanes {
            tokio::spawn(lane(pool.clone(), Arc::clone(&rx), Arc::clone(&counts)));
        }
        Self {
            pool,
            queue: Some(tx),
            counts,
        }
    }

    /// Committed batches and the intents in them, so far.
    pub(super) fn counts(&self) -> (u64, u64) {
        (
            self.counts.batches.load(Ordering::Relaxed),
            self.counts.intents.load(Ordering::Relaxed),
        )
    }

    /// Runs `intent` and answers its outcome once it committed.
    async fn run(&self, intent: Intent) -> Result<Outcome, StorageError> {
        let Some(queue) = &self.queue else {
            return alone(&self.pool, &intent).await;
        };
        let (reply, answer) = oneshot::channel();
        let job = Job { intent, reply };
        queue.send(job).map_err(|_| StorageError::Closed)?;
        answer.await.map_err(|_| StorageError::Closed)?
    }

    pub(super) async fn issue(
        &self,
        access: NewToken,
        refresh: Option<NewToken>,
    ) -> Result<IssueOutcome, StorageError> {
        match self.run(Intent::Issue { access, refresh }).await? {
            Outcome::Issued(o) => Ok(o),
            _ => Err(mismatch()),
        }
    }

    pub(super) async fn rotate(&self, rotation: Rotation) -> Result<RotateOutcome, StorageError> {
        match self.run(Intent::Rotate(rotation)).await? {
            Outcome::Rotated(o) => Ok(o),
            _ => Err(mismatch()),
        }
    }

    pub(super) async fn insert_code(
        &self,
        key: TokenKey,
        record: CodeRecord,
    ) -> Result<(), StorageError> {
        match self.run(Intent::InsertCode { key, record }).await? {
            Outcome::CodeInserted => Ok(()),
            _ => Err(mismatch()),
        }
    }

    pub(super) async fn redeem(
        &self,
        key: TokenKey,
        client_id: String,
        now: i64,
        forget_at: i64,
    ) -> Result<Redemption, StorageError> {
        let intent = Intent::Redeem {
            key,
            client_id,
            now,
            forget_at,
        };
        match self.run(intent).await? {
            Outcome::Redeemed(o) => Ok(o),
            _ => Err(mismatch()),
        }
    }
}

/// An outcome of another intent than the one sent: cannot happen (each job is answered
/// with its own intent's outcome); an error rather than a panic all the same.
fn mismatch() -> StorageError {
    StorageError::Database("batch answered another intent's outcome".into())
}

/// One intent in a transaction of its own (no batching).
async fn alone(pool: &Pool, intent: &Intent) -> Result<Outcome, StorageError> {
    let mut client = pool.get().await?;
    if let Intent::InsertCode { .. } = intent {
        // One statement: its own transaction already.
        return intent.run(&client).await;
    }
    let tx = client.transaction().await?;
    let outcome = intent.run(&tx).await?;
    tx.commit().await?;
    Ok(outcome)
}

/// One batch runner: takes everything queued (at least one intent, at most [`MAX_BATCH`]),
/// runs it as one transaction, then the intents moved out of it alone, until the queue
/// closes.
async fn lane(pool: Pool, queue: Arc<Mutex<mpsc::UnboundedReceiver<Job>>>, counts: Arc<Counts>) {
    loop {
        let jobs = {
            let mut rx = queue.lock().await;
            let Some(first) = rx.recv().await else {
                return;
            };
            let mut jobs = Vec::with_capacity(MAX_BATCH);
            jobs.push(first);
            while jobs.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            jobs
        };
        let moved = batch(&pool, jobs, &counts).await;
        // Lone intents (each its own transaction, holding nothing else): they may wait for
        // their locks without risk of a deadlock, side by side.
        futures_util::future::join_all(moved.into_iter().map(|job| {
            let pool = &pool;
            async move {
                let outcome = alone(pool, &job.intent).await;
                job.answer(outcome);
            }
        }))
        .await;
    }
}

/// Whether a failed statement waited too long for a lock (`55P03`, [`LATER_LOCK_TIMEOUT`])
/// or lost a race (deadlock victim `40P01`, serialization failure `40001`), and may
/// succeed when run alone. The SQLSTATE leads the message (`From<tokio_postgres::Error>
/// for StorageError`).
fn lost_a_race(e: &StorageError) -> bool {
    matches!(e, StorageError::Database(m)
        if m.starts_with("55P03:") || m.starts_with("40P01:") || m.starts_with("40001:"))
}

/// Runs `jobs` in one transaction and answers them; returns those moved out of it (they
/// waited for a lock, see the module doc), to be run alone.
async fn batch(pool: &Pool, jobs: Vec<Job>, counts: &Counts) -> Vec<Job> {
    let mut client = match pool.get().await {
        Ok(c) => c,
        Err(e) => return fail_all(jobs, &e.into()),
    };
    let tx = match client.transaction().await {
        Ok(tx) => tx,
        Err(e) => return fail_all(jobs, &e.into()),
    };
    let mut done: Vec<(Job, Outcome)> = Vec::with_capacity(jobs.len());
    let mut again = Vec::new();
    let mut jobs = jobs.into_iter();
    let mut ran = 0usize;
    while let Some(job) = jobs.next() {
        // One round trip: keep the previous intent's writes, open this one's savepoint;
        // from the second intent on, waits for locks are bounded (module doc).
        let open = match ran {
            0 => "SAVEPOINT intent".to_owned(),
            1 => format!(
                "RELEASE SAVEPOINT intent; SET LOCAL lock_timeout = '{LATER_LOCK_TIMEOUT}'; \
                 SAVEPOINT intent"
            ),
            _ => "RELEASE SAVEPOINT intent; SAVEPOINT intent".to_owned(),
        };
        ran += 1;
        if let Err(e) = tx.batch_execute(&open).await {
            // The transaction is lost (the connection, most likely): nothing commits.
            let e = StorageError::from(e);
            let rest = std::iter::once(job).chain(jobs).chain(again);
            return fail_all(done.into_iter().map(|(j, _)| j).chain(rest).collect(), &e);
        }
        match job.intent.run(&tx).await {
            Ok(outcome) => done.push((job, outcome)),
            Err(e) => {
                if let Err(lost) = tx.batch_execute("ROLLBACK TO SAVEPOINT intent").await {
                    let lost = StorageError::from(lost);
                    job.answer(Err(e));
                    let rest = jobs.chain(again);
                    return fail_all(
                        done.into_iter().map(|(j, _)| j).chain(rest).collect(),
                        &lost,
                    );
                }
                if lost_a_race(&e) {
                    again.push(job);
                } else {
                    job.answer(Err(e));
                }
            }
        }
    }
    match tx.commit().await {
        Ok(()) => {
            counts.batches.fetch_add(1, Ordering::Relaxed);
            counts.intents.fetch_add(
                u64::try_from(done.len()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
            for (job, outcome) in done {
                job.answer(Ok(outcome));
            }
        }
        Err(e) => {
            // Failed or unknown (the connection lost during COMMIT): no credential of this
            // batch may be handed out.
            let e = StorageError::Database(format!(
                "COMMIT failed, outcome unknown: {}",
                StorageError::from(e)
            ));
            tracing::error!(error = %e, intents = done.len(), "batch not committed");
            for (job, _) in done {
                job.answer(Err(same(&e)));
            }
        }
    }
    again
}

/// Answers every job `e` (nothing of theirs committed); nothing is left to run again.
fn fail_all(jobs: Vec<Job>, e: &StorageError) -> Vec<Job> {
    tracing::error!(error = %e, intents = jobs.len(), "batch failed");
    for job in jobs {
        job.answer(Err(same(e)));
    }
    Vec::new()
}

/// `e` again, for another requester (`StorageError` is not `Clone`: it is kept small).
fn same(e: &StorageError) -> StorageError {
    match e {
        StorageError::Closed => StorageError::Closed,
        other => StorageError::Database(other.to_string()),
    }
}
