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
//!
//! Each flush's duration is reported to a [`FlushObserver`], a trait defined here so that
//! storage depends on nothing above it: `metrics::Metrics` implements it.

use std::{
    sync::{Arc, Condvar, Mutex, PoisonError},
    thread::JoinHandle,
};

use tokio::sync::oneshot;

use super::{Persist, StorageError};

/// Told about every flush the group-commit thread makes (implemented by the metrics).
pub trait FlushObserver: Send + Sync {
    /// One flush (write and sync) took `took`.
    fn flushed(&self, took: std::time::Duration);
}

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
    /// Starts the flusher for `db`; each flush's duration goes to `observer` if given.
    pub fn start(db: sled::Db, observer: Option<Arc<dyn FlushObserver>>) -> std::io::Result<Self> {
        let inner = Arc::new(Inner {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        let worker = Arc::clone(&inner);
        let handle = std::thread::Builder::new()
            .name("oauth-mcp-flusher".into())
            .spawn(move || run(&worker, &db, observer.as_deref()))?;
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

fn run(inner: &Inner, db: &sled::Db, observer: Option<&dyn FlushObserver>) {
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
        if let Some(o) = observer {
            o.flushed(started.elapsed());
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
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

    use super::*;

    /// Counts flushes.
    #[derive(Default)]
    struct Flushes(AtomicU64);

    impl FlushObserver for Flushes {
        fn flushed(&self, _took: std::time::Duration) {
            self.0.fetch_add(1, Relaxed);
        }
    }

    #[actix_web::test]
    async fn many_concurrent_persists_all_resolve() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let flushes = Arc::new(Flushes::default());
        let gc = GroupCommit::start(db.clone(), Some(Arc::clone(&flushes) as _)).unwrap();
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
        let flushes = flushes.0.load(Relaxed);
        assert!((1..=200).contains(&flushes), "{flushes} flushes");
    }
}
