//! Group commit for sled: one thread owns `Db::flush`, and every caller that asked for
//! durability while a flush was running is covered by the next single flush.
//!
//! Why a thread: `flush` blocks on fsync (~0.3 ms here), which must not run on an actor or
//! actix worker thread; and sled 0.34's `flush_async` hangs when calls overlap (sled #1308),
//! so exactly one flusher must exist per database.
//!
//! Correctness: a caller registers *after* its write returned, and the flusher takes the
//! waiting list *before* it starts flushing, so every registered write precedes the flush
//! that answers it.

use std::{
    sync::{Arc, Condvar, Mutex, PoisonError},
    thread::JoinHandle,
};

use tokio::sync::oneshot;

use super::{Persist, StorageError};
use crate::metrics::Metrics;

type Waiter = oneshot::Sender<Result<(), String>>;

#[derive(Default)]
struct State {
    waiters: Vec<Waiter>,
    shutdown: bool,
}

struct Inner {
    state: Mutex<State>,
    wake: Condvar,
}

/// Handle to the flusher thread of one sled database. Cloning shares the thread.
#[derive(Clone)]
pub struct GroupCommit {
    inner: Arc<Inner>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GroupCommit")
    }
}

impl GroupCommit {
    /// Starts the flusher for `db`; each flush's duration goes to `metrics` if given.
    pub fn start(db: sled::Db, metrics: Option<Arc<Metrics>>) -> std::io::Result<Self> {
        let inner = Arc::new(Inner {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        let worker = Arc::clone(&inner);
        let handle = std::thread::Builder::new()
            .name("oauth-mcp-flusher".into())
            .spawn(move || run(&worker, &db, metrics.as_deref()))?;
        Ok(Self {
            inner,
            thread: Arc::new(Mutex::new(Some(handle))),
        })
    }

    /// A future that resolves once every write made before this call is on disk.
    pub fn persist(&self) -> Persist {
        let (tx, rx) = oneshot::channel();
        let accepted = {
            let mut state = self
                .inner
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if state.shutdown {
                false
            } else {
                state.waiters.push(tx);
                true
            }
        };
        if accepted {
            self.inner.wake.notify_one();
        }
        Box::pin(async move {
            if !accepted {
                return Err(StorageError::Closed);
            }
            match rx.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(StorageError::Database(e)),
                Err(_) => Err(StorageError::Closed),
            }
        })
    }

    /// Flushes what is pending, stops the thread and waits for it. Idempotent.
    pub fn shutdown(&self) {
        {
            let mut state = self
                .inner
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            state.shutdown = true;
        }
        self.inner.wake.notify_one();
        let handle = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

fn run(inner: &Inner, db: &sled::Db, metrics: Option<&Metrics>) {
    loop {
        let (batch, stop) = {
            let mut state = inner.state.lock().unwrap_or_else(PoisonError::into_inner);
            while state.waiters.is_empty() && !state.shutdown {
                state = inner
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            (std::mem::take(&mut state.waiters), state.shutdown)
        };
        let started = std::time::Instant::now();
        let result = db.flush().map(|_| ()).map_err(|e| e.to_string());
        if let Some(m) = metrics {
            m.flush(started.elapsed());
        }
        if let Err(e) = &result {
            tracing::error!(error = %e, "sled flush failed");
        }
        for waiter in batch {
            // A waiter whose request was dropped no longer listens; nothing to do.
            let _ = waiter.send(result.clone());
        }
        if stop {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn many_concurrent_persists_all_resolve() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let metrics = Arc::new(Metrics::default());
        let gc = GroupCommit::start(db.clone(), Some(Arc::clone(&metrics))).unwrap();
        let tree = db.open_tree("t").unwrap();
        let mut futs = Vec::new();
        for i in 0u32..200 {
            tree.insert(i.to_be_bytes(), &[1u8][..]).unwrap();
            futs.push(gc.persist());
        }
        for r in futures_util::future::join_all(futs).await {
            r.unwrap();
        }
        gc.shutdown();
        assert!(matches!(gc.persist().await, Err(StorageError::Closed)));
        let text = metrics.render(0);
        let flushes = text
            .lines()
            .find_map(|l| l.strip_prefix("oauth_mcp_flush_seconds_count{db=\"sled\"} "))
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap();
        assert!((1..=200).contains(&flushes), "{flushes} flushes");
    }
}
