//! The origin side of a recorded client connection: one HTTP/2 connection shared by all
//! streams, or one HTTP/1.1 connection used request by request and re-dialled when the origin
//! closed it.

use std::io;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::http::Body;

use crate::net::{Dial, Io};

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Body>),
    H2(hyper::client::conn::http2::SendRequest<Body>),
}

/// The origin side of a client connection: one HTTP/2 connection shared by all streams, or one
/// HTTP/1.1 connection used request by request and re-dialled if the origin closed it.
pub(crate) struct Upstream {
    h2: bool,
    sender: tokio::sync::Mutex<Option<Sender>>,
    dial: Dial,
}

async fn handshake(io: Box<dyn Io>, h2: bool) -> io::Result<Sender> {
    let io = TokioIo::new(io);
    if h2 {
        let (s, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(io::Error::other)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream h2 connection ended");
            }
        });
        Ok(Sender::H2(s))
    } else {
        let (s, conn) = hyper::client::conn::http1::Builder::new()
            .preserve_header_case(true)
            .handshake(io)
            .await
            .map_err(io::Error::other)?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream h1 connection ended");
            }
        });
        Ok(Sender::H1(s))
    }
}

/// Why [`Upstream::send`] got no response.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    /// A new connection could not be opened.
    #[error("cannot reach the origin: {0}")]
    Dial(io::Error),
    /// The HTTP handshake on a new connection failed.
    #[error("origin handshake failed: {0}")]
    Handshake(io::Error),
    /// The request failed on the connection.
    #[error("{0}")]
    Request(hyper::Error),
    /// No connection to send on.
    #[error("no origin connection")]
    NoConnection,
}

impl Upstream {
    /// Starts from an already connected stream; `dial` opens replacements (HTTP/1.1).
    pub(crate) async fn new(first: Box<dyn Io>, h2: bool, dial: Dial) -> io::Result<Upstream> {
        let sender = handshake(first, h2).await?;
        Ok(Upstream {
            h2,
            sender: tokio::sync::Mutex::new(Some(sender)),
            dial,
        })
    }

    /// Starts without a connection; the first request dials.
    pub(crate) fn lazy(h2: bool, dial: Dial) -> Upstream {
        Upstream {
            h2,
            sender: tokio::sync::Mutex::new(None),
            dial,
        }
    }

    /// Whether requests go out as HTTP/2.
    pub(crate) fn is_h2(&self) -> bool {
        self.h2
    }

    /// Sends one request, (re)connecting when needed.
    pub(crate) async fn send(&self, req: Request<Body>) -> Result<Response<Incoming>, SendError> {
        let mut slot = self.sender.lock().await;
        let usable = match slot.as_mut() {
            Some(Sender::H1(s)) => !s.is_closed() && s.ready().await.is_ok(),
            Some(Sender::H2(s)) => !s.is_closed() && s.ready().await.is_ok(),
            None => false,
        };
        if !usable {
            let io = (self.dial)().await.map_err(SendError::Dial)?;
            *slot = Some(handshake(io, self.h2).await.map_err(SendError::Handshake)?);
        }
        match slot.as_mut() {
            Some(Sender::H2(s)) => {
                // HTTP/2 streams run concurrently: don't hold the lock for the response.
                let fut = s.send_request(req);
                drop(slot);
                fut.await.map_err(SendError::Request)
            }
            Some(Sender::H1(s)) => {
                let fut = s.send_request(req);
                drop(slot);
                fut.await.map_err(SendError::Request)
            }
            None => Err(SendError::NoConnection),
        }
    }
}
