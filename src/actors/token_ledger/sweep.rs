//! The bounded incremental sweep: expired tokens, forgotten revocations and outlived
//! lifetime records, one slice per `sweep_interval`.

use actix::prelude::*;

use super::{reply_after, Sweep, TokenLedger};
use crate::storage::{StorageError, StoreFuture, Swept};

/// Records examined per tree and sweep tick (one tick per `sweep_interval`, default a
/// minute): a million live tokens are covered in ten minutes, for a few tens of
/// milliseconds of work per tick. Scanning more often kept cold pages flowing through
/// sled's small cache and slowed every request down.
const SWEEP_BATCH: usize = 100_000;

/// What one sweep tick's store work answers: every recorded lifetime, and the slice swept.
pub(super) type SweepAnswer = (Vec<(i64, i64)>, Swept);

impl TokenLedger {
    /// Starts one bounded slice per tree (see `SWEEP_BATCH`), after renewing this ledger's
    /// lifetime record; [`Self::swept`] applies the answer.
    pub(super) fn sweep(&mut self) -> StoreFuture<SweepAnswer> {
        let lifetimes = self.record_lifetime();
        let swept = self.store.sweep(self.clock.now(), SWEEP_BATCH);
        Box::pin(async move { Ok((lifetimes.await?, swept.await?)) })
    }

    /// Applies a sweep's answer: the in-memory set loses exactly the grants the store
    /// forgot, so pruning it is bounded too (a grant past its forget time but not yet
    /// reached only stays refused a little longer). A grant revoked again while the sweep
    /// ran (its time now in the future) is kept.
    pub(super) fn swept(
        &mut self,
        answer: Result<SweepAnswer, StorageError>,
    ) -> Result<usize, StorageError> {
        let (lifetimes, swept) = answer?;
        self.set_horizon(&lifetimes);
        let now = self.clock.now();
        for grant in &swept.forgotten_grants {
            if self.revoked.get(grant).is_some_and(|f| *f <= now) {
                self.revoked.remove(grant);
            }
        }
        // Fail closed: a revocation whose end cannot be read never ends.
        for grant in swept.undecodable_grants {
            self.revoked.insert(grant, i64::MAX);
            self.revocations.bump();
        }
        if let Some(metrics) = &self.metrics {
            metrics.undecodable_revocations(swept.undecodable_revocations);
        }
        Ok(swept.removed)
    }
}

impl Handler<Sweep> for TokenLedger {
    type Result = ActorResponse<Self, Result<usize, StorageError>>;
    fn handle(&mut self, _: Sweep, _: &mut Self::Context) -> Self::Result {
        let answer = self.sweep();
        reply_after(self, answer, Self::swept)
    }
}
