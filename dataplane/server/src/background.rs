//! Work that can wait, on threads of lower CPU priority.
//!
//! Compaction merges files for minutes at full speed on one core. On a
//! machine whose cores the queries and the ingest path also need, it runs
//! on a thread of its own, [`NICE`] steps nicer than the process: the
//! kernel then gives a runnable query or request about ten times its share,
//! and compaction the time they leave.

use tokio::sync::oneshot;

/// How much nicer background threads are than the process (nice values run
/// from -20, the highest priority, to 19, the lowest).
pub(crate) const NICE: i32 = 10;

/// Runs `work` on a new thread named `name`, [`NICE`] steps nicer than the
/// process, and returns its result. Errs when the thread cannot be started or `work` panicked.
pub(crate) async fn run<T: Send + 'static>(name: &str, work: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    let (tx, rx) = oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            lower_priority();
            let _ = tx.send(work());
        })
        .map_err(|e| format!("cannot start the {name} thread: {e}"))?;
    rx.await.map_err(|_| format!("the {name} thread panicked"))
}

/// Makes the calling thread [`NICE`] steps nicer (at most 19); on failure
/// the work runs at the priority it has.
#[cfg(target_os = "linux")]
fn lower_priority() {
    // On Linux the nice value belongs to the thread: nice(2) changes the
    // calling thread's, not the process's. It returns the new value, which
    // may be -1, so failure is told by errno.
    #[allow(unsafe_code)]
    // SAFETY: errno is thread-local; nice(2) reads only its argument.
    let failed = unsafe {
        *libc::__errno_location() = 0;
        libc::nice(NICE) == -1 && *libc::__errno_location() != 0
    };
    if failed {
        tracing::debug!(error = %std::io::Error::last_os_error(), "cannot lower a background thread's priority");
    }
}

/// Elsewhere the nice value is the process's: background work runs at the
/// process's priority.
#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

/// The calling thread's nice value (Linux).
#[cfg(all(test, target_os = "linux"))]
fn nice() -> i32 {
    #[allow(unsafe_code)]
    // SAFETY: getpriority(2) reads only its integer arguments.
    unsafe {
        libc::getpriority(libc::PRIO_PROCESS, 0)
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_runs_at_a_lower_priority_and_the_caller_keeps_its_own() {
        let before = nice();
        let inside = run("test-background", nice).await.unwrap();
        assert_eq!(inside, (before + NICE).min(19));
        assert_eq!(nice(), before);
    }

    #[tokio::test]
    async fn a_panic_is_an_error() {
        let err = run("test-panic", || -> u8 { panic!("boom") }).await.unwrap_err();
        assert!(err.contains("test-panic"), "{err}");
    }
}
