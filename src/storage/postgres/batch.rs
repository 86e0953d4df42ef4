//! Group commit over the network (issue 14, "Durability"): the hot intents (issue tokens,
//! rotate a refresh token, issue a code, redeem a code) that arrive while a transaction is
//! in flight are collected and run together in the next one, with one `COMMIT` for all;
//! every requester is answered after that commit. This is the network counterpart of the
//! sled backend's flusher (`storage::group_commit`): there, callers that arrive during a
//! flush share the next flush; here, intents that arrive while a batch is in flight share
//! the next transaction.
//!
//! # Pipelined, not one savepoint after another
//! The intents of a batch run *concurrently* on its one connection, which pipelines their
//! statements (tokio-postgres sends every statement it is given without waiting for the
//! answers of earlier ones). The first version ran the intents one after another, each
//! under its own `SAVEPOINT` (so that a failure rolled back only itself): that serialised
//! them on the connection, and measured slower than no batching at all (BENCHMARKS.md,
//! "PostgreSQL"): on a busy machine every round trip waits for the scheduler, and a lane of
//! savepoints made 16 × 8 of them in a row. Savepoints cannot be pipelined (they nest in
//! the order they are sent, so interleaved intents would roll back each other's
//! statements).
//!
//! # Fewer statements, fewer round trips
//! What a batch costs is mostly its statements and round trips, not its rows: every
//! statement is a round of the protocol (PostgreSQL `send`s an answer at each `Sync`, and
//! each wakes us), and a round trip waits for two schedulers. So:
//! - the issues, and the rotations alone on their token, run as one set
//!   (`tokens::write_set`): one read of the presented tokens, one lock statement for the
//!   issues' grants, one write for everything, rather than two or three statements each;
//! - `BEGIN` is pipelined with the first statements ([`Open`]);
//! - when the batch is nothing but that set, its `COMMIT` goes out right behind the write,
//!   without waiting for the write's answer (a failed write aborts the transaction, and the
//!   `COMMIT` then rolls back); and its first rotations are written by a statement sent
//!   with their read, which decides by the rules' conditions itself
//!   (`tokens::write_set_fast`; a rotation with a rare step runs alone after the batch):
//!   whatever its size, such a batch is one round trip (with a rotation asking for a
//!   narrower scope, two: the read's answer decides what to write);
//! - plans are generic ([`GENERIC_PLANS`]).
//!
//! # What a batch must get right
//! - **One intent's failure is its own.** Any error aborts the shared transaction, so the
//!   batch is rolled back (nothing of it committed) and each of its intents is run again
//!   alone, in arrival order, after it ([`alone`]): the failing one fails by itself (a
//!   unique violation, say), the others succeed as they would have. Failures of the hot
//!   intents are rare (keys are random), so the fast path is the common one.
//! - **Nothing is answered before the commit.** Outcomes are held until `COMMIT` returned
//!   (and, when it was sent behind the write, until every intent's answer said that
//!   nothing failed before it);
//!   if it fails, or the connection is lost during it (outcome unknown), every intent of
//!   the batch answers an error and no credential leaves the server (never run again: the
//!   commit may have happened).
//! - **Intents on one row inside one transaction** must not run concurrently: both would
//!   read the row before either wrote it (the row lock is the transaction's own, so the
//!   second does not wait), and one refresh token would rotate twice. So intents on the
//!   same token or code (the same key: rotations of one presented token, redemptions of one
//!   code) form a *chain* run one after the other, in arrival order; different chains run
//!   concurrently. A later one sees the earlier one's writes, exactly as if that had
//!   committed first: a second rotation finds the token rotated (`Repeated` within the
//!   window, `Reused` past it), a second redemption finds the marker (`Replayed`).
//!   Intents on different tokens of one grant may interleave: a reuse revoking the grant
//!   and a rotation or issue in it commit together, which is the order "issue, then
//!   revoke" (the revocation covers every token of the grant).
//! - **No deadlock across batches.** A lone intent takes its locks in one order (a token's
//!   row, then its grant's lock), so lone intents never deadlock; a batch holds the locks of
//!   all its intents at once, in no particular order. So a batch runs under `SET LOCAL
//!   lock_timeout` ([`LOCK_TIMEOUT`], pipelined ahead of the intents' first statements):
//!   instead of waiting while holding locks, it fails (`55P03`), is rolled back, and its
//!   intents run alone (which wait safely, in a task of their own). Every transaction
//!   that waits without bound is then a lone intent, so no wait cycle can form, across
//!   lanes and across instances alike, and nobody waits for PostgreSQL's deadlock
//!   detector (a one-second stall).
//! - **A lane never waits long.** A batch of *one* intent runs under the same timeout
//!   (it could wait safely): a lane waiting for a lock would hold up every rotation and
//!   issue behind it, for as long as another transaction (of another instance, of
//!   `oauth-mcp admin`, a stuck one) kept that lock.
//!
//! # Lanes
//! `lanes` batches may be in flight at once (each on its own pooled connection); a free lane
//! takes everything queued, up to [`MAX_BATCH`] intents. With zero lanes there is no
//! batching: each intent is its own transaction on its own pooled connection, as before.
//! BENCHMARKS.md ("PostgreSQL") has the measurements behind the default ([`DEFAULT_LANES`],
//! overridden by the environment variable [`LANES_ENV`]).

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

/// How long a batch may wait for a lock before it is rolled back and its intents run
/// alone. Short: waits happen only when another transaction holds the same
/// token or grant, rare outside a client retrying one refresh token through several
/// instances.
pub const LOCK_TIMEOUT: &str = "20ms";

/// Plans of the batched statements are made once per connection and kept: their
/// parameters are keys and arrays of rows, whose values never change the best plan (index
/// lookups by primary key), but PostgreSQL's plan cache went on planning the set
/// statements afresh for every batch (arrays of another length look like another case to
/// it), about an eighth of PostgreSQL's time per rotation.
const GENERIC_PLANS: &str = "SET LOCAL plan_cache_mode = force_generic_plan";

/// Batches in flight at once when [`LANES_ENV`] does not say otherwise. One, since a batch
/// of issues and first rotations is one round trip: a single lane's batches are bigger
/// (fewer commits, less CPU per intent), which measured better than two for rotation and
/// client_credentials and the same for code exchange (BENCHMARKS.md, "One round trip per
/// batch"). Safe with one: a batch never waits long for a lock ("A lane never waits
/// long"), and the intents it leaves run alone outside the lane.
pub const DEFAULT_LANES: usize = 1;

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
    /// The token or code the intent reads and writes by key: intents with the same key must
    /// not run side by side in one transaction (module doc, "Intents on one row").
    fn key(&self) -> &TokenKey {
        match self {
            Self::Issue { access, .. } => &access.key,
            Self::Rotate(r) => &r.presented,
            Self::InsertCode { key, .. } | Self::Redeem { key, .. } => key,
        }
    }

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

/// What the lanes did so far (for tests and logs): committed batches, the intents they
/// answered, the intents run alone after their batch was rolled back, and the rotations
/// run alone after their batch committed without them (`tokens::Fast::Again`).
#[derive(Debug, Default)]
pub(super) struct Counts {
    pub(super) batches: AtomicU64,
    pub(super) intents: AtomicU64,
    pub(super) alone: AtomicU64,
    pub(super) again: AtomicU64,
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

    /// What the lanes did so far ([`Counts`]): batches, intents, alone, again.
    pub(super) fn counts(&self) -> (u64, u64, u64, u64) {
        let c = &self.counts;
        (
            c.batches.load(Ordering::Relaxed),
            c.intents.load(Ordering::Relaxed),
            c.alone.load(Ordering::Relaxed),
            c.again.load(Ordering::Relaxed),
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
/// runs it as one transaction, then, if it was rolled back, its intents alone, until the
/// queue closes.
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
        if moved.is_empty() {
            continue;
        }
        // Rolled back, or (rotations with a rare step) committed without them: each alone,
        // in arrival order (so that of two intents on one key the earlier runs first, as
        // in the batch), each its own transaction holding nothing else, so it may wait for
        // its locks without risk of a deadlock; in a task of their own, so that the lane
        // goes on with the next batch meanwhile.
        let pool = pool.clone();
        tokio::spawn(async move {
            for job in moved {
                let outcome = alone(&pool, &job.intent).await;
                job.answer(outcome);
            }
        });
    }
}

/// A batch's transaction, begun and ended by hand rather than with the driver's
/// `Transaction` (which waits for `BEGIN`'s answer before anything else is sent): here
/// `BEGIN` is pipelined with the intents' first statements, one round trip fewer per batch.
/// The connection goes back to the pool only after `COMMIT` or `ROLLBACK` succeeded; on
/// any other way out (an error, a dropped future) it is taken out of the pool and closed,
/// which makes PostgreSQL roll back whatever was open (never a connection handed to the
/// next user inside a transaction).
struct Open {
    client: Option<deadpool_postgres::Object>,
}

impl Open {
    fn client(&self) -> Result<&deadpool_postgres::Object, StorageError> {
        self.client.as_ref().ok_or(StorageError::Closed)
    }

    /// The transaction was ended by a statement sent with the last ones, answering
    /// `result`: the connection goes back to the pool if it succeeded.
    fn ended(
        mut self,
        result: Result<(), tokio_postgres::Error>,
    ) -> Result<(), tokio_postgres::Error> {
        if result.is_ok() {
            drop(self.client.take());
        }
        result
    }

    /// Ends the transaction with `sql` (`COMMIT` or `ROLLBACK`); the connection goes back
    /// to the pool only if that succeeded.
    async fn end(mut self, sql: &str) -> Result<(), tokio_postgres::Error> {
        if let Some(client) = &self.client {
            client.batch_execute(sql).await?;
        }
        // Ended: back to the pool (dropping the object returns it).
        drop(self.client.take());
        Ok(())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            // Not ended: closing the connection rolls back whatever it had open.
            drop(deadpool_postgres::Object::take(client));
        }
    }
}

/// Runs `jobs` in one transaction, intents on different keys concurrently (pipelined on the
/// connection), and answers them after the commit. Answers the jobs to run alone instead:
/// all of them when anything failed before the commit (nothing of the batch committed).
async fn batch(pool: &Pool, jobs: Vec<Job>, counts: &Counts) -> Vec<Job> {
    let open = match pool.get().await {
        Ok(c) => Open { client: Some(c) },
        Err(e) => return fail_all(jobs, &e.into()),
    };
    let Ok(client) = open.client() else {
        return fail_all(jobs, &StorageError::Closed);
    };
    // One simple query: `BEGIN`, generic plans and the lock timeout (module doc, "No
    // deadlock across batches", "A lane never waits long"). It is polled first, so it goes
    // out before the intents' first statements and the server runs it first. It cannot
    // fail while the connection works; if it did, the intents' answers are withheld
    // (below) and the connection is closed; what ran outside a transaction wrote at most
    // tokens or codes nobody is given (a rotation's write refuses to run outside the
    // transaction that locked its token: `tokens::WRITE_LIVE`).
    let begin = format!("BEGIN; {GENERIC_PLANS}; SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'");
    let (set, chains) = split(jobs);
    let mut rotations: Vec<&Rotation> = Vec::new();
    let mut issues: Vec<tokens::Issue<'_>> = Vec::new();
    for job in &set {
        match &job.intent {
            Intent::Rotate(r) => rotations.push(r),
            Intent::Issue { access, refresh } => issues.push((access, refresh.as_ref())),
            Intent::InsertCode { .. } | Intent::Redeem { .. } => {}
        }
    }
    // A batch of nothing but the set has its `COMMIT` pipelined behind the set's write
    // (`tokens::write_set`), when that is the last statement; and its rotations, unless
    // one asks for a narrower scope, are written with their read (`write_set_fast`).
    let commit_behind = chains.is_empty();
    let fast =
        commit_behind && !rotations.is_empty() && rotations.iter().all(|r| r.scopes.is_none());
    let begun = async {
        client
            .batch_execute(&begin)
            .await
            .map_err(StorageError::from)
    };
    let set_run = async {
        if set.is_empty() {
            return (Ok(tokens::FastOutcomes::default()), None);
        }
        if fast {
            let commit = client.batch_execute("COMMIT");
            return tokens::write_set_fast(client, &rotations, &issues, commit).await;
        }
        let commit = async {
            if commit_behind {
                Some(client.batch_execute("COMMIT").await)
            } else {
                None
            }
        };
        let (outcomes, committed) = tokens::write_set(client, &rotations, &issues, commit).await;
        let outcomes = outcomes.map(|o| tokens::FastOutcomes {
            rotated: o.rotated.into_iter().map(tokens::Fast::Done).collect(),
            issued: o.issued,
        });
        (outcomes, committed.flatten())
    };
    let intents = futures_util::future::join_all(chains.into_iter().map(|chain| async move {
        let mut out = Vec::with_capacity(chain.len());
        let mut failed = false;
        for job in chain {
            // After a failure the transaction is aborted: the rest of the chain is not run.
            let outcome = if failed {
                None
            } else {
                match job.intent.run(client).await {
                    Ok(o) => Some(o),
                    Err(e) => {
                        tracing::debug!(error = %e, "an intent failed; its batch runs alone");
                        failed = true;
                        None
                    }
                }
            };
            out.push((job, outcome));
        }
        out
    }));
    let (begun, (written, committed), ran) =
        futures_util::future::join3(begun, set_run, intents).await;
    let mut ran: Vec<(Job, Option<Outcome>)> = ran.into_iter().flatten().collect();
    // Rotations of the fast set that wrote nothing, to run alone once the batch committed,
    // and the ones to answer an error then.
    let (mut again, mut errors) = (Vec::new(), Vec::new());
    match written {
        Ok(outcomes) => {
            let (mut rotated, mut issued) =
                (outcomes.rotated.into_iter(), outcomes.issued.into_iter());
            for job in set {
                let outcome = match job.intent {
                    Intent::Rotate(_) => match rotated.next() {
                        Some(tokens::Fast::Done(o)) => Some(Outcome::Rotated(o)),
                        Some(tokens::Fast::Again) => {
                            again.push(job);
                            continue;
                        }
                        Some(tokens::Fast::Failed(e)) => {
                            errors.push((job, e));
                            continue;
                        }
                        None => None,
                    },
                    Intent::Issue { .. } => issued.next().map(Outcome::Issued),
                    Intent::InsertCode { .. } | Intent::Redeem { .. } => None,
                };
                ran.push((job, outcome));
            }
        }
        Err(e) => {
            tracing::debug!(error = %e, "the batch's set failed; its batch runs alone");
            ran.extend(set.into_iter().map(|job| (job, None)));
        }
    }
    // Every job, for when the batch as a whole failed or was rolled back.
    let everyone = |ran: Vec<(Job, Option<Outcome>)>, again: Vec<Job>, errors: Vec<(Job, _)>| {
        let ran = ran.into_iter().map(|(job, _)| job);
        let errors = errors.into_iter().map(|(job, _)| job);
        ran.chain(again).chain(errors).collect::<Vec<_>>()
    };
    if let Err(e) = begun {
        // Dropping `open` closes the connection: whatever ran is rolled back.
        return fail_all(everyone(ran, again, errors), &e);
    }
    let failed = ran.iter().any(|(_, o)| o.is_none());
    let committed = match committed {
        // Sent behind the last statement: after a failure (PostgreSQL's, which aborted
        // the transaction) it rolled back.
        Some(result) => open.ended(result),
        None if failed => {
            // Rolled back (or, if that fails, the connection closed).
            let _ = open.end("ROLLBACK").await;
            return rolled_back(everyone(ran, again, errors), counts);
        }
        None => open.end("COMMIT").await,
    };
    let failure = match committed {
        Ok(()) if failed => return rolled_back(everyone(ran, again, errors), counts),
        Ok(()) => {
            counts.batches.fetch_add(1, Ordering::Relaxed);
            counts.intents.fetch_add(
                u64::try_from(ran.len() + errors.len()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
            counts.again.fetch_add(
                u64::try_from(again.len()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
            for (job, outcome) in ran {
                if let Some(outcome) = outcome {
                    job.answer(Ok(outcome));
                }
            }
            for (job, e) in errors {
                tracing::error!(error = %e, "a rotation of the batch failed");
                job.answer(Err(e));
            }
            return again;
        }
        Err(e) => e,
    };
    // Failed or unknown (the connection lost during COMMIT): no credential of this batch
    // may be handed out, and none may run again (it may have committed).
    // A lost connection stays "unavailable" (503, try again), as for a lone intent.
    let e = match StorageError::from(failure) {
        StorageError::Unavailable(m) => {
            StorageError::Unavailable(format!("COMMIT failed, outcome unknown: {m}"))
        }
        other => StorageError::Database(format!("COMMIT failed, outcome unknown: {other}")),
    };
    let jobs = everyone(ran, again, errors);
    tracing::error!(error = %e, intents = jobs.len(), "batch not committed");
    for job in jobs {
        job.answer(Err(same(&e)));
    }
    Vec::new()
}

/// The jobs of a batch that was rolled back, counted, to run alone.
fn rolled_back(jobs: Vec<Job>, counts: &Counts) -> Vec<Job> {
    counts.alone.fetch_add(
        u64::try_from(jobs.len()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
    jobs
}

/// Splits a batch's jobs into the set of token intents alone on their key (issues, and
/// rotations of a token presented once in the batch), run together (`tokens::write_set`:
/// one read, one lock, one write for all), and chains of the other intents, each chain
/// the intents on one key in arrival order (module doc, "Intents on one row").
fn split(jobs: Vec<Job>) -> (Vec<Job>, Vec<Vec<Job>>) {
    let mut chains: Vec<Vec<Job>> = Vec::new();
    for job in jobs {
        match chains.iter_mut().find(|c| {
            c.first()
                .is_some_and(|f| f.intent.key() == job.intent.key())
        }) {
            Some(chain) => chain.push(job),
            None => chains.push(vec![job]),
        }
    }
    let (set, chains): (Vec<_>, Vec<_>) = chains
        .into_iter()
        .partition(|c| {
            matches!(c.as_slice(), [job] if matches!(job.intent, Intent::Rotate(_) | Intent::Issue { .. }))
        });
    (set.into_iter().flatten().collect(), chains)
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
/// Keeps the kind that decides the answer: unavailable (503) or closed stay so.
fn same(e: &StorageError) -> StorageError {
    match e {
        StorageError::Closed => StorageError::Closed,
        StorageError::Unavailable(m) => StorageError::Unavailable(m.clone()),
        other => StorageError::Database(other.to_string()),
    }
}
