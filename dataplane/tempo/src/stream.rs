//! Answers written as their pieces arrive from the backend.
//!
//! A trace or a search result is framed (`{"traces":[`, the items with
//! separators, the closing part) and sent piece by piece, so the router
//! holds one piece at a time however large the answer. Answers that end
//! within [`GZIP_MIN_SIZE`] bytes are sent whole, with their length, as
//! Tempo sends them (and uncompressed, as Tempo's gzip handler leaves
//! them); an error that arrives before the first byte is sent becomes the
//! response's status, and one after it cuts the body off, so a client sees
//! a failed transfer, never a shorter answer.

use axum::body::Body;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;

use crate::api::BackendError;
use crate::router::GZIP_MIN_SIZE;

/// One piece of an answer, rendered.
pub(crate) enum Piece {
    /// An element of the answer's list; separators are added between them.
    Elem(Vec<u8>),
    /// What follows the list (for a search: the metrics); ends the answer.
    Close(Vec<u8>),
}

/// Pieces of an answer.
pub(crate) type Pieces = BoxStream<'static, Result<Piece, BackendError>>;

/// How an answer is framed.
pub(crate) struct Framing {
    /// Written before the first element.
    pub(crate) open: Vec<u8>,
    /// Written between elements.
    pub(crate) sep: &'static [u8],
    /// Written when the pieces end without a [`Piece::Close`]; `None` when
    /// an answer without one is incomplete (an error).
    pub(crate) close: Option<Vec<u8>>,
}

/// Writes the pieces into chunks, adding the framing.
struct Framer {
    pieces: Pieces,
    sep: &'static [u8],
    close: Option<Vec<u8>>,
    elems: usize,
    done: bool,
}

impl Framer {
    /// The next chunk of the body, or `None` after the last.
    async fn next(&mut self) -> Option<Result<Vec<u8>, BackendError>> {
        if self.done {
            return None;
        }
        let chunk = match self.pieces.next().await {
            Some(Ok(Piece::Elem(elem))) => {
                let mut chunk = Vec::with_capacity(self.sep.len() + elem.len());
                if self.elems > 0 {
                    chunk.extend_from_slice(self.sep);
                }
                self.elems += 1;
                chunk.extend_from_slice(&elem);
                return Some(Ok(chunk));
            }
            Some(Ok(Piece::Close(close))) => Ok(close),
            Some(Err(e)) => Err(e),
            None => self
                .close
                .take()
                .ok_or_else(|| BackendError::Internal("the answer ended before its last part".into())),
        };
        self.done = true;
        Some(chunk)
    }
}

/// The body of an answer: whole when it ends within [`GZIP_MIN_SIZE`]
/// bytes, streamed otherwise. `Err` is an error that arrived before any
/// byte was committed.
pub(crate) async fn body(framing: Framing, pieces: Pieces) -> Result<Body, BackendError> {
    let mut framer = Framer {
        pieces,
        sep: framing.sep,
        close: framing.close,
        elems: 0,
        done: false,
    };
    let mut head = framing.open;
    while head.len() < usize::from(GZIP_MIN_SIZE) {
        match framer.next().await {
            Some(chunk) => head.extend_from_slice(&chunk?),
            None => return Ok(Body::from(head)),
        }
    }
    let rest = futures::stream::unfold(framer, |mut framer| async move {
        let chunk = framer.next().await?.map(Bytes::from).inspect_err(|e| {
            tracing::warn!(error = %e, "tempo api answer cut off after it started");
        });
        Some((chunk, framer))
    })
    // Compression polls once more after the end.
    .fuse();
    Ok(Body::from_stream(
        futures::stream::once(futures::future::ready(Ok::<_, BackendError>(Bytes::from(head)))).chain(rest),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use http_body_util::BodyExt as _;

    use super::*;

    fn pieces(items: Vec<Result<Piece, BackendError>>) -> Pieces {
        futures::stream::iter(items).boxed()
    }

    fn json_framing() -> Framing {
        Framing {
            open: b"[".to_vec(),
            sep: b",",
            close: Some(b"]".to_vec()),
        }
    }

    async fn text(body: Body) -> Result<String, String> {
        let bytes = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok(String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn frames_elements_and_sends_short_answers_whole() {
        let body = body(
            json_framing(),
            pieces(vec![Ok(Piece::Elem(b"1".to_vec())), Ok(Piece::Elem(b"2".to_vec()))]),
        )
        .await
        .unwrap();
        assert_eq!(http_body::Body::size_hint(&body).exact(), Some(5));
        assert_eq!(text(body).await.unwrap(), "[1,2]");

        let closed = Framing {
            close: None,
            ..json_framing()
        };
        let body = body_of(closed, vec![Ok(Piece::Close(b"],\"m\":1}".to_vec()))]).await;
        assert_eq!(text(body.unwrap()).await.unwrap(), "[],\"m\":1}");
    }

    async fn body_of(framing: Framing, items: Vec<Result<Piece, BackendError>>) -> Result<Body, BackendError> {
        body(framing, pieces(items)).await
    }

    #[tokio::test]
    async fn an_early_error_is_the_status_and_a_late_one_cuts_the_body() {
        let early = body_of(
            json_framing(),
            vec![
                Ok(Piece::Elem(b"1".to_vec())),
                Err(BackendError::Exhausted("too big".into())),
            ],
        )
        .await;
        assert!(matches!(early, Err(BackendError::Exhausted(m)) if m == "too big"));

        let big = vec![b'x'; usize::from(GZIP_MIN_SIZE)];
        let late = body_of(
            json_framing(),
            vec![
                Ok(Piece::Elem(big.clone())),
                Ok(Piece::Elem(big)),
                Err(BackendError::Internal("querier gone".into())),
            ],
        )
        .await
        .unwrap();
        assert_eq!(http_body::Body::size_hint(&late).exact(), None, "streamed");
        let err = text(late).await.unwrap_err();
        assert!(err.contains("querier gone"), "{err}");
    }

    #[tokio::test]
    async fn an_answer_missing_its_last_part_is_an_error() {
        let framing = Framing {
            close: None,
            ..json_framing()
        };
        let cut = body_of(framing, vec![Ok(Piece::Elem(b"1".to_vec()))]).await;
        assert!(matches!(cut, Err(BackendError::Internal(m)) if m.contains("last part")));
    }
}
