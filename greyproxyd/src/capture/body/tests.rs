#![allow(clippy::unwrap_used)]

use std::future::poll_fn;

use bytes::Bytes;
use futures_util::stream;
use http::{HeaderMap, HeaderValue};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use tokio::sync::{mpsc, oneshot};

use super::*;

type Item = Result<Frame<Bytes>, &'static str>;

fn data(s: &'static str) -> Item {
    Ok(Frame::data(Bytes::from_static(s.as_bytes())))
}

/// A body fed frame by frame from the test through a channel, so that the test controls when
/// each frame becomes available.
fn channel_body() -> (
    mpsc::UnboundedSender<Item>,
    impl Body<Data = Bytes, Error = &'static str>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Item>();
    let body = StreamBody::new(stream::poll_fn(move |cx| rx.poll_recv(cx)));
    (tx, body)
}

/// Polls one frame, panicking if the body would wait.
fn poll_now<B: Body + Unpin>(body: &mut B) -> Option<Result<Frame<B::Data>, B::Error>> {
    let waker = std::task::Waker::noop();
    let mut cx = Context::from_waker(waker);
    match Pin::new(body).poll_frame(&mut cx) {
        Poll::Ready(frame) => frame,
        Poll::Pending => panic!("body was not ready"),
    }
}

#[test]
fn capture_keeps_prefix_and_counts_everything() {
    let mut capture = BodyCapture::new(5);
    capture.push(b"abc");
    assert!(!capture.truncated());
    capture.push(b"");
    capture.push(b"defgh");
    capture.push(b"ij");
    assert_eq!(capture.wire_size(), 10);
    assert!(capture.truncated());
    let captured = capture.finish(true);
    assert_eq!(&captured.bytes[..], b"abcde");
    assert_eq!(captured.wire_size, 10);
    assert!(captured.truncated && captured.complete);
    assert!(captured.first_byte.is_some());
    assert!(captured.trailers.is_none());
}

#[test]
fn capture_exactly_at_cap_is_not_truncated() {
    let mut capture = BodyCapture::new(4);
    capture.push(b"ab");
    capture.push(b"cd");
    let captured = capture.finish(true);
    assert_eq!(&captured.bytes[..], b"abcd");
    assert!(!captured.truncated);
}

#[test]
fn capture_with_zero_cap_keeps_nothing() {
    let mut capture = BodyCapture::new(0);
    capture.push(b"xyz");
    let captured = capture.finish(false);
    assert!(captured.bytes.is_empty());
    assert_eq!(captured.wire_size, 3);
    assert!(captured.truncated && !captured.complete);
}

#[test]
fn capture_capacity_never_exceeds_cap() {
    let cap = 100_000;
    let mut capture = BodyCapture::new(cap);
    for _ in 0..1000 {
        capture.push(&[7u8; 333]);
    }
    assert_eq!(capture.buf.len(), cap);
    assert!(capture.buf.capacity() <= cap);
}

#[test]
fn empty_capture_has_no_first_byte() {
    let captured = BodyCapture::new(10).finish(true);
    assert!(captured.first_byte.is_none());
    assert_eq!(captured.wire_size, 0);
    assert!(!captured.truncated);
}

#[tokio::test]
async fn frames_pass_in_order_and_copy_is_capped() {
    let frames = vec![data("hello "), data("streaming "), data("world")];
    let (tx, rx) = oneshot::channel();
    let tee = TeeBody::new(StreamBody::new(stream::iter(frames)), 8, tx);
    let collected = tee.collect().await.unwrap().to_bytes();
    assert_eq!(&collected[..], b"hello streaming world");
    let captured = rx.await.unwrap();
    assert_eq!(&captured.bytes[..], b"hello st");
    assert_eq!(captured.wire_size, 21);
    assert!(captured.truncated);
    assert!(captured.complete);
    assert!(captured.first_byte.unwrap() <= captured.ended);
}

#[tokio::test]
async fn frames_are_forwarded_as_they_arrive() {
    let (feed, body) = channel_body();
    let (tx, mut rx) = oneshot::channel();
    let mut tee = TeeBody::new(body, 1024, tx);

    feed.send(data("event: a\n\n")).unwrap();
    let first = poll_now(&mut tee).unwrap().unwrap();
    assert_eq!(first.into_data().unwrap(), "event: a\n\n");
    // Nothing more is available, and the wrapper must not hold the stream back waiting for it.
    let waker = std::task::Waker::noop();
    let mut cx = Context::from_waker(waker);
    assert!(Pin::new(&mut tee).poll_frame(&mut cx).is_pending());
    assert!(rx.try_recv().is_err());

    feed.send(data("event: b\n\n")).unwrap();
    let second = poll_now(&mut tee).unwrap().unwrap();
    assert_eq!(second.into_data().unwrap(), "event: b\n\n");
    drop(feed);
    assert!(poll_now(&mut tee).is_none());

    let captured = rx.try_recv().unwrap();
    assert_eq!(&captured.bytes[..], b"event: a\n\nevent: b\n\n");
    assert!(captured.complete && !captured.truncated);
}

#[tokio::test]
async fn trailers_pass_and_are_kept() {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let frames: Vec<Item> = vec![data("payload"), Ok(Frame::trailers(trailers.clone()))];
    let (tx, rx) = oneshot::channel();
    let mut tee = TeeBody::new(StreamBody::new(stream::iter(frames)), 100, tx);

    let mut seen_trailers = None;
    while let Some(frame) = poll_fn(|cx| Pin::new(&mut tee).poll_frame(cx)).await {
        if let Ok(t) = frame.unwrap().into_trailers() {
            seen_trailers = Some(t);
        }
    }
    assert_eq!(seen_trailers.as_ref(), Some(&trailers));
    let captured = rx.await.unwrap();
    assert_eq!(captured.trailers.as_ref(), Some(&trailers));
    assert_eq!(&captured.bytes[..], b"payload");
    assert!(captured.complete);
}

#[tokio::test]
async fn drop_before_end_reports_incomplete() {
    let (feed, body) = channel_body();
    let (tx, rx) = oneshot::channel();
    let mut tee = TeeBody::new(body, 1024, tx);
    feed.send(data("partial")).unwrap();
    poll_now(&mut tee).unwrap().unwrap();
    drop(tee);
    let captured = rx.await.unwrap();
    assert!(!captured.complete);
    assert_eq!(&captured.bytes[..], b"partial");
    assert_eq!(captured.wire_size, 7);
}

#[tokio::test]
async fn error_reports_incomplete_and_passes_the_error() {
    let frames = vec![data("abc"), Err("upstream reset"), data("never")];
    let (tx, rx) = oneshot::channel();
    let mut tee = TeeBody::new(StreamBody::new(stream::iter(frames)), 1024, tx);
    poll_now(&mut tee).unwrap().unwrap();
    assert_eq!(poll_now(&mut tee).unwrap().unwrap_err(), "upstream reset");
    let captured = rx.await.unwrap();
    assert!(!captured.complete);
    assert_eq!(&captured.bytes[..], b"abc");
    drop(tee);
}

#[tokio::test]
async fn sized_body_finishes_without_final_poll() {
    // hyper does not poll a Content-Length body again once `is_end_stream` is true.
    let (tx, mut rx) = oneshot::channel();
    let mut tee = TeeBody::new(Full::new(Bytes::from_static(b"0123456789")), 4, tx);
    assert_eq!(tee.size_hint().exact(), Some(10));
    assert!(!tee.is_end_stream());
    poll_now(&mut tee).unwrap().unwrap();
    assert!(tee.is_end_stream());
    let captured = rx.try_recv().unwrap();
    assert!(captured.complete && captured.truncated);
    assert_eq!(&captured.bytes[..], b"0123");
    assert_eq!(captured.wire_size, 10);
    // Dropping afterwards must not send again (the channel would panic-free ignore it anyway,
    // but the copy must be the one taken at the end).
    drop(tee);
}

#[tokio::test]
async fn empty_body_dropped_unpolled_is_complete() {
    let (tx, rx) = oneshot::channel();
    let tee = TeeBody::new(Empty::<Bytes>::new(), 1024, tx);
    assert!(tee.is_end_stream());
    assert_eq!(tee.size_hint().exact(), Some(0));
    drop(tee);
    let captured = rx.await.unwrap();
    assert!(captured.complete);
    assert!(captured.bytes.is_empty() && captured.first_byte.is_none());
}

#[tokio::test]
async fn dropped_receiver_does_not_disturb_traffic() {
    let (tx, rx) = oneshot::channel();
    drop(rx);
    let tee = TeeBody::new(Full::new(Bytes::from_static(b"still flows")), 4, tx);
    let collected = tee.collect().await.unwrap().to_bytes();
    assert_eq!(&collected[..], b"still flows");
}

#[tokio::test]
async fn calling_hands_the_copy_over_once_at_the_end() {
    // The recording path's form: the copy goes to a function, run where the body ends.
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Captured>::new()));
    let sink = got.clone();
    let mut tee = TeeBody::calling(Full::new(Bytes::from_static(b"0123456789")), 4, move |c| {
        sink.lock().unwrap().push(c)
    });
    poll_now(&mut tee).unwrap().unwrap();
    assert_eq!(
        got.lock().unwrap().len(),
        1,
        "called at the frame that ends it"
    );
    drop(tee);
    let got = got.lock().unwrap();
    assert_eq!(got.len(), 1, "not called again on drop");
    assert!(got[0].complete && got[0].truncated);
    assert_eq!(&got[0].bytes[..], b"0123");
}

#[tokio::test]
async fn calling_on_a_body_dropped_midway_gets_an_incomplete_copy() {
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Captured>::new()));
    let sink = got.clone();
    let (tx, body) = channel_body();
    let mut tee = TeeBody::calling(body, 1024, move |c| sink.lock().unwrap().push(c));
    tx.send(data("part")).unwrap();
    poll_now(&mut tee).unwrap().unwrap();
    assert!(got.lock().unwrap().is_empty(), "not over yet");
    drop(tee);
    let got = got.lock().unwrap();
    assert_eq!(got.len(), 1);
    assert!(!got[0].complete);
    assert_eq!(&got[0].bytes[..], b"part");
}

#[test]
fn textual_content_types() {
    for ct in [
        "text/plain",
        "text/html; charset=utf-8",
        "TEXT/Event-Stream",
        "text/event-stream",
        "application/json",
        " Application/JSON ; charset=UTF-8",
        "application/vnd.api+json",
        "application/problem+json",
        "application/atom+xml",
        "application/xml",
        "application/x-ndjson",
        "application/x-www-form-urlencoded",
        "application/javascript",
        "application/graphql",
        "application/soap+xml",
    ] {
        assert!(is_textual(Some(ct)), "{ct} should be textual");
    }
    for ct in [
        "",
        "text/",
        "application/octet-stream",
        "image/png",
        "multipart/form-data; boundary=x",
        "application/grpc",
        "application/json-patch",
        "application/protobuf",
    ] {
        assert!(!is_textual(Some(ct)), "{ct} should not be textual");
    }
    assert!(!is_textual(None));
}

#[test]
fn tee_body_is_send_sync_unpin() {
    // `BoxBody` and hyper's executors need `Send + Sync`; `Unpin` spares callers a pin.
    fn check<T: Send + Sync + Unpin + 'static>() {}
    check::<TeeBody<Full<Bytes>>>();
    check::<TeeBody<hyper::body::Incoming>>();
}
