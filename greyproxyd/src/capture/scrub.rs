//! The echo scrub on a response's way back: a response to a request that had secrets
//! substituted into it may quote them (an echo service, an error page repeating the
//! `Authorization` header). Every form of each secret (as is, JSON-escaped, percent-encoded)
//! is replaced by its placeholder in the header values and in the body, so the agent and the
//! capture never see it.
//!
//! A body with a declared length of at most [`WHOLE_MAX`] is read whole before the response
//! goes on, scrubbed at once and sent with its new `Content-Length` (the old one when nothing
//! was replaced): the client sees the framing the origin chose, and the usual small JSON
//! answer costs one pass and one write. Any other body is scrubbed as it streams: each chunk is
//! joined to the tail held back from the previous one and scrubbed; only a tail that could
//! begin a secret (the longest suffix that is a prefix of one of its forms) is held back, so a
//! secret split across chunks is still found while an event stream is not delayed (its events
//! end in `\n\n`, which begins no secret). A placeholder is not as long as its secret, so such
//! a body loses its `Content-Length` and is framed anew. Compressed bodies cannot be scrubbed:
//! the exchange asks the origin for an identity body (no `Accept-Encoding`) whenever it
//! substitutes.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{HeaderValue, Response, header};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt;

use crate::credentials::substitute::Scrubber;
use crate::http::{Body, full};

/// Largest declared body length read whole before the response goes on (the bytes held per
/// response; a larger or undeclared body streams).
pub(crate) const WHOLE_MAX: u64 = 64 * 1024;

/// The response with every substituted secret replaced by its placeholder.
pub(crate) async fn response(resp: Response<Body>, scrubber: Scrubber) -> Response<Body> {
    let (mut parts, body) = resp.into_parts();
    for value in parts.headers.values_mut() {
        if let Some(new) = scrubber.scrub(value.as_bytes())
            && let Ok(v) = HeaderValue::from_bytes(&new)
        {
            *value = v;
        }
    }
    // No body (a HEAD response, 204, 304): its headers were all there was.
    if body.is_end_stream() {
        return Response::from_parts(parts, body);
    }
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let (body, read) = match declared {
        Some(n) if n <= WHOLE_MAX => match whole(body, n).await {
            Whole::Done(data) => {
                if let Some(out) = scrubber.scrub(&data) {
                    parts
                        .headers
                        .insert(header::CONTENT_LENGTH, HeaderValue::from(out.len()));
                    return Response::from_parts(parts, full(out));
                }
                return Response::from_parts(parts, full(data));
            }
            Whole::Stream(body, read) => (body, read),
        },
        _ => (body, Vec::new()),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    let body = ScrubBody {
        inner: Box::pin(body),
        scrubber,
        carry: read,
        trailers: None,
        done: false,
    };
    Response::from_parts(parts, body.boxed())
}

/// What reading a small body whole gave.
enum Whole {
    /// The whole body, which had only data.
    Done(Vec<u8>),
    /// The body to stream on (trailers, an error, or more than declared), with what was read
    /// of it so far, unscrubbed.
    Stream(Body, Vec<u8>),
}

/// Reads a body of `declared` bytes whole, unless it turns out to be something else.
async fn whole(mut body: Body, declared: u64) -> Whole {
    let mut data = Vec::with_capacity(usize::try_from(declared).unwrap_or(0));
    loop {
        match body.frame().await {
            None => return Whole::Done(data),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(d) => {
                    data.extend_from_slice(&d);
                    if data.len() as u64 > WHOLE_MAX {
                        return Whole::Stream(body, data);
                    }
                    // The origin's body knows it is over once its declared length is in:
                    // waiting for its end instead would wait for the origin connection's task
                    // to run again and close it, two more task switches per response.
                    if body.is_end_stream() {
                        return Whole::Done(data);
                    }
                }
                Err(frame) => {
                    // Trailers: only a streamed (chunked) body can carry them on.
                    return Whole::Stream(last(Ok(frame)), data);
                }
            },
            Some(Err(e)) => {
                // What came before the error goes on, then the error ends the body.
                return Whole::Stream(last(Err(e)), data);
            }
        }
    }
}

/// A body of one last frame (trailers) or error, streamed on after what was read whole.
fn last(item: Result<Frame<Bytes>, hyper::Error>) -> Body {
    http_body_util::StreamBody::new(futures_util::stream::iter([item])).boxed()
}

struct ScrubBody {
    inner: Pin<Box<Body>>,
    scrubber: Scrubber,
    /// Bytes not passed on yet (they may begin a secret the next chunk ends). Scrubbing is
    /// idempotent (a placeholder holds no form of a secret), so they may be scrubbed or not.
    carry: Vec<u8>,
    /// Trailers seen after the data, sent once the carry is out.
    trailers: Option<http::HeaderMap>,
    done: bool,
}

impl ScrubBody {
    fn scrubbed(&self, bytes: Vec<u8>) -> Vec<u8> {
        self.scrubber.scrub(&bytes).unwrap_or(bytes)
    }
}

impl http_body::Body for ScrubBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        loop {
            if this.done {
                if !this.carry.is_empty() {
                    let rest = std::mem::take(&mut this.carry);
                    let rest = this.scrubbed(rest);
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from(rest)))));
                }
                return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
            }
            match ready!(this.inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        let mut joined = std::mem::take(&mut this.carry);
                        joined.extend_from_slice(&data);
                        let out = this.scrubbed(joined);
                        // The last chunk holds nothing back: the end of the body goes out with
                        // it (and the framing's end in the same write).
                        if this.inner.is_end_stream() {
                            this.done = true;
                            if out.is_empty() {
                                continue;
                            }
                            return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                        }
                        let cut = out.len() - this.scrubber.partial_tail(&out);
                        this.carry = out[cut..].to_vec();
                        if cut > 0 {
                            let mut out = out;
                            out.truncate(cut);
                            return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                        }
                    }
                    Err(frame) => {
                        this.trailers = frame.into_trailers().ok();
                        this.done = true;
                    }
                },
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => this.done = true,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.carry.is_empty() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::credentials::secret::Secret;
    use crate::http::full;

    /// A channel as a stream of frames.
    fn tokio_stream_rx<T: Send + 'static>(
        mut rx: tokio::sync::mpsc::Receiver<T>,
    ) -> impl futures_util::Stream<Item = T> {
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }

    const SECRET: &str = "sk-live-0123456789abcdef";
    const PH: &str = "greyproxy:credential:v1:s1:00112233445566778899aabbccddeeff";

    fn scrubber() -> Scrubber {
        Scrubber::new(&[(PH, &Secret::new(SECRET).unwrap())])
    }

    fn chunked(chunks: &[&'static [u8]]) -> Body {
        let frames: Vec<Result<Frame<Bytes>, hyper::Error>> = chunks
            .iter()
            .map(|c| Ok(Frame::data(Bytes::from_static(c))))
            .collect();
        http_body_util::StreamBody::new(futures_util::stream::iter(frames)).boxed()
    }

    #[tokio::test]
    async fn a_small_body_is_scrubbed_whole_with_its_new_length() {
        let chunks: [&'static [u8]; 2] = [
            b"{\"auth\":\"Bearer sk-live-01",
            b"23456789abcdef\",\"q\":\"sk-live-0123456789abcdef\"}",
        ];
        let len: usize = chunks.iter().map(|c| c.len()).sum();
        let mut resp = Response::new(chunked(&chunks));
        resp.headers_mut().insert(
            "x-echo",
            HeaderValue::from_str(&format!("Bearer {SECRET}")).unwrap(),
        );
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        let out = response(resp, scrubber()).await;
        assert_eq!(out.headers()["x-echo"], format!("Bearer {PH}").as_str());
        let want = format!("{{\"auth\":\"Bearer {PH}\",\"q\":\"{PH}\"}}");
        assert_eq!(
            out.headers()[header::CONTENT_LENGTH],
            want.len().to_string().as_str()
        );
        let bytes = out.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(String::from_utf8(bytes.to_vec()).unwrap(), want);

        // Nothing to replace: the origin's length stays, and so do the bytes.
        let mut resp = Response::new(full("hello"));
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(5));
        let out = response(resp, scrubber()).await;
        assert_eq!(out.headers()[header::CONTENT_LENGTH], "5");
        let bytes = out.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"hello");

        // A HEAD answer keeps the length of the body it describes.
        let mut resp = Response::new(full(Bytes::new()));
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(1234));
        let out = response(resp, scrubber()).await;
        assert_eq!(out.headers()[header::CONTENT_LENGTH], "1234");
    }

    /// Like hyper's body of a response with a `Content-Length`: it says it is over once that
    /// many bytes are out, but its own end (`None`) comes only when the connection's task
    /// closes it, here never.
    struct Declared(Option<Bytes>);

    impl http_body::Body for Declared {
        type Data = Bytes;
        type Error = hyper::Error;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
            match self.0.take() {
                Some(d) => Poll::Ready(Some(Ok(Frame::data(d)))),
                None => Poll::Pending,
            }
        }
        fn is_end_stream(&self) -> bool {
            self.0.is_none()
        }
    }

    #[tokio::test]
    async fn a_small_body_goes_on_once_its_declared_length_is_in() {
        let text = format!("{{\"echo\":\"{SECRET}\"}}");
        let mut resp = Response::new(Declared(Some(Bytes::from(text.clone()))).boxed());
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(text.len()));
        let out = tokio::time::timeout(Duration::from_secs(10), response(resp, scrubber()))
            .await
            .expect("the response waited for the origin's body to be closed");
        let want = format!("{{\"echo\":\"{PH}\"}}");
        assert_eq!(
            out.headers()[header::CONTENT_LENGTH],
            want.len().to_string().as_str()
        );
        let bytes = out.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(String::from_utf8(bytes.to_vec()).unwrap(), want);
    }

    #[tokio::test]
    async fn a_streamed_body_is_scrubbed_across_chunks_without_delaying_events() {
        let chunks: [&'static [u8]; 2] = [
            b"{\"auth\":\"Bearer sk-live-01",
            b"23456789abcdef\",\"q\":\"sk-live-0123456789abcdef\"}",
        ];
        let out = response(Response::new(chunked(&chunks)), scrubber()).await;
        assert!(out.headers().get(header::CONTENT_LENGTH).is_none());
        let bytes = out.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        assert_eq!(text, format!("{{\"auth\":\"Bearer {PH}\",\"q\":\"{PH}\"}}"));

        // Larger than read whole: streamed, its length dropped.
        let big = format!("{}{SECRET}", "x".repeat(WHOLE_MAX as usize));
        let mut resp = Response::new(full(big.clone()));
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(big.len()));
        let out = response(resp, scrubber()).await;
        assert!(out.headers().get(header::CONTENT_LENGTH).is_none());
        let bytes = out.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(bytes.len(), WHOLE_MAX as usize + PH.len());
        assert!(bytes.ends_with(PH.as_bytes()));

        // Nothing is held back unless it could begin the secret: each event of a stream
        // passes at once.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, hyper::Error>>(4);
        let body = http_body_util::StreamBody::new(tokio_stream_rx(rx)).boxed();
        let out = response(Response::new(body), scrubber()).await;
        let mut b = out.into_body();
        tx.send(Ok(Frame::data(Bytes::from_static(b"data: {\"a\":1}\n\n"))))
            .await
            .unwrap();
        let f = b.frame().await.unwrap().unwrap();
        assert_eq!(
            f.data_ref().unwrap(),
            &Bytes::from_static(b"data: {\"a\":1}\n\n")
        );
        tx.send(Ok(Frame::data(Bytes::from_static(b"data: sk-li"))))
            .await
            .unwrap();
        let f = b.frame().await.unwrap().unwrap();
        assert_eq!(
            f.data_ref().unwrap(),
            &Bytes::from_static(b"data: "),
            "held: `sk-li`"
        );
        drop(tx);
        let f = b.frame().await.unwrap().unwrap();
        assert_eq!(
            f.data_ref().unwrap(),
            &Bytes::from_static(b"sk-li"),
            "flushed at the end"
        );
        // A body without the secret passes unchanged.
        let out = response(Response::new(full("hello")), scrubber()).await;
        let bytes = out.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"hello");
    }
}
