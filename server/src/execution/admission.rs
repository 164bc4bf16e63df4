//! Shared admission: one pool of sandbox slots for every kind of execution.
//!
//! # Policy
//! - There are `slots` sandbox slots on the host (one per concurrently
//!   running sandbox, whatever runs in it).
//! - **Interactive** work (a student's run in the IDE) takes any free slot at
//!   once, or is refused with `busy` (+ `retry_after_ms`): a person is
//!   waiting, so it never queues.
//! - **Batch** work (grading, course jobs) takes a slot only while at least
//!   `interactive_reserve` slots stay free after it, i.e. batch work never
//!   uses the last `interactive_reserve` slots. Otherwise it waits in one
//!   bounded FIFO queue (`batch_queue` entries; a full queue refuses with
//!   `busy`), and is admitted in arrival order as slots free up. A new batch
//!   request never overtakes a queued one.
//! - So interactive work is never starved: batch work can hold at most
//!   `slots − interactive_reserve` slots, and interactive requests do not
//!   queue behind batch work. Batch work is not starved either as long as
//!   interactive work leaves slots free now and then (a class at full
//!   capacity pauses grading, which is the point).
//! - The reserve is capped at `slots − 1`, so batch work can always run on
//!   an otherwise idle host (with a single slot, the reserve is 0).
//! - Closing (shutdown) refuses new requests and fails every queued one.
//!
//! A [`Slot`] is the permission to run one sandbox; dropping it frees the
//! slot and admits queued batch work that now fits.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// Which class of work asks for a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// A person is waiting: a slot now, or `busy`.
    Interactive,
    /// Queued behind interactive work; never takes the reserve.
    Batch,
}

/// Sizes of the admission pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionConfig {
    /// Sandboxes that may run at once (at least 1).
    pub slots: usize,
    /// Slots batch work leaves free for interactive work (capped at `slots − 1`).
    pub interactive_reserve: usize,
    /// Batch requests that may wait; beyond this, `busy`.
    pub batch_queue: usize,
}

/// Why a slot was not granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// No slot free (interactive) or the batch queue is full.
    #[error("every sandbox slot is in use")]
    Busy,
    /// The pool is closed (the server is shutting down).
    #[error("the server is shutting down")]
    Closed,
}

/// The host's sandbox slots (cheap to clone; all clones share the pool).
#[derive(Debug, Clone)]
pub struct Admission {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    slots: usize,
    reserve: usize,
    queue_max: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    in_use: usize,
    batch_in_use: usize,
    /// Waiting batch requests, oldest first.
    queue: VecDeque<oneshot::Sender<Slot>>,
    closed: bool,
}

/// Permission to run one sandbox; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    inner: Arc<Inner>,
    class: Class,
}

impl Slot {
    /// The class this slot was granted to.
    pub fn class(&self) -> Class {
        self.class
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let granted = {
            let mut st = self.inner.lock();
            st.in_use = st.in_use.saturating_sub(1);
            if self.class == Class::Batch {
                st.batch_in_use = st.batch_in_use.saturating_sub(1);
            }
            self.inner.admit_queued(&mut st)
        };
        // Outside the lock: a grant whose waiter is gone comes back as a
        // slot and is dropped, which re-enters here.
        Inner::deliver(granted);
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// May one more batch execution start now?
    fn batch_fits(&self, st: &State) -> bool {
        !st.closed && st.in_use + 1 + self.reserve <= self.slots
    }

    /// Take slots for queued batch requests that fit, oldest first.
    fn admit_queued(self: &Arc<Self>, st: &mut State) -> Vec<(oneshot::Sender<Slot>, Slot)> {
        let mut granted = Vec::new();
        while self.batch_fits(st) {
            let Some(tx) = st.queue.pop_front() else {
                break;
            };
            if tx.is_closed() {
                continue;
            }
            st.in_use += 1;
            st.batch_in_use += 1;
            granted.push((
                tx,
                Slot {
                    inner: Arc::clone(self),
                    class: Class::Batch,
                },
            ));
        }
        granted
    }

    fn deliver(granted: Vec<(oneshot::Sender<Slot>, Slot)>) {
        for (tx, slot) in granted {
            // A waiter that gave up in the meantime returns it (dropped: freed).
            let _ = tx.send(slot);
        }
    }
}

impl Admission {
    /// A pool of `cfg.slots` slots (at least 1).
    pub fn new(cfg: AdmissionConfig) -> Admission {
        let slots = cfg.slots.max(1);
        Admission {
            inner: Arc::new(Inner {
                slots,
                reserve: cfg.interactive_reserve.min(slots - 1),
                queue_max: cfg.batch_queue,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// A slot for interactive work now, or `Busy` / `Closed`.
    pub fn try_interactive(&self) -> Result<Slot, Refused> {
        let mut st = self.inner.lock();
        if st.closed {
            return Err(Refused::Closed);
        }
        if st.in_use >= self.inner.slots {
            return Err(Refused::Busy);
        }
        st.in_use += 1;
        Ok(Slot {
            inner: Arc::clone(&self.inner),
            class: Class::Interactive,
        })
    }

    /// A slot for batch work: at once if it fits and nobody is queued,
    /// else wait in the FIFO queue (`Busy` when the queue is full, `Closed`
    /// when the pool closes). Dropping the future leaves the queue.
    pub async fn batch(&self) -> Result<Slot, Refused> {
        let rx = {
            let mut st = self.inner.lock();
            if st.closed {
                return Err(Refused::Closed);
            }
            // Waiters that gave up do not hold queue places.
            st.queue.retain(|tx| !tx.is_closed());
            if st.queue.is_empty() && self.inner.batch_fits(&st) {
                st.in_use += 1;
                st.batch_in_use += 1;
                return Ok(Slot {
                    inner: Arc::clone(&self.inner),
                    class: Class::Batch,
                });
            }
            if st.queue.len() >= self.inner.queue_max {
                return Err(Refused::Busy);
            }
            let (tx, rx) = oneshot::channel();
            st.queue.push_back(tx);
            rx
        };
        rx.await.map_err(|_| Refused::Closed)
    }

    /// Refuse everything from now on and fail the queued batch requests.
    pub fn close(&self) {
        let queue = {
            let mut st = self.inner.lock();
            st.closed = true;
            std::mem::take(&mut st.queue)
        };
        drop(queue);
    }

    /// Slots in the pool.
    pub fn capacity(&self) -> usize {
        self.inner.slots
    }

    /// The reserve in force (after capping).
    pub fn interactive_reserve(&self) -> usize {
        self.inner.reserve
    }

    /// Slots held now (all classes).
    pub fn in_use(&self) -> usize {
        self.inner.lock().in_use
    }

    /// Slots held by batch work now.
    pub fn batch_in_use(&self) -> usize {
        self.inner.lock().batch_in_use
    }

    /// Free slots now.
    pub fn available(&self) -> usize {
        self.inner.slots.saturating_sub(self.in_use())
    }

    /// Batch requests waiting now.
    pub fn queued(&self) -> usize {
        let mut st = self.inner.lock();
        st.queue.retain(|tx| !tx.is_closed());
        st.queue.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn pool(slots: usize, reserve: usize, queue: usize) -> Admission {
        Admission::new(AdmissionConfig {
            slots,
            interactive_reserve: reserve,
            batch_queue: queue,
        })
    }

    async fn not_yet(fut: &mut (impl std::future::Future<Output = Result<Slot, Refused>> + Unpin)) {
        // The future must still be pending after the runtime had every chance to run it.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(
            tokio::time::timeout(Duration::from_millis(20), &mut *fut)
                .await
                .is_err(),
            "batch work was admitted although it must wait"
        );
    }

    #[tokio::test]
    async fn batch_never_takes_the_reserve_and_interactive_still_gets_it() {
        let a = pool(4, 2, 10);
        let b1 = a.batch().await.unwrap();
        let b2 = a.batch().await.unwrap();
        assert_eq!(a.batch_in_use(), 2);
        // Two free slots left: both are the reserve.
        let mut third = Box::pin(a.batch());
        not_yet(&mut third).await;
        assert_eq!(a.queued(), 1);
        // Interactive work takes the reserve while batch waits.
        let i1 = a.try_interactive().unwrap();
        let i2 = a.try_interactive().unwrap();
        assert_eq!(a.try_interactive().unwrap_err(), Refused::Busy);
        drop(i1);
        // One free slot, and it is the reserve.
        not_yet(&mut third).await;
        drop(b1);
        // Two free (b2, i2 hold two), but starting it would leave only one free: still waits.
        not_yet(&mut third).await;
        drop(i2);
        // Only b2 left: starting leaves two free, the whole reserve → admitted.
        let b3 = tokio::time::timeout(Duration::from_secs(5), third)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(b3.class(), Class::Batch);
        assert_eq!(a.in_use(), 2);
        drop((b2, b3));
        assert_eq!(a.in_use(), 0);
    }

    #[tokio::test]
    async fn queued_batch_runs_in_arrival_order_and_newcomers_do_not_overtake() {
        let a = pool(2, 1, 10);
        let first = a.batch().await.unwrap();
        let mut w1 = Box::pin(a.batch());
        not_yet(&mut w1).await;
        let mut w2 = Box::pin(a.batch());
        not_yet(&mut w2).await;
        drop(first);
        let s1 = tokio::time::timeout(Duration::from_secs(5), &mut w1)
            .await
            .unwrap()
            .unwrap();
        not_yet(&mut w2).await;
        drop(s1);
        let _s2 = tokio::time::timeout(Duration::from_secs(5), w2)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn a_full_queue_is_busy_and_closing_fails_the_waiters() {
        let a = pool(1, 0, 1);
        let _held = a.try_interactive().unwrap();
        let mut w = Box::pin(a.batch());
        not_yet(&mut w).await;
        assert_eq!(a.batch().await.unwrap_err(), Refused::Busy);
        a.close();
        assert_eq!(w.await.unwrap_err(), Refused::Closed);
        assert_eq!(a.try_interactive().unwrap_err(), Refused::Closed);
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_frees_its_place_and_its_grant() {
        let a = pool(2, 1, 1);
        let held = a.batch().await.unwrap();
        {
            let mut gone = Box::pin(a.batch());
            not_yet(&mut gone).await;
        }
        // Its queue place is free again.
        let mut w = Box::pin(a.batch());
        not_yet(&mut w).await;
        drop(held);
        let _s = tokio::time::timeout(Duration::from_secs(5), w)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(a.in_use(), 1);
    }

    #[test]
    fn the_reserve_is_capped_so_batch_can_use_an_idle_host() {
        assert_eq!(pool(1, 5, 1).interactive_reserve(), 0);
        assert_eq!(pool(4, 9, 1).interactive_reserve(), 3);
        assert_eq!(pool(0, 0, 1).capacity(), 1);
    }
}
