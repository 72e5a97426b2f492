//! The Responses WebSocket: the 101 answer to the upgrade, then one session per connection
//! reading `response.create` messages and answering each with its events, one message each.
//! No extension is negotiated (permessage-deflate offers are declined).

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::script::{Api, Transport};
use super::{Body, Recorded, Shared, openai};

/// Answers the upgrade with 101 and serves the connection once hyper hands it over.
pub(super) fn accept(
    shared: Arc<Shared>,
    req: &mut Request<Incoming>,
    authority: String,
    headers: Vec<(String, String)>,
) -> Response<Body> {
    let Some(key) = req.headers().get("sec-websocket-key") else {
        return Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .body(Empty::new().boxed())
            .unwrap();
    };
    let accept = derive_accept_key(key.as_bytes());
    let upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else {
            return;
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        session(shared, ws, authority, headers).await;
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "Upgrade")
        .header("sec-websocket-accept", accept)
        .body(Empty::new().boxed())
        .unwrap()
}

async fn session<S>(
    shared: Arc<Shared>,
    mut ws: WebSocketStream<S>,
    authority: String,
    headers: Vec<(String, String)>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Some(Ok(msg)) = ws.next().await {
        let text = match msg {
            Message::Text(t) => t.as_str().to_string(),
            Message::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
            Message::Close(_) => break,
            _ => continue,
        };
        shared.record(Recorded {
            method: "WS".into(),
            path: "/v1/responses".into(),
            authority: authority.clone(),
            headers: headers.clone(),
            body: text.clone().into_bytes(),
            transport: Transport::WebSocket,
        });
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if body["type"] != "response.create" {
            continue;
        }
        let (events, delay) = if body["generate"].as_bool() == Some(false) {
            let call = super::script::Call {
                api: Api::OpenAiResponses,
                transport: Transport::WebSocket,
                body,
                index: 0,
            };
            (
                openai::warmup_events(&call, shared.next_seq()),
                Default::default(),
            )
        } else {
            let (call, a, seq) = shared.answer(Api::OpenAiResponses, Transport::WebSocket, body);
            (openai::response_events(&call, &a, seq), a.chunk_delay)
        };
        for (i, e) in events.iter().enumerate() {
            if i > 0 && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if ws.send(Message::text(e.data.to_string())).await.is_err() {
                return;
            }
        }
    }
    let _ = ws.close(None).await;
}
