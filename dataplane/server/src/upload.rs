//! A file uploaded while it is written. The encoder, on a blocking thread,
//! writes into a [`PartSink`], which hands each full part of [`PART_BYTES`]
//! to [`upload`] on the I/O runtime, which passes it to `object_store`'s
//! `BufWriter`: a file that fits one part is one PUT, a larger one a
//! multipart upload sent part by part. Neither side ever
//! holds the whole file, and nothing becomes visible unless the encoder
//! finished: a failed encode aborts the upload.

use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use object_store::ObjectStore;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// Bytes of one uploaded part (S3 takes parts of 5 MiB and more, except
/// the last).
pub(crate) const PART_BYTES: usize = 8 * 1024 * 1024;

/// Parts uploaded at the same time, and parts waiting between encoder and
/// upload: the most a file in flight holds is about this many parts twice.
const PARTS_IN_FLIGHT: usize = 2;

/// The encoder's end: a `Write` handing full parts to the upload.
pub(crate) struct PartSink {
    part: Vec<u8>,
    parts: mpsc::Sender<Bytes>,
}

/// A channel between a [`PartSink`] and [`upload`].
pub(crate) fn channel() -> (PartSink, mpsc::Receiver<Bytes>) {
    let (tx, rx) = mpsc::channel(PARTS_IN_FLIGHT);
    (
        PartSink {
            part: Vec::new(),
            parts: tx,
        },
        rx,
    )
}

impl PartSink {
    fn send(&mut self) -> std::io::Result<()> {
        let part = std::mem::take(&mut self.part);
        self.parts
            .blocking_send(Bytes::from(part))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the upload stopped"))
    }

    /// Hands over the last part. Call it only when the file is complete.
    pub(crate) fn finish(mut self) -> std::io::Result<()> {
        if self.part.is_empty() { Ok(()) } else { self.send() }
    }
}

impl Write for PartSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.part.extend_from_slice(buf);
        if self.part.len() >= PART_BYTES {
            self.send()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Why an upload did not complete.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UploadError<E> {
    #[error(transparent)]
    Store(object_store::Error),
    /// The encoder failed (the upload was aborted).
    #[error(transparent)]
    Encode(E),
}

/// Uploads the parts arriving on `parts` to `path` through `object_store`'s
/// [`BufWriter`] (one PUT when the file fits one part, a multipart upload
/// otherwise), then waits for `encoded`: only when it succeeds is the
/// object completed; otherwise the upload is aborted. Returns the object's
/// size and what the encoder returned.
pub(crate) async fn upload<T, E>(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    mut parts: mpsc::Receiver<Bytes>,
    encoded: impl Future<Output = Result<T, E>>,
) -> Result<(usize, T), UploadError<E>> {
    let mut out =
        BufWriter::with_capacity(Arc::clone(store), path.clone(), PART_BYTES).with_max_concurrency(PARTS_IN_FLIGHT);
    let mut size = 0;
    let mut sent = Ok(());
    while let Some(part) = parts.recv().await {
        size += part.len();
        if let Err(e) = out.put(part).await {
            sent = Err(e);
            break;
        }
    }
    // Dropping the receiver stops an encoder still writing (on error).
    drop(parts);
    let done = match sent {
        Ok(()) => encoded.await.map_err(UploadError::Encode),
        Err(e) => Err(UploadError::Store(e)),
    };
    match done {
        Ok(done) => {
            out.shutdown().await.map_err(|e| {
                UploadError::Store(object_store::Error::Generic {
                    store: "upload",
                    source: Box::new(e),
                })
            })?;
            Ok((size, done))
        }
        Err(e) => {
            if let Err(abort) = out.abort().await {
                tracing::warn!(path = %path, error = %abort, "aborting a failed upload");
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;

    use super::*;

    /// Writes `n` bytes through a sink on a blocking thread, as the encoder
    /// does, failing at the end when `fail`.
    async fn send(n: usize, fail: bool) -> (Arc<dyn ObjectStore>, Result<usize, String>) {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let path = Path::from("f");
        let (mut sink, parts) = channel();
        let encoder = tokio::task::spawn_blocking(move || -> Result<(), String> {
            let chunk = vec![7u8; 1 << 20];
            let mut left = n;
            while left > 0 {
                let k = left.min(chunk.len());
                sink.write_all(&chunk[..k]).map_err(|e| e.to_string())?;
                left -= k;
            }
            if fail {
                return Err("encoder failed".into());
            }
            sink.finish().map_err(|e| e.to_string())
        });
        let encoded = async { encoder.await.map_err(|e| e.to_string()).and_then(|r| r) };
        let result = upload(&store, &path, parts, encoded).await.map(|(size, ())| size);
        (store, result.map_err(|e| e.to_string()))
    }

    #[tokio::test]
    async fn small_and_large_files_arrive_whole() {
        for n in [0, 1000, PART_BYTES - 1, PART_BYTES, 3 * PART_BYTES + 12345] {
            let (store, size) = send(n, false).await;
            assert_eq!(size, Ok(n));
            let got = store.get(&Path::from("f")).await.unwrap().bytes().await.unwrap();
            assert_eq!(got.len(), n, "{n} bytes written");
            assert!(got.iter().all(|&b| b == 7));
        }
    }

    #[tokio::test]
    async fn a_failed_encode_leaves_no_object() {
        for n in [1000, 3 * PART_BYTES] {
            let (store, result) = send(n, true).await;
            assert_eq!(result, Err("encoder failed".to_owned()));
            assert!(
                store.head(&Path::from("f")).await.is_err(),
                "nothing may appear for a file the encoder did not finish ({n} bytes)"
            );
        }
    }
}
