//! Slots for password hashing. One argon2id verification costs 19 MiB and a
//! core for tens of milliseconds, so a login storm must queue instead of
//! exhausting memory: at most `slots` run at once, each on the blocking pool.
//! Every argon2 computation of a login happens inside a slot, including the
//! one-time hash of a random password that unknown usernames are verified
//! against (so a wrong username costs what a wrong password costs).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::Semaphore;

use super::password;
use crate::error::AppError;

/// At most `slots` password verifications at once (see the module docs).
#[derive(Debug)]
pub struct HashSlots {
    slots: Arc<Semaphore>,
    /// Logins waiting for a slot.
    waiting: AtomicUsize,
    /// Verifications running (inside a slot), and the most seen at once.
    running: Arc<Gauge>,
    /// The hash unknown usernames are verified against, made on first use.
    dummy: Arc<OnceLock<String>>,
}

/// A count and its high-water mark.
#[derive(Debug, Default)]
struct Gauge {
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl Gauge {
    fn enter(&self) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
    }

    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

impl HashSlots {
    /// `slots` verifications at once (at least one).
    pub fn new(slots: usize) -> Self {
        HashSlots {
            slots: Arc::new(Semaphore::new(slots.max(1))),
            waiting: AtomicUsize::new(0),
            running: Arc::default(),
            dummy: Arc::new(OnceLock::new()),
        }
    }

    /// Whether `password` matches `phc`; with no `phc` (no such user) it is
    /// checked against the dummy hash, at the same cost, and is false. Waits for
    /// a slot, then hashes on the blocking pool. The slot is held by the
    /// blocking work itself, so a login given up half-way (its client went
    /// away) still holds it until the hash is done.
    pub async fn verify(&self, password: String, phc: Option<String>) -> Result<bool, AppError> {
        self.verify_admitted(password, phc, || Ok(())).await
    }

    /// [`Self::verify`], but `admit` is asked once the slot is held, before
    /// any hashing: a login that queued behind others is judged by what they
    /// taught the caller (their failures may make it wait), so guesses sent
    /// in parallel cannot all slip past one check. A refusal frees the slot.
    pub async fn verify_admitted(
        &self,
        password: String,
        phc: Option<String>,
        admit: impl FnOnce() -> Result<(), AppError>,
    ) -> Result<bool, AppError> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let permit = Arc::clone(&self.slots).acquire_owned().await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        let permit = permit.map_err(AppError::internal)?;
        admit()?;
        let running = Arc::clone(&self.running);
        let dummy = Arc::clone(&self.dummy);
        tokio::task::spawn_blocking(move || {
            let _slot = permit;
            running.enter();
            let ok = match phc {
                Some(phc) => password::verify(&password, &phc),
                None => {
                    let dummy = dummy.get_or_init(password::dummy_hash);
                    // Same cost as a real user's check; never a match.
                    std::hint::black_box(password::verify(&password, dummy));
                    false
                }
            };
            running.leave();
            ok
        })
        .await
        .map_err(AppError::internal)
    }

    /// Logins waiting for a slot right now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// The most verifications that ever ran at once.
    pub fn peak(&self) -> usize {
        self.running.peak.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Waits (bounded) until `f` holds.
    async fn until(what: &str, f: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !f() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_first_dummy_hash_waits_for_a_slot() {
        let slots = Arc::new(HashSlots::new(1));
        // Every slot is taken.
        let held = Arc::clone(&slots.slots).acquire_owned().await.unwrap();
        let login = tokio::spawn({
            let slots = Arc::clone(&slots);
            async move { slots.verify("guess".into(), None).await }
        });
        until("the unknown user's login to queue", || slots.waiting() == 1).await;
        // Queued for a slot, it has not hashed anything: not even the dummy.
        assert!(
            slots.dummy.get().is_none(),
            "the dummy hash was made outside the slots"
        );
        assert_eq!(slots.running.now.load(Ordering::SeqCst), 0);
        drop(held);
        assert!(
            !login.await.unwrap().unwrap(),
            "an unknown user never matches"
        );
        assert!(slots.dummy.get().is_some());
        assert_eq!(slots.peak(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn verifications_never_exceed_the_slots() {
        let slots = Arc::new(HashSlots::new(2));
        let phc = password::hash("right").unwrap();
        let mut logins = Vec::new();
        for i in 0..8 {
            let slots = Arc::clone(&slots);
            // Unknown users (the first makes the dummy), wrong and right passwords.
            let (pw, phc) = match i % 3 {
                0 => ("x".to_string(), None),
                1 => ("wrong".to_string(), Some(phc.clone())),
                _ => ("right".to_string(), Some(phc.clone())),
            };
            logins.push(tokio::spawn(
                async move { (i, slots.verify(pw, phc).await) },
            ));
        }
        for login in logins {
            let (i, ok) = login.await.unwrap();
            assert_eq!(ok.unwrap(), i % 3 == 2, "login {i}");
        }
        let peak = slots.peak();
        assert!(
            (1..=2).contains(&peak),
            "{peak} verifications ran at once with 2 slots"
        );
        assert_eq!(slots.waiting(), 0);
    }
}
