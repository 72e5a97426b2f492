//! The echo scrub on a response's way back: a response to a request that had secrets
//! substituted into it may quote them (an echo service, an error page repeating the
//! `Authorization` header). Every form of each secret (as is, JSON-escaped, percent-encoded)
//! is replaced by its placeholder in the header values and, streaming, in the body, so the
//! agent and the capture never see it.
//!
//! The body is scrubbed as it streams: each chunk is joined to the tail held back from the
//! previous one and scrubbed; only a tail that could begin a secret (the longest suffix that is
//! a prefix of one of its forms) is held back, so a secret split across chunks is still found
//! while an event stream is not delayed (its events end in `\n\n`, which begins no secret). The length changes when a secret is replaced
//! (a placeholder is not as long), so `Content-Length` is dropped and the body framed anew.
//! Compressed bodies cannot be scrubbed: the exchange asks the origin for an identity body
//! (no `Accept-Encoding`) whenever it substitutes.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{HeaderValue, Response, header};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;

use crate::credentials::secret::Secret;
use crate::credentials::substitute::{Pair, forms, scrub};
use crate::http::Body;

/// The pairs to scrub, owned (the body outlives the request).
pub(crate) type Owned = Vec<(String, Secret)>;

fn pairs(owned: &Owned) -> Vec<Pair<'_>> {
    owned.iter().map(|(p, s)| (p.as_str(), s)).collect()
}

/// The response with every substituted secret replaced by its placeholder.
pub(crate) fn response(resp: Response<Body>, owned: Owned) -> Response<Body> {
    let (mut parts, body) = resp.into_parts();
    let p = pairs(&owned);
    for value in parts.headers.values_mut() {
        if let Some(new) = scrub(value.as_bytes(), &p)
            && let Ok(v) = HeaderValue::from_bytes(&new)
        {
            *value = v;
        }
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    drop(p);
    let forms = owned.iter().flat_map(|(_, s)| forms(s)).collect();
    let body = ScrubBody {
        inner: Box::pin(body),
        owned,
        forms,
        carry: Vec::new(),
        trailers: None,
        done: false,
    };
    Response::from_parts(parts, body.boxed())
}

struct ScrubBody {
    inner: Pin<Box<Body>>,
    owned: Owned,
    /// Every form of every secret.
    forms: Vec<Vec<u8>>,
    /// Scrubbed bytes not passed on yet (they may begin a secret the next chunk ends).
    carry: Vec<u8>,
    /// Trailers seen after the data, sent once the carry is out.
    trailers: Option<http::HeaderMap>,
    done: bool,
}

impl ScrubBody {
    fn scrubbed(&self, bytes: Vec<u8>) -> Vec<u8> {
        scrub(&bytes, &pairs(&self.owned)).unwrap_or(bytes)
    }

    /// How many trailing bytes of `out` could be the start of a secret.
    fn partial_tail(&self, out: &[u8]) -> usize {
        self.forms
            .iter()
            .filter_map(|f| {
                (1..f.len().min(out.len() + 1))
                    .rev()
                    .find(|&k| out.ends_with(&f[..k]))
            })
            .max()
            .unwrap_or(0)
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
                        let cut = out.len() - this.partial_tail(&out);
                        this.carry = out[cut..].to_vec();
                        if cut > 0 {
                            return Poll::Ready(Some(Ok(Frame::data(Bytes::copy_from_slice(
                                &out[..cut],
                            )))));
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
    use crate::http::full;

    /// A channel as a stream of frames.
    fn tokio_stream_rx<T: Send + 'static>(
        mut rx: tokio::sync::mpsc::Receiver<T>,
    ) -> impl futures_util::Stream<Item = T> {
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }

    #[tokio::test]
    async fn a_secret_split_across_chunks_is_scrubbed_in_body_and_headers() {
        let secret = "sk-live-0123456789abcdef";
        let ph = "greyproxy:credential:v1:s1:00112233445566778899aabbccddeeff";
        let chunks: Vec<Result<Frame<Bytes>, hyper::Error>> = vec![
            Ok(Frame::data(Bytes::from_static(
                b"{\"auth\":\"Bearer sk-live-01",
            ))),
            Ok(Frame::data(Bytes::from_static(
                b"23456789abcdef\",\"q\":\"sk-live-0123456789abcdef\"}",
            ))),
        ];
        let body = http_body_util::StreamBody::new(futures_util::stream::iter(chunks)).boxed();
        let mut resp = Response::new(body);
        resp.headers_mut().insert(
            "x-echo",
            HeaderValue::from_str(&format!("Bearer {secret}")).unwrap(),
        );
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from_static("70"));
        let out = response(resp, vec![(ph.to_string(), Secret::new(secret).unwrap())]);
        assert_eq!(out.headers()["x-echo"], format!("Bearer {ph}").as_str());
        assert!(out.headers().get(header::CONTENT_LENGTH).is_none());
        let bytes = out.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        assert!(!text.contains(secret), "{text}");
        assert_eq!(text, format!("{{\"auth\":\"Bearer {ph}\",\"q\":\"{ph}\"}}"));
        // Nothing is held back unless it could begin the secret: each event of a stream
        // passes at once.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, hyper::Error>>(4);
        let body = http_body_util::StreamBody::new(tokio_stream_rx(rx)).boxed();
        let out = response(
            Response::new(body),
            vec![(ph.to_string(), Secret::new(secret).unwrap())],
        );
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
        let out = response(
            Response::new(full("hello")),
            vec![(ph.to_string(), Secret::new(secret).unwrap())],
        );
        let bytes = out.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"hello");
    }
}
