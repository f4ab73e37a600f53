//! A bounded pool for blocking work (decoding, inference, encoding).
//!
//! At most `workers` jobs run at once, each on tokio's blocking thread pool
//! ([`tokio::task::spawn_blocking`]), never on the async worker threads. At most `queue`
//! more wait for a free worker. A job arriving when every worker is busy and the queue is
//! full is refused at once with [`PoolError::Busy`] (load shedding): nothing ever queues
//! without bound, so latency stays bounded and memory too.
//!
//! A request that gives up (time-out, client gone) while waiting leaves the queue at once;
//! one that gives up while its job runs leaves the job to finish, still counted, so the
//! pool's bounds always hold for the work actually running.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use tokio::sync::Semaphore;

/// Why a job did not produce its result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolError {
    /// Every worker is busy and the wait queue is full; retry after about this many seconds.
    Busy { retry_after_s: u64 },
    /// The job panicked (the message of the panic).
    Panicked(String),
}

/// The pool; cheap to share behind an [`Arc`].
#[derive(Debug)]
pub struct Pool {
    permits: Arc<Semaphore>,
    workers: usize,
    capacity: usize,
    /// Jobs admitted and not finished (running plus waiting).
    admitted: Arc<AtomicUsize>,
    /// Moving average of a job's duration, in milliseconds.
    avg_ms: Arc<AtomicU64>,
}

/// Counts one admitted job until dropped.
struct Ticket(Arc<AtomicUsize>);

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Pool {
    /// A pool of `workers` (at least 1) concurrent jobs and `queue` waiting ones.
    pub fn new(workers: usize, queue: usize) -> Pool {
        let workers = workers.max(1);
        Pool {
            permits: Arc::new(Semaphore::new(workers)),
            workers,
            capacity: workers + queue,
            admitted: Arc::new(AtomicUsize::new(0)),
            avg_ms: Arc::new(AtomicU64::new(1000)),
        }
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    pub fn queue(&self) -> usize {
        self.capacity - self.workers
    }

    /// Jobs admitted and not yet finished (running and waiting).
    pub fn in_flight(&self) -> usize {
        self.admitted.load(Ordering::SeqCst)
    }

    /// A `Retry-After` estimate: the time the pool needs to drain a full queue.
    pub fn retry_after_s(&self) -> u64 {
        let per_job = self.avg_ms.load(Ordering::Relaxed) as f64 / 1000.0;
        (per_job * self.capacity as f64 / self.workers as f64).ceil().max(1.0) as u64
    }

    fn admit(&self) -> Result<Ticket, PoolError> {
        self.admitted
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.capacity).then_some(n + 1)
            })
            .map(|_| Ticket(self.admitted.clone()))
            .map_err(|_| PoolError::Busy {
                retry_after_s: self.retry_after_s(),
            })
    }

    /// Runs `job` on a blocking thread once a worker is free, or refuses it at once when the
    /// pool is full.
    pub async fn run<T, F>(&self, job: F) -> Result<T, PoolError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let ticket = self.admit()?;
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| PoolError::Busy {
                retry_after_s: self.retry_after_s(),
            })?;
        let avg = self.avg_ms.clone();
        let handle = tokio::task::spawn_blocking(move || {
            let (_ticket, _permit) = (ticket, permit);
            let start = Instant::now();
            let out = job();
            let ms = start.elapsed().as_millis() as u64;
            // Exponential moving average with weight 1/4 for the newest job.
            let old = avg.load(Ordering::Relaxed);
            avg.store((old * 3 + ms) / 4, Ordering::Relaxed);
            out
        });
        handle.await.map_err(|e| match e.try_into_panic() {
            Ok(p) => PoolError::Panicked(
                p.downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into()),
            ),
            Err(e) => PoolError::Panicked(e.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sheds_load_when_workers_and_queue_are_full() {
        let pool = Arc::new(Pool::new(1, 1));
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let (started_tx, started_rx) = mpsc::channel::<()>();
        // Job 1 runs and blocks until released.
        let p1 = pool.clone();
        let first = tokio::spawn(async move {
            p1.run(move || {
                started_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                1
            })
            .await
        });
        tokio::task::spawn_blocking(move || started_rx.recv().unwrap())
            .await
            .unwrap();
        // Job 2 waits in the queue.
        let p2 = pool.clone();
        let second = tokio::spawn(async move { p2.run(|| 2).await });
        while pool.in_flight() < 2 {
            tokio::task::yield_now().await;
        }
        // Job 3 is refused at once.
        assert!(matches!(pool.run(|| 3).await, Err(PoolError::Busy { .. })));
        release_tx.send(()).unwrap();
        assert_eq!(first.await.unwrap(), Ok(1));
        assert_eq!(second.await.unwrap(), Ok(2));
        assert_eq!(pool.in_flight(), 0);
        // With room again, jobs run.
        assert_eq!(pool.run(|| 4).await, Ok(4));
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_error_not_a_crash() {
        let pool = Pool::new(1, 0);
        let r: Result<(), _> = pool.run(|| panic!("boom")).await;
        assert_eq!(r, Err(PoolError::Panicked("boom".into())));
        assert_eq!(pool.in_flight(), 0);
    }
}
