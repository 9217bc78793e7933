//! Waiting for a cluster to reach a state: poll an observation until it
//! satisfies a check, or fail after a deadline with the last thing seen.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// What one look at the cluster found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Poll<T> {
    /// The state is reached.
    Done(T),
    /// Not yet; the text says what was seen, for the timeout message.
    NotYet(String),
}

/// Why waiting failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WaitError {
    #[error("timed out after {waited:?} waiting for {what}; last seen: {last}")]
    Timeout {
        what: String,
        waited: Duration,
        last: String,
    },
    #[error("gave up waiting for {what}: {reason}")]
    Fatal { what: String, reason: String },
}

/// How long and how often to look.
#[derive(Debug, Clone, Copy)]
pub struct Patience {
    pub timeout: Duration,
    pub interval: Duration,
}

impl Patience {
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            interval: Duration::from_secs(2),
        }
    }

    pub fn every(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }
}

/// Calls `look` until it returns `Done`, an `Err` that `is_fatal` rejects, or
/// the timeout passes. Transient errors (`Err` not fatal) count as "not yet",
/// so a restarting API server or a port-forward that is coming up does not
/// fail the run. Always looks at least once, even with a zero timeout.
pub async fn until<T, E, F, Fut>(
    what: &str,
    patience: Patience,
    is_fatal: impl Fn(&E) -> bool,
    mut look: F,
) -> Result<T, WaitError>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>, E>>,
{
    let start = Instant::now();
    loop {
        let last = match look().await {
            Ok(Poll::Done(v)) => return Ok(v),
            Ok(Poll::NotYet(seen)) => seen,
            Err(e) if is_fatal(&e) => {
                return Err(WaitError::Fatal {
                    what: what.to_owned(),
                    reason: e.to_string(),
                });
            }
            Err(e) => format!("error: {e}"),
        };
        let waited = start.elapsed();
        if waited + patience.interval > patience.timeout {
            return Err(WaitError::Timeout {
                what: what.to_owned(),
                waited,
                last,
            });
        }
        tokio::time::sleep(patience.interval).await;
    }
}

/// No error is fatal.
pub fn never_fatal<E>(_: &E) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn patience(secs: u64) -> Patience {
        Patience::new(Duration::from_secs(secs)).every(Duration::from_secs(1))
    }

    #[tokio::test(start_paused = true)]
    async fn returns_the_value_once_the_state_is_reached() {
        let calls = Arc::new(AtomicU32::new(0));
        let c = Arc::clone(&calls);
        let got = until("three calls", patience(60), never_fatal::<String>, move || {
            let c = Arc::clone(&c);
            async move {
                let n = c.fetch_add(1, Ordering::SeqCst) + 1;
                Ok(if n >= 3 {
                    Poll::Done(n * 10)
                } else {
                    Poll::NotYet(format!("call {n}"))
                })
            }
        })
        .await;
        assert_eq!(got, Ok(30));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn times_out_with_the_last_observation() {
        let calls = Arc::new(AtomicU32::new(0));
        let c = Arc::clone(&calls);
        let started = Instant::now();
        let got: Result<(), _> = until("never", patience(10), never_fatal::<String>, move || {
            let c = Arc::clone(&c);
            async move {
                let n = c.fetch_add(1, Ordering::SeqCst) + 1;
                Ok(Poll::NotYet(format!("ready 0/{n}")))
            }
        })
        .await;
        let Err(WaitError::Timeout { what, last, waited }) = got else {
            panic!("expected a timeout, got {got:?}");
        };
        assert_eq!(what, "never");
        // Looks at 0 s, 1 s, ... 10 s: never past the timeout.
        assert_eq!(last, "ready 0/11");
        assert_eq!(waited, Duration::from_secs(10));
        assert_eq!(calls.load(Ordering::SeqCst), 11);
        assert!(started.elapsed() <= Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_and_reported() {
        let calls = Arc::new(AtomicU32::new(0));
        let c = Arc::clone(&calls);
        let got: Result<(), _> = until(
            "flaky",
            patience(3),
            |e: &String| e.contains("forbidden"),
            move || {
                let c = Arc::clone(&c);
                async move {
                    c.fetch_add(1, Ordering::SeqCst);
                    Err::<Poll<()>, _>("connection refused".to_owned())
                }
            },
        )
        .await;
        assert_eq!(
            got,
            Err(WaitError::Timeout {
                what: "flaky".into(),
                waited: Duration::from_secs(3),
                last: "error: connection refused".into()
            })
        );
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn fatal_errors_stop_at_once() {
        let got: Result<(), _> = until(
            "denied",
            patience(60),
            |e: &String| e.contains("forbidden"),
            || async { Err::<Poll<()>, _>("forbidden: cannot list pods".to_owned()) },
        )
        .await;
        assert_eq!(
            got,
            Err(WaitError::Fatal {
                what: "denied".into(),
                reason: "forbidden: cannot list pods".into()
            })
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_timeout_still_looks_once() {
        let got = until("now", Patience::new(Duration::ZERO), never_fatal::<String>, || async {
            Ok(Poll::Done(7))
        })
        .await;
        assert_eq!(got, Ok(7));
    }
}
