//! Errors returned by the WAL.

use std::io;
use std::path::{Path, PathBuf};

/// Errors returned by the WAL.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O operation on a file or directory of the WAL failed.
    #[error("WAL: failed to {op} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. "write to segment".
        op: &'static str,
        /// The file or directory it was being done to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Appending the record would take the bytes not yet marked done over the limit.
    #[error("WAL full: {pending_bytes} bytes pending, limit is {limit} bytes")]
    Full {
        /// Payload bytes appended (or being appended) and not yet marked done.
        pending_bytes: u64,
        /// The configured `max_pending_bytes`.
        limit: u64,
    },
    /// The payload is larger than a record can hold.
    #[error("WAL record too large: {len} bytes, the maximum is {max} bytes")]
    TooLarge {
        /// Length of the rejected payload.
        len: u64,
        /// Largest payload a record can hold.
        max: u64,
    },
    /// The WAL has been closed.
    #[error("WAL is closed")]
    Closed,
}

impl Error {
    pub(crate) fn io(op: &'static str, path: &Path, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }

    /// A closure for `map_err` that wraps an I/O error.
    pub(crate) fn io_with(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Self {
        move |source| Error::io(op, path, source)
    }

    /// A copy of this error, for replying the same failure to every append of a batch.
    pub(crate) fn duplicate(&self) -> Self {
        match self {
            Error::Io { op, path, source } => Error::Io {
                op,
                path: path.clone(),
                source: io::Error::new(source.kind(), source.to_string()),
            },
            Error::Full { pending_bytes, limit } => Error::Full {
                pending_bytes: *pending_bytes,
                limit: *limit,
            },
            Error::TooLarge { len, max } => Error::TooLarge { len: *len, max: *max },
            Error::Closed => Error::Closed,
        }
    }
}

/// Result type of the WAL.
pub type Result<T, E = Error> = std::result::Result<T, E>;
