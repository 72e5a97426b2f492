//! Hang-up detection for a client that is waiting (held) and has sent nothing yet.

use tokio::net::TcpStream;

/// Completes when the client hangs up while it is held. A client that sends bytes before the
/// decision cannot be watched this way (the bytes stay queued for the tunnel); then this
/// future never completes and the hold ends by decision or timeout.
pub(crate) async fn client_gone(stream: &TcpStream) {
    let mut b = [0u8; 1];
    loop {
        match stream.peek(&mut b).await {
            Ok(0) | Err(_) => return,
            Ok(_) => std::future::pending::<()>().await,
        }
    }
}
