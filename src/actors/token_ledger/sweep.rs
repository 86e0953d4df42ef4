//! The bounded incremental sweep: expired tokens, forgotten revocations and outlived
//! lifetime records, one slice per `sweep_interval`.

use actix::prelude::*;

use super::{Sweep, TokenLedger};
use crate::storage::StorageError;

/// Records examined per tree and sweep tick (one tick per `sweep_interval`, default a
/// minute): a million live tokens are covered in ten minutes, for a few tens of
/// milliseconds of work per tick. Scanning more often kept cold pages flowing through
/// sled's small cache and slowed every request down.
const SWEEP_BATCH: usize = 100_000;

impl TokenLedger {
    /// One bounded slice per tree (see `SWEEP_BATCH`): the in-memory set loses exactly the
    /// grants the store forgot, so pruning it is bounded too (a grant past its forget time
    /// but not yet reached only stays refused a little longer).
    pub(super) fn sweep(&mut self) -> Result<usize, StorageError> {
        self.record_lifetime()?;
        let swept = self.store.sweep(self.clock.now(), SWEEP_BATCH)?;
        for grant in &swept.forgotten_grants {
            self.revoked.remove(grant);
        }
        // Fail closed: a revocation whose end cannot be read never ends.
        for grant in swept.undecodable_grants {
            self.revoked.insert(grant, i64::MAX);
        }
        if let Some(metrics) = &self.metrics {
            metrics.undecodable_revocations(swept.undecodable_revocations);
        }
        Ok(swept.removed)
    }
}

impl Handler<Sweep> for TokenLedger {
    type Result = Result<usize, StorageError>;
    fn handle(&mut self, _: Sweep, _: &mut Self::Context) -> Self::Result {
        self.sweep()
    }
}
