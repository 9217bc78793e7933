//! A runtime of its own for query execution, apart from the runtime that
//! serves sockets (gRPC, HTTP, heartbeats, the writers' WAL and flushes in
//! the all-in-one process).
//!
//! Decoding Parquet, evaluating TraceQL and DataFusion operators keep a
//! thread busy for as long as they have input. On the I/O runtime that
//! delays every other request's reads and answers; here it only delays
//! other queries. The I/O a query needs (object-store reads, calls to the
//! writers) is handed back to the I/O runtime by [`IoStore`] and the
//! engine's buffer source, so sockets are only ever polled by that runtime.

use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::engine::QueryError;

/// Record batches a query's result stream runs ahead of its reader.
const STREAM_AHEAD: usize = 2;

/// The query runtime: its own worker threads, and a handle to the runtime
/// that created it for I/O. Cheap to clone; the threads stop when the last
/// clone is dropped.
#[derive(Debug, Clone)]
pub struct CpuRuntime {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cpu: Handle,
    io: Handle,
    /// Dropping it lets the runtime's thread return, shutting it down.
    stop: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(stop) = self
            .stop
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            let _ = stop.send(());
        }
    }
}

impl CpuRuntime {
    /// Starts a runtime of `threads` worker threads (at least one), named
    /// `signaldb-query`. Call it from the I/O runtime: its handle is kept
    /// for the queries' I/O.
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let io = Handle::try_current().map_err(std::io::Error::other)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("signaldb-query")
            .enable_all()
            .build()?;
        let cpu = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("signaldb-query-runtime".to_owned())
            .spawn(move || {
                // Either a stop or every sender gone ends the wait.
                let _ = runtime.block_on(stopped);
                runtime.shutdown_background();
            })?;
        Ok(Self {
            inner: Arc::new(Inner {
                cpu,
                io,
                stop: Mutex::new(Some(stop)),
            }),
        })
    }

    /// The runtime for I/O.
    pub fn io(&self) -> &Handle {
        &self.inner.io
    }

    /// Runs `work` on the query runtime and waits for it. Dropping the
    /// returned future (a timeout, a client gone) stops the work.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, QueryError> {
        AbortOnDrop(self.inner.cpu.spawn(work))
            .await
            .map_err(|e| QueryError::Internal(format!("query task failed: {e}")))
    }

    /// `stream`, polled on the query runtime a few batches ahead of its
    /// reader. Dropping the returned stream stops it.
    pub fn run_stream(&self, mut stream: SendableRecordBatchStream) -> SendableRecordBatchStream {
        let schema = stream.schema();
        let (tx, rx) = tokio::sync::mpsc::channel(STREAM_AHEAD);
        let task = self.inner.cpu.spawn(async move {
            while let Some(item) = stream.next().await {
                if tx.send(item).await.is_err() {
                    return;
                }
            }
        });
        let guard = Arc::new(AbortOnDrop(task));
        let batches = futures::stream::unfold((rx, guard), |(mut rx, guard)| async move {
            let item = rx.recv().await?;
            Some((item, (rx, guard)))
        });
        Box::pin(RecordBatchStreamAdapter::new(schema, batches))
    }
}

/// A task handle that stops its task when dropped.
pub(crate) struct AbortOnDrop<T>(pub(crate) JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> std::fmt::Debug for AbortOnDrop<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AbortOnDrop")
    }
}

/// An object store whose every call runs on the I/O runtime, whichever
/// runtime makes it; a read's bytes are received there whole (queries read
/// byte ranges of Parquet files, never whole objects as streams).
#[derive(Debug)]
pub(crate) struct IoStore {
    inner: Arc<dyn ObjectStore>,
    io: Handle,
}

impl IoStore {
    pub(crate) fn new(inner: Arc<dyn ObjectStore>, io: Handle) -> Self {
        Self { inner, io }
    }

    async fn on_io<T: Send + 'static>(
        &self,
        call: impl Future<Output = object_store::Result<T>> + Send + 'static,
    ) -> object_store::Result<T> {
        AbortOnDrop(self.io.spawn(call))
            .await
            .map_err(|e| object_store::Error::Generic {
                store: "io",
                source: Box::new(e),
            })?
    }
}

impl std::fmt::Display for IoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Io({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for IoStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let (inner, location) = (Arc::clone(&self.inner), location.clone());
        self.on_io(async move { inner.put_opts(&location, payload, opts).await })
            .await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        // Queries never write; an upload's parts would run where they are polled.
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        let (inner, location) = (Arc::clone(&self.inner), location.clone());
        self.on_io(async move {
            let head = options.head;
            let result = inner.get_opts(&location, options).await?;
            let (meta, range, attributes) = (result.meta.clone(), result.range.clone(), result.attributes.clone());
            // A `head` asks for the metadata alone: its payload (a whole
            // local file) is not read.
            let bytes = if head { Bytes::new() } else { result.bytes().await? };
            Ok(GetResult {
                payload: GetResultPayload::Stream(futures::stream::once(async move { Ok(bytes) }).boxed()),
                meta,
                range,
                attributes,
            })
        })
        .await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> object_store::Result<Vec<Bytes>> {
        let (inner, location, ranges) = (Arc::clone(&self.inner), location.clone(), ranges.to_vec());
        self.on_io(async move { inner.get_ranges(&location, &ranges).await })
            .await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let (inner, prefix) = (Arc::clone(&self.inner), prefix.cloned());
        let io = self.io.clone();
        futures::stream::once(async move {
            let listed =
                AbortOnDrop(io.spawn(async move { inner.list(prefix.as_ref()).collect::<Vec<_>>().await })).await;
            futures::stream::iter(listed.unwrap_or_else(|e| {
                vec![Err(object_store::Error::Generic {
                    store: "io",
                    source: Box::new(e),
                })]
            }))
        })
        .flatten()
        .boxed()
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let offset = offset.clone();
        self.list(prefix)
            .filter(move |m| std::future::ready(m.as_ref().map_or(true, |m| m.location > offset)))
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let (inner, prefix) = (Arc::clone(&self.inner), prefix.cloned());
        self.on_io(async move { inner.list_with_delimiter(prefix.as_ref()).await })
            .await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        let (inner, from, to) = (Arc::clone(&self.inner), from.clone(), to.clone());
        self.on_io(async move { inner.copy_opts(&from, &to, options).await })
            .await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> object_store::Result<()> {
        let (inner, from, to) = (Arc::clone(&self.inner), from.clone(), to.clone());
        self.on_io(async move { inner.rename_opts(&from, &to, options).await })
            .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    fn thread_name() -> String {
        std::thread::current().name().unwrap_or_default().to_owned()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn work_runs_on_the_query_threads_and_io_on_the_caller() {
        let cpu = CpuRuntime::new(1).unwrap();
        let name = cpu.run(async { thread_name() }).await.unwrap();
        assert_eq!(name, "signaldb-query");
        let io = cpu.io().clone();
        let io_name = cpu
            .run(async move { io.spawn(async { thread_name() }).await.unwrap() })
            .await
            .unwrap();
        assert_ne!(io_name, "signaldb-query");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn dropping_the_wait_stops_the_work() {
        let cpu = CpuRuntime::new(1).unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        let wait = cpu.run(async move {
            let _alive = tx;
            std::future::pending::<()>().await;
        });
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), wait)
                .await
                .is_err()
        );
        // The task was aborted, so its sender is gone.
        assert!(rx.recv().await.is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_panic_is_an_error_not_a_crash() {
        let cpu = CpuRuntime::new(1).unwrap();
        let err = cpu
            .run(async {
                if thread_name() == "signaldb-query" {
                    panic!("boom");
                }
            })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("query task failed"), "{err}");
        // The runtime keeps serving.
        assert_eq!(cpu.run(async { 7 }).await.unwrap(), 7);
    }

    /// A store whose `HEAD` payload records being read.
    #[derive(Debug, Default)]
    struct WatchedHead {
        inner: object_store::memory::InMemory,
        payload_read: Arc<std::sync::atomic::AtomicBool>,
    }

    impl std::fmt::Display for WatchedHead {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "WatchedHead")
        }
    }

    #[async_trait]
    impl ObjectStore for WatchedHead {
        async fn put_opts(
            &self,
            location: &Path,
            payload: PutPayload,
            opts: PutOptions,
        ) -> object_store::Result<PutResult> {
            self.inner.put_opts(location, payload, opts).await
        }

        async fn put_multipart_opts(
            &self,
            location: &Path,
            opts: PutMultipartOptions,
        ) -> object_store::Result<Box<dyn MultipartUpload>> {
            self.inner.put_multipart_opts(location, opts).await
        }

        async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
            let head = options.head;
            let mut result = self.inner.get_opts(location, options).await?;
            if head {
                let flag = Arc::clone(&self.payload_read);
                result.payload = GetResultPayload::Stream(
                    futures::stream::once(async move {
                        flag.store(true, std::sync::atomic::Ordering::SeqCst);
                        Ok(Bytes::from_static(b"whole object"))
                    })
                    .boxed(),
                );
            }
            Ok(result)
        }

        fn delete_stream(
            &self,
            locations: BoxStream<'static, object_store::Result<Path>>,
        ) -> BoxStream<'static, object_store::Result<Path>> {
            self.inner.delete_stream(locations)
        }

        fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
            self.inner.list(prefix)
        }

        async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
            self.inner.list_with_delimiter(prefix).await
        }

        async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
            self.inner.copy_opts(from, to, options).await
        }
    }

    /// A `HEAD` through the I/O runtime returns the object's size without
    /// reading it (a local store's `HEAD` payload is the whole file).
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_head_reads_no_payload() {
        use object_store::ObjectStoreExt;
        let watched = Arc::new(WatchedHead::default());
        let path = Path::from("f.parquet");
        watched.put(&path, PutPayload::from_static(&[7; 4096])).await.unwrap();
        let store = IoStore::new(Arc::clone(&watched) as Arc<dyn ObjectStore>, Handle::current());
        assert_eq!(store.head(&path).await.unwrap().size, 4096);
        assert!(!watched.payload_read.load(std::sync::atomic::Ordering::SeqCst));
        // A read still returns the bytes.
        assert_eq!(store.get_range(&path, 0..8).await.unwrap().as_ref(), &[7; 8]);
    }
}

/// A gRPC service whose calls run on the query runtime: its handler and the
/// polling of its response body, where a split scan's share is executed.
/// Hyper still owns the socket on the I/O runtime; frames cross between
/// the runtimes through a channel a few frames deep.
#[derive(Clone)]
pub(crate) struct OnQueryRuntime<S> {
    inner: S,
    cpu: Option<Handle>,
}

impl<S> OnQueryRuntime<S> {
    /// `inner` run on `cpu`'s query runtime; inline without one.
    pub(crate) fn new(inner: S, cpu: Option<&CpuRuntime>) -> Self {
        Self {
            inner,
            cpu: cpu.map(|c| c.inner.cpu.clone()),
        }
    }
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for OnQueryRuntime<S> {
    const NAME: &'static str = S::NAME;
}

type Frame = Result<http_body::Frame<Bytes>, tonic::Status>;

impl<S> tower::Service<http::Request<tonic::body::Body>> for OnQueryRuntime<S>
where
    S: tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let call = self.inner.call(request);
        let Some(cpu) = self.cpu.clone() else {
            return Box::pin(call);
        };
        Box::pin(async move {
            let handled = AbortOnDrop(cpu.spawn(async move {
                let response = match call.await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                let (parts, body) = response.into_parts();
                let (tx, rx) = tokio::sync::mpsc::channel::<Frame>(STREAM_AHEAD);
                tokio::spawn(forward_frames(body, tx));
                (parts, rx)
            }))
            .await;
            Ok(match handled {
                Ok((parts, rx)) => {
                    let frames = futures::stream::unfold(rx, |mut rx| async move { Some((rx.recv().await?, rx)) });
                    http::Response::from_parts(parts, tonic::body::Body::new(http_body_util::StreamBody::new(frames)))
                }
                Err(e) => tonic::Status::internal(format!("query task failed: {e}")).into_http(),
            })
        })
    }
}

/// Polls `body` (on the runtime this runs on) into `tx` until it ends or
/// the reader is gone.
async fn forward_frames(mut body: tonic::body::Body, tx: tokio::sync::mpsc::Sender<Frame>) {
    use http_body_util::BodyExt as _;
    loop {
        let frame = tokio::select! {
            frame = body.frame() => frame,
            () = tx.closed() => return,
        };
        let Some(frame) = frame else { return };
        if tx.send(frame).await.is_err() {
            return;
        }
    }
}
