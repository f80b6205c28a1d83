//! The body of every response the proxy produces (and of the requests it
//! forwards): bytes at hand, sent as one frame, or a boxed stream. Most
//! answers are bytes at hand; a box for each of them was an allocation per
//! hit.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::{Body as HttpBody, Frame, SizeHint};

use crate::BoxError;

pub struct Body(Kind);

enum Kind {
    /// Taken when sent; `None` (or empty) is the end.
    Full(Option<Bytes>),
    Stream(UnsyncBoxBody<Bytes, BoxError>),
}

impl Body {
    pub fn full(bytes: impl Into<Bytes>) -> Body {
        Body(Kind::Full(Some(bytes.into())))
    }

    pub fn empty() -> Body {
        Body(Kind::Full(None))
    }

    /// A body that streams.
    pub fn stream<B>(body: B) -> Body
    where
        B: HttpBody<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Body(Kind::Stream(body.map_err(Into::into).boxed_unsync()))
    }
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().0 {
            Kind::Full(bytes) => Poll::Ready(
                bytes
                    .take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(b))),
            ),
            Kind::Stream(stream) => Pin::new(stream).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Kind::Full(bytes) => bytes.as_ref().is_none_or(Bytes::is_empty),
            Kind::Stream(stream) => stream.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Stream(stream) => stream.size_hint(),
        }
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Kind::Full(bytes) => f
                .debug_tuple("Body::Full")
                .field(&bytes.as_ref().map_or(0, Bytes::len))
                .finish(),
            Kind::Stream(_) => f.write_str("Body::Stream"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bytes_at_hand_are_one_frame_with_an_exact_size() {
        let body = Body::full("hello");
        assert_eq!(body.size_hint().exact(), Some(5));
        assert!(!body.is_end_stream());
        let collected = body.collect().await.map(|c| c.to_bytes());
        assert_eq!(collected.ok(), Some(Bytes::from("hello")));

        let empty = Body::empty();
        assert!(empty.is_end_stream());
        assert_eq!(empty.size_hint().exact(), Some(0));
        assert!(Body::full("").is_end_stream());
    }

    #[test]
    fn nothing_follows_the_end_and_empty_bytes_send_no_frame() {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut body = Body::full("x");
        let first = Pin::new(&mut body).poll_frame(&mut cx);
        assert!(
            matches!(first, Poll::Ready(Some(Ok(ref f))) if f.data_ref().is_some_and(|d| d == "x"))
        );
        assert!(body.is_end_stream());
        for mut ended in [body, Body::full(""), Body::empty()] {
            for _ in 0..2 {
                assert!(matches!(
                    Pin::new(&mut ended).poll_frame(&mut cx),
                    Poll::Ready(None)
                ));
            }
        }
    }

    #[tokio::test]
    async fn a_stream_is_passed_through() {
        let inner = http_body_util::Full::new(Bytes::from("streamed"));
        let body = Body::stream(inner.map_err(|never| match never {}));
        assert_eq!(body.size_hint().exact(), Some(8));
        let collected = body.collect().await.map(|c| c.to_bytes());
        assert_eq!(collected.ok(), Some(Bytes::from("streamed")));
    }
}
